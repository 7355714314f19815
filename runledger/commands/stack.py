"""The commands that run the stack's processes: ``up``, ``node``, ``decider``,
``orchestrator`` and ``runner``. Each runs until Ctrl-C or a fatal error."""

from __future__ import annotations

import argparse
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from runledger.commands.context import add_data_dir, port_number, settings_of
from runledger.settings import Settings


def cmd_up(args: argparse.Namespace) -> int:
    from runledger.up import run_up

    return run_up(settings_of(args, need_kafka=False))


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run a service on uvloop: the node spends about a quarter less CPU per request."""
    import uvloop

    uvloop.run(main)


def cmd_node(args: argparse.Namespace) -> int:
    from runledger.node import run_node

    _run(run_node(settings_of(args)))
    return 0


def cmd_decider(args: argparse.Namespace) -> int:
    from runledger.services import run_decider

    _run(run_decider(_service_settings(args)))
    return 0


def cmd_orchestrator(args: argparse.Namespace) -> int:
    from runledger.runner import run_orchestrator

    _run(run_orchestrator(_service_settings(args)))
    return 0


def cmd_runner(args: argparse.Namespace) -> int:
    from runledger.runner import RunnerOptions, run_runner

    kinds = [k.strip() for k in (args.kinds or "").split(",") if k.strip()]
    options = RunnerOptions.from_env(kinds=kinds)  # unknown kinds: a message, before the stack
    _run(run_runner(_service_settings(args), options))
    return 0


def _service_settings(args: argparse.Namespace) -> Settings:
    """The settings of a service without an API: ``--metrics-port`` wins over
    RUNLEDGER_METRICS_PORT."""
    settings = settings_of(args)
    if args.metrics_port is not None:
        settings = replace(settings, metrics_port=args.metrics_port)
    return settings


def _add_metrics_port(parser: argparse.ArgumentParser) -> None:
    """Where a service without an API serves /metrics (on RUNLEDGER_HOST, 127.0.0.1)."""
    parser.add_argument(
        "--metrics-port",
        type=port_number,
        metavar="PORT",
        help="serve Prometheus metrics at http://127.0.0.1:PORT/metrics (default: off; "
        "RUNLEDGER_METRICS_PORT; the address is RUNLEDGER_HOST's)",
    )


def _add_address(parser: argparse.ArgumentParser) -> None:
    """Where the HTTP API listens."""
    parser.add_argument("--port", type=port_number, help="API port (default 8000)")
    parser.add_argument("--host", help="API address (default 127.0.0.1)")


def add_stack_commands(sub: Any) -> None:
    """up, node, decider, orchestrator, runner, in this order in ``runledger --help``."""
    up = sub.add_parser(
        "up",
        help="run broker, decider, node, orchestrator and a runner locally until Ctrl-C",
        description="Start a local Kafka broker (unless RUNLEDGER_KAFKA_BOOTSTRAP is set), "
        "create the topics, start the decider, a node, the orchestrator and a runner (all job "
        "kinds), print the API URL and a token for "
        "account 'default', and write DIR/stack.json. Ctrl-C stops everything; running it "
        "again on the same DIR resumes with all data.",
    )
    add_data_dir(up)
    _add_address(up)
    up.set_defaults(func=cmd_up)

    node = sub.add_parser(
        "node",
        help="run a node: projector + HTTP API over one DuckDB file",
        description="Project ledger.events into DATA_DIR/node.duckdb and serve the HTTP API.",
    )
    add_data_dir(node)
    _add_address(node)
    node.set_defaults(func=cmd_node)

    decider = sub.add_parser(
        "decider",
        help="run the decider: the only writer of ledger.events",
        description="Decide commands from ledger.commands into events (one active decider "
        "per deployment: a new one fences the old).",
    )
    add_data_dir(decider)
    _add_metrics_port(decider)
    decider.set_defaults(func=cmd_decider)

    orchestrator = sub.add_parser(
        "orchestrator",
        help="run the orchestrator: moves FlowRuns along, hands jobs to runners",
        description="Follow ledger.events; start, skip and complete FlowRun nodes and "
        "publish the jobs of started nodes to ledger.jobs.",
    )
    add_data_dir(orchestrator)
    _add_metrics_port(orchestrator)
    orchestrator.set_defaults(func=cmd_orchestrator)

    runner = sub.add_parser(
        "runner",
        help="run a runner: executes jobs from ledger.jobs in Chromium",
        description="Run jobs of the given kinds (consumer groups shared with other "
        "runners) and report every step as commands. RUNLEDGER_ALLOW_PRIVATE_TARGETS "
        "lets runners reach loopback and private addresses.",
    )
    add_data_dir(runner)
    _add_metrics_port(runner)
    runner.add_argument(
        "--kinds",
        default="",
        help="comma-separated job kinds (scan,case,webhook,slack,email,wait,generate); default all",
    )
    runner.set_defaults(func=cmd_runner)
