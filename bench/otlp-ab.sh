#!/usr/bin/env bash
# A/B of two lodestone binaries on the OTLP logs benchmark (see bench/otlp.sh): both serve at once, on SQLite with
# synchronous=FULL (durable), and telemetrygen drives them in alternating rounds with the same arguments.
#
#   bench/otlp-ab.sh OLD_BINARY NEW_BINARY [duration] [rounds] [protocols]
#
# Prints per round logs/s and server CPU µs per record of each and the ratio new/old. telemetrygen comes from
# OTLP_BENCH_TOOLS (default ~/.cache/lodestone-bench-otlp), installed by bench/otlp.sh.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY [duration] [rounds] [protocols]" >&2; exit 2; }
bins=("$(realpath "$1")" "$(realpath "$2")")
root="$(cd "$(dirname "$0")/.." && pwd)"
duration="${3:-10s}" rounds="${4:-3}" protocols="${5:-grpc http}"
tools="${OTLP_BENCH_TOOLS:-$HOME/.cache/lodestone-bench-otlp}"
tg="$tools/bin/telemetrygen"
[ -x "$tg" ] || { echo "no $tg: run bench/otlp.sh once" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for i in 0 1; do
  mkdir -p "$work/d$i"
  BASIC_AUTH_PASS=bench "${bins[$i]}" serve --http "127.0.0.1:2538$i" --log-level warn --data-dir "$work/d$i" \
    --tokens-config "$root/bench/otlp-tokens.toml" --otlp-grpc "127.0.0.1:2531$i" --otlp-http "127.0.0.1:2532$i" \
    >"$work/d$i.log" 2>&1 &
  pids+=($!)
done
for port in 25310 25311 25320 25321; do
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # INDEX PROTOCOL -> "logs/s µs-per-record"
  local i=$1 endpoint="127.0.0.1:2531$1" extra=()
  [ "$2" = http ] && { endpoint="127.0.0.1:2532$1"; extra=(--otlp-http); }
  local t0; t0=$(cputicks "${pids[$i]}")
  "$tg" logs --otlp-insecure --workers 8 --rate 0 --duration "$duration" "${extra[@]}" --otlp-endpoint "$endpoint" \
    --otlp-header 'Authorization="Bearer secret-token"' >"$work/tg.log" 2>&1 || { cat "$work/tg.log" >&2; return 1; }
  python3 - "$work/tg.log" "$duration" "$(( $(cputicks "${pids[$i]}") - t0 ))" "$(getconf CLK_TCK)" <<'PY'
import re, sys
n = sum(int(m) for m in re.findall(r'logs generated.*"logs": (\d+)', open(sys.argv[1]).read()))
d = sys.argv[2]
secs = float(d[:-1]) * {"s": 1, "m": 60}[d[-1]]
print(round(n / secs), round(int(sys.argv[3]) / int(sys.argv[4]) * 1e6 / max(n, 1), 1))
PY
}
echo "OTLP logs A/B, telemetrygen --workers 8 --rate 0 --duration $duration; A=${bins[0]} B=${bins[1]}; $(nproc) CPUs"
for proto in $protocols; do
  run 0 "$proto" >/dev/null; run 1 "$proto" >/dev/null # warm-up
  for r in $(seq 1 "$rounds"); do
    if [ $((r % 2)) = 1 ]; then read -r a acpu < <(run 0 "$proto"); read -r b bcpu < <(run 1 "$proto")
    else read -r b bcpu < <(run 1 "$proto"); read -r a acpu < <(run 0 "$proto"); fi
    printf '%-5s round %s  A %7s logs/s %5s µs/rec   B %7s logs/s %5s µs/rec   B/A %.2f\n' "$proto" "$r" "$a" "$acpu" \
      "$b" "$bcpu" "$(python3 -c "print($b/max($a,1))")"
  done
done
