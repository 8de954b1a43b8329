#!/usr/bin/env bash
# deploy/run-local.sh BINARY [ARGS...]: runs fieldsyncd for "make run", under
# deploy/stack.sh (which exports the FIELDSYNC_* server variables).
#
# The admin API token is made once and kept in data/admin-token, unless
# FIELDSYNC_ADMIN_TOKEN is already set.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${1:?usage: deploy/run-local.sh BINARY [ARGS...]}
shift

token_file=$ROOT/data/admin-token
if [[ -z ${FIELDSYNC_ADMIN_TOKEN:-} ]]; then
	if [[ ! -s $token_file ]]; then
		mkdir -p "$(dirname "$token_file")"
		(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$token_file")
	fi
	FIELDSYNC_ADMIN_TOKEN=$(<"$token_file")
	export FIELDSYNC_ADMIN_TOKEN
	token_note="(kept in data/admin-token)"
else
	token_note="(from FIELDSYNC_ADMIN_TOKEN)"
fi

addr=${FIELDSYNC_ADDR:-127.0.0.1:8080}
cat >&2 <<MSG

  fieldsync:    http://$addr   (curl http://$addr/readyz)
  admin token:  $FIELDSYNC_ADMIN_TOKEN $token_note
  stack:        ${FIELDSYNC_STACK_DIR:-} (logs, stack.env; deploy/stack.sh stop|start minio)
  Ctrl-C stops fieldsyncd, then the servers.

MSG
exec "$bin" "$@"
