#!/usr/bin/env bash
# deploy/stack.sh builds, starts and stops the servers fieldsync needs:
# a private PostgreSQL 15 cluster, FerretDB (the MongoDB wire protocol on top
# of that cluster) and MinIO, all on loopback ports.
#
#   deploy/stack.sh build
#       Build FerretDB and MinIO into .cache/infra-bin, if missing.
#   deploy/stack.sh path ferretdb|minio
#       Print the path of the pinned binary (built or not).
#   deploy/stack.sh exec [--profile test|run] -- CMD [ARGS...]
#       Start what is needed, export the FIELDSYNC_* variables, run CMD, then
#       stop everything. Exits with CMD's status.
#   deploy/stack.sh servers [--profile test|run]
#       Start the servers, print their variables, keep them up until Ctrl-C.
#   deploy/stack.sh stop [minio|ferretdb|postgres] [--dir DIR]
#   deploy/stack.sh start minio|ferretdb|postgres [--dir DIR]
#       Stop one server of a running stack, or start it again (for fault
#       tests). DIR defaults to $FIELDSYNC_STACK_DIR, then data/. "stop"
#       without a name stops every server of DIR (a leftover stack).
#
# Profiles: "test" (the default; ports PG 55442, FerretDB 27027, MinIO 9010;
# a temporary folder, removed at the end unless FIELDSYNC_STACK_KEEP=1) and
# "run" (ports 55432, 27017, 9000; data kept under data/, or
# $FIELDSYNC_STACK_RUN_DIR). Both can run at the same time. Ports:
# FIELDSYNC_STACK_PG_PORT, FIELDSYNC_STACK_FERRETDB_PORT,
# FIELDSYNC_STACK_MINIO_PORT. A port already taken is refused, naming its
# holder.
#
# CMD gets FIELDSYNC_MONGO_URI, FIELDSYNC_MINIO_ENDPOINT, _ACCESS_KEY,
# _SECRET_KEY and _SECURE, FIELDSYNC_STACK_DIR (a folder with the logs, the
# PID files NAME.pid and stack.env, a file to source), and
# FIELDSYNC_POSTGRES_PID, FIELDSYNC_FERRETDB_PID, FIELDSYNC_MINIO_PID.
#
# If FIELDSYNC_MONGO_URI is already set, PostgreSQL and FerretDB are not
# started; if FIELDSYNC_MINIO_ENDPOINT is set (with its keys), MinIO is not.
# With both set, nothing is started and CMD runs against those servers.
#
# Every server is a child of this script, in a session of its own (so a
# Ctrl-C in the terminal reaches only this script, which stops CMD first,
# then the servers), and is stopped by PID from the EXIT trap: after a normal
# end, a failing CMD, Ctrl-C, SIGTERM or SIGHUP. A watchdog stops them if
# this script is killed with SIGKILL. PostgreSQL is started directly rather
# than daemonized by pg_ctl, so that it stays our child and is reaped when it
# exits; initdb and postgres run as the postgres user when we are root.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FERRETDB_VERSION=v1.24.2
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
PG_BIN=${FIELDSYNC_STACK_PG_BIN:-/usr/lib/postgresql/15/bin}
BIN_DIR=${FIELDSYNC_STACK_BIN_DIR:-$ROOT/.cache/infra-bin}
FERRETDB_BIN=$BIN_DIR/ferretdb-$FERRETDB_VERSION
MINIO_BIN=$BIN_DIR/minio-$MINIO_VERSION
# Connection pools. FerretDB v1 holds a PostgreSQL connection for a
# command's open query while an update or upsert in the same command takes a
# second one, so when every connection of its pool is held by such a command
# they all wait for each other until the client gives up (seen under the
# 50-phone load at FerretDB's default pool of 50 and the driver's default of
# 100 connections). So each client process gets at most MONGO_CLIENT_POOL
# connections, and FerretDB's pool holds two per connection of the two
# clients a test run or a bench has at a time, within PostgreSQL's
# max_connections (200, set below).
MONGO_CLIENT_POOL=32
FERRETDB_PG_POOL=150
READY_TIMEOUT=${FIELDSYNC_STACK_READY_TIMEOUT:-60} # seconds, per server

