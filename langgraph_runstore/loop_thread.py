"""A private event loop on a daemon thread, where synchronous calls run their coroutines:
the checkpointer's sync path and the run manager's sync methods.

The saver's synchronous methods (``get_tuple``, ``put`` …, used by ``graph.invoke``) submit
the matching coroutine to this loop and wait for it. The loop belongs to the saver, so a
sync call never depends on some other loop being alive and free: it works from a plain
script, from a worker thread beside a running loop, and from a thread that runs a loop
itself (a Jupyter cell), whose loop simply waits, as it does for any blocking call. The one
call refused is one made on this loop itself, which would wait for itself forever.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """Owns one event loop running on a daemon thread, started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop, or None when it has not been started (or was stopped)."""
        return self._loop

    def is_current(self) -> bool:
        """Whether the caller is running on this loop."""
        loop = self._loop
        if loop is None:
            return False
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None:
                return self._loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            # daemon: a saver that is never closed must not keep the process alive
            thread = threading.Thread(target=run, name=self._name, daemon=True)
            thread.start()
            ready.wait()
            self._loop, self._thread = loop, thread
            return loop

    def run(self, factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``factory()`` on the loop and block until it finishes; return its result.

        Raises RuntimeError when called on this loop, which would wait for itself.
        """
        if self.is_current():
            raise RuntimeError(
                f"a blocking call was made on the {self._name} loop, which runs the call "
                "itself and would wait for itself forever: await the async method there"
            )
        loop = self._loop or self._start()
        future = asyncio.run_coroutine_threadsafe(factory(), loop)
        try:
            return future.result()
        except BaseException:
            # interrupted while waiting (e.g. KeyboardInterrupt): do not leave the work running
            future.cancel()
            raise

    def stop(self) -> None:
        """Stop the loop and join its thread; a later ``run`` starts a fresh one."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if thread is threading.current_thread():  # stop() from a task on the loop itself
            loop.call_soon(loop.stop)
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
