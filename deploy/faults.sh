#!/usr/bin/env bash
# deploy/faults.sh [--ci] [SCENARIO,...]: the fault suite (internal/faults)
# against real servers on loopback: a throwaway stack of deploy/stack.sh
# (PostgreSQL, FerretDB, MinIO) plus the processes each scenario starts
# (fieldsyncd replicas, HAProxy, a distributed MinIO, a MinIO on a small
# disk). It prints one table and writes it as JSON to
# .cache/faults/report.json (the table to report.txt beside it).
#
#   deploy/faults.sh                  every scenario (make faults)
#   deploy/faults.sh --ci             the subset .ci/run runs
#   deploy/faults.sh kill,disk-full   some scenarios
#
# HAProxy comes from Debian; it is installed with apt-get on first use
# (as root). Ports: the stack's FIELDSYNC_STACK_PG_PORT,
# FIELDSYNC_STACK_FERRETDB_PORT and FIELDSYNC_STACK_MINIO_PORT (default
# 55452, 27037, 9020, apart from make test's), and the suite's own from
# FIELDSYNC_FAULTS_PORT_BASE (default 19100) to that plus 49. Other
# settings: FIELDSYNC_FAULTS_SEED, FIELDSYNC_FAULTS_BATCHES (50),
# FIELDSYNC_FAULTS_MINIO_OUTAGE (30s), FIELDSYNC_FAULTS_REPORT.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

which=${FIELDSYNC_FAULTS:-all}
case ${1:-} in
--ci) which=ci ;;
"") ;;
-h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
*) which=$1 ;;
esac

log() { printf 'faults: %s\n' "$*" >&2; }

# HAProxy, the reverse proxy of the replica scenarios, from Debian.
if ! command -v haproxy >/dev/null; then
	if ((EUID != 0)); then
		log "haproxy is not installed and we are not root: apt-get install haproxy, then run again"
		exit 1
	fi
	log "installing haproxy (Debian package, first run only)"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q haproxy >/tmp/fieldsync-haproxy-install.log 2>&1; then
		apt-get update -q >>/tmp/fieldsync-haproxy-install.log 2>&1
		apt-get install -y -q haproxy >>/tmp/fieldsync-haproxy-install.log 2>&1 ||
			{ tail -n 20 /tmp/fieldsync-haproxy-install.log >&2; log "could not install haproxy"; exit 1; }
	fi
	# The package may start its own service; the suite runs its own.
	command -v systemctl >/dev/null && systemctl is-active -q haproxy 2>/dev/null && systemctl stop haproxy || true
fi

export FIELDSYNC_STACK_PG_PORT=${FIELDSYNC_STACK_PG_PORT:-55452}
export FIELDSYNC_STACK_FERRETDB_PORT=${FIELDSYNC_STACK_FERRETDB_PORT:-27037}
export FIELDSYNC_STACK_MINIO_PORT=${FIELDSYNC_STACK_MINIO_PORT:-9020}
# The suite starts MinIO processes of its own from the stack's pinned binary.
deploy/stack.sh build minio
export FIELDSYNC_FAULTS_MINIO_BIN
FIELDSYNC_FAULTS_MINIO_BIN=$(deploy/stack.sh path minio)
export FIELDSYNC_FAULTS=$which
report=${FIELDSYNC_FAULTS_REPORT:-$ROOT/.cache/faults/report.json}
export FIELDSYNC_FAULTS_REPORT=$report
rm -f "$report" "${report%.json}.txt"

status=0
deploy/stack.sh exec --profile test -- go test -count=1 -timeout 30m -v -run '^TestFaults$' ./internal/faults || status=$?
echo
if [[ -s ${report%.json}.txt ]]; then
	cat "${report%.json}.txt"
	echo "(JSON: ${report#"$ROOT"/})"
else
	log "no report was written"
	((status != 0)) || status=1
fi
exit "$status"
