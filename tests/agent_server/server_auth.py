"""The test server's auth: the ``x-user`` header names the user (no check at all), and each
new run's metadata names that user, which is where the recorder reads it."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(headers: dict[bytes, bytes]) -> str:
    user = headers.get(b"x-user")
    if not user:
        raise Auth.exceptions.HTTPException(status_code=401, detail="no x-user header")
    return user.decode()


@auth.on.threads.create_run
async def stamp_user(ctx: Auth.types.AuthContext, value: Any) -> None:
    # the README's line: the authenticated user overrides whatever the client sent (in
    # place: the server keeps its own reference to this dict)
    value["metadata"]["user_id"] = ctx.user.identity
