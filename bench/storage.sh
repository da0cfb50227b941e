#!/usr/bin/env bash
# Storage benchmark: bytes per stored metric point, tables and indexes included, for one fixed fleet written
# through lodestone's SQLite and PostgreSQL stores, the same points in ferrite's schema, and the same databases
# with their older points sealed into per-series compressed blocks (store/metricblock).
#
#   bench/storage.sh                      (200 devices, ten metrics a minute for a day: 2.88 million points)
#   bench/storage.sh -devices 50 -span 6h -v    (smaller; -v lists every table and index)
#
# SQLite sizes come from dbstat through the sqlite3 command; PostgreSQL's from pg_total_relation_size on the server
# named by LODESTONE_TEST_POSTGRES (a fresh schema, dropped afterwards; -postgres '' skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
command -v sqlite3 >/dev/null || { echo "storage.sh needs the sqlite3 command (apt-get install sqlite3)"; exit 1; }
export LODESTONE_TEST_POSTGRES="${LODESTONE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
exec go run ./bench/storagebench "$@"
