"""A scripted fake of the OpenAI and Anthropic HTTP APIs, for driving the real LangChain clients.

Its one job: listen on a real 127.0.0.1 socket and answer ``/v1/chat/completions``,
``/v1/responses`` and ``/v1/messages`` with replies queued by the test, in each provider's
wire format (streamed as SSE or not), so ``ChatOpenAI``/``ChatAnthropic`` run their real
parsing and usage-accounting code.

Usage::

    with FakeProviderAPI() as api:
        api.script(Reply(text="hi", usage=Usage(input=10, output=2)))
        ChatOpenAI(base_url=api.openai_base_url, api_key="test").invoke("hello")
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeProviderAPI", "Reply", "Usage"]

JSON = dict[str, Any]
# An SSE event: (``event:`` name or None, data). A str is sent verbatim (OpenAI's ``[DONE]``).
Event = tuple[str | None, JSON | str]


@dataclass(frozen=True)
class Usage:
    input: int = 0  # input tokens NOT read from or written to the cache
    output: int = 0  # output tokens, INCLUDING reasoning/thinking tokens
    cache_read: int = 0
    cache_write_5m: int = 0  # Anthropic 5-minute TTL writes (OpenAI: cache_write_tokens = 5m+1h)
    cache_write_1h: int = 0
    reasoning: int = 0  # part of `output`
    service_tier: str | None = None  # OpenAI: flex/priority/default; Anthropic: standard/priority


@dataclass(frozen=True)
class Reply:
    text: str = ""  # assistant text ("" for none)
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()  # (name, arguments); ids generated
    thinking: str = ""  # Anthropic thinking block / OpenAI Responses reasoning summary
    usage: Usage | None = Usage()  # None: the response carries no usage at all
    model: str | None = None  # model echoed in the response; default: the request's model
    fail_after_chunks: int | None = None  # streamed only: drop the connection after N events
    status: int = 200  # non-200: answer with that status and the provider's JSON error body


def _id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _written(u: Usage) -> int:
    return u.cache_write_5m + u.cache_write_1h


def _prompt(u: Usage) -> int:
    # OpenAI counts cache reads and cache writes inside its input total; Anthropic does not
    return u.input + u.cache_read + _written(u)


def _pieces(text: str, n: int = 3) -> list[str]:
    """Split into up to ``n`` non-empty pieces, so clients must really concatenate deltas."""
    if not text:
        return []
    size = max(1, -(-len(text) // n))
    return [text[i : i + size] for i in range(0, len(text), size)]


# ---------------------------------------------------------------- OpenAI Chat Completions


def _chat_usage(u: Usage) -> JSON:
    prompt_details: JSON = {"cached_tokens": u.cache_read, "audio_tokens": 0}
    if _written(u):
        prompt_details["cache_write_tokens"] = _written(u)
    return {
        "prompt_tokens": _prompt(u),
        "completion_tokens": u.output,
        "total_tokens": _prompt(u) + u.output,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": u.reasoning, "audio_tokens": 0},
    }


def _chat_envelope(reply: Reply, model: str, cid: str, obj: str) -> JSON:
    env: JSON = {"id": cid, "object": obj, "created": int(time.time()), "model": model}
    env["system_fingerprint"] = "fp_fake"
    if reply.usage is not None and reply.usage.service_tier:
        env["service_tier"] = reply.usage.service_tier
    return env


def _chat_completion(reply: Reply, model: str, request: JSON) -> JSON:
    message: JSON = {
        "role": "assistant",
        "content": reply.text or None,  # the API sends null, not "", when there is no text
        "refusal": None,
        "annotations": [],
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": _id("call_"), "type": "function", "function": {"name": n, "arguments": a}}
            for n, a in ((n, json.dumps(args)) for n, args in reply.tool_calls)
        ]
    body = _chat_envelope(reply, model, _id("chatcmpl-"), "chat.completion")
    finish = "tool_calls" if reply.tool_calls else "stop"
    body["choices"] = [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}]
    if reply.usage is not None:
        body["usage"] = _chat_usage(reply.usage)
    return body


def _chat_events(reply: Reply, model: str, request: JSON) -> list[Event]:
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    cid = _id("chatcmpl-")

    def chunk(delta: JSON, finish: str | None = None) -> Event:
        c = _chat_envelope(reply, model, cid, "chat.completion.chunk")
        c["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        if include_usage:  # with include_usage the API marks every other chunk "usage": null
            c["usage"] = None
        return (None, c)

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in _pieces(reply.text)]
    for i, (name, args) in enumerate(reply.tool_calls):
        head = {"index": i, "id": _id("call_"), "type": "function"}
        head["function"] = {"name": name, "arguments": ""}
        events.append(chunk({"tool_calls": [head]}))
        for piece in _pieces(json.dumps(args)):
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    events.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
    if include_usage and reply.usage is not None:
        last = _chat_envelope(reply, model, cid, "chat.completion.chunk")
        last.update(choices=[], usage=_chat_usage(reply.usage))
        events.append((None, last))
    events.append((None, "[DONE]"))
    return events


# ---------------------------------------------------------------- OpenAI Responses


def _responses_usage(u: Usage) -> JSON:
    return {
        "input_tokens": _prompt(u),
        # the SDK's InputTokensDetails declares cache_write_tokens as required
        "input_tokens_details": {
            "cached_tokens": u.cache_read,
            "cache_write_tokens": _written(u),
        },
        "output_tokens": u.output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning},
        "total_tokens": _prompt(u) + u.output,
    }


def _responses_items(reply: Reply) -> list[JSON]:
    items: list[JSON] = []
    if reply.thinking:
        summary = [{"type": "summary_text", "text": reply.thinking}]
        items.append({"id": _id("rs_"), "type": "reasoning", "summary": summary})
    if reply.text:
        part = {"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}
        msg = dict(id=_id("msg_"), type="message", role="assistant", status="completed")
        items.append({**msg, "content": [part]})
    for name, args in reply.tool_calls:
        call = dict(id=_id("fc_"), type="function_call", call_id=_id("call_"), name=name)
        items.append({**call, "arguments": json.dumps(args), "status": "completed"})
    return items


def _response(reply: Reply, model: str, request: JSON, rid: str, items: list[JSON] | None) -> JSON:
    """The ``response`` object; ``items=None`` is the in-progress snapshot of a stream."""
    done = items is not None
    now = time.time()
    return {
        "id": rid,
        "object": "response",
        "created_at": now,
        "completed_at": now if done else None,
        "status": "completed" if done else "in_progress",
        "model": model,
        "output": items or [],
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "metadata": request.get("metadata") or {},
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "temperature": request.get("temperature", 1.0),
        "top_p": request.get("top_p", 1.0),
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools", []),  # the API echoes the request's tool definitions
        "text": {"format": {"type": "text"}},
        "truncation": "disabled",
        "service_tier": reply.usage.service_tier if reply.usage else None,
        "usage": _responses_usage(reply.usage) if done and reply.usage else None,
    }


def _responses_events(reply: Reply, model: str, request: JSON) -> list[Event]:
    rid = _id("resp_")
    items = _responses_items(reply)
    events: list[Event] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, "sequence_number": len(events), **fields}))

    emit("response.created", response=_response(reply, model, request, rid, None))
    emit("response.in_progress", response=_response(reply, model, request, rid, None))
    for idx, item in enumerate(items):
        at: JSON = {"item_id": item["id"], "output_index": idx}
        if item["type"] == "reasoning":
            text = item["summary"][0]["text"]
            emit("response.output_item.added", output_index=idx, item={**item, "summary": []})
            part = {"type": "summary_text", "text": ""}
            emit("response.reasoning_summary_part.added", **at, summary_index=0, part=part)
            for piece in _pieces(text):
                emit("response.reasoning_summary_text.delta", **at, summary_index=0, delta=piece)
            emit("response.reasoning_summary_text.done", **at, summary_index=0, text=text)
            part = {"type": "summary_text", "text": text}
            emit("response.reasoning_summary_part.done", **at, summary_index=0, part=part)
        elif item["type"] == "message":
            part = item["content"][0]
            opened = {**item, "status": "in_progress", "content": []}
            emit("response.output_item.added", output_index=idx, item=opened)
            empty = {**part, "text": ""}
            emit("response.content_part.added", **at, content_index=0, part=empty)
            for piece in _pieces(part["text"]):
                emit("response.output_text.delta", **at, content_index=0, delta=piece, logprobs=[])
            done = {"content_index": 0, "text": part["text"], "logprobs": []}
            emit("response.output_text.done", **at, **done)
            emit("response.content_part.done", **at, content_index=0, part=part)
        else:  # function_call
            opened = {**item, "status": "in_progress", "arguments": ""}
            emit("response.output_item.added", output_index=idx, item=opened)
            for piece in _pieces(item["arguments"]):
                emit("response.function_call_arguments.delta", **at, delta=piece)
            emit("response.function_call_arguments.done", **at, arguments=item["arguments"])
        emit("response.output_item.done", output_index=idx, item=item)
    emit("response.completed", response=_response(reply, model, request, rid, items))
    return events


# ---------------------------------------------------------------- Anthropic Messages


def _anthropic_usage(u: Usage | None) -> JSON:
    if u is None:  # the API always sends usage; this is the closest to "none"
        return {"input_tokens": 0, "output_tokens": 0}
    usage: JSON = {
        "input_tokens": u.input,
        "output_tokens": u.output,
        "cache_read_input_tokens": u.cache_read,
        "cache_creation_input_tokens": _written(u),
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write_5m,
            "ephemeral_1h_input_tokens": u.cache_write_1h,
        },
        "service_tier": u.service_tier or "standard",
    }
    if u.reasoning:
        usage["output_tokens_details"] = {"thinking_tokens": u.reasoning}
    return usage


def _anthropic_blocks(reply: Reply) -> list[JSON]:
    blocks: list[JSON] = []
    if reply.thinking:
        blocks.append({"type": "thinking", "thinking": reply.thinking, "signature": "sig"})
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    for name, args in reply.tool_calls:
        blocks.append({"type": "tool_use", "id": _id("toolu_"), "name": name, "input": args})
    return blocks


def _stop_reason(reply: Reply) -> str:
    return "tool_use" if reply.tool_calls else "end_turn"


def _anthropic_message(reply: Reply, model: str, content: list[JSON], usage: JSON) -> JSON:
    message = dict(id=_id("msg_"), type="message", role="assistant", model=model, content=content)
    return {**message, "stop_reason": _stop_reason(reply), "stop_sequence": None, "usage": usage}


def _anthropic_body(reply: Reply, model: str, request: JSON) -> JSON:
    blocks = _anthropic_blocks(reply)
    return _anthropic_message(reply, model, blocks, _anthropic_usage(reply.usage))


def _anthropic_events(reply: Reply, model: str, request: JSON) -> list[Event]:
    u = reply.usage
    events: list[Event] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append((kind, {"type": kind, **fields}))

    # message_start: the input-side counts (with the TTL split) and a placeholder output of 1
    start_usage = _anthropic_usage(u)
    if u is not None:
        start_usage["output_tokens"] = 1
        start_usage.pop("output_tokens_details", None)
    message = _anthropic_message(reply, model, [], start_usage)
    emit("message_start", message={**message, "stop_reason": None})  # null until message_delta
    emit("ping")
    for i, block in enumerate(_anthropic_blocks(reply)):
        start: JSON
        if block["type"] == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"])]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        elif block["type"] == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"])]
        else:
            start = {**block, "input": {}}
            pieces = _pieces(json.dumps(block["input"]))
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
        emit("content_block_start", index=i, content_block=start)
        for delta in deltas:
            emit("content_block_delta", index=i, delta=delta)
        emit("content_block_stop", index=i)
    # message_delta usage is cumulative: the real API repeats the input-side totals here, but
    # only the flat cache_creation_input_tokens, not the 5m/1h split (message_start alone has
    # that). Mirrored, so clients see exactly what production sends.
    delta_usage: JSON = {"output_tokens": 0}
    if u is not None:
        delta_usage = {
            "input_tokens": u.input,
            "cache_creation_input_tokens": _written(u),
            "cache_read_input_tokens": u.cache_read,
            "output_tokens": u.output,
        }
        if u.reasoning:
            delta_usage["output_tokens_details"] = {"thinking_tokens": u.reasoning}
    stop = {"stop_reason": _stop_reason(reply), "stop_sequence": None}
    emit("message_delta", delta=stop, usage=delta_usage)
    emit("message_stop")
    return events


# ---------------------------------------------------------------- errors

_OPENAI_ERRORS = {400: "invalid_request_error", 401: "invalid_request_error", 429: "requests"}
_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_body(anthropic: bool, status: int, message: str) -> JSON:
    if anthropic:
        kind = _ANTHROPIC_ERRORS.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = _OPENAI_ERRORS.get(status, "server_error")
    code = "rate_limit_exceeded" if status == 429 else None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# ---------------------------------------------------------------- server

Builder = Callable[[Reply, str, JSON], Any]
_WHOLE: dict[str, Builder] = {
    "/v1/chat/completions": _chat_completion,
    "/v1/responses": lambda r, m, req: _response(r, m, req, _id("resp_"), _responses_items(r)),
    "/v1/messages": _anthropic_body,
}
_STREAMED: dict[str, Builder] = {
    "/v1/chat/completions": _chat_events,
    "/v1/responses": _responses_events,
    "/v1/messages": _anthropic_events,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client must not keep pytest alive
    api: FakeProviderAPI


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 for chunked transfer encoding: a truncated chunked body is the only way a
    # client can tell "the model broke mid-stream" from "the stream ended".
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]  # the Anthropic beta client adds ?beta=true
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body: JSON = json.loads(raw) if raw else {}
        api = self.server.api
        headers = {k.lower(): v for k, v in self.headers.items()}
        api._record({"path": path, "body": body, "headers": headers})
        is_anthropic = path == "/v1/messages"
        model = str(body.get("model", ""))
        reply = api._pop(model) if path in _WHOLE else None
        if path not in _WHOLE:
            self._json(404, _error_body(is_anthropic, 404, f"fake API has no route {path}"))
        elif reply is None:
            # x-should-retry: the SDKs would otherwise retry a 500 twice, with backoff, before
            # surfacing the mistake in the test's script
            msg = f"no scripted reply for {path} (model {model!r})"
            self._json(500, _error_body(is_anthropic, 500, msg), {"x-should-retry": "false"})
        elif reply.status != 200:
            # retry-after-ms: a client configured to retry does so in 10 ms, not 0.5-8 s
            msg, wait = f"scripted error (HTTP {reply.status})", {"retry-after-ms": "10"}
            self._json(reply.status, _error_body(is_anthropic, reply.status, msg), wait)
        elif body.get("stream"):
            self._sse(_STREAMED[path](reply, reply.model or model, body), reply.fail_after_chunks)
        else:
            self._json(200, _WHOLE[path](reply, reply.model or model, body))

    def _json(self, status: int, payload: JSON, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        # one request per connection: no idle keep-alive handler threads outlive a test
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _sse(self, events: list[Event], fail_after: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for n, (name, data) in enumerate(events):
                if fail_after is not None and n >= fail_after:
                    # no terminating zero-length chunk: the client sees an incomplete body
                    self.wfile.flush()
                    return
                text = data if isinstance(data, str) else json.dumps(data)
                frame = (f"event: {name}\n" if name else "") + f"data: {text}\n\n"
                self._chunk(frame.encode())
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on the stream; nothing left to tell it

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()  # flush per event so clients really receive a stream


class FakeProviderAPI:
    """The fake server; use as a context manager (``__enter__`` starts it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: deque[Reply] = deque()
        self._by_model: dict[str, deque[Reply]] = {}
        self.requests: list[JSON] = []  # {"path", "body", "headers" (lower-cased keys)}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeProviderAPI:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeProviderAPI is not running; use it as a context manager")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.base_url  # the Anthropic SDK appends /v1/messages itself

    def script(self, *replies: Reply) -> None:
        """Queue replies for any endpoint and model, answered first in, first out."""
        with self._lock:
            self._shared.extend(replies)

    def reply_for(self, model: str, *replies: Reply) -> None:
        """Queue replies for requests naming ``model``; these take priority over ``script``."""
        with self._lock:
            self._by_model.setdefault(model, deque()).extend(replies)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._shared) + sum(len(q) for q in self._by_model.values())

    def _record(self, request: JSON) -> None:
        with self._lock:
            self.requests.append(request)

    def _pop(self, model: str) -> Reply | None:
        with self._lock:
            queue = self._by_model.get(model)
            if queue:
                return queue.popleft()
            return self._shared.popleft() if self._shared else None
