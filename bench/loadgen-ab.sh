#!/usr/bin/env bash
# Chunk ingest A/B: `lodestone loadgen` of several lodestone binaries in alternating rounds (the order rotates each
# round, so a machine that speeds up or slows down during the run favours none), then each binary's median
# end-to-end and raw-store rates, end-to-end/raw, CPU per 1000 chunks, and each binary's ratio to the first.
#
#   bench/loadgen-ab.sh ROUNDS "LOADGEN ARGS" BINARY_A BINARY_B ...
#   bench/loadgen-ab.sh 5 "--duration=5s --raw-duration=3s --concurrency=32 --per-request=8" old/lodestone ./lodestone
#
# --per-request=8 is the gateway shape (eight device sessions per POST), =1 one session per request. Every binary
# must accept the same loadgen flags and --json. CPU is the whole process (loadgen's clients and server), from
# /usr/bin/time.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,11p' "$0"; exit 2; }
rounds=$1 args=$2
shift 2
bins=("$@")
out=$(mktemp)
trap 'rm -f "$out" "$out.time"' EXIT
for r in $(seq 1 "$rounds"); do
  n=${#bins[@]}
  for k in $(seq 0 $((n - 1))); do
    i=$(((k + r) % n))
    # shellcheck disable=SC2086 # the loadgen arguments are meant to split
    j=$(/usr/bin/time -f "%U %S" -o "$out.time" "${bins[$i]}" loadgen $args --json 2>/dev/null | tr -d '\n ')
    cpu=$(awk '{print $1 + $2}' "$out.time")
    e2e=$(grep -o '"chunks_per_sec":[0-9.]*' <<<"$j" | sed -n 1p | cut -d: -f2)
    raw=$(grep -o '"chunks_per_sec":[0-9.]*' <<<"$j" | sed -n 2p | cut -d: -f2)
    chunks=$(grep -o '"chunks":[0-9]*' <<<"$j" | sed -n 1p | cut -d: -f2)
    printf '%s %s %s %s %s %s\n' "$r" "$i" "$e2e" "${raw:-0}" "$cpu" "$chunks" | tee -a "$out" >&2
  done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v names="${bins[*]}" '
function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
{ k = $2; c[k]++; e[k, c[k]] = $3; w[k, c[k]] = $4; p[k, c[k]] = 1e6 * $5 / $6; er[$1, k] = $3; R[$1] = 1 }
END {
  split(names, nm, " ")
  for (k = 0; k in c; k++) {
    delete a; for (i = 1; i <= c[k]; i++) a[i] = e[k, i]; me[k] = median(a, c[k])
    delete a; for (i = 1; i <= c[k]; i++) a[i] = w[k, i]; mw = median(a, c[k])
    delete a; for (i = 1; i <= c[k]; i++) a[i] = (w[k, i] > 0 ? e[k, i] / w[k, i] : 0); mr = median(a, c[k])
    delete a; for (i = 1; i <= c[k]; i++) a[i] = p[k, i]; mp = median(a, c[k])
    printf "%-40s end to end %8.0f chunks/s, raw store %8.0f, e2e/raw %.2f, CPU %.1f ms per 1000 chunks\n", nm[k + 1], me[k], mw, mr, mp
  }
  for (k = 1; k in c; k++) {
    n = 0; delete a; for (r in R) if ((r, 0) in er && (r, k) in er) a[++n] = er[r, k] / er[r, 0]
    printf "%s / %s: ratio of medians %.3f, median of per-round ratios %.3f\n", nm[k + 1], nm[1], me[k] / me[0], median(a, n)
  }
}' "$out"
