"""The Datadog HTTP client: auth headers, error shapes and size limits, and the way out:
the proxy (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, see proxies.py) and the TLS trust
(``datadog.ca_file``) of every request.

It sends one :class:`ApiRequest` and returns the body bytes or raises an :class:`RequestFailed`
that carries a one-line, secret-free description and a ``reason`` used as a metric label.
It never follows a redirect: the keys go to the configured host (or through the proxy to
it) and nowhere else. It does not retry or sleep: the scheduler decides when to call again.
What each answer says about the rate limit it records in its :class:`RateLimits`, which
owns that state (``client.rate_limits``).
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import json
import logging
import re
import ssl
from collections.abc import Callable

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from .. import __version__
from ..clock import SYSTEM_CLOCK, Clock
from ..collectors.protocol import ApiRequest
from ..logs import Redactor
from .credentials import Credentials, CredentialsError
from .proxies import Proxy, ProxyRules
from .ratelimit import RateLimits
from .rejections import rejection_hint

log = logging.getLogger(__name__)

USER_AGENT = f"datadog-cnm-exporter/{__version__}"


class RequestFailed(Exception):
    """A request failed, whatever the cause: an error answer, a timeout, the network, no
    credentials. ``reason`` is a short label value; str() is one clear line."""

    reason = "error"
    retryable = False


class RateLimited(RequestFailed):
    """429: no call to this endpoint before ``retry_at`` (monotonic seconds)."""

    reason = "rate_limited"

    def __init__(self, message: str, retry_at: float):
        super().__init__(message)
        self.retry_at = retry_at


class HttpError(RequestFailed):
    """A 4xx answer other than 429: retrying the same request will not help."""

    reason = "http_error"

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class Unauthorized(HttpError):
    """401: the keys were not accepted. Retrying within the poll will not fix a key."""

    reason = "unauthorized"


class Forbidden(HttpError):
    """403: a key is wrong, belongs to another site, or lacks the endpoint's permission."""

    reason = "forbidden"


class RedirectRefused(HttpError):
    """A 3xx answer. Datadog's API does not redirect; following one would send the keys to
    whatever host the answer names."""


class ServerError(HttpError):
    """A 5xx answer: worth retrying after a pause (``retry_after`` seconds when Datadog said
    so in a Retry-After header)."""

    reason = "server_error"
    retryable = True

    def __init__(self, message: str, status: int, retry_after: float | None = None):
        super().__init__(message, status)
        self.retry_after = retry_after


# Longer than any poll interval: a Retry-After beyond it means "not in this poll" anyway.
_MOST_RETRY_AFTER = 86400.0


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """A Retry-After header (RFC 9110: delay seconds or an HTTP date) as seconds from ``now``
    (Unix time); None when absent or unreadable. Never negative, at most a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    return min(max(0.0, seconds), _MOST_RETRY_AFTER)


class RequestTimeout(RequestFailed):
    reason = "timeout"
    retryable = True


class ConnectionFailed(RequestFailed):
    """No answer for a network reason: the subclasses say which (DNS, a refused port, TLS),
    so an operator can tell a resolver from a firewall from a certificate at a glance."""

    reason = "connection_error"
    retryable = True


class DnsFailed(ConnectionFailed):
    """The host name did not resolve (no such name, or the resolver failed)."""

    reason = "dns_error"


class ConnectionRefused(ConnectionFailed):
    """The host answered that nothing listens on the port (RST): a firewall or a wrong port."""

    reason = "connection_refused"


class TlsFailed(ConnectionFailed):
    """The TLS handshake failed (a plain-HTTP port, no shared protocol or cipher)."""

    reason = "tls_error"


class TlsRejected(TlsFailed):
    """The server's certificate was not accepted: retrying within seconds will not change it."""

    retryable = False


class ProxyRefused(ConnectionFailed):
    """The proxy refused the tunnel or the login (407): not worth retrying either."""

    retryable = False


class ResponseTooLarge(RequestFailed):
    reason = "too_large"


class MissingCredentials(RequestFailed):
    reason = "credentials"


