#!/usr/bin/env bash
# bench.sh: the resource-budget benchmark behind `make budget`. It starts
# the test stack (deploy/stack.sh: PostgreSQL, FerretDB, MinIO), runs
# fieldsyncd on it with a throw-away admin token, runs fieldbudget's
# attacks against it while an honest phone syncs, prints fieldbudget's
# table with the server's peak RSS per attack, and stops everything.
#
#   mobile/cmd/fieldbudget/bench.sh [extra fieldbudget flags]
#   mobile/cmd/fieldbudget/bench.sh --duration 10s --attacks 2,3
#   FIELDSYNCD=/path/to/another/fieldsyncd mobile/cmd/fieldbudget/bench.sh   # e.g. an older build, for a baseline
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
BIN=$ROOT/.cache/bench
mkdir -p "$BIN"
if [[ -z ${FIELDSYNCD:-} ]]; then
	go build -o "$BIN/fieldsyncd" ./server/cmd/fieldsyncd
	FIELDSYNCD=$BIN/fieldsyncd
fi
go build -o "$BIN/fieldbudget" ./mobile/cmd/fieldbudget
export BENCH_BIN=$BIN FIELDSYNCD
exec deploy/stack.sh exec -- bash -c '
	set -euo pipefail
	port=$(( 20000 + RANDOM % 20000 ))
	export FIELDSYNC_ADDR=127.0.0.1:$port
	export FIELDSYNC_ADMIN_TOKEN=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d " \n")
	export FIELDSYNC_LOG_LEVEL=${FIELDSYNC_LOG_LEVEL:-warn}
	"$FIELDSYNCD" 2>"$BENCH_BIN/fieldsyncd-budget.log" &
	pid=$!
	trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null || true" EXIT
	for _ in $(seq 1 100); do
		curl -fsS "http://$FIELDSYNC_ADDR/readyz" >/dev/null 2>&1 && break
		kill -0 $pid 2>/dev/null || { echo "budget: fieldsyncd exited; see $BENCH_BIN/fieldsyncd-budget.log" >&2; exit 1; }
		sleep 0.2
	done
	"$BENCH_BIN/fieldbudget" --server "http://$FIELDSYNC_ADDR" --server-pid $pid "$@"
' budget "$@"
