#!/usr/bin/env bash
# Fleet read A/B: BenchmarkFleetSQLite of two httpapi test binaries (each built with `go test -c ./httpapi` in its
# own checkout) in alternating rounds, then each case's median p50 and p95 over the rounds and the p50 ratio B/A.
# Each binary fills and caches its own fleet on first use (minutes; the file is named by its migrations).
#
#   bench/fleet-ab.sh OLD.test NEW.test [rounds] [benchtime]      (defaults: 3 rounds, 30x)
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,6p' "$0"; exit 2; }
a=$1 b=$2 rounds=${3:-3} benchtime=${4:-30x}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  for v in A B; do
    bin=$a
    [ "$v" = B ] && bin=$b
    "$bin" -test.run '^$' -test.bench BenchmarkFleetSQLite -test.benchtime "$benchtime" 2>/dev/null |
      awk -v v="$v" '/^Benchmark/ { print v, $1, $5, $7 }' >>"$out"
  done
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); A = $a, B = $b; milliseconds, medians of $rounds rounds"
awk '
function med(v, k,   i, j, t, c, x) { c = n[v, k]; for (i = 1; i <= c; i++) x[i] = p[v, k, i]
  for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
  return x[int((c + 1) / 2)] }
function med95(v, k,   i, j, t, c, x) { c = n[v, k]; for (i = 1; i <= c; i++) x[i] = q[v, k, i]
  for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
  return x[int((c + 1) / 2)] }
{ k = $2; sub(/^BenchmarkFleetSQLite\//, "", k); sub(/-[0-9]+$/, "", k); n[$1, k]++; p[$1, k, n[$1, k]] = $3
  q[$1, k, n[$1, k]] = $4; keys[k] = 1 }
END { for (k in keys) { x = med("A", k); y = med("B", k)
  printf "%-36s p50 A %8.2f B %8.2f  B/A %5.2f   p95 A %8.2f B %8.2f\n", k, x, y, (x > 0 ? y / x : 0), med95("A", k), med95("B", k) } }
' "$out" | sort
