#!/usr/bin/env bash
# First start as a new user meets it: a fresh clone, an empty Go build cache (the module cache stays warm, as after
# one `go mod download`), `go run ./cmd/lodestone` on a temporary data directory, and the seconds until /health
# answers. Then, separately, a `go build` on another empty cache: its wall and CPU time and the binary's size.
#
#   bench/coldstart.sh [repository]     (default: this checkout's repository; its committed HEAD is cloned)
#
# CPU time (user+sys) is printed beside wall time because on a shared machine the wall time mostly measures the
# neighbours: on an idle machine the build's wall time is about CPU time / cores plus the serial link.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

repo="${1:-$(git rev-parse --show-toplevel)}"
work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

echo "cores: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg), $(go version)"

# 1. clone + go run, until /health answers.
t0=$(now)
git clone --quiet "$repo" "$work/src"
t_clone=$(now)
mkdir -p "$work/data"
(
  cd "$work/src"
  # setsid: one process group for go run and the server it starts, so cleanup stops both.
  exec setsid env GOCACHE="$work/cache-run" GOFLAGS=-buildvcs=false BASIC_AUTH_PASS=coldstart \
    go run ./cmd/lodestone --http "127.0.0.1:$port" --data-dir "$work/data" --log-level warn
) >"$work/run.log" 2>&1 &
pid=$!
until curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1; do
  if ! kill -0 "$pid" 2>/dev/null; then echo "go run exited before /health answered:"; cat "$work/run.log"; exit 1; fi
  sleep 0.2
done
t_health=$(now)
echo "clone:                     $(secs "$t0" "$t_clone") s"
echo "clone to /health answering: $(secs "$t0" "$t_health") s   (go run on an empty build cache)"
kill -- -"$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
pid=""

# 2. go build alone, on another empty cache: wall, CPU and size.
(cd "$work/src" && GOCACHE="$work/cache-build" GOFLAGS=-buildvcs=false \
  /usr/bin/time -f "%e %U %S" -o "$work/build.time" go build -o "$work/lodestone" ./cmd/lodestone)
read -r wall user sys <"$work/build.time"
echo "go build, empty cache:     ${wall} s wall, $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }') s CPU (user+sys)"
echo "binary size:               $(stat -c %s "$work/lodestone" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
