#!/usr/bin/env bash
# bench.sh: the load benchmark behind `make bench`. It starts the test
# stack (deploy/stack.sh: PostgreSQL, FerretDB, MinIO), runs fieldsyncd on
# it with a throw-away admin token, drives PHONES simulated phones
# (default 1000, CONCURRENCY at a time, default 50) with fieldload, prints
# fieldload's table with the server's peak RSS, and stops everything.
#
#   mobile/cmd/fieldload/bench.sh [extra fieldload flags]
#   PHONES=100 mobile/cmd/fieldload/bench.sh --records 30
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
BIN=$ROOT/.cache/bench
mkdir -p "$BIN"
go build -o "$BIN/fieldsyncd" ./server/cmd/fieldsyncd
go build -o "$BIN/fieldload" ./mobile/cmd/fieldload
export BENCH_BIN=$BIN BENCH_PHONES=${PHONES:-1000} BENCH_CONCURRENCY=${CONCURRENCY:-50}
exec deploy/stack.sh exec -- bash -c '
	set -euo pipefail
	port=$(( 20000 + RANDOM % 20000 ))
	export FIELDSYNC_ADDR=127.0.0.1:$port
	export FIELDSYNC_ADMIN_TOKEN=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d " \n")
	export FIELDSYNC_LOG_LEVEL=${FIELDSYNC_LOG_LEVEL:-warn}
	"$BENCH_BIN/fieldsyncd" 2>"$BENCH_BIN/fieldsyncd.log" &
	pid=$!
	trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null || true" EXIT
	for _ in $(seq 1 100); do
		curl -fsS "http://$FIELDSYNC_ADDR/readyz" >/dev/null 2>&1 && break
		kill -0 $pid 2>/dev/null || { echo "bench: fieldsyncd exited; see $BENCH_BIN/fieldsyncd.log" >&2; exit 1; }
		sleep 0.2
	done
	"$BENCH_BIN/fieldload" --server "http://$FIELDSYNC_ADDR" --phones "$BENCH_PHONES" \
		--concurrency "$BENCH_CONCURRENCY" --server-pid $pid "$@"
' bench "$@"
