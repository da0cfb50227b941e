#!/usr/bin/env bash
# Scale-out benchmark: the Foundation load generator against one replica on SQLite, one replica on PostgreSQL and
# three replicas on one PostgreSQL, in one run on this machine, so the figures compare.
#
#   bench/scale.sh [duration]        (default 20s per measurement)
#   LOADGEN_ARGS='--per-request 1 --concurrency 64' bench/scale.sh   (devices posting directly)
#
# PostgreSQL comes from LODESTONE_TEST_POSTGRES (default: the local server, database test); each measurement uses
# a fresh schema, dropped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

duration="${1:-20s}"
pg="${LODESTONE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
work=$(mktemp -d)
bin="$work/lodestone"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for s in bench_pg1 bench_pg3; do psql "$pg" -qc "DROP SCHEMA IF EXISTS $s CASCADE" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$bin" ./cmd/lodestone

# start NAME PORT [serve flags...]: runs a replica and waits until it is ready.
start() {
  local name=$1 port=$2; shift 2
  mkdir -p "$work/$name"
  (cd "$work/$name" && BASIC_AUTH_PASS=bench exec "$bin" --http "127.0.0.1:$port" --log-level warn "$@") \
    >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "replica $name did not start:"; cat "$work/$name.log"; exit 1
}
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
measure() { # LABEL URLS
  local label=$1 urls=$2
  local out
  out=$("$bin" loadgen --url "$urls" --duration "$duration" --raw-duration 0 --json ${LOADGEN_ARGS:-})
  local cps
  cps=$(printf '%s' "$out" | python3 -c 'import json,sys; r=json.load(sys.stdin)[0]; print(round(r["chunks_per_sec"]), r["failed_requests"], "%.1fms" % (r.get("p99_ns",0)/1e6))')
  printf '%-34s %s\n' "$label" "$cps"
  echo "$label $cps" >>"$work/results"
}

echo "chunks/s, failed requests, p99 latency — ${duration} each, $(nproc) CPUs, loadgen ${LOADGEN_ARGS:-defaults}"

start sqlite 4501 --data-dir "$work/sqlite/data"
measure "1 replica, SQLite" "http://127.0.0.1:4501/ingest/chunks"
stop_all

psql "$pg" -qc "DROP SCHEMA IF EXISTS bench_pg1 CASCADE; CREATE SCHEMA bench_pg1" >/dev/null
url1="$pg&search_path=bench_pg1"
start pg1 4511 --db "$url1"
measure "1 replica, PostgreSQL" "http://127.0.0.1:4511/ingest/chunks"
stop_all

psql "$pg" -qc "DROP SCHEMA IF EXISTS bench_pg3 CASCADE; CREATE SCHEMA bench_pg3" >/dev/null
url3="$pg&search_path=bench_pg3"
start pg3a 4521 --db "$url3"
start pg3b 4522 --db "$url3"
start pg3c 4523 --db "$url3"
measure "3 replicas, one PostgreSQL" "http://127.0.0.1:4521/ingest/chunks,http://127.0.0.1:4522/ingest/chunks,http://127.0.0.1:4523/ingest/chunks"
stop_all
