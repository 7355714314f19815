"""stack.json's ``metrics`` (where ``up``'s services serve /metrics): written and read
back, absent in a file of an earlier release (read as none), refused when malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runledger.stackfile import StackFile, StackFileError
from runledger.up import METERED, _free_port

URLS = {
    "decider": "http://127.0.0.1:40001/metrics",
    "orchestrator": "http://127.0.0.1:40002/metrics",
    "runner": "http://127.0.0.1:40003/metrics",
}


def test_the_metrics_urls_round_trip(tmp_path: Path) -> None:
    written = StackFile("http://127.0.0.1:8000", "127.0.0.1:9092", "p.", "tok", 42, True, URLS)
    written.write(tmp_path)
    assert json.loads((tmp_path / "stack.json").read_text())["metrics"] == URLS
    assert StackFile.read(tmp_path).metrics == URLS


def test_a_stack_file_without_metrics_is_still_read(tmp_path: Path) -> None:
    old = {"api_url": "http://x", "kafka_bootstrap": "h:1", "topic_prefix": "", "token": "t"}
    (tmp_path / "stack.json").write_text(json.dumps(old))
    assert StackFile.read(tmp_path).metrics == {}


@pytest.mark.parametrize("bad", [["http://x"], {"decider": 9101}, "http://x", None])
def test_malformed_metrics_are_refused(tmp_path: Path, bad: object) -> None:
    raw = {"api_url": "u", "kafka_bootstrap": "h:1", "topic_prefix": "", "token": "t"}
    (tmp_path / "stack.json").write_text(json.dumps({**raw, "metrics": bad}))
    with pytest.raises(StackFileError, match="metrics must map service names to URLs"):
        StackFile.read(tmp_path)


def test_up_gives_each_service_without_an_api_a_free_port() -> None:
    assert METERED == ("decider", "orchestrator", "runner")
    ports = {_free_port("127.0.0.1") for _ in range(3)}
    assert all(1024 <= p <= 65535 for p in ports)
