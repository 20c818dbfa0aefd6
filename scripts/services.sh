#!/usr/bin/env bash
# Real services for tests and local runs: a single-node Apache Kafka broker (KRaft), MariaDB and
# Jaeger (traces, in memory), all on loopback, all cached under .cache/ (ignored by git).
#
#   scripts/services.sh up       install what is missing, start what is not running, wait until ready;
#                                if a step fails, stop again what this run started
#   scripts/services.sh down     stop what this script started
#   scripts/services.sh status   print what runs; exit 0 only when all answer
#   scripts/services.sh env      print the MINIPUSH_* variables that point at them
#
# `up` also builds grpcurl into .cache/bin (go install) for the gRPC reflection tests, and installs
# Debian's chromium (/usr/bin/chromium) for the demo page's browser test and nginx and openssl for
# the reverse-proxy test. Jaeger is built once
# from the project's Go module scripts/jaeger (a `tool` directive) into .cache/bin/jaeger.
#
# Already running services you own are reused: set MINIPUSH_TEST_KAFKA_BROKERS and/or
# MINIPUSH_TEST_MYSQL_URL, and for Jaeger all of MINIPUSH_TEST_JAEGER_QUERY,
# MINIPUSH_TEST_OTLP_ENDPOINT and MINIPUSH_TEST_OTLP_GRPC_ENDPOINT, and this script neither starts
# nor stops that service.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MINIPUSH_CACHE_DIR:-$ROOT/.cache}
# Kafka's jars are shared; each instance (the default one, or e.g. the fault suite's private one
# chosen with MINIPUSH_SERVICES_INSTANCE) has its own data, pid files and ports.
KAFKA_LIB=$CACHE/kafka/lib
INSTANCE=${MINIPUSH_SERVICES_INSTANCE:-}
if [ -z "$INSTANCE" ]; then
  STATE_DIR=$CACHE
  KAFKA_DIR=$CACHE/kafka
  MARIADB_DIR=$CACHE/mariadb
else
  STATE_DIR=$CACHE/instances/$INSTANCE
  KAFKA_DIR=$STATE_DIR/kafka
  MARIADB_DIR=$STATE_DIR/mariadb
