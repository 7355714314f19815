"""Whether ``runledger up`` may resume a data dir with the settings it was given.

A data dir's read model (``node.duckdb``) is a fold of one ledger: the topics of one
prefix on one Kafka cluster. Started with another prefix, the node refuses the file,
but only after everything else has started; started without the cluster it was made
with (``RUNLEDGER_KAFKA_BOOTSTRAP`` forgotten), ``up`` starts an empty broker of its own
and the node, whose file names the same topics, serves the old rows beside the new
ledger's: two ledgers mixed, in silence. ``stack.json`` says what the last run used, so
``up`` refuses at once, naming the setting and the value to give.
"""

from __future__ import annotations

import json
from pathlib import Path

from runledger.broker.container import docker_answers
from runledger.stackfile import StackFile

READ_MODEL = "node.duckdb"


def previous_own_broker(previous: StackFile, data_dir: Path) -> bool | None:
    """Whether the last run used a broker ``up`` started itself: as recorded; for a
    stack.json written before it was, told from the data dir (the local broker's stored
    address; no ``kafka/`` folder and no Docker engine that could have run a container:
    a configured cluster); None when it cannot be told."""
    if previous.own_broker is not None:
        return previous.own_broker
    local = data_dir / "kafka"
    if not local.exists():
        return None if docker_answers() else False
    try:
        stored = json.loads((local / "ports.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(stored, dict) and previous.kafka_bootstrap == f"127.0.0.1:{stored.get('broker')}":
        return True
    return None


def same_ledger(
    previous: StackFile, data_dir: Path, topic_prefix: str, kafka_bootstrap: str
) -> bool:
    """Whether this ``up`` runs on the ledger the last one ran on (its token means
    something here): same prefix, and the same kind of broker (``up``'s own, or a
    configured one; a configured cluster may be named by another address)."""
    if previous.topic_prefix != topic_prefix:
        return False
    own_before = previous_own_broker(previous, data_dir)
    return own_before is None or own_before == (not kafka_bootstrap)


def resume_refusal(
    previous: StackFile | None, data_dir: Path, topic_prefix: str, kafka_bootstrap: str
) -> str | None:
    """Why ``up`` must not resume ``data_dir`` with this prefix and broker setting (one
    line naming the setting to give), or None. Only a data dir with a read model is
    refused: without one, nothing built from another ledger is there to be mixed up."""
    if previous is None or not (data_dir / READ_MODEL).exists():
        return None
    made = f"{data_dir} was made with"
    keep = f"its {READ_MODEL} is built from that ledger"
    other = "or choose another --data-dir"
    if previous.topic_prefix != topic_prefix:
        if not previous.topic_prefix:
            return f"{made} RUNLEDGER_TOPIC_PREFIX unset ({keep}): unset it to resume, {other}"
        setting = f"RUNLEDGER_TOPIC_PREFIX={previous.topic_prefix}"
        return f"{made} {setting} ({keep}): set {setting} to resume, {other}"
    own_before = previous_own_broker(previous, data_dir)
    if own_before is False and not kafka_bootstrap:
        setting = f"RUNLEDGER_KAFKA_BOOTSTRAP={previous.kafka_bootstrap}"
        return (
            f"{made} {setting} ({keep}; without it up would start an empty broker of its "
            f"own): set {setting} to resume, {other}"
        )
    if own_before is True and kafka_bootstrap:
        return (
            f"{made} up's own Kafka broker, its log in {data_dir / 'kafka'} ({keep}), not "
            f"RUNLEDGER_KAFKA_BOOTSTRAP={kafka_bootstrap}: unset RUNLEDGER_KAFKA_BOOTSTRAP "
            f"to resume, {other}"
        )
    return None