log() { printf 'stack: %s\n' "$*" >&2; }
die() {
	printf 'stack: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

# ---------------------------------------------------------------- processes

# alive PID: true if the process exists and is not a zombie.
alive() {
	local pid=$1 state
	[[ -n $pid ]] || return 1
	if [[ ! -d /proc/self ]]; then # no procfs: zombies count as alive
		kill -0 "$pid" 2>/dev/null
		return
	fi
	state=$(sed -e 's/^.*) //' -e 's/ .*//' "/proc/$pid/stat" 2>/dev/null) || return 1
	[[ $state != Z && $state != X ]]
}

# wait_gone PID SECONDS: waits until PID is gone; false on timeout.
wait_gone() {
	local pid=$1 tries=$(($2 * 10))
	while alive "$pid"; do
		((tries-- > 0)) || return 1
		sleep 0.1
	done
}

# stop_pid NAME PID SIGNAL: sends SIGNAL, waits up to 30 s, then SIGKILL.
stop_pid() {
	local name=$1 pid=$2 sig=$3
	alive "$pid" || return 0
	kill -"$sig" "$pid" 2>/dev/null || true
	if ! wait_gone "$pid" 30; then
		log "$name (PID $pid) did not stop within 30 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 5 || log "$name (PID $pid) is still there after SIGKILL"
	fi
	wait "$pid" 2>/dev/null || true # reap it if it is our child
}

pidfile_pid() { [[ -s $1 ]] && head -n1 "$1" || true; }

# stop_server NAME: stops one server of the stack in $STACK_DIR by its PID file.
stop_server() {
	local name=$1 pid
	case $name in
	postgres)
		# SIGINT is PostgreSQL's "fast" shutdown, what pg_ctl stop -m fast sends.
		pid=$(pidfile_pid "$STACK_DIR/postgres.pid")
		[[ -n $pid ]] && alive "$pid" && log "stopping PostgreSQL (PID $pid)"
		stop_pid PostgreSQL "$pid" INT
		;;
	ferretdb | minio)
		pid=$(pidfile_pid "$STACK_DIR/$name.pid")
		[[ -n $pid ]] && alive "$pid" && log "stopping $name (PID $pid)"
		stop_pid "$name" "$pid" TERM
		;;
	esac
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# require_free_port NAME PORT VAR: refuses to go on if PORT is taken.
require_free_port() {
	local name=$1 port=$2 var=$3 who=""
	[[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)) || die "$var=$port is not a port number"
	if port_in_use "$port"; then
		if command -v ss >/dev/null; then
			who=$(ss -Hltnp "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\("[^"]*",pid=[0-9]*\).*/ (held by \1)/p' | head -n1)
		fi
		die "port $port for $name is already in use$who. Stop whatever holds it (a leftover stack: deploy/stack.sh stop --dir DIR), or choose another port with $var=PORT."
	fi
}

random_secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c "${1:-32}"; }

# ---------------------------------------------------------------- build

# build_ferretdb: the module zip lacks build/version/version.txt, without
# which the binary panics at start, so build from a writable copy.
build_ferretdb() {
	local tmp=$1 dir
	dir=$(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
	[[ -n $dir && -d $dir ]] || die "go mod download of FerretDB $FERRETDB_VERSION gave no directory"
	cp -R "$dir" "$tmp/ferretdb-src"
	chmod -R u+w "$tmp/ferretdb-src"
	echo "$FERRETDB_VERSION" >"$tmp/ferretdb-src/build/version/version.txt"
	(cd "$tmp/ferretdb-src" && GOWORK=off GOFLAGS= go build -trimpath -ldflags='-s -w' -o "$tmp/ferretdb" ./cmd/ferretdb)
}

build_minio() {
	local tmp=$1
	(cd "$tmp" && GOWORK=off GOFLAGS= GOBIN="$tmp/bin" go install -trimpath -ldflags='-s -w' "github.com/minio/minio@$MINIO_VERSION")
	mv "$tmp/bin/minio" "$tmp/minio"
}

# build [ferretdb] [minio]: builds the missing binaries, both at once (one
# downloads while the other compiles). A lock keeps two stacks started at the
# same time on a fresh machine from building twice.
build() {
	local want=() name out tmp pids=() failed=0 start=$SECONDS
	mkdir -p "$BIN_DIR"
	exec 9>"$BIN_DIR/.lock"
	flock 9
	for name in "$@"; do
		case $name in
		ferretdb) out=$FERRETDB_BIN ;;
		minio) out=$MINIO_BIN ;;
		esac
		[[ -x $out ]] || want+=("$name")
	done
	if ((${#want[@]} == 0)); then
		exec 9>&-
		return 0
	fi
	command -v go >/dev/null || die "go is not on PATH"
	log "building ${want[*]} into ${BIN_DIR#"$ROOT"/} (first run only; a few minutes on a fresh machine)"
	for name in "${want[@]}"; do
		tmp=$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-build-$name.XXXXXX")
		(
			set -e
			"build_$name" "$tmp"
			case $name in
			ferretdb) out=$FERRETDB_BIN ;;
			minio) out=$MINIO_BIN ;;
			esac
			cp "$tmp/$name" "$out.tmp.$$"
			mv -f "$out.tmp.$$" "$out"
		) >"$BIN_DIR/build-$name.log" 2>&1 &
		pids+=("$!:$name:$tmp")
	done
	for p in "${pids[@]}"; do
		IFS=: read -r pid name tmp <<<"$p"
		if wait "$pid"; then
			log "built $name in $((SECONDS - start)) s"
		else
			log "building $name failed; the end of ${BIN_DIR#"$ROOT"/}/build-$name.log:"
			tail -n 30 "$BIN_DIR/build-$name.log" >&2
			failed=1
		fi
		chmod -R u+w "$tmp" 2>/dev/null || true
		rm -rf "$tmp"
	done
	exec 9>&-
	((failed == 0)) || die "could not build the servers"
}

