"""``runledger token``: API tokens. ``create`` prints a new token once; the ledger keeps
only its hash. ``revoke`` reads the token from standard input, never from the command
line (where shell history and ``ps`` would keep it)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

from runledger.commands.context import CliError, add_data_dir, settings_of


def _check_name(option: str, value: str) -> None:
    """CliError, before any work, when ``value`` cannot be an account or token name:
    the same rule the token commands apply (runledger.tokens.name_problem)."""
    from runledger.tokens import NAME_RULE, name_problem

    problem = name_problem(value)
    if problem is not None:
        raise CliError(f"{option} {value!r} {problem}: {NAME_RULE}")


def cmd_token_create(args: argparse.Namespace) -> int:
    from runledger.tokens import TokenError, issue_token

    name = args.account if args.name is None else args.name  # --name "" is no default
    _check_name("--account", args.account)
    _check_name("--name", name)
    settings = settings_of(args)
    try:
        token = asyncio.run(issue_token(settings, args.account, name))
    except TokenError as exc:
        raise CliError(str(exc)) from exc
    print(token)
    print(
        f"token for account {args.account!r}: shown once; the ledger keeps only its hash",
        file=sys.stderr,
    )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    """Exit 0 when revoked, 1 when the account has no such active token (the answer
    is no), 2 for a usage or environment error."""
    from runledger.tokens import NoActiveToken, TokenError, revoke_token

    _check_name("--account", args.account)
    settings = settings_of(args)
    if sys.stdin is None:  # ``<&-``
        raise CliError("standard input is closed: pass the token on standard input")
    try:
        if sys.stdin.isatty():
            token = getpass.getpass("token to revoke: ").strip()
        else:
            token = sys.stdin.readline().strip()
        token.encode("utf-8")  # surrogates: bytes decoded with surrogateescape
    except UnicodeError:
        raise CliError("the token on standard input is not UTF-8 text") from None
    if not token:
        raise CliError("no token given: pass it on standard input")
    try:
        asyncio.run(revoke_token(settings, args.account, token))
    except NoActiveToken as exc:
        print(f"runledger token revoke: {exc}", file=sys.stderr)
        return 1
    except TokenError as exc:
        raise CliError(str(exc)) from exc
    print(f"token of account {args.account!r} revoked", file=sys.stderr)
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
    create.add_argument(
        "--account",
        required=True,
        help="the account the token acts for: 1 to 200 printable characters, no space at "
        "either end",
    )
    create.add_argument(
        "--name", help="a label for the token, by the same rule (default: the account name)"
    )
    add_data_dir(create)
    create.set_defaults(func=cmd_token_create)
    revoke = token_sub.add_parser(
        "revoke",
        help="revoke a token of an account (the token is read from standard input)",
        description="Revoke a token of ACCOUNT: requests with it answer 401 from then on "
        "(a node learns it within seconds). The token is read from standard input, or "
        "asked for without echo on a terminal, so it stays out of shell history. Exit 1 "
        "when the account has no such active token.",
    )
    revoke.add_argument("--account", required=True, help="the account the token belongs to")
    add_data_dir(revoke)
    revoke.set_defaults(func=cmd_token_revoke)
