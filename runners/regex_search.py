"""A Case's ``match`` regular expression, searched in a child process under a deadline.

A Case's pattern comes from its author and Python's ``re`` backtracks: ``(a+)+$`` on a
few dozen ``a`` runs for minutes, holding the GIL all along. Searched in the runner
itself it would freeze the event loop: the poll loop, Kafka heartbeats, cancels and
every other job of the runner, and then the next runner that got the job. The search
therefore runs in a short-lived Python child (isolated mode, no site packages) that is
killed at the deadline. It costs one interpreter start (tens of ms) per ``regex``
assertion; ``equals`` and ``contains`` need no child.
"""

from __future__ import annotations

import asyncio
import json
import sys

from runners.errors import PageFailed, PageTimeout

# Reads [pattern, text] as JSON, prints {"found": bool} or {"error": "..."}.
_CHILD = (
    "import json, re, sys\n"
    "pattern, text = json.load(sys.stdin)\n"
    "try:\n"
    "    found = re.search(pattern, text) is not None\n"
    "except (re.error, RecursionError, OverflowError) as exc:\n"
    "    print(json.dumps({'error': str(exc)}))\n"
    "else:\n"
    "    print(json.dumps({'found': found}))\n"
)


async def regex_search(pattern: str, text: str, timeout: float) -> bool:
    """Whether ``pattern`` is found in ``text`` (``re.search``). Raises ``PageTimeout``
    when the search takes longer than ``timeout`` seconds (the child is killed),
    ``PageFailed`` for an invalid pattern or a child that could not run."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        "-c",
        _CHILD,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await child.communicate(json.dumps([pattern, text]).encode())
    except TimeoutError as exc:
        raise PageTimeout(
            f"regular expression /{pattern}/ did not finish within {timeout:g}s "
            f"on a text of {len(text)} characters"
        ) from exc
    finally:
        if child.returncode is None:  # the deadline, or the job was cancelled
            child.kill()
            await asyncio.shield(child.wait())
    try:
        answer = json.loads(out)
    except ValueError as exc:
        detail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no answer"]
        raise PageFailed(f"regular expression search failed: {detail[0]}") from exc
    if "error" in answer:
        raise PageFailed(f"bad regular expression {pattern!r}: {answer['error']}")
    return bool(answer.get("found"))
