"""Record the golden histories of ``tests/golden/`` (the regression lock of issue 4).

Each history is a short list of commands with fixed ids and times, decided by the real
``decide`` (a rejection stops the script). Its events go to ``<name>.events.jsonl``
(one JSON object per line: ``partition``, ``offset`` and ``record``, the Avro record as
``streams.serde.event_to_record`` gives it) and the read model the projector builds
from them (``fold_batch`` + ``Store.write``, every table, rows sorted, values
JSON-encoded) to ``<name>.expected.json``. ``tests/unit/test_golden.py`` replays the
files and wants exactly those tables.

    python scripts/record_golden.py          # compare with the files; exit 1 if they differ
    python scripts/record_golden.py --write  # (re)write them after an intended change

Review the diff of the ``.expected.json`` files before committing a rewrite.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from projections.fold import RawMessage, fold_batch  # noqa: E402
from projections.store import Store  # noqa: E402
from schemas import default_codec  # noqa: E402
from streams.consumer import partition_for  # noqa: E402
from streams.domain import caserun as cr  # noqa: E402
from streams.domain import commands as c  # noqa: E402
from streams.domain import flowrun as fr  # noqa: E402
from streams.domain.aggregates import decide, evolve, stream_key  # noqa: E402
from streams.domain.events import Event, StepDefinition  # noqa: E402
from streams.serde import event_to_record  # noqa: E402
from tests.golden_tables import dump_tables  # noqa: E402

GOLDEN = ROOT / "tests" / "golden"
TOPIC = "golden.ledger.events"
PARTITIONS = 2
T0 = 1_700_000_000_000_000  # microseconds; each command is 1 second after the previous

Plan = list[tuple[str, str, str, c.Body]]  # (aggregate type, id, account, body)

STEPS = (
    StepDefinition("fetch", "Fetch", 1),
    StepDefinition("parse", "Parse", 2),
    StepDefinition("store", "Store", 3),
)


def process_lifecycle() -> Plan:
    """A Process through steps and progress, failed, retried, restarted from a step
    and completed."""
    bodies: list[c.Body] = [
        c.CreateProcess("scan", "site-1", '{"n":1}', STEPS),
        c.StartStep("fetch"),
        c.ReportProgress(25.0, "fetching"),
        c.CompleteStep("fetch", "fetched"),
        c.StartStep("parse"),
        c.AppendLog("parsing page 1", "info"),
        c.FailStep("parse", "ParseError: bad html"),
        c.FailProcess("parse failed"),
        c.RetryProcess(),
        c.StartStep("parse"),
        c.ReportProgress(60.0, "parsing again"),
        c.CompleteStep("parse"),
        c.RestartFromStep("fetch"),
        c.StartStep("fetch"),
        c.CompleteStep("fetch"),
        c.StartStep("parse"),
        c.CompleteStep("parse"),
        c.StartStep("store"),
        c.CompleteStep("store", "stored"),
        c.CompleteProcess("obj-1", '{"pages":3}'),
    ]
    return [("process", "p-life", "acme", b) for b in bodies]


def tokens_and_ends() -> Plan:
    """Tokens created and one revoked; a Process deleted and one cancelled."""
    return [
        ("account", "acme", "acme", c.CreateToken("hash-a", "ci")),
        ("account", "acme", "acme", c.CreateToken("hash-b", "laptop")),
        ("process", "p-del", "acme", c.CreateProcess("scan", None, "{}", STEPS[:1])),
        ("account", "acme", "acme", c.RevokeToken("hash-a")),
        ("process", "p-cancel", "acme", c.CreateProcess("export", "site-2", "{}", STEPS[:2])),
        ("process", "p-del", "acme", c.StartStep("fetch")),
        ("process", "p-cancel", "acme", c.StartStep("fetch")),
        ("process", "p-del", "acme", c.DeleteProcess()),
        ("process", "p-cancel", "acme", c.CancelProcess("user asked")),
        ("account", "zeta", "zeta", c.CreateToken("hash-z", "other account")),
    ]


NODES = [
    {"id": "1", "data": {"task_type": "scan", "threshold": 95, "configs": {"timeout": 30}}},
    {
        "id": "2",
        "data": {
            "task_type": "webhook",
            "uri": "https://hooks.example.com/x",
            "start_if": "passed",
        },
    },
    {"id": "3", "data": {"task_type": "wait", "start_if": "failed"}},
]
EDGES = [{"id": "a", "source": "1", "target": "2"}, {"id": "b", "source": "1", "target": "3"}]
CASE_STEPS = [
    {
        "action": {"type": "navigate", "path": "/"},
        "assertion": {"type": "exists", "element": {"selector": "h1"}},
    },
    {"action": {"type": "click", "element": {"selector": "#go"}}},
]


def definitions_and_runs() -> Plan:
    """A Site, a Flow, a Case; a FlowRun whose nodes pass, fail and are skipped; a CaseRun
    whose steps pass."""
    p = c.parse_body
    return [
        ("site", "s-1", "acme", p("site.create", {"site_url": "https://example.com"})),
        ("flow", "f-1", "acme", p("flow.create", {"name": "scan", "nodes": NODES, "edges": EDGES})),
        (
            "case",
            "k-1",
            "acme",
            p("case.create", {"site_id": "s-1", "name": "home", "steps": CASE_STEPS}),
        ),
        (
            "flowrun",
            "r-1",
            "acme",
            p(
                "flowrun.create",
                {
                    "site_id": "s-1",
                    "site_url": "https://example.com",  # as the API copies it in
                    "flow_id": "f-1",
                    "nodes": NODES,
                    "edges": EDGES,
                    "title": "t",
                },
            ),
        ),
        ("flowrun", "r-1", "acme", fr.NodeStart("1")),
        ("flowrun", "r-1", "acme", fr.NodePass("1", '{"similarity":99.5}', "scan-1")),
        ("flowrun", "r-1", "acme", fr.NodeStart("2")),
        ("flowrun", "r-1", "acme", fr.NodeFail("2", "HTTP 500")),
        ("flowrun", "r-1", "acme", fr.NodeSkip("3", "its start condition does not hold")),
        ("flowrun", "r-1", "acme", fr.LogFlowRun("all nodes final")),
        ("flowrun", "r-1", "acme", fr.CompleteFlowRun("failed")),
        (
            "caserun",
            "cr-1",
            "acme",
            p(
                "caserun.create",
                {
                    "site_id": "s-1",
                    "site_url": "https://example.com",
                    "case_id": "k-1",
                    "steps": CASE_STEPS,
                },
            ),
        ),
        ("caserun", "cr-1", "acme", cr.CaseStepStart(0, "action")),
        ("caserun", "cr-1", "acme", cr.CaseStepPass(0, "action")),
        ("caserun", "cr-1", "acme", cr.CaseStepStart(0, "assertion")),
        ("caserun", "cr-1", "acme", cr.CaseStepPass(0, "assertion")),
        ("caserun", "cr-1", "acme", cr.CaseStepStart(1, "action")),
        ("caserun", "cr-1", "acme", cr.CaseStepPass(1, "action")),
    ]


HISTORIES: dict[str, Callable[[], Plan]] = {
    "process_lifecycle": process_lifecycle,
    "tokens_and_ends": tokens_and_ends,
    "definitions_and_runs": definitions_and_runs,
}


def decide_all(name: str, plan: Plan) -> list[Event]:
    """The events of ``plan`` by the real decide; fixed ids and times."""
    states: dict[tuple[str, str], Any] = {}
    out: list[Event] = []
    for i, (kind, aid, account, body) in enumerate(plan):
        cid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"runledger-golden/{name}/{i}"))
        cmd = c.Command(cid, kind, aid, T0 + i * 1_000_000, account, "golden", cid, cid, body)
        for event in decide(states.get((kind, aid)), cmd):  # Rejected propagates
            states[(kind, aid)] = evolve(states.get((kind, aid)), event)
            out.append(event)
    return out


def placed(events: list[Event]) -> list[dict[str, Any]]:
    """The lines of the .jsonl: each record keyed to a partition, offsets per partition."""
    next_offset = [0] * PARTITIONS
    lines = []
    for ev in events:
        p = partition_for(stream_key(ev.aggregate_type, ev.aggregate_id).encode(), PARTITIONS)
        lines.append({"partition": p, "offset": next_offset[p], "record": event_to_record(ev)})
        next_offset[p] += 1
    return lines


def project(lines: list[dict[str, Any]], path: Path) -> dict[str, Any]:
    """The read model of the lines, by the live projector's path in one batch."""
    codec = default_codec()
    messages = [
        RawMessage(x["partition"], x["offset"], codec.encode(x["record"]["type"], x["record"]))
        for x in lines
    ]
    with Store(path) as store:
        batch = fold_batch({}, messages, topic=TOPIC, load=store.load_states)
        if batch.dead_letters or batch.duplicates:
            raise SystemExit(f"the projector refused events: {batch.dead_letters}")
        store.write(batch)
    return dump_tables(path)


def render(name: str) -> tuple[str, str]:
    lines = placed(decide_all(name, HISTORIES[name]()))
    jsonl = "".join(json.dumps(x, sort_keys=True) + "\n" for x in lines)
    with tempfile.TemporaryDirectory() as tmp:
        expected = project(lines, Path(tmp) / "read.duckdb")
    return jsonl, json.dumps(expected, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write the files")
    args = parser.parse_args(argv)
    stale = 0
    for name in HISTORIES:
        jsonl, expected = render(name)
        for suffix, text in ((".events.jsonl", jsonl), (".expected.json", expected)):
            target = GOLDEN / f"{name}{suffix}"
            if args.write:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                print(f"wrote {target.relative_to(ROOT)}")
            elif not target.exists() or target.read_text() != text:
                print(f"differs: {target.relative_to(ROOT)}")
                stale += 1
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
