"""``runledger token``: API tokens. ``create`` prints a new token once; the ledger keeps
only its hash."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from runledger.commands.context import CliError, add_data_dir, settings_of


def cmd_token_create(args: argparse.Namespace) -> int:
    from runledger.tokens import TokenError, issue_token

    settings = settings_of(args)
    try:
        token = asyncio.run(issue_token(settings, args.account, args.name or args.account))
    except TokenError as exc:
        raise CliError(str(exc)) from exc
    print(token)
    print(
        f"token for account {args.account!r}: shown once; the ledger keeps only its hash",
        file=sys.stderr,
    )
    return 0


def add_token_commands(sub: Any) -> None:
    """``token`` and its actions."""
    token = sub.add_parser("token", help="manage API tokens", description="Manage API tokens.")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION")

    def no_action(args: argparse.Namespace) -> int:
        token.print_help(sys.stderr)
        return 2

    token.set_defaults(func=no_action)
    create = token_sub.add_parser(
        "create",
        help="create a token for an account and print it once",
        description="Create an API token for ACCOUNT. It is printed once; the ledger keeps "
        "only its sha256, recorded as an event so a replay restores it.",
    )
    create.add_argument("--account", required=True, help="the account the token acts for")
    create.add_argument("--name", help="a label for the token (default: the account name)")
    add_data_dir(create)
    create.set_defaults(func=cmd_token_create)
