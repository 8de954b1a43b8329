#!/usr/bin/env bash
# bench.sh: the resource-budget benchmark behind `make budget`. It starts
# the test stack (deploy/stack.sh: PostgreSQL, FerretDB, MinIO), runs
# fieldsyncd on it with a throw-away admin token, runs fieldbudget's
# attacks against it while an honest phone syncs, prints fieldbudget's
# table with the server's peak RSS per attack (and its ratio to the peak
# with the phone alone, measured first), and stops everything.
#
#   mobile/cmd/fieldbudget/bench.sh [extra fieldbudget flags]
#   mobile/cmd/fieldbudget/bench.sh --duration 10s --attacks 2,3
#   FIELDSYNCD=/path/to/another/fieldsyncd mobile/cmd/fieldbudget/bench.sh   # e.g. an older build
#
# BEFORE=REV (a git revision) first runs the same attacks against fieldsyncd
# built from REV, in the same run and on the same stack, one fresh process
# per attack (Go returns freed memory to the system over minutes, so what
# an older build keeps resident after one attack would count in the next
# one's peak); each of its tables has its own idle row to compare with.
#   BEFORE=main~20 make budget
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
BIN=$ROOT/.cache/bench
mkdir -p "$BIN"
if [[ -z ${FIELDSYNCD:-} ]]; then
	go build -o "$BIN/fieldsyncd" ./server/cmd/fieldsyncd
	FIELDSYNCD=$BIN/fieldsyncd
fi
FIELDSYNCD_BEFORE=
if [[ -n ${BEFORE:-} ]]; then
	rev=$(git rev-parse --short "$BEFORE^{commit}")
	src=$(mktemp -d)
	trap 'rm -rf "$src"' EXIT
	git archive "$rev" | tar -x -C "$src"
	(cd "$src" && go build -o "$BIN/fieldsyncd-before" ./server/cmd/fieldsyncd)
	FIELDSYNCD_BEFORE=$BIN/fieldsyncd-before
	BEFORE_LABEL="before: $BEFORE ($rev)"
fi
go build -o "$BIN/fieldbudget" ./mobile/cmd/fieldbudget
export BENCH_BIN=$BIN FIELDSYNCD FIELDSYNCD_BEFORE BEFORE_LABEL=${BEFORE_LABEL:-} NOW_LABEL="now: $(git describe --always --dirty)"
deploy/stack.sh exec -- bash -c '
	set -euo pipefail
	export FIELDSYNC_ADMIN_TOKEN=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d " \n")
	export FIELDSYNC_LOG_LEVEL=${FIELDSYNC_LOG_LEVEL:-warn}
	# budget BINARY LABEL [fieldbudget flags]: one fieldsyncd, attacked.
	budget() {
		local bin=$1 label=$2
		shift 2
		local port=$(( 20000 + RANDOM % 20000 ))
		export FIELDSYNC_ADDR=127.0.0.1:$port
		"$bin" 2>"$BENCH_BIN/fieldsyncd-budget.log" &
		local pid=$!
		trap "kill $pid 2>/dev/null; wait $pid 2>/dev/null || true" EXIT
		for _ in $(seq 1 100); do
			curl -fsS "http://$FIELDSYNC_ADDR/readyz" >/dev/null 2>&1 && break
			kill -0 $pid 2>/dev/null || { echo "budget: fieldsyncd exited; see $BENCH_BIN/fieldsyncd-budget.log" >&2; exit 1; }
			sleep 0.2
		done
		local rc=0
		"$BENCH_BIN/fieldbudget" --server "http://$FIELDSYNC_ADDR" --server-pid $pid --label "$label" "$@" || rc=$?
		kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
		trap - EXIT
		echo
		return $rc
	}
	if [[ -n $FIELDSYNCD_BEFORE ]]; then
		attacks=1,2,3,4
		args=()
		while (( $# )); do
			case $1 in
			--attacks) attacks=$2; shift 2 ;;
			--attacks=*) attacks=${1#--attacks=}; shift ;;
			*) args+=("$1"); shift ;;
			esac
		done
		for a in ${attacks//,/ }; do
			budget "$FIELDSYNCD_BEFORE" "$BEFORE_LABEL, a fresh process for attack $a" "${args[@]}" --attacks "$a" || true
		done
		budget "$FIELDSYNCD" "$NOW_LABEL" "${args[@]}" --attacks "$attacks"
	else
		budget "$FIELDSYNCD" "$NOW_LABEL" "$@"
	fi
' budget "$@"
