"""The gate's wire-level transport against httpx's own HTTPTransport, and its clock, on real local servers.

wire.WireTransport stands in for httpx.HTTPTransport so that the gate can time requests on the socket
through public hooks only; these tests hold the two side by side (same responses, same httpx exceptions
and messages), on the controller's httpx and, in CI, on Debian 12's httpx 0.23.3 / httpcore 0.16.3.
"""

from __future__ import annotations

import socket
from time import perf_counter

import httpcore
import httpx
import pytest
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate import wire
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.engine import RequestEngine
from ansible_collections.voxtral.deploy.plugins.module_utils._latency_gate.params import RequestPlan
from http_fixtures import (
    HTTPTestServer,
    drop_connection,
    fixed_delay,
    hang,
    refused_port,
    self_signed_cert,
    status,
    streaming,
    trickle,
)

VERSIONS = f"httpx {httpx.__version__} / httpcore {httpcore.__version__}"
CHUNK = 4800


@pytest.fixture(scope="module")
def server():
    routes = {
        "/fast": fixed_delay(0, body=b'{"ok": true}\n', content_type="application/json"),
        "/503": status(503, b'{"status": "starting"}'),
        "/stream": streaming(first_chunk_ms=30, interval_ms=10, chunks=3, chunk_bytes=CHUNK),
        "/hang": hang(30),
        "/trickle": trickle(interval_ms=100),
        "/drop": drop_connection(),
    }
    with HTTPTestServer(routes) as running:
        yield running


def httpx_transport(verify: bool = True):
    """What the gate used before: httpx's own transport with the gate's settings."""
    return httpx.HTTPTransport(
        verify=verify, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), retries=0
    )


def outcome(transport, url: str, method: str = "GET", timeout: float = 5.0, **kwargs):
    """What a client over transport gets for one request: status, type, chunks; or the exception and text."""
    with httpx.Client(transport=transport, timeout=httpx.Timeout(timeout), trust_env=False) as client:
        try:
            with client.stream(method, url, **kwargs) as response:
                return response.status_code, response.headers["content-type"], b"".join(response.iter_bytes())
        except httpx.HTTPError as exc:
            return type(exc), str(exc)


def both(url: str, **kwargs) -> tuple:
    return outcome(httpx_transport(), url, **kwargs), outcome(wire.WireTransport(wire.WireClock()), url, **kwargs)


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/fast", {}),
        ("/fast", {"method": "POST", "json": {"model": "m"}}),
        ("/503", {}),
        ("/stream", {}),
        ("/drop", {}),
        ("/hang", {"timeout": 0.2}),  # a read timeout waiting for the headers
        ("/trickle", {"timeout": 0.05}),  # a read timeout inside the body
    ],
)
def test_same_outcome_as_httpx_transport(server, path, kwargs):
    reference, timed = both(server.url(path), **kwargs)
    assert timed == reference, VERSIONS


def test_errors_are_the_httpx_ones_with_their_messages(server):
    reference, timed = both(server.url("/drop"))
    assert timed[0] is httpx.RemoteProtocolError and timed == reference
    reference, timed = both(server.url("/hang"), timeout=0.2)
    assert timed[0] is httpx.ReadTimeout and timed == reference
    with refused_port() as port:
        reference, timed = both(f"http://127.0.0.1:{port}/")
    assert timed[0] is httpx.ConnectError and timed == reference


def test_tls_verification_as_httpx_transport(tmp_path):
    routes = {"/fast": fixed_delay(0, body=b"ok\n", content_type="text/plain")}
    with HTTPTestServer(routes, tls=self_signed_cert(tmp_path)) as srv:
        url = srv.url("/fast")
        refused = outcome(httpx_transport(), url), outcome(wire.WireTransport(wire.WireClock()), url)
        trusted = (
            outcome(httpx_transport(verify=False), url),
            outcome(wire.WireTransport(wire.WireClock(), verify=False), url),
        )
    assert refused[1] == refused[0] and refused[1][0] is httpx.ConnectError
    assert "CERTIFICATE_VERIFY_FAILED" in refused[1][1]
    assert trusted[1] == trusted[0] == (200, "text/plain", b"ok\n")


def test_every_httpcore_exception_maps_to_the_httpx_one_of_its_name():
    exported = {
        name
        for name in httpcore.__all__
        if isinstance(getattr(httpcore, name), type) and issubclass(getattr(httpcore, name), Exception)
    }
    # ConnectionNotAvailable is the pool's own signal, never raised to httpx (httpx does not map it either).
    assert exported - {"ConnectionNotAvailable"} == set(wire.HTTPCORE_ERROR_NAMES), (
        f"{VERSIONS}: httpcore's exceptions changed; update wire.HTTPCORE_ERROR_NAMES as httpx maps them"
    )
    for name in wire.HTTPCORE_ERROR_NAMES:
        mapped = wire.httpx_error(getattr(httpcore, name)("the message"))
        assert type(mapped) is getattr(httpx, name) and str(mapped) == "the message", name
    assert wire.httpx_error(ValueError("not httpcore's")) is None


# -- the clock ----------------------------------------------------------------------------------------------


def test_the_clock_sees_the_connect_then_the_first_write_then_the_last_read(server):
    clock = wire.WireClock()
    with httpx.Client(transport=wire.WireTransport(clock), trust_env=False) as client:
        before = perf_counter()
        response = client.get(server.url("/stream"))
        after = perf_counter()
        assert response.status_code == 200 and len(response.content) == 3 * CHUNK
        assert before <= clock.connect_at <= clock.first_write_at <= clock.read_at <= after
        assert clock.start() == clock.connect_at
        # The stream is 30 ms to the first chunk, then 2 x 10 ms: the last read comes after all of it.
        assert clock.read_at - clock.first_write_at >= 0.05

        clock.reset()
        assert (clock.connect_at, clock.first_write_at, clock.read_at, clock.start()) == (None, None, None, None)
        before = perf_counter()
        client.get(server.url("/fast"))
        # Kept alive: no new connect, so the request starts at its first write.
        assert clock.connect_at is None and before <= clock.first_write_at <= clock.read_at
        assert clock.start() == clock.first_write_at


def test_new_connections_have_tcp_nodelay(server):
    client = httpx.Client(transport=wire.WireTransport(wire.WireClock()), trust_env=False)
    with client, client.stream("GET", server.url("/fast")) as response:
        stream = response.extensions.get("network_stream")
        assert stream is not None, f"{VERSIONS}: httpcore no longer gives the response's network_stream"
        sock = stream.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_the_engine_times_each_request_on_the_wire(server):
    engine = RequestEngine(RequestPlan(url=server.url("/stream"), stream=True))
    client, clock = engine.new_client()
    with client:
        sample = engine.request_once(client, clock)
        assert sample["ok"] is True and sample["bytes"] == 3 * CHUNK
        # total_ms runs from the connect to the read that brought the last byte, on the clock's own times. The
        # clock's last read may be a later one: the chunked body's terminator can come in a read of its own (on a
        # loaded machine it did, 1.2 ms later: CI of 2026-12-03), which total_ms must not count.
        assert sample["total_ms"] <= (clock.read_at - clock.connect_at) * 1000.0 + 1e-6
        assert 30.0 <= sample["ttfb_ms"] < sample["total_ms"]
        # The stream's three chunks come 10 ms apart (the route sleeps): the last byte is 20 ms or more after the first.
        assert sample["total_ms"] - sample["ttfb_ms"] >= 20.0 * 0.9
