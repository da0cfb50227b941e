#!/usr/bin/env bash
# OTLP logs benchmark: lodestone's receiver (durable: an export is answered once its records are committed) against
# an OpenTelemetry Collector with the otlp receiver and the nop exporter (nothing stored), both driven by the same
# telemetrygen arguments, over gRPC and OTLP/HTTP, in alternating rounds on this machine, so the ratio compares.
#
#   bench/otlp.sh [duration] [rounds]      (defaults: 10s per measurement, 3 rounds)
#   OTLP_BENCH_BACKEND=postgres bench/otlp.sh   (lodestone on PostgreSQL, LODESTONE_TEST_POSTGRES or the local server)
#   OTLP_BENCH_PROTOCOLS=grpc bench/otlp.sh     (only one protocol; default "grpc http")
#
# The Collector is built once with the official builder (go.opentelemetry.io/collector/cmd/builder@v0.162.0) and
# telemetrygen installed at v0.161.0, both under OTLP_BENCH_TOOLS (default ~/.cache/lodestone-bench-otlp). A rate is
# the sum of telemetrygen's "logs generated" over its workers divided by the duration: every worker sends its next
# export only once the previous one was answered, so it counts what each server acknowledged.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || { echo "otlp.sh needs /usr/bin/time (apt-get install time)"; exit 1; }
export PATH="/usr/local/go/bin:$PATH"

duration="${1:-10s}"
rounds="${2:-3}"
protocols="${OTLP_BENCH_PROTOCOLS:-grpc http}"
backend="${OTLP_BENCH_BACKEND:-sqlite}"
pg="${LODESTONE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
tools="${OTLP_BENCH_TOOLS:-$HOME/.cache/lodestone-bench-otlp}"
tgargs=(logs --otlp-insecure --workers 8 --rate 0 --duration "$duration")
# Ports: the Collector's and lodestone's, gRPC and HTTP each.
col_grpc=127.0.0.1:14317 col_http=127.0.0.1:14318 lds_grpc=127.0.0.1:24317 lds_http=127.0.0.1:24318 lds_api=127.0.0.1:24380

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$backend" = postgres ] && psql "$pg" -qc "DROP SCHEMA IF EXISTS bench_otlp CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Tools, built once.
mkdir -p "$tools/bin"
if [ ! -x "$tools/bin/telemetrygen" ]; then
  GOBIN="$tools/bin" go install github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@v0.161.0
fi
if [ ! -x "$tools/otelcol-bench/otelcol-bench" ]; then
  [ -x "$tools/bin/builder" ] || GOBIN="$tools/bin" go install go.opentelemetry.io/collector/cmd/builder@v0.162.0
  cat >"$tools/builder.yaml" <<'EOF'
dist:
  name: otelcol-bench
  description: OpenTelemetry Collector, otlp receiver to nop exporter (lodestone bench/otlp.sh)
  output_path: ./otelcol-bench
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v0.162.0
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/nopexporter v0.162.0
EOF
  (cd "$tools" && ./bin/builder --config builder.yaml)
fi
go build -o "$work/lodestone" ./cmd/lodestone

cat >"$work/collector.yaml" <<EOF
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "$col_grpc"}
      http: {endpoint: "$col_http"}
exporters:
  nop:
service:
  telemetry:
    metrics: {level: none}
  pipelines:
    logs: {receivers: [otlp], exporters: [nop]}
EOF

wait_port() { # ADDR LOG
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1:"; cat "$2"; exit 1
}

"$tools/otelcol-bench/otelcol-bench" --config "$work/collector.yaml" >"$work/collector.log" 2>&1 &
pids+=($!)
col_pid=$!
store=(--data-dir "$work/data")
if [ "$backend" = postgres ]; then
  psql "$pg" -qc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS bench_otlp CASCADE; CREATE SCHEMA bench_otlp" >/dev/null
  sep='?'; [[ "$pg" == *\?* ]] && sep='&'
  store=(--data-dir "$work/data" --db "${pg}${sep}search_path=bench_otlp")
fi
mkdir -p "$work/data"
BASIC_AUTH_PASS=bench "$work/lodestone" serve --http "$lds_api" --log-level warn "${store[@]}" \
  --tokens-config bench/otlp-tokens.toml --otlp-grpc "$lds_grpc" --otlp-http "$lds_http" >"$work/lodestone.log" 2>&1 &
pids+=($!)
lds_pid=$!
for a in "$col_grpc $work/collector.log" "$col_http $work/collector.log" "$lds_grpc $work/lodestone.log" "$lds_http $work/lodestone.log"; do
  wait_port $a
