"""Stand-ins for what sits between the exporter and Datadog, all on 127.0.0.1: a forward proxy
that records what it forwards, a server that records every request reaching it, a resolver
that knows only the names a test gives it, and TLS material from a test CA (trustme)."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import trustme
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

# The name the tests give "Datadog": it resolves nowhere on the machine (no DNS query is
# ever made for it), only through HostsResolver or the proxy's own table.
DATADOG_HOST = "datadog.test"


@dataclass
class Forwarded:
    """One request the proxy received: CONNECT host:port, or an absolute-form request."""

    method: str
    target: str
    headers: dict[str, str]  # names lower-cased
    head: bytes  # the request head as received


@dataclass
class ForwardProxy:
    """A minimal HTTP forward proxy: absolute-form requests (plain HTTP) and CONNECT tunnels.

    Target hosts are looked up in ``hosts`` (name -> address), never in DNS; anything else
    gets 502. With ``login`` set, a request without that Basic login gets 407.
    """

    hosts: dict[str, str]
    login: tuple[str, str] | None = None
    forwarded: list[Forwarded] = field(default_factory=list)
    tunnelled: bytearray = field(default_factory=bytearray)  # client-to-server tunnel bytes
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def seen(self) -> bytes:
        """Every byte a client sent to the proxy: request heads and tunnelled traffic."""
        return b"".join(item.head for item in self.forwarded) + bytes(self.tunnelled)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        self.forwarded.append(Forwarded(method, target, headers, head))
        if self.login is not None:
            token = base64.b64encode(":".join(self.login).encode()).decode()
            if headers.get("proxy-authorization") != f"Basic {token}":
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\n'
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                await writer.drain()
                return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = await self._open(host, int(port), writer)
            if upstream is None:
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await _splice(reader, writer, *upstream, self.tunnelled)
            return
        parts = urlsplit(target)
        upstream = await self._open(parts.hostname or "", parts.port or 80, writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        kept = [
            line
            for line in lines[1:]
            if line
            and line.split(":", 1)[0].strip().lower()
            not in ("proxy-authorization", "proxy-connection", "connection")
        ]
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        up_writer.write(
            "\r\n".join([f"{method} {path} HTTP/1.1", *kept, "Connection: close", "", ""]).encode(
                "latin-1"
            )
            + body
        )
        await up_writer.drain()
        # One request per connection: the answer is copied until the server closes.
        while data := await up_reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        up_writer.close()

    async def _open(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        address = self.hosts.get(host)
        if address is None:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return None
        return await asyncio.open_connection(address, port)


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
    sink: bytearray,
) -> None:
    async def copy(
        source: asyncio.StreamReader, target: asyncio.StreamWriter, record: bool
    ) -> None:
        try:
            while data := await source.read(1 << 16):
                if record:
                    sink.extend(data)
                target.write(data)
                await target.drain()
        except OSError:
            pass
        finally:
            target.close()

    await asyncio.gather(copy(reader, up_writer, True), copy(up_reader, writer, False))


class HostsResolver(AbstractResolver):
    """Resolves only the names it was given, so no test ever sends a DNS query."""

    def __init__(self, hosts: dict[str, str]):
        self.hosts = hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.hosts.get(host)
        if address is None:
            raise OSError(f"{host} is unknown to the test resolver")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


@dataclass
class Recorder:
    """An HTTP server that records every request reaching it and answers like Datadog would
    (an empty, valid connections answer), so following a redirect to it would "work"."""

    requests: list[web.BaseRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> None:
        async def record(request: web.Request) -> web.Response:
            self.requests.append(request)
            self.headers.append(dict(request.headers))
            return web.json_response({"data": []})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class PrivateCA:
    """A private CA (as a TLS-inspecting proxy has) and server contexts signed by it."""

    directory: Path
    ca: trustme.CA = field(default_factory=trustme.CA)

    @property
    def ca_file(self) -> Path:
        path = self.directory / "private-ca.pem"
        if not path.exists():
            path.write_bytes(self.ca.cert_pem.bytes())
        return path

    def server_context(self, *names: str) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(*names).configure_cert(context)
        return context

    def server_files(self, *names: str) -> tuple[Path, Path]:
        """(certificate chain, key) PEM files for a server answering for ``names``."""
        cert = self.ca.issue_cert(*names)
        chain = self.directory / "server.pem"
        key = self.directory / "server.key"
        chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        key.write_bytes(cert.private_key_pem.bytes())
        return chain, key
