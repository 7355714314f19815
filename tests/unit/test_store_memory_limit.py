"""``RUNLEDGER_DUCKDB_MEMORY_MIB``: a node that shares its machine caps DuckDB's buffer
pool (DuckDB's own default is 80 % of the RAM); the read model still reads and writes
under the cap."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from projections.fold import fold_batch
from projections.queries import Queries
from projections.store import Store
from runledger.settings import Settings, SettingsError
from tests.unit.test_golden import TOPIC, messages


def test_the_setting_defaults_to_duckdbs_own_limit_and_reads_mib() -> None:
    assert Settings.from_env({}).duckdb_memory_mib == 0
    assert Settings.from_env({"RUNLEDGER_DUCKDB_MEMORY_MIB": "256"}).duckdb_memory_mib == 256
    assert Settings.from_env({"RUNLEDGER_DUCKDB_MEMORY_MIB": " "}).duckdb_memory_mib == 0


@pytest.mark.parametrize(
    ("value", "says"),
    [("10", "0 .DuckDB's default. or at least 64"), ("-1", "from 0"), ("1GB", "whole number")],
)
def test_an_unusable_limit_is_refused_by_name(value: str, says: str) -> None:
    with pytest.raises(SettingsError, match=f"RUNLEDGER_DUCKDB_MEMORY_MIB.*{says}"):
        Settings.from_env({"RUNLEDGER_DUCKDB_MEMORY_MIB": value})


def test_every_reading_cursor_has_the_limit_and_the_model_works_under_it() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with Store(Path(tmp) / "node.duckdb", memory_mib=64) as store:
            assert store.query("SELECT current_setting('memory_limit')") == [("64.0 MiB",)]
            msgs = messages("process_lifecycle")
            store.write(fold_batch({}, msgs, topic=TOPIC, load=store.load_states))
            assert store.positions(TOPIC)
            page = Queries(store).list_processes("acme", limit=10, offset=0)
            assert page.count >= 1
        with Store(Path(tmp) / "node.duckdb") as again:  # the file does not keep it
            assert again.query("SELECT current_setting('memory_limit')") != [("64.0 MiB",)]


def test_a_store_refuses_a_limit_below_one_mib() -> None:
    with pytest.raises(ValueError, match="memory_mib"):
        Store(Path("unused.duckdb"), memory_mib=0)
