#!/usr/bin/env bash
# `bun run test`: unit, integration and end-to-end suites. Integration and e2e run against real Kafka,
# Postgres and S3: the ones given by KAFKA_BROKERS, DATABASE_URL and S3_ENDPOINT (e.g. docker compose),
# else the ones scripts/services.sh starts on loopback (with them a Kafka 3.9 broker, KAFKA_BROKERS_39, that the
# bus contract suite also runs against). A service that cannot start fails the run.
# The dashboard test needs Debian's Chromium; scripts/chromium.sh installs it when missing. The fuzz test
# needs schemathesis; scripts/python-venv.sh installs it (pinned) into a cached virtualenv. The compose test
# checks docker-compose.yml with Docker Compose v2 itself; scripts/compose.sh builds it (pinned) once and caches it.
set -euo pipefail
cd "$(dirname "$0")/.."
services_dir=${DEVPIPE_SERVICES_DIR:-${TMPDIR:-/tmp}/devpipe-services}
started_services=0
if [ -z "${KAFKA_BROKERS:-}" ] || [ -z "${DATABASE_URL:-}" ] || [ -z "${S3_ENDPOINT:-}" ]; then
  bash scripts/services.sh up --with-kafka39
  set -a
  # shellcheck disable=SC1091
  . "$services_dir/services.env"
  set +a
  started_services=1
fi

bash scripts/chromium.sh
DEVPIPE_VENV=$(bash scripts/python-venv.sh)
export DEVPIPE_VENV
DEVPIPE_COMPOSE=$(bash scripts/compose.sh)
export DEVPIPE_COMPOSE
bun run typecheck

export NODE_ENV=test
mkdir -p .test-output
set +e
bun test --timeout 60000 tests/unit tests/integration tests/e2e 2>&1 | tee .test-output/bun-test.log
status=${PIPESTATUS[0]}
set -e

# CI leaves no processes behind; locally the services stay up so the next run starts fast.
if [ "$started_services" = 1 ] && [ "${CI:-}" = "true" ]; then bash scripts/services.sh down; fi

passed=$(grep -Eo '^ *[0-9]+ pass$' .test-output/bun-test.log | grep -Eo '[0-9]+' | tail -n 1)
failed=$(grep -Eo '^ *[0-9]+ fail$' .test-output/bun-test.log | grep -Eo '[0-9]+' | tail -n 1)
echo "tests: ${passed:-0} passed, ${failed:-0} failed"
if [ "${passed:-0}" = 0 ]; then echo "no test ran" >&2; exit 1; fi
exit "$status"
