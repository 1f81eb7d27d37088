#!/usr/bin/env bash
# Docker Compose v2, built from source with `go install` (there is no Docker engine or download site here, only
# the Go module proxy), to validate docker-compose.yml with Compose itself. Prints the binary's path on stdout.
#
#   scripts/compose.sh                                 build it when missing (first run only), print its path
#   "$(scripts/compose.sh)" -f docker-compose.yml config -q    e.g. check the file as `docker compose` would
#
# The build is cached outside the repo ($CACHE_DIR/compose-<version>/docker-compose); later runs are instant.
# The binary is put in place last, so an interrupted build is redone on the next run.
set -euo pipefail

CACHE_DIR=${DEVPIPE_CACHE_DIR:-$HOME/.cache/devpipe}
COMPOSE_VERSION=v2.29.7
BIN_DIR="$CACHE_DIR/compose-$COMPOSE_VERSION"
BIN="$BIN_DIR/docker-compose"

log() { printf '[compose] %s\n' "$*" >&2; }
die() { printf '[compose] error: %s\n' "$*" >&2; exit 1; }

if [ -x "$BIN" ]; then printf '%s\n' "$BIN"; exit 0; fi

command -v go >/dev/null 2>&1 || die "go not found: install Go 1.21+ (apt-get install golang) to build Docker Compose"

# Two runs at once (two worktrees, the test suite and a person) take turns; the second finds the binary ready.
mkdir -p "$BIN_DIR"
exec 9>"$BIN_DIR.lock"
command -v flock >/dev/null 2>&1 && flock 9
if [ ! -x "$BIN" ]; then
  log "building Docker Compose $COMPOSE_VERSION with go install (first run only; takes several minutes)"
  build="$BIN_DIR/build"
  rm -rf "$build" && mkdir -p "$build"
  # The module's main package is cmd/, so go install names the binary `cmd`; the version is stamped the way
  # Compose's own Makefile does it (otherwise `version` says v2.0.0+unknown).
  if ! GOBIN="$build" go install -trimpath \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
    "github.com/docker/compose/v2/cmd@$COMPOSE_VERSION" >"$build/go-install.log" 2>&1; then
    cat "$build/go-install.log" >&2
    die "go install github.com/docker/compose/v2/cmd@$COMPOSE_VERSION failed"
  fi
  "$build/cmd" version >/dev/null 2>&1 || die "the built binary does not run: $build/cmd version"
  mv "$build/cmd" "$BIN"
  rm -rf "$build"
  log "ready: $("$BIN" version)"
fi
printf '%s\n' "$BIN"