# ---------------------------------------------------------------- servers

# as_postgres CMD...: PostgreSQL refuses to run as root, so when we are root
# its programs run as the postgres user. setpriv execs (no fork), so the PID
# of a background as_postgres is the PID of the program itself.
as_postgres() {
	if ((EUID == 0)); then
		(cd / && exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@")
	else
		"$@"
	fi
}

# pg_prepare_dir: makes $STACK_DIR/postgres, the cluster's folder, owned by
# the user PostgreSQL runs as. When we are root and that user cannot reach
# $STACK_DIR (a clone under /root, whose mode is 700), the cluster lives in
# the postgres user's home instead, and $STACK_DIR/postgres links to it.
pg_prepare_dir() {
	local pgdata=$STACK_DIR/postgres home
	if ((EUID == 0)) && ! as_postgres test -x "$STACK_DIR" 2>/dev/null; then
		if [[ ! -L $pgdata ]]; then
			home=$(getent passwd postgres | cut -d: -f6)
			[[ -d $home ]] || die "the postgres user cannot reach $STACK_DIR and has no home folder; set FIELDSYNC_STACK_RUN_DIR to a folder it can reach"
			rmdir "$pgdata" 2>/dev/null || true
			[[ ! -e $pgdata ]] || die "the postgres user cannot reach $pgdata; move it away or set FIELDSYNC_STACK_RUN_DIR to a folder postgres can reach"
			ln -s "$home/fieldsync-$(printf %s "$STACK_DIR" | cksum | cut -d' ' -f1)" "$pgdata"
			log "the postgres user cannot reach $STACK_DIR: the cluster lives in $(readlink "$pgdata") ($pgdata links to it)"
		fi
		pgdata=$(readlink "$pgdata")
	fi
	mkdir -p "$pgdata"
	chmod 700 "$pgdata"
	if ((EUID == 0)); then
		chown postgres:postgres "$pgdata"
		as_postgres test -w "$pgdata" || die "the postgres user cannot write to $pgdata"
	fi
	PGDATA_DIR=$pgdata
}

start_postgres() {
	local pgdata pid
	[[ -x $PG_BIN/postgres ]] || die "PostgreSQL 15 is not installed at $PG_BIN (Debian: apt-get install postgresql-15), or set FIELDSYNC_STACK_PG_BIN"
	require_free_port PostgreSQL "$PG_PORT" FIELDSYNC_STACK_PG_PORT
	pg_prepare_dir
	pgdata=$PGDATA_DIR
	if [[ ! -s $pgdata/PG_VERSION ]]; then
		log "creating a PostgreSQL cluster in $pgdata"
		as_postgres "$PG_BIN/initdb" -D "$pgdata" --auth=trust --username=postgres \
			--encoding=UTF8 --locale=C --no-sync >>"$STACK_DIR/postgres.log" 2>&1 ||
			{ tail -n 20 "$STACK_DIR/postgres.log" >&2; die "initdb failed"; }
		{
			echo "# fieldsync: loopback TCP only, no Unix socket; the port is given at start."
			echo "listen_addresses = '127.0.0.1'"
			echo "unix_socket_directories = ''"
			echo "max_connections = 200"
			echo "# a statement that waits on a lock for a second is logged, with who holds it"
			echo "log_lock_waits = on"
			if [[ $PROFILE == test ]]; then
				echo "# test data is thrown away: trade durability for speed"
				echo "fsync = off"
				echo "synchronous_commit = off"
				echo "full_page_writes = off"
			fi
		} >>"$pgdata/postgresql.conf"
	fi
	launch_postgres
	await_postgres
	pid=$(pidfile_pid "$STACK_DIR/postgres.pid")
	if [[ -z $("$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'") ]]; then
		"$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres ferretdb
	fi
	# Index-backed equality lookups for FerretDB (why: in the file). Before
	# FerretDB starts, so that its connections get the plan setting.
	PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d ferretdb \
		-q -v ON_ERROR_STOP=1 -f "$ROOT/deploy/postgres/ferretdb-indexes.sql" >>"$STACK_DIR/postgres.log" 2>&1 ||
		{ tail -n 20 "$STACK_DIR/postgres.log" >&2; die "deploy/postgres/ferretdb-indexes.sql failed"; }
	log "PostgreSQL ready on 127.0.0.1:$PG_PORT (PID $pid)"
}

# launch_postgres starts PostgreSQL on the cluster in $PGDATA_DIR as a
# child of this shell, without waiting (as launch_ferretdb).
launch_postgres() {
	local runas=()
	if ((EUID == 0)); then
		runas=(setpriv --reuid=postgres --regid=postgres --init-groups --)
	fi
	(cd / && exec setsid "${runas[@]}" "$PG_BIN/postgres" -D "$PGDATA_DIR" -p "$PG_PORT") \
		>>"$STACK_DIR/postgres.log" 2>&1 </dev/null &
	echo "$!" >"$STACK_DIR/postgres.pid"
}

await_postgres() {
	local pid tries=$((READY_TIMEOUT * 10))
	pid=$(pidfile_pid "$STACK_DIR/postgres.pid")
	until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1; do
		alive "$pid" || { tail -n 20 "$STACK_DIR/postgres.log" >&2; die "PostgreSQL exited at start (log: $STACK_DIR/postgres.log)"; }
		((tries-- > 0)) || die "PostgreSQL was not ready after $READY_TIMEOUT s (log: $STACK_DIR/postgres.log)"
		sleep 0.1
	done
}

# mongo_ping PORT: sends the MongoDB command {ping: 1, $db: "admin"} as an
# OP_MSG and looks for {ok: 1.0} in the reply, so that no MongoDB shell is
# needed. ("ferretdb ping" would need --test-enable-new-auth.) The message:
# header (length 0x33, request id 1, response to 0, opcode 2013), flags 0,
# section kind 0, then the 30-byte BSON document.
mongo_ping() {
	local port=$1 reply msg
	msg='\x33\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\xdd\x07\x00\x00\x00\x00\x00\x00\x00'
	msg+='\x1e\x00\x00\x00\x10ping\x00\x01\x00\x00\x00\x02$db\x00\x06\x00\x00\x00admin\x00\x00'
	reply=$( {
		exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
		# shellcheck disable=SC2059 # the escapes are the point
		printf "$msg" >&3
		timeout 2 dd bs=4096 count=1 <&3 2>/dev/null | od -An -v -tx1 | tr -d ' \n'
	} 2>/dev/null) || return 1
	[[ $reply == *016f6b00000000000000f03f* ]] # "ok": double 1.0
}

start_ferretdb() {
	require_free_port FerretDB "$FERRETDB_PORT" FIELDSYNC_STACK_FERRETDB_PORT
	launch_ferretdb
	await_ferretdb
}

# launch_ferretdb starts FerretDB as a child of this shell (so that we reap
# it), without waiting. It must run in the main shell, not a subshell.
launch_ferretdb() {
	mkdir -p "$STACK_DIR/ferretdb"
	# FerretDB reads FERRETDB_* variables as flags: start it without any.
	setsid env $(compgen -e | sed -n 's/^FERRETDB_.*/-u &/p') "$FERRETDB_BIN" \
		--handler=postgresql \
		--postgresql-url="postgres://postgres@127.0.0.1:$PG_PORT/ferretdb?pool_max_conns=$FERRETDB_PG_POOL" \
		--listen-addr="127.0.0.1:$FERRETDB_PORT" \
		--state-dir="$STACK_DIR/ferretdb" \
		--telemetry=disable --debug-addr=- \
		>>"$STACK_DIR/ferretdb.log" 2>&1 </dev/null &
	echo "$!" >"$STACK_DIR/ferretdb.pid"
}

await_ferretdb() {
	local pid tries=$((READY_TIMEOUT * 10))
	pid=$(pidfile_pid "$STACK_DIR/ferretdb.pid")
	until mongo_ping "$FERRETDB_PORT"; do
		alive "$pid" || { tail -n 20 "$STACK_DIR/ferretdb.log" >&2; die "FerretDB exited at start (log: $STACK_DIR/ferretdb.log)"; }
		((tries-- > 0)) || die "FerretDB was not ready after $READY_TIMEOUT s (log: $STACK_DIR/ferretdb.log)"
		sleep 0.1
	done
	log "FerretDB ready on 127.0.0.1:$FERRETDB_PORT (PID $pid)"
}

start_minio() {
	require_free_port MinIO "$MINIO_PORT" FIELDSYNC_STACK_MINIO_PORT
	launch_minio
	await_minio
}

# launch_minio: as launch_ferretdb.
launch_minio() {
	mkdir -p "$STACK_DIR/minio"
	# MinIO reads every MINIO_* variable as configuration: pass only ours.
	setsid env $(compgen -e | sed -n 's/^MINIO_.*/-u &/p') \
		MINIO_ROOT_USER="$MINIO_USER" MINIO_ROOT_PASSWORD="$MINIO_PASSWORD" \
		MINIO_BROWSER=off MINIO_UPDATE=off \
		"$MINIO_BIN" server --quiet --address "127.0.0.1:$MINIO_PORT" "$STACK_DIR/minio" \
		>>"$STACK_DIR/minio.log" 2>&1 </dev/null &
	echo "$!" >"$STACK_DIR/minio.pid"
}

await_minio() {
	local pid tries=$((READY_TIMEOUT * 10))
	pid=$(pidfile_pid "$STACK_DIR/minio.pid")
	# Ready, and its S3 API answers (403 to an anonymous request, not 503
	# "Server not initialized yet").
	until curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$MINIO_PORT/minio/health/ready" 2>/dev/null &&
		[[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$MINIO_PORT/" 2>/dev/null) == 403 ]]; do
		alive "$pid" || { tail -n 20 "$STACK_DIR/minio.log" >&2; die "MinIO exited at start (log: $STACK_DIR/minio.log)"; }
		((tries-- > 0)) || die "MinIO was not ready after $READY_TIMEOUT s (log: $STACK_DIR/minio.log)"
		sleep 0.1
	done
	log "MinIO ready on 127.0.0.1:$MINIO_PORT (PID $pid)"
}

# ---------------------------------------------------------------- stack

write_env() {
	local f=$STACK_DIR/stack.env
	{
		echo "# Written by deploy/stack.sh; source it to talk to this stack."
		echo "export FIELDSYNC_STACK_DIR='$STACK_DIR'"
		echo "export FIELDSYNC_STACK_PID='$$'"
		echo "export FIELDSYNC_MONGO_URI='$FIELDSYNC_MONGO_URI'"
		echo "export FIELDSYNC_MINIO_ENDPOINT='$FIELDSYNC_MINIO_ENDPOINT'"
		echo "export FIELDSYNC_MINIO_ACCESS_KEY='$FIELDSYNC_MINIO_ACCESS_KEY'"
		echo "export FIELDSYNC_MINIO_SECRET_KEY='$FIELDSYNC_MINIO_SECRET_KEY'"
		echo "export FIELDSYNC_MINIO_SECURE='${FIELDSYNC_MINIO_SECURE:-false}'"
		if [[ $OWN_MONGO == 1 ]]; then
			echo "# PIDs at start; after 'deploy/stack.sh start NAME' read \$FIELDSYNC_STACK_DIR/NAME.pid"
			echo "export FIELDSYNC_POSTGRES_PID='$(pidfile_pid "$STACK_DIR/postgres.pid")'"
			echo "export FIELDSYNC_FERRETDB_PID='$(pidfile_pid "$STACK_DIR/ferretdb.pid")'"
		fi
		if [[ $OWN_MINIO == 1 ]]; then
			echo "export FIELDSYNC_MINIO_PID='$(pidfile_pid "$STACK_DIR/minio.pid")'"
		fi
	} >"$f.tmp"
	chmod 600 "$f.tmp"
	mv -f "$f.tmp" "$f"
}

export_env() {
	if [[ $OWN_MONGO == 1 ]]; then
		export FIELDSYNC_MONGO_URI="mongodb://127.0.0.1:$FERRETDB_PORT/?maxPoolSize=$MONGO_CLIENT_POOL"
		export FIELDSYNC_FERRETDB_PID FIELDSYNC_POSTGRES_PID
		FIELDSYNC_FERRETDB_PID=$(pidfile_pid "$STACK_DIR/ferretdb.pid")
		FIELDSYNC_POSTGRES_PID=$(pidfile_pid "$STACK_DIR/postgres.pid")
	fi
	if [[ $OWN_MINIO == 1 ]]; then
		export FIELDSYNC_MINIO_ENDPOINT="127.0.0.1:$MINIO_PORT"
		export FIELDSYNC_MINIO_ACCESS_KEY=$MINIO_USER
		export FIELDSYNC_MINIO_SECRET_KEY=$MINIO_PASSWORD
		export FIELDSYNC_MINIO_SECURE=false
		export FIELDSYNC_MINIO_PID
		FIELDSYNC_MINIO_PID=$(pidfile_pid "$STACK_DIR/minio.pid")
	fi
	export FIELDSYNC_STACK_DIR=$STACK_DIR
	write_env
}

cleanup_done=0
cleanup() {
	local status=$?
	((cleanup_done == 0)) || return 0
	cleanup_done=1
	set +e # stop everything we can, whatever fails
	trap '' INT TERM HUP USR1
	if [[ -n ${CMD_PID:-} ]] && alive "$CMD_PID"; then
		stop_pid "$CMD_NAME" "$CMD_PID" TERM
	fi
	if [[ -n ${WATCHDOG_PID:-} ]]; then
		kill -KILL "$WATCHDOG_PID" 2>/dev/null
		wait "$WATCHDOG_PID" 2>/dev/null
	fi
	if [[ -n ${STACK_DIR:-} && -d $STACK_DIR ]]; then
		# Not a bare "wait": PostgreSQL is our child too, and still running.
		local p1 p2
		stop_server minio &
		p1=$!
		stop_server ferretdb &
		p2=$!
		wait "$p1" "$p2"
		stop_server postgres
		rm -f "$STACK_DIR/stack.pid" "$STACK_DIR/cmd.pid" "$STACK_DIR/.watchdog"
		if [[ $TEMP_STACK == 1 ]]; then
			if [[ ${FIELDSYNC_STACK_KEEP:-} == 1 ]]; then
				log "kept $STACK_DIR (FIELDSYNC_STACK_KEEP=1)"
			else
				[[ -L $STACK_DIR/postgres ]] && rm -rf "$(readlink "$STACK_DIR/postgres")"
				rm -rf "$STACK_DIR"
			fi
		fi
	fi
	exit "$status"
}

# on_signal SIG: forwards the signal to CMD (as SIGINT, which both the Go
# test runner and fieldsyncd handle gracefully), waits for it, then exits
# through the EXIT trap. Exits 0 if CMD ended cleanly.
on_signal() {
	local sig=$1 num status
	num=$(kill -l "$sig")
	trap '' INT TERM HUP
	if [[ -n ${CMD_PID:-} ]] && alive "$CMD_PID"; then
		log "SIG$sig: stopping $CMD_NAME (PID $CMD_PID), then the servers"
		kill -INT -- "-$CMD_PID" 2>/dev/null || kill -INT "$CMD_PID" 2>/dev/null || true
		if ! wait_gone "$CMD_PID" 40; then
			log "$CMD_NAME did not stop within 40 s; sending SIGTERM"
			kill -TERM -- "-$CMD_PID" 2>/dev/null || true
			wait_gone "$CMD_PID" 10 || kill -KILL -- "-$CMD_PID" 2>/dev/null || true
		fi
		status=0
		wait "$CMD_PID" || status=$?
		if ((status == 0)) || [[ $SERVERS_ONLY == 1 ]]; then
			exit 0
		fi
		exit "$status"
	fi
	[[ $SERVERS_ONLY == 1 ]] && exit 0
	exit $((128 + num))
}

# on_restart: SIGUSR1 from 'deploy/stack.sh start NAME' asks this script to
# start a stopped server again, so that it stays our child.
RESTARTING=0
on_restart() {
	RESTARTING=1
	local name port result=failed
	name=$(cat "$STACK_DIR/restart.request" 2>/dev/null || true)
	rm -f "$STACK_DIR/restart.request"
	case $name in
	minio) port=$MINIO_PORT ;;
	ferretdb) port=$FERRETDB_PORT ;;
	postgres) port=$PG_PORT ;;
	*) name="" ;;
	esac
	if [[ -z $name ]]; then
		log "ignoring a restart request for an unknown server"
	elif alive "$(pidfile_pid "$STACK_DIR/$name.pid")"; then
		log "$name is already running"
		result=ok
	elif port_in_use "$port"; then
		log "cannot start $name again: port $port is taken"
	else
		# Launch here, in the main shell, so the server stays our child;
		# wait in a subshell, where a failure (die) ends only the subshell.
		"launch_$name"
		if ("await_$name"); then
			export_env
			result=ok
		else
			log "could not start $name again"
		fi
	fi
	echo "$result" >"$STACK_DIR/restart.done"
}