_TITLE = re.compile(rb"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def describe_error_body(body: bytes, content_type: str) -> str:
    """One line saying what an error body says, whatever shape Datadog chose this time."""
    text = body.strip()
    if not text:
        return "empty body"
    if "html" in content_type or text[:1] == b"<":
        match = _TITLE.search(text)
        title = match.group(1).decode("utf-8", "replace").strip() if match else ""
        return f"HTML error page{f' ({title})' if title else ''}"
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to read
        return "non-JSON body: " + _clip(text.decode("utf-8", "replace"))
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list) or not errors:
        return "unrecognised error body: " + _clip(text.decode("utf-8", "replace"))
    return "; ".join(_describe_error_item(item) for item in errors[:5])


# What an error body may say and still say nothing about the cause.
_NO_DETAIL = frozenset({"", "400", "bad request", "bad_request", "error"})


def has_no_details(body: bytes) -> bool:
    """True for an error body that names no cause: empty, ``{}``, ``{"errors": []}``, or
    errors that only repeat the status (``["Bad Request"]``, ``[{"status": "400",
    "title": "Bad Request"}]``)."""
    text = body.strip()
    if not text:
        return True
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to read
        return False
    if not isinstance(document, dict) or set(document) - {"errors"}:
        return False
    errors = document.get("errors", [])
    if not isinstance(errors, list):
        return False
    for item in errors:
        if isinstance(item, str):
            words = [item]
        elif isinstance(item, dict):
            said = {key: value for key, value in item.items() if value not in (None, "")}
            if not set(said) <= {"status", "title", "code"}:
                return False
            words = [str(value) for value in said.values()]
        else:
            return False
        if any(word.strip().lower() not in _NO_DETAIL for word in words):
            return False
    return True


def _describe_error_item(item: object) -> str:
    if isinstance(item, str):
        return _clip(item)
    if isinstance(item, dict):
        title = item.get("title") or item.get("code") or item.get("status") or "error"
        detail = item.get("detail")
        return _clip(f"{title}: {detail}" if detail else str(title))
    return _clip(json.dumps(item))