done

cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # SERVER PROTOCOL -> "logs/s server-CPU-µs-per-record"
  local server=$1 proto=$2 endpoint extra=() pid=$col_pid
  [ "$server" = lodestone ] && pid=$lds_pid
  case "$server/$proto" in
    collector/grpc) endpoint=$col_grpc ;;
    collector/http) endpoint=$col_http ;;
    lodestone/grpc) endpoint=$lds_grpc ;;
    lodestone/http) endpoint=$lds_http ;;
  esac
  [ "$proto" = http ] && extra=(--otlp-http)
  local t0; t0=$(cputicks "$pid")
  # Both get the header; the Collector ignores it. The client's own CPU is measured too: on a small machine it
  # shares the cores with the server, so it sets how much CPU per record a server can spend at a given rate.
  /usr/bin/time -f "%U %S" -o "$work/tg.time" "$tools/bin/telemetrygen" "${tgargs[@]}" "${extra[@]}" \
    --otlp-endpoint "$endpoint" --otlp-header 'Authorization="Bearer secret-token"' >"$work/tg.log" 2>&1 ||
    { cat "$work/tg.log" >&2; return 1; }
  grep -c 'exporter failed\|failed to export' "$work/tg.log" >/dev/null && { grep -m3 'failed' "$work/tg.log" >&2; }
  python3 - "$work/tg.log" "$duration" "$(( $(cputicks "$pid") - t0 ))" "$(getconf CLK_TCK)" "$work/tg.time" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
n = sum(int(m) for m in re.findall(r'logs generated.*"logs": (\d+)', text))
d = sys.argv[2]
secs = float(d[:-1]) * {"s": 1, "m": 60}[d[-1]]
cpu_us = int(sys.argv[3]) / int(sys.argv[4]) * 1e6
client_us = sum(float(x) for x in open(sys.argv[5]).read().split()[-2:]) * 1e6
print(round(n / secs), round(cpu_us / max(n, 1), 1), round(client_us / max(n, 1), 1))
EOF
}

echo "OTLP logs/s, telemetrygen ${tgargs[*]}; lodestone on $backend (durable), Collector otlp -> nop; $(nproc) CPUs"
printf '%-6s %-5s %12s %12s %7s   %s\n' proto round lodestone collector ratio \
  "CPU µs/record: server (lodestone, collector); telemetrygen (against lodestone, against collector)"
for proto in $protocols; do
  # Warm up both (token verification, connections, JIT-free but page cache and SQLite file growth).
  run lodestone "$proto" >/dev/null; run collector "$proto" >/dev/null
  for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) = 1 ]; then read -r l lcpu ltg < <(run lodestone "$proto"); read -r c ccpu ctg < <(run collector "$proto")
    else read -r c ccpu ctg < <(run collector "$proto"); read -r l lcpu ltg < <(run lodestone "$proto"); fi
    printf '%-6s %-5s %12s %12s %7.2f   %s, %s; %s, %s\n' "$proto" "$r" "$l" "$c" "$(python3 -c "print($l/max($c,1))")" \
      "$lcpu" "$ccpu" "$ltg" "$ctg"
    echo "$proto $l $c $lcpu $ctg" >>"$work/results"
  done
done
echo
echo "median of rounds:"
python3 - "$work/results" "$(nproc)" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    p, l, c, lcpu, ctg = line.split()
    rows.setdefault(p, ([], [], [], []))
    for i, v in enumerate((l, c, lcpu, ctg)):
        rows[p][i].append(float(v))
for p, (l, c, lcpu, ctg) in rows.items():
    ml, mc = statistics.median(l), statistics.median(c)
    print(f"| OTLP logs over {'gRPC' if p == 'grpc' else 'HTTP'} | {ml:,.0f} logs/s | {mc:,.0f} logs/s | {ml/max(mc,1):.2f}x |")
# The budget: at the Collector's rate the client alone uses rate x its CPU per record; what is left of the
# machine's cores, per record, is all a server may spend there, decoding and storing included.
print()
cpus = int(sys.argv[2])
for p, (l, c, lcpu, ctg) in rows.items():
    mc, client = statistics.median(c), statistics.median(ctg)
    budget = (cpus * 1e6 - mc * client) / max(mc, 1)
    print(f"{p}: at the Collector's {mc:,.0f} logs/s telemetrygen takes {mc * client / 1e6:.2f} of {cpus} CPUs "
          f"({client} µs/record), leaving a server {budget:.1f} µs of CPU per record; lodestone spends "
          f"{statistics.median(lcpu)} µs durably")
EOF
