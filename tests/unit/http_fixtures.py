"""Real HTTP servers for tests, served from threads of the test process.

    with HTTPTestServer({"/fixed": fixed_delay(190, jitter_ms=10)}) as server:
        url = server.url("/fixed")

Each route is a callable taking the request handler; factories below build the usual ones (fixed delay,
a streaming body with known chunk timings, a status code, a hang, a trickle, a dropped connection...).
The server records every request (method, path, headers, body) and the most requests it served at
once, so tests can check what the client sent and how many requests were in flight.
"""

from __future__ import annotations

import contextlib
import random
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

Route = Callable[["_Handler"], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real servers
    disable_nagle_algorithm = True  # small writes go out at once: timings are the route's, not TCP's
    server: _Server

    def _dispatch(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        self.request_body = self.rfile.read(length) if length else b""
        self.server.record(self, path)
        route = self.server.routes.get(path)
        try:
            if route is None:
                send_body(self, 404, b"no such route\n", "text/plain")
            else:
                route(self)
        finally:
            self.server.leave()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch

    def log_message(self, *args) -> None:  # quiet test output
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, routes: dict[str, Route]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes = routes
        self.requests: list[dict] = []
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-answer (a timeout, wrk stopping) is normal here: no traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def record(self, handler: _Handler, path: str) -> None:
        with self._lock:
            self.requests.append(
                {
                    "method": handler.command,
                    "path": path,
                    "headers": dict(handler.headers.items()),
                    "body": handler.request_body,
                }
            )
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class HTTPTestServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 and a free port, for the duration of a ``with`` block.

    ``tls=(certfile, keyfile)`` serves HTTPS instead (see self_signed_cert).
    """

    def __init__(self, routes: dict[str, Route], tls: tuple[str, str] | None = None):
        self._server = _Server(routes)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> HTTPTestServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.closing.set()  # releases hanging routes
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[dict]:
        return list(self._server.requests)

    def count(self, path: str) -> int:
        return sum(1 for request in self._server.requests if request["path"] == path)

    @property
    def max_in_flight(self) -> int:
        return self._server.max_in_flight


def self_signed_cert(directory: Path) -> tuple[str, str]:
    """A throwaway self-signed certificate for 127.0.0.1 (openssl CLI); returns (certfile, keyfile)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A local port that refuses connections: bound (so nobody else takes it) but not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


# -- responses ------------------------------------------------------------------------------------------


def send_body(handler: _Handler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def _start_chunked(handler: _Handler, status: int, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()


def _write_chunk(handler: _Handler, data: bytes) -> None:
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))


def _end_chunked(handler: _Handler) -> None:
    handler.wfile.write(b"0\r\n\r\n")


def _sleep(handler: _Handler, seconds: float) -> None:
    """Sleep, but wake at once when the server closes (so a hanging route never outlives its test)."""
    if seconds > 0:
        handler.server.closing.wait(seconds)


# -- route factories ------------------------------------------------------------------------------------


def fixed_delay(
    delay_ms: float,
    jitter_ms: float = 0.0,
    seed: int = 0,
    status: int = 200,
    body: bytes = b'{"ok": true}\n',
    content_type: str = "application/json",
    handled_ms: list[float] | None = None,
) -> Route:
    """Answer after delay_ms ± a uniform jitter (seeded).

    ``handled_ms`` collects how long each answer really took in the route (the wait and the write, as
    measured by the server), the figure a client's measurement can be held against on a busy machine.
    """
    rng = random.Random(seed)
    lock = threading.Lock()

    def route(handler: _Handler) -> None:
        with lock:
            delay = delay_ms + (rng.uniform(-jitter_ms, jitter_ms) if jitter_ms else 0.0)
        started = time.perf_counter()
        _sleep(handler, delay / 1000.0)
        send_body(handler, status, body, content_type)
        if handled_ms is not None:
            handled_ms.append((time.perf_counter() - started) * 1000.0)

    return route


def delay_sequence(delays_ms: list[float], body: bytes = b"ok\n") -> Route:
    """The n-th request waits delays_ms[n % len(delays_ms)] (deterministic with one client at a time)."""
    counter = _Counter()

    def route(handler: _Handler) -> None:
        delay = delays_ms[counter.next() % len(delays_ms)]
        _sleep(handler, delay / 1000.0)
        send_body(handler, 200, body, "text/plain")

    return route


def streaming(
    first_chunk_ms: float,
    interval_ms: float,
    chunks: int,
    chunk_bytes: int,
    content_type: str = "audio/pcm",
) -> Route:
    """A chunked body: the first chunk after first_chunk_ms, then one every interval_ms.

    Total time is first_chunk_ms + (chunks - 1) * interval_ms; the body is chunks * chunk_bytes bytes.
    """

    def route(handler: _Handler) -> None:
        _start_chunked(handler, 200, content_type)
        payload = b"\x00\x01" * (chunk_bytes // 2) + b"\x00" * (chunk_bytes % 2)
        for index in range(chunks):
            _sleep(handler, (first_chunk_ms if index == 0 else interval_ms) / 1000.0)
            _write_chunk(handler, payload)
        _end_chunked(handler)

    return route


def status(code: int, body: bytes = b"server says no\n", content_type: str = "text/plain") -> Route:
    """Always answer ``code`` at once."""

    def route(handler: _Handler) -> None:
        send_body(handler, code, body, content_type)

    return route


def every_nth_fails(n: int, code: int = 500) -> Route:
    """Requests n, 2n, 3n... (counting from 1) get ``code``; the others 200."""
    counter = _Counter()

    def route(handler: _Handler) -> None:
        number = counter.next() + 1
        if number % n == 0:
            send_body(handler, code, b"injected failure\n", "text/plain")
        else:
            send_body(handler, 200, b"ok\n", "text/plain")

    return route


def hang(seconds: float = 30.0) -> Route:
    """Say nothing for ``seconds`` (or until the server closes), then answer 200."""

    def route(handler: _Handler) -> None:
        _sleep(handler, seconds)
        if not handler.server.closing.is_set():
            send_body(handler, 200, b"late\n", "text/plain")

    return route


def trickle(interval_ms: float, chunks: int = 1000) -> Route:
    """Headers at once, then one byte every interval_ms: no single read waits long, the body never ends."""

    def route(handler: _Handler) -> None:
        _start_chunked(handler, 200, "application/octet-stream")
        for _ in range(chunks):
            if handler.server.closing.is_set():
                return
            try:
                _write_chunk(handler, b".")
            except OSError:  # the client gave up
                return
            _sleep(handler, interval_ms / 1000.0)
        _end_chunked(handler)

    return route


def drop_connection() -> Route:
    """Close the connection without answering."""

    def route(handler: _Handler) -> None:
        handler.close_connection = True
        with contextlib.suppress(OSError):
            handler.connection.shutdown(socket.SHUT_RDWR)

    return route


class _Counter:
    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            value = self._value
            self._value += 1
            return value


def audio_stream(pcm: bytes, chunk_bytes: int = 9600, first_chunk_ms: float = 20.0) -> Route:
    """A chunked raw-PCM body of the given audio, as Voxtral streams it (first chunk after first_chunk_ms)."""

    def route(handler: _Handler) -> None:
        _start_chunked(handler, 200, "audio/pcm")
        _sleep(handler, first_chunk_ms / 1000.0)
        for start in range(0, len(pcm), chunk_bytes):
            _write_chunk(handler, pcm[start : start + chunk_bytes])
        _end_chunked(handler)

    return route
