#!/usr/bin/env bash
# The pyspark peer benchmark's runtime, cached outside the repo: a virtualenv with the pyspark pinned in
# bench/peers/requirements.txt, and Spark's Kafka connector jars resolved from Maven Central with
# bench/peers/pom.xml. Prints its settings on stdout, one KEY=VALUE a line; logs go to stderr.
#
#   bash bench/peers/spark-setup.sh     create or update both (idempotent; about a second when up to date)
#
#   SPARK_PEER_VENV=~/.cache/devpipe/spark-venv     the virtualenv
#   SPARK_PEER_PYTHON=.../bin/python                its interpreter (runs bench/peers/spark_job.py)
#   SPARK_PEER_JARS=/a.jar,/b.jar                   the connector jars that pyspark does not ship, for --jars
#   JAVA_HOME=/usr/lib/jvm/...                      a Java 17+ runtime
#
# Each part is keyed on the hash of the files it is made from (like scripts/python-venv.sh): the venv on
# requirements.txt and the interpreter's version, the jars on pom.xml and requirements.txt (which jars are
# dropped depends on the pyspark wheel). The key is written last, so an interrupted run is redone.
set -euo pipefail

CACHE_DIR=${DEVPIPE_CACHE_DIR:-$HOME/.cache/devpipe}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REQUIREMENTS="$HERE/requirements.txt"
POM="$HERE/pom.xml"
VENV=${SPARK_PEER_VENV_DIR:-$CACHE_DIR/spark-venv}
JARS=${SPARK_PEER_JARS_DIR:-$CACHE_DIR/spark-jars}
PYTHON=${PYTHON:-python3}

log() { printf '[spark-setup] %s\n' "$*" >&2; }
die() { printf '[spark-setup] error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found: $2"; }

# ---------------------------------------------------------------- Java 17+ (Spark 4 needs it)
java_home() {
  local home=${JAVA_HOME:-}
  if [ -z "$home" ] || [ ! -x "$home/bin/java" ]; then
    need java "install a Java 17+ runtime (apt-get install openjdk-17-jre-headless)"
    home=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
  fi
  local major
  major=$("$home/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p')
  [ "${major%%.*}" -ge 17 ] 2>/dev/null || die "Spark 4 needs Java 17+, $home/bin/java is ${major:-unknown}"
  printf '%s' "$home"
}

# ---------------------------------------------------------------- the virtualenv
need "$PYTHON" "install Python 3.10+ with venv and pip (apt-get install python3-venv)"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "$PYTHON is $("$PYTHON" -V 2>&1); pyspark 4 needs Python 3.10+ (or set PYTHON)"
venv_key=$( { cat "$REQUIREMENTS"; "$PYTHON" -V 2>&1; } | sha256sum | cut -c1-16)
jars_key=$( { cat "$POM" "$REQUIREMENTS"; } | sha256sum | cut -c1-16)
venv_ready() { [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.requirements-key" 2>/dev/null)" = "$venv_key" ]; }
jars_ready() { [ "$(cat "$JARS/.pom-key" 2>/dev/null)" = "$jars_key" ] && ls "$JARS"/kafka-clients-*.jar >/dev/null 2>&1; }

# Two runs at once (two worktrees, two shells) take turns; the second finds everything ready.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/spark-setup.lock"
command -v flock >/dev/null 2>&1 && flock 9

if ! venv_ready; then
  log "installing bench/peers/requirements.txt into $VENV (first run, or the pins changed; pyspark is ~450 MB)"
  # A venv hard-codes its own path in its scripts, so it is built in place rather than built aside and moved.
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" >&2 || die "could not create a virtualenv (apt-get install python3-venv?)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --requirement "$REQUIREMENTS" >&2 \
    || die "pip install --requirement $REQUIREMENTS failed"
  "$VENV/bin/python" -m pip check >&2 || die "the pinned packages are inconsistent (pip check)"
  printf '%s' "$venv_key" >"$VENV/.requirements-key"
  log "venv ready: pyspark $("$VENV/bin/python" -c 'import pyspark; print(pyspark.__version__)')"
fi

# ---------------------------------------------------------------- the Kafka connector's jars
if ! jars_ready; then
  need mvn "install Maven (apt-get install maven) to fetch Spark's Kafka connector from Maven Central"
  pyspark_jars=$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')
  [ -d "$pyspark_jars" ] || die "pyspark's jars folder not found at $pyspark_jars"
  # Spark's parent pom lists a Google-hosted mirror ahead of Maven Central, and Apache parent poms list
  # other repositories: a mirror of '*' sends every request to Maven Central, the one registry reached here.
  settings="$CACHE_DIR/spark-maven-settings.xml"
  cat >"$settings" <<'EOF'
<settings xmlns="http://maven.apache.org/SETTINGS/1.0.0">
  <mirrors>
    <mirror>
      <id>central-only</id>
      <name>Maven Central for every repository</name>
      <mirrorOf>*</mirrorOf>
      <url>https://repo.maven.apache.org/maven2</url>
    </mirror>
  </mirrors>
</settings>
EOF
  log "fetching spark-sql-kafka-0-10 and its runtime dependencies from Maven Central into $JARS"
  rm -rf "$JARS.partial"
  mvn -q -B -Dstyle.color=never -s "$settings" -f "$POM" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$JARS.partial" >&2 || die "mvn could not resolve $POM (see above)"
  # Drop what the pyspark wheel already ships (Scala, Hadoop client, spark-tags, codecs, slf4j): two versions
  # of a class on one classpath is a conflict. A jar's artifact name is its file name less "-<version>.jar".
  artifact() { basename "$1" | sed -E 's/-[0-9][^-]*\.jar$//'; }
  declare -A shipped=()
  for jar in "$pyspark_jars"/*.jar; do shipped[$(artifact "$jar")]=1; done
  for jar in "$JARS.partial"/*.jar; do
    if [ -n "${shipped[$(artifact "$jar")]:-}" ]; then rm -f "$jar"; log "  pyspark ships it: dropped $(basename "$jar")"; else log "  kept $(basename "$jar")"; fi
  done
  ls "$JARS.partial"/kafka-clients-*.jar >/dev/null 2>&1 || die "kafka-clients is missing from $JARS.partial"
  printf '%s' "$jars_key" >"$JARS.partial/.pom-key"
  rm -rf "$JARS" && mv "$JARS.partial" "$JARS"
fi

jars=$(find "$JARS" -maxdepth 1 -name '*.jar' | sort | paste -sd, -)
printf 'SPARK_PEER_VENV=%s\n' "$VENV"
printf 'SPARK_PEER_PYTHON=%s\n' "$VENV/bin/python"
printf 'SPARK_PEER_JARS=%s\n' "$jars"
printf 'JAVA_HOME=%s\n' "$(java_home)"
