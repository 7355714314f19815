#!/usr/bin/env bash
# Lint, then run the tests; arguments go to pytest. "No tests collected" is a failure:
# a typo in a path or a -k expression must not pass as a green run.
set -uo pipefail
cd "$(dirname "$0")/.."

.venv/bin/ruff check . || exit $?
.venv/bin/mypy || exit $?

.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
code=$?
if [ "$code" -eq 5 ]; then
  echo "test: pytest collected no tests (exit 5); treating that as a failure" >&2
  exit 1
fi
exit "$code"