# start_watchdog: a subshell that stops the servers if this script dies
# without running its EXIT trap (SIGKILL). It ignores the other signals, and
# waits with read -t on a FIFO rather than sleep, so it has no child of its
# own: cleanup kills it with SIGKILL and reaps it.
start_watchdog() {
	local parent=$$ fifo=$STACK_DIR/.watchdog
	rm -f "$fifo"
	mkfifo "$fifo"
	(
		trap - EXIT
		trap '' INT TERM HUP USR1
		set +e
		exec 8<>"$fifo"
		while kill -0 "$parent" 2>/dev/null; do
			read -r -t 1 -u 8 _
		done
		pids=()
		pid=$(head -n1 "$STACK_DIR/cmd.pid" 2>/dev/null) && kill -TERM -- "-$pid" 2>/dev/null
		for name in minio ferretdb postgres; do
			pid=$(head -n1 "$STACK_DIR/$name.pid" 2>/dev/null) && kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
		done
		if ((TEMP_STACK == 1)) && [[ ${FIELDSYNC_STACK_KEEP:-} != 1 ]]; then
			for pid in "${pids[@]}"; do
				for _ in {1..100}; do
					kill -0 "$pid" 2>/dev/null || break
					read -r -t 0.1 -u 8 _
				done
			done
			rm -rf "$STACK_DIR"
		fi
	) </dev/null >/dev/null 2>&1 &
	WATCHDOG_PID=$!
}

