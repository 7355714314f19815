"""Refused targets counted once each, by use, in the one counter a runner shares with
every copy of its guard, and shown on its ``/metrics`` as
``runledger_runner_targets_refused_total`` (read back with the strict parser of
tests/unit/test_metrics_parser.py). No DNS, no network: literal addresses only."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from runledger.runner import Runner, RunnerOptions
from runledger.settings import Settings
from runners.errors import TargetRefused
from runners.guard import RefusalCount, TargetGuard
from runners.notify import SmtpServer, WebhookRequest, send_email, send_webhook
from streams.exposition import render
from tests.unit.test_metrics_parser import parse

FAMILY = "runledger_runner_targets_refused_total"
PUBLIC = "93.184.215.14"  # a literal public address: checked without resolving


async def no_resolver(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"{host} should not be resolved: the tests use literals")


def guard_counting_into(refusals: RefusalCount) -> TargetGuard:
    return TargetGuard(allow_private=False, resolver=no_resolver, refusals=refusals)


def test_refusals_are_counted_and_a_public_address_is_not() -> None:
    refusals = RefusalCount()
    guard = guard_counting_into(refusals)

    async def scenario() -> None:
        for url in ("http://127.0.0.1:8080/", "http://localhost/", "http://10.1.2.3/"):
            with pytest.raises(TargetRefused):
                await guard.check_url(url)
        assert await guard.check_url(f"http://{PUBLIC}/") == (PUBLIC,)
        with pytest.raises(TargetRefused):
            await guard.check_host("192.168.0.9", 25, use="smtp")

    asyncio.run(scenario())
    assert refusals.counts() == {"page": 3, "subresource": 0, "webhook": 0, "smtp": 1}


def test_a_tabs_copy_of_the_guard_counts_into_the_runners_counter() -> None:
    refusals = RefusalCount()
    request_filter, connect = guard_counting_into(refusals).page_checks()
    assert request_filter is not None and connect is not None

    async def scenario() -> None:
        assert isinstance(await request_filter("http://169.254.169.254/meta"), TargetRefused)
        assert await request_filter(f"https://{PUBLIC}/app.js") is None
        assert await request_filter("data:text/plain,hi") is None
        with pytest.raises(TargetRefused):
            await connect("127.0.0.1", 443)

    asyncio.run(scenario())
    assert refusals.counts()["subresource"] == 2
    assert sum(refusals.counts().values()) == 2


def test_webhooks_and_smtp_are_counted_once_under_their_use() -> None:
    refusals = RefusalCount()
    guard = guard_counting_into(refusals)

    async def scenario() -> None:
        # send_webhook raises its own TargetRefused (naming the origin only): one count.
        with pytest.raises(TargetRefused):
            await send_webhook(guard, WebhookRequest("http://127.0.0.1:9/hook?token=s"))
        with pytest.raises(TargetRefused):
            await send_email(guard, SmtpServer("10.0.0.25"), "a@example.com", "s", "b")

    asyncio.run(scenario())
    assert refusals.counts() == {"page": 0, "subresource": 0, "webhook": 1, "smtp": 1}


def test_allowed_private_targets_count_nothing() -> None:
    refusals = RefusalCount()
    guard = TargetGuard(allow_private=True, resolver=no_resolver, refusals=refusals)
    assert asyncio.run(guard.check_url("http://127.0.0.1/")) == ()
    assert sum(refusals.counts().values()) == 0


def test_the_runners_families_show_its_guards_refusals(tmp_path: Path) -> None:
    async def scenario() -> Runner:
        # In the loop: the runner's Kafka producer is made (not connected) with it.
        runner = Runner(
            Settings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path),
            RunnerOptions(kinds=("scan",), max_pages=2),
        )
        before = parse(render(runner.metric_families()))
        assert before.labelled(FAMILY) == {
            frozenset({("what", use)}): 0 for use in ("page", "smtp", "subresource", "webhook")
        }
        guard = runner.ctx.guard
        with pytest.raises(TargetRefused):
            await guard.check_url("http://[::1]/")
        request_filter, _ = guard.page_checks()
        assert request_filter is not None
        assert isinstance(await request_filter("http://192.168.1.1/x.png"), TargetRefused)
        await guard.check_url(f"http://{PUBLIC}/")  # public: not counted
        await runner.publisher.stop()  # never started; closes what aiokafka made
        return runner

    runner = asyncio.run(scenario())
    got = parse(render(runner.metric_families()))
    assert got.value(FAMILY, what="page") == 1
    assert got.value(FAMILY, what="subresource") == 1
    assert got.value(FAMILY, what="webhook") == 0
    assert got.value(FAMILY, what="smtp") == 0
