#!/usr/bin/env bash
# A Python virtualenv with the tools pinned in scripts/python-requirements.txt (schemathesis, for the fuzz
# test), cached outside the repo like the other services' downloads. Prints the venv's path on stdout.
#
#   scripts/python-venv.sh     create or update the venv (idempotent; instant when it is up to date)
#
# The venv is keyed on the requirements file's hash (and the interpreter's version): when either changes it
# is rebuilt from scratch. The key is written last, so an interrupted install is rebuilt on the next run.
set -euo pipefail

CACHE_DIR=${DEVPIPE_CACHE_DIR:-$HOME/.cache/devpipe}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQUIREMENTS="$REPO_DIR/scripts/python-requirements.txt"
VENV=${DEVPIPE_VENV_DIR:-$CACHE_DIR/venv}
PYTHON=${PYTHON:-python3}

log() { printf '[python-venv] %s\n' "$*" >&2; }
die() { printf '[python-venv] error: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3.10+ with venv and pip (apt-get install python3-venv)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$PYTHON is $("$PYTHON" -V 2>&1); schemathesis needs Python 3.10+"

key=$( { cat "$REQUIREMENTS"; "$PYTHON" -V 2>&1; } | sha256sum | cut -c1-16)
up_to_date() { [ -x "$VENV/bin/st" ] && [ "$(cat "$VENV/.requirements-key" 2>/dev/null)" = "$key" ]; }
if up_to_date; then printf '%s\n' "$VENV"; exit 0; fi

# Two runs at once (two worktrees, two shells) take turns; the second finds the venv ready.
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
command -v flock >/dev/null 2>&1 && flock 9
if ! up_to_date; then
  log "installing the pinned packages of scripts/python-requirements.txt into $VENV (first run, or the pins changed)"
  # A venv hard-codes its own path in its scripts, so it is built in place rather than built aside and moved.
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" >&2 || die "could not create a virtualenv (apt-get install python3-venv?)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --requirement "$REQUIREMENTS" >&2 \
    || die "pip install --requirement $REQUIREMENTS failed"
  "$VENV/bin/python" -m pip check >&2 || die "the pinned packages are inconsistent (pip check)"
  printf '%s' "$key" >"$VENV/.requirements-key"
  log "ready: $("$VENV/bin/st" --version)"
fi
printf '%s\n' "$VENV"