# setup PROFILE: chooses ports and folders.
setup() {
	PROFILE=$1
	case $PROFILE in
	run)
		PG_PORT=${FIELDSYNC_STACK_PG_PORT:-55432}
		FERRETDB_PORT=${FIELDSYNC_STACK_FERRETDB_PORT:-27017}
		MINIO_PORT=${FIELDSYNC_STACK_MINIO_PORT:-9000}
		;;
	test)
		PG_PORT=${FIELDSYNC_STACK_PG_PORT:-55442}
		FERRETDB_PORT=${FIELDSYNC_STACK_FERRETDB_PORT:-27027}
		MINIO_PORT=${FIELDSYNC_STACK_MINIO_PORT:-9010}
		;;
	*) die "unknown profile '$PROFILE' (want run or test)" ;;
	esac
	OWN_MONGO=1
	OWN_MINIO=1
	[[ -n ${FIELDSYNC_MONGO_URI:-} ]] && OWN_MONGO=0
	if [[ -n ${FIELDSYNC_MINIO_ENDPOINT:-} ]]; then
		OWN_MINIO=0
		[[ -n ${FIELDSYNC_MINIO_ACCESS_KEY:-} ]] || die "FIELDSYNC_MINIO_ENDPOINT is set but FIELDSYNC_MINIO_ACCESS_KEY is not"
		[[ -n ${FIELDSYNC_MINIO_SECRET_KEY:-} ]] || die "FIELDSYNC_MINIO_ENDPOINT is set but FIELDSYNC_MINIO_SECRET_KEY is not"
	fi
}

