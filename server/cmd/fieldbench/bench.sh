#!/usr/bin/env bash
# bench.sh: fieldsync against the store under it and a peer, in one run
# (part of `make bench`). It installs pouchdb-server from npm into
# .cache/pouch on first use, starts the test stack (deploy/stack.sh:
# PostgreSQL, FerretDB, MinIO), fieldsyncd on it and pouchdb-server (on
# its LevelDB backend, data under .cache/bench/pouch), runs fieldbench and
# stops everything. The table goes to stdout, the JSON and the chart to
# .cache/bench/fieldbench.{json,png}.
#
#   server/cmd/fieldbench/bench.sh
#   BENCH_RECORDS=5000 BENCH_SCHOOLS=4 BENCH_MODE_RECORDS=2000 BENCH_SCHOOL_MODES=4,50,500 server/cmd/fieldbench/bench.sh
#   BENCH_PROFILE=1 server/cmd/fieldbench/bench.sh --only-push   # a CPU profile of fieldsyncd under push:
#                                     # go tool pprof -top .cache/bench/fieldsyncd .cache/bench/fieldsyncd.cpu
#
# FIELDSYNCD=path measures that fieldsyncd binary instead of this tree's.
# Ports: BENCH_POUCH_PORT and BENCH_PORT (fieldsyncd), random by default;
# the stack's as deploy/stack.sh reads them (FIELDSYNC_STACK_*_PORT).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
cd "$ROOT"
BIN=$ROOT/.cache/bench
POUCH=$ROOT/.cache/pouch
# 4.2.0 is the last pouchdb-server; its LevelDB backend (leveldown 5.6)
# ships prebuilt binaries that load on Node 20.
POUCH_VERSION=4.2.0
mkdir -p "$BIN" "$POUCH"
if [[ ! -x $POUCH/node_modules/.bin/pouchdb-server ]]; then
	command -v npm >/dev/null || { echo "bench: npm is needed to install pouchdb-server (Debian: apt-get install npm)" >&2; exit 1; }
	echo "bench: installing pouchdb-server@$POUCH_VERSION into $POUCH (once)" >&2
	npm install --prefix "$POUCH" --no-audit --no-fund --loglevel=error "pouchdb-server@$POUCH_VERSION" >&2
fi
if [[ -n ${FIELDSYNCD:-} ]]; then
	cp "$FIELDSYNCD" "$BIN/fieldsyncd" # another build, e.g. of an older revision, measured with this bench
else
	go build -o "$BIN/fieldsyncd" ./server/cmd/fieldsyncd
fi
go build -o "$BIN/fieldbench" ./server/cmd/fieldbench
export BENCH_BIN=$BIN BENCH_POUCH=$POUCH BENCH_ROOT=$ROOT
exec deploy/stack.sh exec --profile test -- bash -c '
	set -euo pipefail
	port=${BENCH_PORT:-$(( 20000 + RANDOM % 20000 ))}
	pport=${BENCH_POUCH_PORT:-$(( 20000 + RANDOM % 20000 ))}
	pdir=$BENCH_BIN/pouch
	rm -rf "$pdir" && mkdir -p "$pdir"
	export FIELDSYNC_ADDR=127.0.0.1:$port
	export FIELDSYNC_MONGO_DB=fieldbench_$$
	export FIELDSYNC_ADMIN_TOKEN=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d " \n")
	export FIELDSYNC_LOG_LEVEL=${FIELDSYNC_LOG_LEVEL:-warn}
	profile=()
	[[ -n ${BENCH_PROFILE:-} ]] && profile=(-cpuprofile "$BENCH_BIN/fieldsyncd.cpu")
	"$BENCH_BIN/fieldsyncd" "${profile[@]}" 2>"$BENCH_BIN/fieldsyncd.log" &
	pid=$!
	# It writes config.json and log.txt into its working directory.
	mkdir -p "$BENCH_BIN/pouch-run"
	(cd "$BENCH_BIN/pouch-run" && exec "$BENCH_POUCH/node_modules/.bin/pouchdb-server" --host 127.0.0.1 --port "$pport" --dir "$pdir" --no-stdout-logs) >"$BENCH_BIN/pouchdb-server.log" 2>&1 &
	ppid=$!
	trap "kill $pid $ppid 2>/dev/null; wait $pid $ppid 2>/dev/null || true" EXIT
	for _ in $(seq 1 150); do
		if curl -fsS "http://$FIELDSYNC_ADDR/readyz" >/dev/null 2>&1 && curl -fsS "http://127.0.0.1:$pport/" >/dev/null 2>&1; then break; fi
		kill -0 $pid 2>/dev/null || { echo "bench: fieldsyncd exited; see $BENCH_BIN/fieldsyncd.log" >&2; exit 1; }
		kill -0 $ppid 2>/dev/null || { echo "bench: pouchdb-server exited; see $BENCH_BIN/pouchdb-server.log" >&2; exit 1; }
		sleep 0.2
	done
	"$BENCH_BIN/fieldbench" --server "http://$FIELDSYNC_ADDR" --pouch "http://127.0.0.1:$pport" --pouch-dir "$pdir/fieldbench" \
		--pg "postgres://postgres@127.0.0.1:${FIELDSYNC_STACK_PG_PORT:-55442}/ferretdb" --out "$BENCH_BIN" \
		--pids "fieldsyncd=$pid,pouch=$ppid,ferretdb=${FIELDSYNC_FERRETDB_PID:-},postgres=${FIELDSYNC_POSTGRES_PID:-}" "$@"
' bench "$@"