fi
KAFKA_PORT=${MINIPUSH_TEST_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
MARIADB_PORT=${MINIPUSH_TEST_MARIADB_PORT:-13306}
MARIADB_SOCKET=$MARIADB_DIR/run/mysqld.sock
# Jaeger runs for the default instance only (the fault suite traces nothing). Its OTLP receivers
# and query API avoid the usual 4317/4318/16686; the query API's gRPC side takes the next port.
JAEGER_DIR=$CACHE/jaeger
JAEGER_MODULE=$ROOT/scripts/jaeger
JAEGER_OTLP_GRPC_PORT=${MINIPUSH_TEST_JAEGER_OTLP_GRPC_PORT:-14317}
JAEGER_OTLP_HTTP_PORT=${MINIPUSH_TEST_JAEGER_OTLP_HTTP_PORT:-14318}
JAEGER_QUERY_PORT=${MINIPUSH_TEST_JAEGER_QUERY_PORT:-16687}
JAEGER_QUERY_GRPC_PORT=$((JAEGER_QUERY_PORT + 1))
MYSQL_USER=minipush
MYSQL_PASSWORD=minipush
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/scripts/kafka/pom.xml")
JAEGER_VERSION=$(awk '$1 == "github.com/jaegertracing/jaeger" { print $2 }' "$JAEGER_MODULE/go.mod")

log() { printf '[services] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# `up` lists here each service it starts, so that a failed `up` stops them again.
UP_STARTED=
mark_started() { if [ -n "$UP_STARTED" ]; then echo "$1" >>"$UP_STARTED"; fi; }

stop_pid() { # pidfile name seconds
  local pidfile=$1 name=$2 seconds=$3
  pid_alive "$pidfile" || { rm -f "$pidfile"; return 0; }
  local pid; pid=$(cat "$pidfile")
  log "stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + seconds))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

wait_for() { # seconds description command...
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.3
  done
  log "$what is ready"
}

# ---------------------------------------------------------------- Kafka

kafka_fetch() {
  local marker=$KAFKA_LIB/.complete-$KAFKA_VERSION
  [ -f "$marker" ] && return 0
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch Kafka's jars from Maven Central"
  command -v java >/dev/null || die "Java 17 is needed to run the Kafka broker"
  log "fetching Apache Kafka $KAFKA_VERSION from Maven Central (first run only)"
  rm -rf "$KAFKA_LIB"
  mkdir -p "$KAFKA_LIB"
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_LIB" -DincludeScope=runtime >&2 || die "mvn could not fetch Kafka"
  touch "$marker"
}

kafka_config() {
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/run"
  cat >"$KAFKA_DIR/run/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=9223372036854775807
num.network.threads=2
num.io.threads=4
log.retention.check.interval.ms=60000
log.cleaner.dedupe.buffer.size=16777216
EOF
}

kafka_ready() { port_open "$KAFKA_PORT"; }

kafka_up() {
  if [ -n "${MINIPUSH_TEST_KAFKA_BROKERS:-}" ]; then
    log "using Kafka at $MINIPUSH_TEST_KAFKA_BROKERS (not managed here)"
    return 0
  fi
  if pid_alive "$KAFKA_DIR/run/kafka.pid" && kafka_ready; then
    log "Kafka already runs on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process; set MINIPUSH_TEST_KAFKA_PORT"
  kafka_fetch
  kafka_config
  local cp="$KAFKA_LIB/*"
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -cp "$cp" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$KAFKA_DIR/run/server.properties" >"$KAFKA_DIR/run/format.log" 2>&1 ||
      die "formatting KRaft storage failed; see $KAFKA_DIR/run/format.log"
  fi
  log "starting Kafka on 127.0.0.1:$KAFKA_PORT"
  setsid nohup java -Xms256m -Xmx768m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
    -cp "$cp" kafka.Kafka "$KAFKA_DIR/run/server.properties" \
    >"$KAFKA_DIR/run/kafka.log" 2>&1 </dev/null &
  echo $! >"$KAFKA_DIR/run/kafka.pid"
  mark_started kafka
  wait_for 90 "Kafka" kafka_ready || die "Kafka did not start; see $KAFKA_DIR/run/kafka.log"
}

kafka_down() { stop_pid "$KAFKA_DIR/run/kafka.pid" Kafka 30; }

# ---------------------------------------------------------------- MariaDB

mariadbd_bin() { command -v mariadbd || { [ -x /usr/sbin/mariadbd ] && echo /usr/sbin/mariadbd; } || true; }

mariadb_install() {
  [ -n "$(mariadbd_bin)" ] && return 0
  [ "$(id -u)" -eq 0 ] || die "mariadb-server is not installed; run as root or install it (apt-get install mariadb-server)"
  log "installing mariadb-server from Debian's packages (first run only)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends mariadb-server mariadb-client >&2 || die "apt-get install mariadb-server failed"
}

mariadb_client() { command -v mariadb || command -v mysql; }

mariadb_ready() {
  [ -S "$MARIADB_SOCKET" ] && "$(mariadb_client)" --no-defaults -S "$MARIADB_SOCKET" -u root -e 'SELECT 1' >/dev/null 2>&1
}

mariadb_up() {
  if [ -n "${MINIPUSH_TEST_MYSQL_URL:-}" ]; then
    log "using MySQL at ${MINIPUSH_TEST_MYSQL_URL%%@*}@… (not managed here)"
    return 0
  fi
  if pid_alive "$MARIADB_DIR/run/mariadb.pid" && mariadb_ready; then
    log "MariaDB already runs on 127.0.0.1:$MARIADB_PORT"
    return 0
  fi
  port_open "$MARIADB_PORT" && die "port $MARIADB_PORT is taken by another process; set MINIPUSH_TEST_MARIADB_PORT"
  mariadb_install
  # As whoever runs this script: a checkout in a folder other users cannot enter (a root home,
  # mode 0700) is then no obstacle, as it is for the mysql user.
  local run_as
  run_as=$(id -un)
  mkdir -p "$MARIADB_DIR/data" "$MARIADB_DIR/run"
  chown -R "$run_as" "$MARIADB_DIR"
  if [ ! -d "$MARIADB_DIR/data/mysql" ]; then
    log "initialising a MariaDB data folder in $MARIADB_DIR/data"
    mariadb-install-db --no-defaults --user="$run_as" --datadir="$MARIADB_DIR/data" \
      --auth-root-authentication-method=socket --skip-test-db >"$MARIADB_DIR/run/install.log" 2>&1 ||
      die "mariadb-install-db failed; see $MARIADB_DIR/run/install.log"
  fi
  log "starting MariaDB on 127.0.0.1:$MARIADB_PORT"
  setsid nohup "$(mariadbd_bin)" --no-defaults --user="$run_as" \
    --datadir="$MARIADB_DIR/data" --socket="$MARIADB_SOCKET" --pid-file="$MARIADB_DIR/run/mariadbd.pid" \
    --port="$MARIADB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
    --max-connections=1000 --innodb-buffer-pool-size=1G --innodb-log-file-size=256M \
    --innodb-flush-log-at-trx-commit=2 --max-allowed-packet=64M \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --log-error="$MARIADB_DIR/run/mariadb.err" >"$MARIADB_DIR/run/mariadb.log" 2>&1 </dev/null &
  echo $! >"$MARIADB_DIR/run/mariadb.pid"
  mark_started mariadb
  wait_for 90 "MariaDB" mariadb_ready || die "MariaDB did not start; see $MARIADB_DIR/run/mariadb.err"
  "$(mariadb_client)" --no-defaults -S "$MARIADB_SOCKET" -u root <<SQL
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$MYSQL_USER'@'localhost' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS minipush;
SQL
}

mariadb_down() { stop_pid "$MARIADB_DIR/run/mariadb.pid" MariaDB 60; }

# ---------------------------------------------------------------- Jaeger

jaeger_external() { [ -n "${MINIPUSH_TEST_JAEGER_QUERY:-}" ]; }

# Jaeger v2 from the Go module proxy, pinned by scripts/jaeger/go.mod and go.sum (its `tool`
# directive). The stamp holds the hash of both, so a version bump rebuilds.
jaeger_build() {
  local bin=$CACHE/bin
  local stamp=$bin/.jaeger.stamp
  local want
  want=$(cat "$JAEGER_MODULE/go.mod" "$JAEGER_MODULE/go.sum" | sha256sum | cut -d' ' -f1)
  if [ -x "$bin/jaeger" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then return 0; fi
  command -v go >/dev/null || die "Go is needed to build Jaeger (from the Go module proxy)"
  log "building Jaeger $JAEGER_VERSION (first run only)"
  mkdir -p "$bin"
  rm -f "$stamp"
  # The caller's GOWORK and GOFLAGS must not change what is built: go.sum decides.
  (cd "$JAEGER_MODULE" && GOWORK=off GOFLAGS=-mod=readonly \
    go build -trimpath -ldflags='-s -w' -o "$bin/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) >&2 ||
    die "go build of Jaeger failed"
  mv "$bin/jaeger.tmp" "$bin/jaeger"
  echo "$want" >"$stamp"
}

# One store in memory, OTLP in over gRPC and HTTP, and the query API the UI calls; no metrics
# endpoint, no self-tracing, nothing on a wildcard address.
jaeger_config() {
  mkdir -p "$JAEGER_DIR/run"
  cat >"$JAEGER_DIR/run/config.yaml" <<EOF
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:$JAEGER_QUERY_PORT
    grpc:
      endpoint: 127.0.0.1:$JAEGER_QUERY_GRPC_PORT
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$JAEGER_OTLP_GRPC_PORT
      http:
        endpoint: 127.0.0.1:$JAEGER_OTLP_HTTP_PORT
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
EOF
}

jaeger_ready() {
  port_open "$JAEGER_OTLP_GRPC_PORT" && port_open "$JAEGER_OTLP_HTTP_PORT" &&
    port_open "$JAEGER_QUERY_PORT"
}

jaeger_up() {
  [ -z "$INSTANCE" ] || return 0
  if jaeger_external; then
    [ -n "${MINIPUSH_TEST_OTLP_ENDPOINT:-}" ] && [ -n "${MINIPUSH_TEST_OTLP_GRPC_ENDPOINT:-}" ] ||
      die "with MINIPUSH_TEST_JAEGER_QUERY set, set MINIPUSH_TEST_OTLP_ENDPOINT and MINIPUSH_TEST_OTLP_GRPC_ENDPOINT too"
    log "using Jaeger at $MINIPUSH_TEST_JAEGER_QUERY (not managed here)"
    return 0
  fi
  if pid_alive "$JAEGER_DIR/run/jaeger.pid" && jaeger_ready; then
    log "Jaeger already runs (query API on 127.0.0.1:$JAEGER_QUERY_PORT)"
    return 0
  fi
  local port
  for port in "$JAEGER_OTLP_GRPC_PORT" "$JAEGER_OTLP_HTTP_PORT" "$JAEGER_QUERY_PORT" "$JAEGER_QUERY_GRPC_PORT"; do
    port_open "$port" && die "port $port is taken by another process; set MINIPUSH_TEST_JAEGER_*_PORT"
  done
  jaeger_build
  jaeger_config
  log "starting Jaeger: OTLP on 127.0.0.1:$JAEGER_OTLP_GRPC_PORT (gRPC) and :$JAEGER_OTLP_HTTP_PORT (HTTP), query API on :$JAEGER_QUERY_PORT"
  setsid nohup "$CACHE/bin/jaeger" --config "$JAEGER_DIR/run/config.yaml" \
    >"$JAEGER_DIR/run/jaeger.log" 2>&1 </dev/null &
  echo $! >"$JAEGER_DIR/run/jaeger.pid"
  mark_started jaeger
  wait_for 60 "Jaeger" jaeger_ready || die "Jaeger did not start; see $JAEGER_DIR/run/jaeger.log"
}

# Like jaeger_up: another instance's `down` (the fault suite's) leaves the default's Jaeger alone.
jaeger_down() {
  [ -z "$INSTANCE" ] || return 0
  stop_pid "$JAEGER_DIR/run/jaeger.pid" Jaeger 30
}

# ---------------------------------------------------------------- tools

# grpcurl, for the tests that call the gRPC API through server reflection like an operator would.
GRPCURL_VERSION=v1.9.3
SCHEMATHESIS_VERSION=4.32.5
tools_up() {
  # schemathesis, from PyPI into a virtualenv of our own, fuzzes the REST API from its OpenAPI.
  if [ ! -x "$CACHE/venv/bin/st" ]; then
    command -v python3 >/dev/null || die "Python 3 is needed for schemathesis"
    log "installing schemathesis $SCHEMATHESIS_VERSION from PyPI (first run only)"
    python3 -m venv "$CACHE/venv" >&2 || die "python3 -m venv failed"
    "$CACHE/venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION" >&2 || die "pip install schemathesis failed"
  fi
  local bin=$CACHE/bin
  [ -x "$bin/grpcurl" ] && return 0
  command -v go >/dev/null || die "Go is needed to build grpcurl (go install from the Go module proxy)"
  log "building grpcurl $GRPCURL_VERSION with go install (first run only)"
  mkdir -p "$bin"
  GOBIN=$bin GOFLAGS=-mod=mod go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION" >&2 ||
    die "go install grpcurl failed"
}

# Debian's chromium, which playwright-core drives in the demo page's browser test (the tests never
# download a browser of their own), and nginx and openssl for the reverse-proxy test (a TLS proxy
# in front of MiniPush, with a throwaway certificate).
CHROMIUM=/usr/bin/chromium
NGINX=/usr/sbin/nginx
packages_up() {
  local missing=()
  [ -x "$CHROMIUM" ] || missing+=(chromium fonts-dejavu-core)
  [ -x "$NGINX" ] || missing+=(nginx)
  command -v openssl >/dev/null || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "${missing[*]} not installed; run as root or install them (apt-get install ${missing[*]})"
  log "installing ${missing[*]} from Debian's packages (first run only)"
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start their services (nginx would take port 80): a policy says no, for
  # the install only, unless the machine has one already.
  local policy=/usr/sbin/policy-rc.d ours=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && ours=1
  fi
  apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  local rc=$?
  [ -z "$ours" ] || rm -f "$policy"
  [ $rc -eq 0 ] || die "apt-get install ${missing[*]} failed"
}

# ---------------------------------------------------------------- commands

print_env() {
  echo "MINIPUSH_KAFKA_BROKERS=${MINIPUSH_TEST_KAFKA_BROKERS:-127.0.0.1:$KAFKA_PORT}"
  echo "MINIPUSH_MYSQL_URL=${MINIPUSH_TEST_MYSQL_URL:-mysql://$MYSQL_USER:$MYSQL_PASSWORD@127.0.0.1:$MARIADB_PORT/minipush}"
  echo "MINIPUSH_TEST_GRPCURL=$CACHE/bin/grpcurl"
  echo "MINIPUSH_TEST_SCHEMATHESIS=$CACHE/venv/bin/st"
  echo "MINIPUSH_TEST_NGINX=$NGINX"
  if [ -z "$INSTANCE" ]; then
    echo "MINIPUSH_TEST_OTLP_ENDPOINT=${MINIPUSH_TEST_OTLP_ENDPOINT:-http://127.0.0.1:$JAEGER_OTLP_HTTP_PORT}"
    echo "MINIPUSH_TEST_OTLP_GRPC_ENDPOINT=${MINIPUSH_TEST_OTLP_GRPC_ENDPOINT:-http://127.0.0.1:$JAEGER_OTLP_GRPC_PORT}"
    echo "MINIPUSH_TEST_JAEGER_QUERY=${MINIPUSH_TEST_JAEGER_QUERY:-http://127.0.0.1:$JAEGER_QUERY_PORT}"
  fi
}

status() {
  local ok=0
  if [ -n "${MINIPUSH_TEST_KAFKA_BROKERS:-}" ]; then echo "kafka: external $MINIPUSH_TEST_KAFKA_BROKERS"
  elif pid_alive "$KAFKA_DIR/run/kafka.pid" && kafka_ready; then echo "kafka: running pid $(cat "$KAFKA_DIR/run/kafka.pid") port $KAFKA_PORT"
  else echo "kafka: stopped"; ok=1; fi
  if [ -n "${MINIPUSH_TEST_MYSQL_URL:-}" ]; then echo "mariadb: external"
  elif pid_alive "$MARIADB_DIR/run/mariadb.pid" && mariadb_ready; then echo "mariadb: running pid $(cat "$MARIADB_DIR/run/mariadb.pid") port $MARIADB_PORT"
  else echo "mariadb: stopped"; ok=1; fi
  if [ -n "$INSTANCE" ]; then :
  elif jaeger_external; then echo "jaeger: external $MINIPUSH_TEST_JAEGER_QUERY"
  elif pid_alive "$JAEGER_DIR/run/jaeger.pid" && jaeger_ready; then echo "jaeger: running pid $(cat "$JAEGER_DIR/run/jaeger.pid") port $JAEGER_QUERY_PORT"
  else echo "jaeger: stopped"; ok=1; fi
  return $ok
}

# On a failed `up`: let the steps still running finish (one may be about to start a service),
# then stop every service this run started, so nothing is left running half set up.
UP_JOBS=()
up_exit() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ] && [ -n "$UP_STARTED" ]; then
    local job svc
    for job in "${UP_JOBS[@]}"; do wait "$job" 2>/dev/null || true; done
    while read -r svc; do
      log "up failed: stopping $svc, which this run started"
      "${svc}_down" || true
    done <"$UP_STARTED"
  fi
  [ -z "$UP_STARTED" ] || rm -f "$UP_STARTED"
  exit "$rc"
}

case "${1:-}" in
  up)
    UP_STARTED=$(mktemp)
    trap up_exit EXIT
    # Kafka's jar fetch, the Go builds and MariaDB's install are independent; overlap them on a
    # cold machine.
    kafka_up & kafka_job=$!
    tools_up & tools_job=$!
    jaeger_up & jaeger_job=$!
    UP_JOBS=("$kafka_job" "$tools_job" "$jaeger_job")
    mariadb_up
    # After MariaDB: both may run apt-get, which takes one lock at a time.
    packages_up
    wait "$kafka_job" || die "Kafka failed to start"
    wait "$tools_job" || die "grpcurl could not be built"
    wait "$jaeger_job" || die "Jaeger failed to start"
    mkdir -p "$STATE_DIR"
    print_env >"$STATE_DIR/services.env"
    ;;
  down) kafka_down; mariadb_down; jaeger_down ;;
  status) status ;;
  env) print_env ;;
  kafka-down) kafka_down ;;
  kafka-up) kafka_up ;;
  mariadb-down) mariadb_down ;;
  mariadb-up) mariadb_up ;;
  packages-up | browser-up) packages_up ;;
  jaeger-down) jaeger_down ;;
  jaeger-up) jaeger_up ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