make_stack_dir() {
	TEMP_STACK=0
	if [[ $PROFILE == run ]]; then
		STACK_DIR=${FIELDSYNC_STACK_RUN_DIR:-$ROOT/data}
	else
		STACK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-test.XXXXXX")
		TEMP_STACK=1
	fi
	mkdir -p "$STACK_DIR"
	STACK_DIR=$(cd "$STACK_DIR" && pwd)
	chmod 755 "$STACK_DIR" # PostgreSQL (user postgres) must reach its folder inside
	echo $$ >"$STACK_DIR/stack.pid"
	rm -f "$STACK_DIR/restart.request" "$STACK_DIR/restart.done"
}

minio_credentials() {
	local f=$STACK_DIR/minio.credentials
	if [[ $PROFILE == run && -s $f ]]; then
		# shellcheck disable=SC1090
		source "$f"
		return
	fi
	MINIO_USER=fieldsync
	MINIO_PASSWORD=$(random_secret 32)
	(umask 077 && printf "MINIO_USER='%s'\nMINIO_PASSWORD='%s'\n" "$MINIO_USER" "$MINIO_PASSWORD" >"$f")
}

# cmd_exec [--profile P] [--servers] -- CMD...
cmd_exec() {
	local profile=test status
	SERVERS_ONLY=0
	while (($#)); do
		case $1 in
		--profile) profile=${2:?--profile needs a value}; shift 2 ;;
		--profile=*) profile=${1#*=}; shift ;;
		--servers) SERVERS_ONLY=1; shift ;;
		--) shift; break ;;
		*) die "exec: unexpected argument '$1' (usage: deploy/stack.sh exec [--profile run|test] -- CMD...)" ;;
		esac
	done
	((SERVERS_ONLY == 1 || $# > 0)) || die "exec: no command given (usage: deploy/stack.sh exec [--profile run|test] -- CMD...)"
	setup "$profile"

	local need=()
	[[ $OWN_MONGO == 1 ]] && need+=(ferretdb)
	[[ $OWN_MINIO == 1 ]] && need+=(minio)
	# Check the ports before a possibly long build, and again at each start.
	[[ $OWN_MONGO == 1 ]] && require_free_port PostgreSQL "$PG_PORT" FIELDSYNC_STACK_PG_PORT
	[[ $OWN_MONGO == 1 ]] && require_free_port FerretDB "$FERRETDB_PORT" FIELDSYNC_STACK_FERRETDB_PORT
	[[ $OWN_MINIO == 1 ]] && require_free_port MinIO "$MINIO_PORT" FIELDSYNC_STACK_MINIO_PORT
	((${#need[@]} == 0)) || build "${need[@]}"

	STACK_DIR=""
	TEMP_STACK=0
	# SIGPIPE (make test | head) would end us without the EXIT trap; ignored,
	# a failed write is an error like another, and cleanup still runs.
	trap '' PIPE
	trap cleanup EXIT
	trap 'on_signal INT' INT
	trap 'on_signal TERM' TERM
	trap 'on_signal HUP' HUP
	trap on_restart USR1
	if [[ $OWN_MONGO == 0 ]]; then
		log "using FIELDSYNC_MONGO_URI from the environment; not starting PostgreSQL or FerretDB"
	fi
	if [[ $OWN_MINIO == 0 ]]; then
		log "using FIELDSYNC_MINIO_* from the environment; not starting MinIO"
	fi
	# With both given there is nothing to own: no folder, and
	# FIELDSYNC_STACK_DIR (if any) stays the one of the stack that owns them.
	if [[ $OWN_MONGO == 1 || $OWN_MINIO == 1 ]]; then
		make_stack_dir
		start_watchdog
		if [[ $OWN_MONGO == 1 ]]; then
			start_postgres
			start_ferretdb
		fi
		if [[ $OWN_MINIO == 1 ]]; then
			minio_credentials
			start_minio
		fi
		export_env
	fi

	if ((SERVERS_ONLY == 1)); then
		[[ -n $STACK_DIR ]] || die "servers: FIELDSYNC_MONGO_URI and FIELDSYNC_MINIO_ENDPOINT are set, so there is nothing to start"
		log "servers are up; in another shell run:  source $STACK_DIR/stack.env"
		grep '^export' "$STACK_DIR/stack.env"
		log "press Ctrl-C to stop them"
		set -- sleep infinity
	fi
	CMD_NAME=$(basename "$1")
	[[ $CMD_NAME == env ]] && CMD_NAME="$*" && CMD_NAME=${CMD_NAME:0:60}
	# CMD gets its own session (Ctrl-C reaches only us; on_signal forwards it)
	# and SIGINT back at its default, which bash drops for background jobs
	# (SIGPIPE too, which we ignore).
	setsid env --default-signal=INT,PIPE "$@" &
	CMD_PID=$!
	if [[ -n $STACK_DIR ]]; then
		echo "$CMD_PID" >"$STACK_DIR/cmd.pid"
	fi
	while :; do
		RESTARTING=0
		status=0
		wait "$CMD_PID" || status=$?
		((RESTARTING == 1)) && alive "$CMD_PID" && continue
		break
	done
	CMD_PID=""
	exit "$status"
}

# cmd_control stop|start [NAME] [--dir D]: acts on a running stack.
cmd_control() {
	local action=$1 name="" dir=${FIELDSYNC_STACK_DIR:-} owner tries result
	shift
	while (($#)); do
		case $1 in
		--dir) dir=${2:?--dir needs a value}; shift 2 ;;
		--dir=*) dir=${1#*=}; shift ;;
		minio | ferretdb | postgres) name=$1; shift ;;
		*) die "$action: unexpected argument '$1'" ;;
		esac
	done
	[[ -n $dir ]] || dir=$ROOT/data
	[[ -d $dir ]] || die "no stack folder $dir (set FIELDSYNC_STACK_DIR or --dir)"
	STACK_DIR=$(cd "$dir" && pwd)
	if [[ $action == stop ]]; then
		if [[ -z $name ]]; then
			stop_server minio
			stop_server ferretdb
			stop_server postgres
			return
		fi
		[[ -s $STACK_DIR/$name.pid ]] || die "$name is not run by the stack in $STACK_DIR"
		stop_server "$name"
		return
	fi
	[[ -n $name ]] || die "start: name minio, ferretdb or postgres"
	owner=$(pidfile_pid "$STACK_DIR/stack.pid")
	alive "$owner" || die "no running stack owns $STACK_DIR"
	[[ -s $STACK_DIR/$name.pid ]] || die "$name is not run by the stack in $STACK_DIR"
	rm -f "$STACK_DIR/restart.done"
	echo "$name" >"$STACK_DIR/restart.request"
	kill -USR1 "$owner"
	tries=$((READY_TIMEOUT * 10 + 100))
	until [[ -e $STACK_DIR/restart.done ]]; do
		((tries-- > 0)) || die "the stack (PID $owner) did not start $name"
		sleep 0.1
	done
	result=$(cat "$STACK_DIR/restart.done")
	rm -f "$STACK_DIR/restart.done"
	[[ $result == ok ]] && alive "$(pidfile_pid "$STACK_DIR/$name.pid")" ||
		die "$name did not start; see the stack's output and $STACK_DIR/$name.log"
	log "$name is running (PID $(pidfile_pid "$STACK_DIR/$name.pid"))"
}

main() {
	(($#)) || usage
	local sub=$1
	shift
	case $sub in
	build)
		(($#)) || set -- ferretdb minio
		build "$@"
		;;
	path)
		case ${1:-} in
		ferretdb) echo "$FERRETDB_BIN" ;;
		minio) echo "$MINIO_BIN" ;;
		*) die "path: name ferretdb or minio" ;;
		esac
		;;
	exec) cmd_exec "$@" ;;
	servers) cmd_exec --servers "$@" ;;
	stop | start) cmd_control "$sub" "$@" ;;
	-h | --help | help) usage ;;
	*) die "unknown command '$sub' (try deploy/stack.sh help)" ;;
	esac
}

main "$@"
