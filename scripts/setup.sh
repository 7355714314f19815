#!/usr/bin/env bash
# Make a checkout ready to run and test: .venv with the project and its dev tools, and the
# Kafka broker's jars in the cache. Idempotent and quiet: one line per step.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# The broker runs $JAVA_HOME/bin/java when JAVA_HOME is set, else the java on PATH.
java=java
if [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then java=$JAVA_HOME/bin/java; fi
command -v "$java" >/dev/null 2>&1 \
  || die "java is not on PATH; the local Kafka broker needs Java 17+ (apt-get install openjdk-17-jre-headless)"
# "17.0.15" -> 17, "1.8.0_392" -> 8
java_version=$("$java" -version 2>&1 | sed -n 's/.* version "\([0-9._]*\).*/\1/p' | head -n 1)
java_major=${java_version%%.*}
if [ "$java_major" = 1 ]; then java_major=$(echo "$java_version" | cut -d. -f2); fi
[ -n "$java_major" ] && [ "$java_major" -ge 17 ] 2>/dev/null \
  || die "$(command -v "$java") is Java ${java_version:-of unknown version}; the local Kafka broker needs Java 17+ (apt-get install openjdk-17-jre-headless)"
command -v mvn >/dev/null 2>&1 \
  || die "mvn is not on PATH; it fetches the Kafka broker's jars once (apt-get install maven)"

# The runners drive Debian's Chromium through Playwright (Playwright's own browser
# download is not used); the tests make TLS certificates with the openssl command.
# Installing needs root, as on CI's fresh machines.
missing=""
[ -x /usr/bin/chromium ] || missing="chromium"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
missing=${missing# }
if [ -z "$missing" ]; then
  say "chromium present ($(/usr/bin/chromium --version 2>/dev/null | head -n 1)), kept"
else
  [ "$(id -u)" -eq 0 ] \
    || die "$missing missing; install as root: apt-get install $missing"
  command -v apt-get >/dev/null 2>&1 \
    || die "$missing missing and apt-get is not available to install it"
  log=$(mktemp)
  # shellcheck disable=SC2086  # $missing is a list of package names
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing; } \
      >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    rm -f "$log"
    die "apt-get install $missing failed (output above)"
  fi
  rm -f "$log"
  [ -x /usr/bin/chromium ] || die "apt-get installed chromium but /usr/bin/chromium is missing"
  say "installed $missing with apt-get ($(/usr/bin/chromium --version 2>/dev/null | head -n 1))"
fi

if [ -x .venv/bin/python ]; then
  say ".venv exists ($(.venv/bin/python --version 2>&1)), kept"
else
  python=""
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      python=$candidate
      break
    fi
  done
  [ -n "$python" ] || die "no Python 3.11 or later found (looked for python3.11, python3)"
  "$python" -m venv .venv || die "could not create .venv with $python (apt-get install python3-venv?)"
  say "created .venv with $("$python" --version 2>&1)"
fi

marker=.venv/.runledger-pyproject.sha256
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$wanted" ]; then
  say "dependencies match pyproject.toml, pip install skipped"
else
  log=$(mktemp)
  if ! .venv/bin/python -m pip install -q --disable-pip-version-check --root-user-action=ignore \
      -e '.[dev]' >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    rm -f "$log"
    die "pip install -e '.[dev]' failed (output above)"
  fi
  rm -f "$log"
  echo "$wanted" >"$marker"
  say "installed runledger and its dev dependencies into .venv"
fi

.venv/bin/python - <<'PY' || die "fetching the Kafka jars failed (message above)"
import sys

from runledger.broker import BrokerError, fetch_jars, jars_cached
from runledger.settings import Settings

settings = Settings.from_env()
cached = jars_cached(settings.cache_dir, settings.kafka_version)
try:
    libs = fetch_jars(settings.cache_dir, settings.kafka_version)
except BrokerError as exc:
    sys.exit(f"setup: error: {exc}")
verb = "already cached in" if cached else "fetched with Maven into"
print(f"setup: Kafka {settings.kafka_version} jars {verb} {libs}")
PY