def _clip(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


# A certificate from an unknown issuer is most often a TLS-inspecting egress proxy's.
CA_HINT = "; if a TLS-inspecting proxy re-signs traffic, trust its CA with datadog.ca_file"


class DatadogClient:
    """One aiohttp session against one Datadog base URL with one pair of keys.

    ``proxies`` says which proxy carries the requests (default: none, every request direct;
    the pool passes the environment's); ``ssl_context`` the TLS trust (default: the
    system's, which honours ``SSL_CERT_FILE``); ``resolver`` how host names become addresses
    (default: the system's); ``clock`` the time its rate-limit state (and a Retry-After date)
    is read in.
    """

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials,
        redactor: Redactor,
        timeout: float,
        max_response_size: int,
        on_response: Callable[[str, str], None] = lambda endpoint, code: None,
        clock: Clock = SYSTEM_CLOCK,
        proxies: ProxyRules | None = None,
        ssl_context: ssl.SSLContext | None = None,
        resolver: AbstractResolver | None = None,
        url_source: str | None = None,
    ):
        self.credentials = credentials
        # The setting that chose base_url (DD_SITE, datadog.api_url, ...): a 401/403 names it.
        self.url_source = url_source
        self.redactor = redactor
        self.timeout = timeout
        self.max_response_size = max_response_size
        self.on_response = on_response
        self.proxies = proxies if proxies is not None else ProxyRules.from_environ({})
        for secret in self.proxies.secrets:
            redactor.add(secret)
        self.ssl_context = ssl_context
        self.resolver = resolver
        self.clock = clock  # Retry-After dates are read against its wall time
        self.rate_limits = RateLimits(clock)
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""
        self.proxy: Proxy | None = None
        self._set_base_url(base_url)

    def _set_base_url(self, base_url: str) -> None:
        base_url = base_url.rstrip("/")
        if base_url == self.base_url:
            return
        self.base_url = base_url
        url = URL(base_url)
        self.proxy = self.proxies.proxy_for(url)
        if self.proxy is not None:
            log.info(
                "Datadog requests go through a proxy",
                extra={
                    "host": url.host_port_subcomponent,
                    "proxy": self.proxy.shown,
                    "from": self.proxy.variable,
                },
            )
        elif self.proxies.http is not None or self.proxies.https is not None:
            # Set but not used: NO_PROXY, loopback, or the other scheme's variable.
            log.debug("Datadog requests go direct", extra={"host": url.host_port_subcomponent})

    def reconfigure(
        self,
        base_url: str,
        *,
        timeout: float,
        max_response_size: int,
        ssl_context: ssl.SSLContext | None = None,
        url_source: str | None = None,
    ) -> None:
        """Apply reloaded settings to the next request (a new base URL forgets rate limits)."""
        self.url_source = url_source
        if base_url.rstrip("/") != self.base_url:
            self.rate_limits.forget()
        self._set_base_url(base_url)
        self.timeout = timeout
        self.max_response_size = max_response_size
        self.ssl_context = ssl_context

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = None
            if self.resolver is not None:
                connector = aiohttp.TCPConnector(resolver=self.resolver)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                # Bodies are decompressed by aiohttp and counted after that, against the limit.
                auto_decompress=True,
                raise_for_status=False,
                # Proxies come from ProxyRules (Go's reading of the variables, which aiohttp's
                # own differs from), and ~/.netrc must not add credentials of its own.
                trust_env=False,
            )
        return self._session

    async def fetch(self, request: ApiRequest) -> bytes:
        """Send ``request``; return the 2xx body or raise an RequestFailed (never anything else)."""
        try:
            headers = self.credentials.headers()
        except CredentialsError as exc:
            raise MissingCredentials(str(exc)) from None
        try:
            return await self._send(request, headers)
        except RequestFailed as exc:
            # Error text can echo a request; strip any key before it travels further.
            exc.args = (self.redactor.redact(str(exc)),)
            raise

    async def _send(self, request: ApiRequest, headers: dict[str, str]) -> bytes:
        endpoint = request.endpoint
        url = self.base_url + request.path
        session = self._get_session()
        proxy = self.proxy
        proxy_headers = None
        if proxy is not None and proxy.authorization is not None:
            # aiohttp sends proxy_headers only on a CONNECT; a plain-HTTP request goes to the
            # proxy as it is, so there the login travels with the request itself.
            if url.startswith("https:"):
                proxy_headers = {"Proxy-Authorization": proxy.authorization}
            else:
                headers = {**headers, "Proxy-Authorization": proxy.authorization}
        # Counted in flight until answered: pacing leaves room for answers still to come.
        with self.rate_limits.sending(endpoint):
            try:
                async with asyncio.timeout(self.timeout):
                    async with session.request(
                        request.method,
                        url,
                        params=request.params or None,
                        json=request.json_body,
                        headers=headers,
                        allow_redirects=False,
                        proxy=proxy.url if proxy is not None else None,
                        proxy_headers=proxy_headers,
                        ssl=self.ssl_context if self.ssl_context is not None else True,
                    ) as response:
                        self.rate_limits.record(endpoint, response.headers)
                        self.on_response(endpoint, str(response.status))
                        body = await self._read_limited(response)
                        return self._check(request, response, body)
            except TimeoutError:
                self.on_response(endpoint, "timeout")
                raise RequestTimeout(
                    f"{endpoint}: no complete answer within {self.timeout:g}s"
                ) from None
            except aiohttp.ClientError as exc:
                failure = self._connection_failure(endpoint, exc, proxy)
                # The same word as the poll's failure reason: dns_error, tls_error, ...
                self.on_response(endpoint, failure.reason)
                raise failure from None

    @staticmethod
    def _connection_failure(
        endpoint: str, exc: aiohttp.ClientError, proxy: Proxy | None
    ) -> ConnectionFailed:
        """One line saying which hop failed and how: the proxy, name resolution, a refused
        port, the TLS handshake, or the connection otherwise."""
        via = f"proxy {proxy.shown} (from {proxy.variable})" if proxy is not None else ""
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            error = exc.certificate_error
            why = getattr(error, "verify_message", None) or str(error)
            hint = "" if "mismatch" in why else CA_HINT
            return TlsRejected(
                f"{endpoint}: TLS handshake failed: certificate of {exc.host}:{exc.port} not "
                f"accepted: {why}{hint}"
            )
        if isinstance(exc, aiohttp.ClientHttpProxyError):
            message = f"{endpoint}: {via} answered {exc.status} {exc.message} to CONNECT"
            if exc.status == 407:
                return ProxyRefused(message + ": check the login in the proxy URL")
            if exc.status in (400, 403, 405):
                return ProxyRefused(message)
            return ConnectionFailed(message)
        if isinstance(exc, aiohttp.ClientProxyConnectionError):
            return ConnectionFailed(f"{endpoint}: cannot connect to {via}: {exc.os_error}")
        if isinstance(exc, aiohttp.ClientSSLError):
            return TlsFailed(f"{endpoint}: TLS handshake failed: {exc}")
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            why = exc.os_error.strerror or str(exc.os_error)
            return DnsFailed(f"{endpoint}: could not resolve host {exc.host}: {why}")
        if isinstance(exc, aiohttp.ClientConnectorError) and (
            exc.os_error.errno == errno.ECONNREFUSED
        ):
            return ConnectionRefused(f"{endpoint}: connection refused by {exc.host}:{exc.port}")
        return ConnectionFailed(f"{endpoint}: {type(exc).__name__}: {exc}")

    async def _read_limited(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.max_response_size
        if response.content_length is not None and response.content_length > limit:
            raise ResponseTooLarge(
                f"answer of {response.content_length} bytes exceeds the {limit}-byte limit"
            )
        chunks = []
        size = 0
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise ResponseTooLarge(f"answer exceeds the {limit}-byte limit; abandoned")
            chunks.append(chunk)
        return b"".join(chunks)

    def _check(self, request: ApiRequest, response: aiohttp.ClientResponse, body: bytes) -> bytes:
        endpoint = request.endpoint
        status = response.status
        if 200 <= status < 300:
            return body
        if 300 <= status < 400:
            raise RedirectRefused(
                f"{endpoint}: HTTP {status} redirect to {redirect_target(response)} refused: "
                "Datadog's API does not redirect (check datadog.api_url / DD_API_URL)",
                status,
            )
        if status == 400 and request.bare_400_hint and has_no_details(body):
            raise HttpError(f"{endpoint}: HTTP 400: {request.bare_400_hint}", status)
        what = describe_error_body(body, response.headers.get("Content-Type", ""))
        message = f"{endpoint}: HTTP {status}: {what}"
        if status == 407 and self.proxy is not None:
            message += f" (from {self.proxy.shown}; check the login in {self.proxy.variable})"
        if status == 429:
            wait, until = self.rate_limits.record_429(endpoint, response.headers)
            raise RateLimited(f"{message}; next call in {wait:g}s", until)
        if status >= 500:
            after = retry_after_seconds(response.headers.get("Retry-After"), self.clock.wall())
            if after is not None:
                message += f" (Retry-After {after:g}s)"
            raise ServerError(message, status, after)
        if status in (401, 403):
            hint = rejection_hint(status, endpoint, what, self.base_url, self.url_source)
            raise (Unauthorized if status == 401 else Forbidden)(f"{message}; {hint}", status)
        raise HttpError(message, status)


def redirect_target(response: aiohttp.ClientResponse) -> str:
    """Where a redirect points, as ``host[:port]`` only: its path and query may carry anything
    (even a key echoed back), and the host is what a user needs to recognise it."""
    location = response.headers.get("Location")
    if not location:
        return "nowhere (no Location header)"
    try:
        target = response.url.join(URL(location))
        host = target.host_port_subcomponent
    except (ValueError, TypeError):
        return "an unreadable Location"
    return _clip(host or "an unreadable Location", 200)
