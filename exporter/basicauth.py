"""HTTP basic auth for the exporter's own server (``basic_auth_users`` of
``--web.config.file``): checks ``Authorization: Basic`` headers against bcrypt hashes.

The server (server.py) asks for it on every path but the probes' (``server.OPEN_PATHS``).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Mapping

import aiohttp
import bcrypt
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

REALM = "datadog-cnm-exporter"
# Successful checks are remembered so a scrape every few seconds does not pay for bcrypt.
AUTH_CACHE_SIZE = 256


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes."""

    def __init__(self, users: Mapping[str, bytes]):
        self._users = dict(users)
        self._cost = max((int(h[4:6]) for h in self._users.values()), default=10)
        # Cache keys are keyed hashes, so the cache never holds a password and a lookup's
        # timing says nothing about one.
        self._cache_key = os.urandom(32)
        self._good: OrderedDict[bytes, None] = OrderedDict()

    async def allows(self, header: str | None) -> bool:
        credentials = _user_and_password(header)
        if credentials is None:
            return False
        user, password = credentials
        digest = hmac.new(self._cache_key, f"{user}\0{password}".encode(), hashlib.sha256)
        token = digest.digest()
        if token in self._good:
            self._good.move_to_end(token)
            return True
        # bcrypt takes tens of milliseconds by design: keep it off the event loop.
        if not await asyncio.to_thread(self._check, user, password):
            return False
        self._good[token] = None
        if len(self._good) > AUTH_CACHE_SIZE:
            self._good.popitem(last=False)
        return True

    def _check(self, user: str, password: str) -> bool:
        known = self._users.get(user)
        # An unknown user is checked against a dummy hash of the same cost, so a wrong name
        # takes as long as a wrong password and names cannot be probed by timing.
        matches = bcrypt.checkpw(password.encode(), known or _dummy_hash(self._cost))
        return known is not None and matches


@functools.cache
def _dummy_hash(cost: int) -> bytes:
    return bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=max(4, min(cost, 31))))


def _user_and_password(header: str | None) -> tuple[str, str] | None:
    """``Basic dXNlcjpwYXNz`` -> ("user", "pass"); None for anything else.

    UTF-8, as the challenge announces (``charset="UTF-8"``, RFC 7617), not aiohttp's default.
    """
    if not header:
        return None
    try:
        # UnicodeError (not UTF-8, non-ASCII base64) is a ValueError too.
        decoded = aiohttp.BasicAuth.decode(header, encoding="utf-8")
    except ValueError:
        return None
    return decoded.login, decoded.password


def auth_middleware(auth: BasicAuth, open_paths: frozenset[str]) -> Middleware:
    """Asks for a login (401) on every path but ``open_paths``."""

    @web.middleware
    async def require_basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in open_paths or await auth.allows(request.headers.get("Authorization")):
            return await handler(request)
        return web.Response(
            status=401,
            text="Unauthorized.\n",
            headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
        )

    return require_basic_auth
