"""The metrics-only HTTP server of the decider, the orchestrator and the runners
(runledger/metrics_http.py): ``/metrics`` in the exposition format the strict parser
accepts, ``/health``, 404 and 405 for the rest, a failing collector costs one scrape
(500) not the service, the port is free once it stops; and ``--metrics-port`` /
``RUNLEDGER_METRICS_PORT`` reach the settings (off by default)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable

import httpx
import pytest

from runledger.cli import build_parser
from runledger.commands.stack import _service_settings
from runledger.metrics_http import MetricsServer, identity_families, serving_metrics
from runledger.settings import Settings, SettingsError
from streams.exposition import CONTENT_TYPE, Family, counter
from tests.unit.test_metrics_parser import parse


def _families() -> Iterable[Family]:
    return [counter("runledger_test_things_total", "Things.", 3)]


async def _get(server: MetricsServer, path: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        return await client.request(method, path)


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_metrics_health_and_everything_else() -> None:
    async def scenario() -> None:
        server = MetricsServer(_families)
        await server.start()
        try:
            assert server.port > 0
            r = await _get(server, "/metrics")
            assert r.status_code == 200
            assert r.headers["content-type"] == CONTENT_TYPE
            assert r.headers["connection"] == "close"
            assert parse(r.text).value("runledger_test_things_total") == 3
            r = await _get(server, "/metrics?name[]=x")  # Prometheus may add parameters
            assert parse(r.text).value("runledger_test_things_total") == 3
            r = await _get(server, "/health")
            assert (r.status_code, r.text) == (200, "ok\n")
            for path in ("/", "/metric", "/metrics/x", "/process"):
                assert (await _get(server, path)).status_code == 404, path
            r = await _get(server, "/metrics", "POST")
            assert (r.status_code, r.headers["allow"]) == (405, "GET, HEAD")
            r = await _get(server, "/metrics", "HEAD")
            assert r.status_code == 200 and r.content == b""
            assert int(r.headers["content-length"]) > 0
        finally:
            await server.close()
        assert _refused(server.port)
        await server.close()  # twice: harmless

    asyncio.run(scenario())


def test_a_bad_request_line_gets_400_and_a_silent_client_is_dropped() -> None:
    async def scenario() -> None:
        server = MetricsServer(_families)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"hello there\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)
            assert answer.startswith(b"HTTP/1.1 400 ")
            writer.close()
            # A client that never finishes its head holds nothing once the server stops.
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /metrics HTTP/1.1\r\n")
            await asyncio.sleep(0.1)
        finally:
            await asyncio.wait_for(server.close(), 5)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()

    asyncio.run(scenario())


def test_a_failing_collector_fails_the_scrape_not_the_server() -> None:
    calls = 0

    def collect() -> list[Family]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in a family")
        return list(_families())

    async def scenario() -> None:
        server = MetricsServer(collect)
        await server.start()
        try:
            assert (await _get(server, "/metrics")).status_code == 500
            r = await _get(server, "/metrics")
            assert r.status_code == 200 and "runledger_test_things_total 3" in r.text
        finally:
            await server.close()

    asyncio.run(scenario())


def test_serving_metrics_adds_the_identity_and_stops_with_the_block() -> None:
    settings = Settings(metrics_port=_free_port(), topic_prefix="t1.")

    async def scenario() -> int:
        async with serving_metrics(settings, "decider", _families) as server:
            assert server is not None and server.port == settings.metrics_port
            got = parse((await _get(server, "/metrics")).text)
            assert got.value("runledger_test_things_total") == 3
            info = got.labelled("runledger_decider_info")
            ((labels, value),) = info.items()
            assert value == 1 and dict(labels)["topic_prefix"] == "t1."
            assert dict(labels)["version"]
            assert got.value("runledger_process_start_time_seconds") > 1.7e9
            return server.port

    port = asyncio.run(scenario())
    assert _refused(port)


def test_serving_metrics_is_off_without_a_port_and_names_a_taken_one() -> None:
    async def off() -> None:
        async with serving_metrics(Settings(), "runner", _families) as server:
            assert server is None

    asyncio.run(off())
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def clash() -> None:
            async with serving_metrics(Settings(metrics_port=port), "runner", _families):
                raise AssertionError("not reached")

        with pytest.raises(SettingsError, match=f"runner's metrics cannot listen on .*:{port}"):
            asyncio.run(clash())


def test_identity_families_render_as_the_nodes_do() -> None:
    from streams.exposition import render

    got = parse(render(identity_families("orchestrator", "1.2", "", 1_700_000_000.5)))
    assert got.value("runledger_orchestrator_info", version="1.2", topic_prefix="") == 1
    assert got.value("runledger_process_start_time_seconds") == 1_700_000_000.5


def test_the_metrics_port_comes_from_the_flag_or_the_environment() -> None:
    assert Settings.from_env({}).metrics_port is None
    assert Settings.from_env({"RUNLEDGER_METRICS_PORT": " "}).metrics_port is None
    assert Settings.from_env({"RUNLEDGER_METRICS_PORT": "9101"}).metrics_port == 9101
    for bad in ("0", "70000", "x"):
        with pytest.raises(SettingsError, match="RUNLEDGER_METRICS_PORT"):
            Settings.from_env({"RUNLEDGER_METRICS_PORT": bad})
    parser = build_parser()
    for service in ("decider", "orchestrator", "runner"):
        args = parser.parse_args([service, "--metrics-port", "9102"])
        assert args.metrics_port == 9102
        args = parser.parse_args([service])
        assert args.metrics_port is None
    with pytest.raises(SystemExit):
        parser.parse_args(["decider", "--metrics-port", "0"])


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setenv("RUNLEDGER_METRICS_PORT", "9103")
    parser = build_parser()
    assert _service_settings(parser.parse_args(["runner"])).metrics_port == 9103
    args = parser.parse_args(["runner", "--metrics-port", "9104"])
    assert _service_settings(args).metrics_port == 9104


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
