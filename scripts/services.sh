#!/usr/bin/env bash
# Real services on loopback for tests and local runs: Apache Kafka 4.2 (KRaft), PostgreSQL, an S3 server;
# on request also Kafka 3.9 (the previous line, for the bus contract suite).
#
#   scripts/services.sh up       start whatever is not running yet (idempotent); a broker of another Kafka
#                                version than the one pinned here is replaced (its data dir is kept per version)
#   scripts/services.sh up --with-kafka39   also the Kafka 3.9 broker on 127.0.0.1:19094 (KAFKA_BROKERS_39)
#   scripts/services.sh status   one line per service
#   scripts/services.sh down     stop them (add --purge to delete their data too)
#   scripts/services.sh env      print the connection settings (also written to $STATE_DIR/services.env)
#   scripts/services.sh kafka-stop | kafka-start   stop or start the broker alone (failure tests)
#   scripts/services.sh kafka39-stop | kafka39-start   the same for the 3.9 broker
#
# Downloads and builds are cached outside the repo (~/.m2, ~/go, $CACHE_DIR), so only the first run is slow.
set -euo pipefail

STATE_DIR=${DEVPIPE_SERVICES_DIR:-${TMPDIR:-/tmp}/devpipe-services}
CACHE_DIR=${DEVPIPE_CACHE_DIR:-$HOME/.cache/devpipe}
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

KAFKA_VERSION=4.2.0
KAFKA_PORT=19092
KAFKA_CONTROLLER_PORT=19093
# The previous line, kept under test (bus contract suite) on ports of its own.
KAFKA39_VERSION=3.9.1
KAFKA39_PORT=19094
KAFKA39_CONTROLLER_PORT=19095
PG_PORT=15432
PG_DB=devpipe
S3_PORT=19000
S3_BUCKET=devpipe-test
S3_ACCESS_KEY=devpipe
S3_SECRET_KEY=devpipe-secret-key
# MinIO publishes RELEASE.* tags only, which the Go module proxy does not resolve: pin the commit's pseudo-version.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MOTO_VERSION=5.1.22

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s until it succeeds or the deadline passes.
wait_until() {
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
  log "$what ready"
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------------------------------------------------------------- Kafka (KRaft, one combined node each)
# Two brokers: "kafka", the current line (the one KAFKA_BROKERS names), and "kafka39", the 3.9 line on ports
# of its own, started only on request (`up --with-kafka39`, as scripts/test.sh does) so that the bus contract
# suite also runs against the older line (KAFKA_BROKERS_39). Each keeps its pid, logs and config under
# $STATE_DIR/<name>/ and its data under $STATE_DIR/<name>/data-<version>: a version change starts on a fresh
# data dir (a data dir of another line is not read as is), the old one stays until `down --purge`.
kafka_settings() {
  case "$1" in
    kafka) KVERSION=$KAFKA_VERSION KPORT=$KAFKA_PORT KCONTROLLER_PORT=$KAFKA_CONTROLLER_PORT KHEAP=768m ;;
    kafka39) KVERSION=$KAFKA39_VERSION KPORT=$KAFKA39_PORT KCONTROLLER_PORT=$KAFKA39_CONTROLLER_PORT KHEAP=512m ;;
    *) die "unknown broker $1" ;;
  esac
}

# The 4.x line logs through log4j 2, the 3.x line through log4j 1 (reload4j).
kafka_major() { printf '%s' "${1%%.*}"; }

kafka_libs() {
  local version=$1 libs="$CACHE_DIR/kafka-$1/libs" logging=log4j2
  [ "$(kafka_major "$version")" -ge 4 ] || logging=reload4j
  if [ ! -f "$libs/kafka_2.13-$version.jar" ] || [ ! -f "$libs/kafka-tools-$version.jar" ]; then
    # Both brokers may fetch at once (`up --with-kafka39`): one Maven at a time in ~/.m2.
    mkdir -p "$CACHE_DIR"
    local lock_fd
    exec {lock_fd}>"$CACHE_DIR/kafka-fetch.lock"
    flock "$lock_fd"
  fi
  if [ ! -f "$libs/kafka_2.13-$version.jar" ] || [ ! -f "$libs/kafka-tools-$version.jar" ]; then
    need mvn "install Maven (apt-get install maven) to fetch the Kafka broker from Maven Central"
    log "fetching Kafka $version and its dependencies from Maven Central"
    rm -rf "$libs.partial"
    mvn -q -B -f "$REPO_DIR/scripts/kafka/pom.xml" -Dkafka.version="$version" -Dkafka.logging="$logging" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs.partial" >&2
    rm -rf "$libs" && mv "$libs.partial" "$libs"
  fi
  printf '%s' "$libs"
}

