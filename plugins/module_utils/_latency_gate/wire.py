"""Wire-level timing for the latency gate: when a request's bytes leave and arrive on the socket.

Why on the socket: the gate must report what an independent client such as wrk or curl reports, the time
from the connect (a new connection) or the first write (a kept-alive one) to the socket read that brought
the first and the last body byte. httpx's own timing (``Response.elapsed``, or a clock read around the
httpx calls) also counts the client's own work: building the request, taking the pooled connection, and
parsing the response in httpx and h11, pure Python, most of a millisecond per request on a busy 2-core
host, which is no part of the server's latency. httpcore's ``trace`` request extension marks the connect
and the header phases, but has no event per read of the body, so the first and last body byte would
still be timed after parsing.

How, with public API only: WireTransport is an httpx transport (httpx.BaseTransport) over an httpcore
ConnectionPool whose network backend (its public ``network_backend`` argument) wraps httpcore's own
synchronous one and notes on a WireClock when the connection was opened, first written and last read.
It does for a direct HTTP/1.1 connection what httpx.HTTPTransport does (the same pool settings, the same
httpx exception for each httpcore one); tests/unit/test_latency_gate_wire.py holds the two side by side.
Proved on httpx 0.23.3 / httpcore 0.16.3 (Debian 12's) and httpx 0.28.1 / httpcore 1.0.9.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
from time import perf_counter

try:
    import httpcore
    import httpx
except ImportError:  # the module reports the missing library (engine.HTTPX_IMPORT_ERROR)
    httpcore = httpx = None

_TransportBase = httpx.BaseTransport if httpx is not None else object
_ByteStreamBase = httpx.SyncByteStream if httpx is not None else object

# The httpcore exceptions httpx.HTTPTransport turns into the httpx exception of the same name.
HTTPCORE_ERROR_NAMES = (
    "TimeoutException",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "NetworkError",
    "ConnectError",
    "ReadError",
    "WriteError",
    "ProxyError",
    "UnsupportedProtocol",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
)
_HTTPX_ERROR_FOR = {getattr(httpcore, n): getattr(httpx, n) for n in HTTPCORE_ERROR_NAMES} if httpx else {}


def httpx_error(exc: Exception) -> Exception | None:
    """The httpx exception httpx raises for httpcore's ``exc`` (the most specific), or None for another."""
    for cls in type(exc).__mro__:
        mapped = _HTTPX_ERROR_FOR.get(cls)
        if mapped is not None:
            return mapped(str(exc))
    return None


class WireClock:
    """When one connection last connected, first wrote and last read (set by its TimedNetworkStream)."""

    __slots__ = ("connect_at", "first_write_at", "read_at")

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Forget the last request's times: call before sending the next one."""
        self.connect_at = self.first_write_at = self.read_at = None

    def start(self) -> float | None:
        """When the request started on the wire: its connect, or its first write on a kept-alive connection."""
        return self.connect_at if self.connect_at is not None else self.first_write_at


class TimedNetworkStream:
    """httpcore's network stream, noting on the clock when data is written and read."""

    def __init__(self, inner, clock: WireClock):
        self._inner = inner
        self._clock = clock

    def read(self, *args, **kwargs):
        data = self._inner.read(*args, **kwargs)
        self._clock.read_at = perf_counter()
        return data

    def write(self, *args, **kwargs):
        if self._clock.first_write_at is None:
            self._clock.first_write_at = perf_counter()
        return self._inner.write(*args, **kwargs)

    def start_tls(self, *args, **kwargs):
        return TimedNetworkStream(self._inner.start_tls(*args, **kwargs), self._clock)

    def __getattr__(self, name):
        return getattr(self._inner, name)


class TimedNetworkBackend:
    """httpcore's sync network backend: timed streams, and TCP_NODELAY on every new connection.

    httpcore before 0.17 (under httpx 0.23, Debian 12's python3-httpx) leaves Nagle's algorithm on and writes
    a request's headers and body separately: with the peer's delayed ACK that added ~44 ms to every
    keep-alive POST on loopback (measured with httpx 0.23.3 / httpcore 0.16.3; 1.3 ms with httpx 0.28.1).
    httpcore 0.17+ sets TCP_NODELAY itself (encode/httpcore#651); setting it again there is harmless.
    """

    def __init__(self, inner, clock: WireClock):
        self._inner = inner
        self._clock = clock

    def connect_tcp(self, *args, **kwargs):
        if self._clock.connect_at is None:
            self._clock.connect_at = perf_counter()
        stream = self._inner.connect_tcp(*args, **kwargs)
        sock = stream.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # not a TCP socket: nothing to tune
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return TimedNetworkStream(stream, self._clock)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def sync_network_backend():
    """httpcore's own synchronous backend: httpcore.SyncBackend (1.0), httpcore.backends.sync (0.16)."""
    backend_class = getattr(httpcore, "SyncBackend", None)
    if backend_class is None:
        backend_class = importlib.import_module("httpcore.backends.sync").SyncBackend
    return backend_class()


class _ResponseStream(_ByteStreamBase):
    """An httpcore response body as httpx reads it, with httpx's exceptions (as httpx's ResponseStream)."""

    def __init__(self, core_stream):
        self._core_stream = core_stream

    def __iter__(self):
        try:
            # A loop, not ``yield from``, as in httpx: closing this generator leaves httpcore's to close().
            for part in self._core_stream:  # noqa: UP028  # pylint: disable=use-yield-from
                yield part
        except Exception as exc:
            mapped = httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc

    def close(self) -> None:
        if hasattr(self._core_stream, "close"):
            self._core_stream.close()


class WireTransport(_TransportBase):
    """An httpx transport of one keep-alive HTTP/1.1 connection, timed on the wire by ``clock``.

    The pool is httpx.HTTPTransport's for ``limits=httpx.Limits(max_connections=1,
    max_keepalive_connections=1), retries=0`` and no proxy.
    """

    def __init__(self, clock: WireClock, verify: bool = True):
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.clock = clock
        self.pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=TimedNetworkBackend(sync_network_backend(), clock),
        )

    def handle_request(self, request):
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            response = self.pool.handle_request(core_request)
        except Exception as exc:
            mapped = httpx_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.pool.close()