kafka_up() {
  local name=$1 KVERSION KPORT KCONTROLLER_PORT KHEAP
  kafka_settings "$name"
  local dir="$STATE_DIR/$name"
  local data="$dir/data-$KVERSION"
  if pid_alive "$dir/pid" && port_open "$KPORT"; then
    if [ "$(cat "$dir/version" 2>/dev/null)" = "$KVERSION" ]; then log "$name $KVERSION already running"; return; fi
    log "$name $(cat "$dir/version" 2>/dev/null || echo '(unknown version)') is running; replacing it with $KVERSION"
    kafka_down "$name"
  fi
  port_open "$KPORT" && die "port $KPORT is taken by another process; stop it or run 'scripts/services.sh down'"
  need java "install a Java 17+ runtime (apt-get install openjdk-17-jre-headless)"
  local libs; libs=$(kafka_libs "$KVERSION")
  mkdir -p "$data"
  local quorum format_flags=() extra=""
  if [ "$(kafka_major "$KVERSION")" -ge 4 ]; then
    # 4.x: a dynamic controller quorum (KIP-853), as the broker's own config/server.properties has it: the
    # controllers are found through controller.quorum.bootstrap.servers and the first one is formatted with
    # --standalone (it becomes the single voter). controller.quorum.voters (static) still works but is no longer
    # the default.
    quorum="controller.quorum.bootstrap.servers=127.0.0.1:$KCONTROLLER_PORT"
    format_flags=(--standalone)
    # Share groups (queues) are available in 4.2 (share.version 1 at format); their state topic would default to 3
    # replicas, more than one node has.
    extra="share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1"
  else
    quorum="controller.quorum.voters=1@127.0.0.1:$KCONTROLLER_PORT"
  fi
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
$quorum
listeners=PLAINTEXT://127.0.0.1:$KPORT,CONTROLLER://127.0.0.1:$KCONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KPORT,CONTROLLER://127.0.0.1:$KCONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data
num.partitions=4
num.network.threads=2
num.io.threads=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=24
$extra
EOF
  local java_opts=("-Xms256m" "-Xmx$KHEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true)
  if [ "$(kafka_major "$KVERSION")" -ge 4 ]; then
    rm -f "$dir/log4j.properties"
    cat >"$dir/log4j2.properties" <<'EOF'
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
EOF
    java_opts+=("-Dlog4j2.configurationFile=$dir/log4j2.properties")
  else
    rm -f "$dir/log4j2.properties"
    cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
EOF
    java_opts+=("-Dlog4j.configuration=file:$dir/log4j.properties")
  fi
  if [ ! -f "$data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java "${java_opts[@]}" -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java "${java_opts[@]}" -cp "$libs/*" kafka.tools.StorageTool format -t "$cluster_id" "${format_flags[@]}" \
      -c "$dir/server.properties" >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "$name storage format failed"; }
  fi
  : >"$dir/kafka.log"
  nohup java "${java_opts[@]}" -cp "$libs/*" kafka.Kafka "$dir/server.properties" >>"$dir/kafka.log" 2>&1 &
  echo $! >"$dir/pid"
  printf '%s' "$KVERSION" >"$dir/version"
  printf '%s' "$libs" >"$dir/libs"
  wait_until 90 "$name $KVERSION" grep -q "Kafka Server started" "$dir/kafka.log" \
    || { tail -n 30 "$dir/kafka.log" >&2; die "$name did not start within 90 s (log: $dir/kafka.log)"; }
}

kafka_down() {
  local dir="$STATE_DIR/$1"
  if pid_alive "$dir/pid"; then
    kill "$(cat "$dir/pid")"
    wait_until 30 "$1 stopped" bash -c "! kill -0 $(cat "$dir/pid") 2>/dev/null" || kill -9 "$(cat "$dir/pid")" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

# ---------------------------------------------------------------- PostgreSQL (a throwaway cluster)
pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$bin" ] && [ -x "$bin/initdb" ] || die "PostgreSQL server binaries not found: apt-get install postgresql"
  printf '%s' "$bin"
}

# Postgres refuses to run as root: as root, run its tools as the postgres user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

pg_up() {
  local dir="$STATE_DIR/postgres" bin
  bin=$(pg_bin)
  if as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 && port_open "$PG_PORT"; then
    log "postgres already running"
  else
    port_open "$PG_PORT" && die "port $PG_PORT is taken by another process"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    # fsync off: this cluster is for tests and local runs and is thrown away; the workers' crash tests kill
    # the workers, never Postgres.
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" >/dev/null \
      || { tail -n 30 "$dir/postgres.log" >&2; die "postgres did not start (log: $dir/postgres.log)"; }
    log "postgres ready"
  fi
  if ! "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "select 1 from pg_database where datname = '$PG_DB'" | grep -q 1; then
    "$bin/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc "create database $PG_DB" >/dev/null
  fi
}

pg_down() {
  local dir="$STATE_DIR/postgres" bin
  bin=$(pg_bin)
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
}

# ---------------------------------------------------------------- S3 (MinIO, or moto when MinIO cannot be built)
minio_bin() {
  local bin
  bin="$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin/minio"
  if [ ! -x "$bin" ] || [ "$(cat "$CACHE_DIR/minio.version" 2>/dev/null)" != "$MINIO_VERSION" ]; then
    command -v go >/dev/null 2>&1 || return 1
    log "building MinIO $MINIO_VERSION with go install (first run only; takes several minutes)"
    go install "github.com/minio/minio@$MINIO_VERSION" >&2 || return 1
    mkdir -p "$CACHE_DIR" && printf '%s' "$MINIO_VERSION" >"$CACHE_DIR/minio.version"
  fi
  printf '%s' "$bin"
}

moto_bin() {
  local venv="$CACHE_DIR/moto-$MOTO_VERSION"
  if [ ! -x "$venv/bin/moto_server" ]; then
    need python3 "install Python 3 (needed for moto's S3 server when MinIO cannot be built)"
    log "installing moto $MOTO_VERSION from PyPI"
    python3 -m venv "$venv" >&2 && "$venv/bin/pip" install -q "moto[server]==$MOTO_VERSION" >&2 || return 1
  fi
  printf '%s' "$venv/bin/moto_server"
}

s3_up() {
  local dir="$STATE_DIR/s3" bin
  mkdir -p "$dir/data"
  if pid_alive "$dir/pid" && port_open "$S3_PORT"; then
    log "s3 ($(cat "$dir/server")) already running"
  else
    port_open "$S3_PORT" && die "port $S3_PORT is taken by another process"
    : >"$dir/s3.log"
    if bin=$(minio_bin); then
      echo minio >"$dir/server"
      MINIO_ROOT_USER=$S3_ACCESS_KEY MINIO_ROOT_PASSWORD=$S3_SECRET_KEY MINIO_BROWSER=off \
        nohup "$bin" server "$dir/data" --address "127.0.0.1:$S3_PORT" --console-address "127.0.0.1:$((S3_PORT + 1))" \
        >>"$dir/s3.log" 2>&1 &
    elif bin=$(moto_bin); then
      log "MinIO could not be built here; using moto's S3 server instead"
      echo moto >"$dir/server"
      nohup "$bin" -H 127.0.0.1 -p "$S3_PORT" >>"$dir/s3.log" 2>&1 &
    else
      die "no S3 server: install Go (to build MinIO) or Python 3 with pip (for moto)"
    fi
    echo $! >"$dir/pid"
    wait_until 60 "s3 ($(cat "$dir/server"))" curl -fsS "http://127.0.0.1:$S3_PORT/minio/health/live" -o /dev/null \
      || wait_until 5 "s3" port_open "$S3_PORT" \
      || { tail -n 30 "$dir/s3.log" >&2; die "s3 server did not start (log: $dir/s3.log)"; }
  fi
  need curl "install curl (apt-get install curl) to create the test bucket"
  # PUT on an existing bucket answers 409 (owned by you): fine either way, but any other failure is not.
  local code
  code=$(curl -s -o "$dir/bucket.out" -w '%{http_code}' -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" "http://127.0.0.1:$S3_PORT/$S3_BUCKET")
  case "$code" in 200|409) ;; *) cat "$dir/bucket.out" >&2; die "could not create bucket $S3_BUCKET (HTTP $code)";; esac
}

s3_down() {
  local dir="$STATE_DIR/s3"
  if pid_alive "$dir/pid"; then
    kill "$(cat "$dir/pid")"
    wait_until 20 "s3 stopped" bash -c "! kill -0 $(cat "$dir/pid") 2>/dev/null" || kill -9 "$(cat "$dir/pid")" 2>/dev/null || true
  fi
  rm -f "$dir/pid"
}

# ---------------------------------------------------------------- commands
write_env() {
  cat >"$STATE_DIR/services.env" <<EOF
KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT
DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB
S3_ENDPOINT=http://127.0.0.1:$S3_PORT
AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
AWS_REGION=us-east-1
LAKE_URL=s3://$S3_BUCKET/lake
EOF
  # The 3.9 broker, when running: the bus contract suite runs its Kafka cases against it too.
  if pid_alive "$STATE_DIR/kafka39/pid" && port_open "$KAFKA39_PORT"; then
    printf 'KAFKA_BROKERS_39=127.0.0.1:%s\n' "$KAFKA39_PORT" >>"$STATE_DIR/services.env"
  fi
}

status() {
  local bin
  bin=$(pg_bin)
  printf 'kafka     %s\n' "$(pid_alive "$STATE_DIR/kafka/pid" && port_open "$KAFKA_PORT" && echo "up 127.0.0.1:$KAFKA_PORT ($(cat "$STATE_DIR/kafka/version"))" || echo down)"
  printf 'kafka39   %s\n' "$(pid_alive "$STATE_DIR/kafka39/pid" && port_open "$KAFKA39_PORT" && echo "up 127.0.0.1:$KAFKA39_PORT ($(cat "$STATE_DIR/kafka39/version"))" || echo "down (started by 'up --with-kafka39')")"
  printf 'postgres  %s\n' "$(as_pg "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && echo "up 127.0.0.1:$PG_PORT" || echo down)"
  printf 's3        %s\n' "$(pid_alive "$STATE_DIR/s3/pid" && port_open "$S3_PORT" && echo "up 127.0.0.1:$S3_PORT ($(cat "$STATE_DIR/s3/server"))" || echo down)"
  printf 'env file  %s\n' "$STATE_DIR/services.env"
}

mkdir -p "$STATE_DIR"
chmod 755 "$STATE_DIR"
case "${1:-}" in
  up)
    # Postgres and S3 start while Kafka's JVM boots (and the 3.9 broker's, with --with-kafka39).
    kafka_up kafka & kafka_job=$!
    kafka39_job=""
    if [ "${2:-}" = "--with-kafka39" ]; then kafka_up kafka39 & kafka39_job=$!; fi
    pg_up
    s3_up
    wait "$kafka_job" || die "kafka failed to start"
    if [ -n "$kafka39_job" ]; then wait "$kafka39_job" || die "kafka39 (Kafka $KAFKA39_VERSION) failed to start"; fi
    write_env
    log "connection settings in $STATE_DIR/services.env"
    ;;
  down)
    kafka_down kafka; kafka_down kafka39; pg_down; s3_down
    if [ "${2:-}" = "--purge" ]; then rm -rf "$STATE_DIR"; log "removed $STATE_DIR"; fi
    ;;
  status) status ;;
  # For failure tests: take the broker away and bring it back (its data stays).
  kafka-stop) kafka_down kafka ;;
  kafka-start) kafka_up kafka ;;
  # The 3.9 broker alone (the env file gains or loses KAFKA_BROKERS_39).
  kafka39-start) kafka_up kafka39; write_env ;;
  kafka39-stop) kafka_down kafka39; write_env ;;
  env) write_env; cat "$STATE_DIR/services.env" ;;
  *) echo "usage: $0 up [--with-kafka39]|down [--purge]|status|env|kafka-stop|kafka-start|kafka39-start|kafka39-stop" >&2; exit 2 ;;
esac
