#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ are reachable for local runs and tests,
# then writes .local/env with DATABASE_URL, AMQP_URL and RABBITMQ_API_URL.
#
#   scripts/servers.sh          pick/start servers, write .local/env
#   scripts/servers.sh stop     stop the private instances this script started
#
# Inputs (environment):
#   DATABASE_URL   default postgres://postgres@127.0.0.1:5432/postgres
#   AMQP_URL       default amqp://guest:guest@127.0.0.1:5672/%2f
#   RABBITMQ_API_URL  management HTTP API of the configured broker, default
#                  http://127.0.0.1:15672 (operator tooling creates users with it;
#                  when it does not answer and the broker is local, the
#                  rabbitmq_management plugin is enabled)
#   LOCAL_SERVERS  auto (default): use the configured server when reachable,
#                  otherwise start a private one; private: always private.
#
# Private instances live under .local/ (git-ignored): Postgres on
# 127.0.0.1:55432 (.local/pg), RabbitMQ on 127.0.0.1:55672 (.local/rabbitmq)
# with its management API on http://127.0.0.1:55674.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
LOCAL_DIR="$ROOT/.local"
ENV_FILE="$LOCAL_DIR/env"

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
RABBITMQ_API_URL="${RABBITMQ_API_URL:-http://127.0.0.1:15672}"
LOCAL_SERVERS="${LOCAL_SERVERS:-auto}"

# --- private instance layout ------------------------------------------------
PG_PORT=55432
PG_DATA="$LOCAL_DIR/pg"
PG_RUN="$LOCAL_DIR/pg-run" # unix socket + server log
PG_LOG="$PG_RUN/postgres.log"
PG_PRIVATE_URL="postgres://postgres@127.0.0.1:${PG_PORT}/postgres"

RMQ_PORT=55672
RMQ_DIST_PORT=55673
RMQ_API_PORT=55674
RMQ_NODE="insurance-private@localhost"
RMQ_BASE="$LOCAL_DIR/rabbitmq"
RMQ_HOME="$RMQ_BASE/home"
RMQ_MNESIA="$RMQ_BASE/mnesia"
RMQ_LOGS="$RMQ_BASE/log"
RMQ_PID_FILE="$RMQ_BASE/rabbitmq.pid"
RMQ_PLUGINS_FILE="$RMQ_BASE/enabled_plugins"
RMQ_CONF_FILE="$RMQ_BASE/rabbitmq.conf"
RMQ_ENV_CONF_FILE="$RMQ_BASE/rabbitmq-env.conf"
RMQ_SBIN="/usr/lib/rabbitmq/bin"
RMQ_PRIVATE_URL="amqp://guest:guest@127.0.0.1:${RMQ_PORT}/%2f"
RMQ_PRIVATE_API_URL="http://127.0.0.1:${RMQ_API_PORT}"

# Deadlines, in seconds.
PG_START_TIMEOUT=60
RMQ_START_TIMEOUT=120
RMQ_API_TIMEOUT=90
STOP_TIMEOUT=60

# --- helpers ----------------------------------------------------------------
# Hide passwords when printing URLs.
redact() { sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$1"; }

# Prints "host port" taken from a URL (scheme://[user[:pw]@]host[:port][/...]).
url_host_port() {
	local url=$1 default_port=$2 rest host port
	rest=${url#*://}
	rest=${rest%%[/?#]*}
	rest=${rest##*@}
	if [[ $rest == \[* ]]; then # [ipv6]:port
		host=${rest%%]*}
		host=${host#[}
		port=${rest##*]}
		port=${port#:}
	else
		host=${rest%%:*}
		port=${rest#"$host"}
		port=${port#:}
	fi
	printf '%s %s\n' "${host:-127.0.0.1}" "${port:-$default_port}"
}

# --- PostgreSQL -------------------------------------------------------------
pg_reachable() {
	local url=$1 host port
	if have pg_isready; then
		pg_isready -q -t 3 -d "$url" >/dev/null 2>&1 || return 1
	else
		read -r host port < <(url_host_port "$url" 5432)
		tcp_open "$host" "$port" || return 1
	fi
	# Accepting connections is not enough: the URL must also let us in.
	if have psql; then
		PGCONNECT_TIMEOUT=5 psql "$url" -Atqc 'select 1' >/dev/null 2>&1 || return 1
	fi
}

pg_private_answers() {
	if have pg_isready; then
		pg_isready -q -t 2 -h 127.0.0.1 -p "$PG_PORT" >/dev/null 2>&1
	else
		tcp_open 127.0.0.1 "$PG_PORT"
	fi
}

start_private_pg() {
	local bindir sockdir
	if pg_private_answers; then
		log "postgres: reusing private instance on 127.0.0.1:$PG_PORT ($PG_DATA)"
		return 0
	fi
	if ! pg_bindir >/dev/null; then
		install_packages postgresql
	fi
	bindir=$(pg_bindir) || die "postgres: no initdb/pg_ctl under /usr/lib/postgresql/*/bin"

	if is_root && ! id postgres >/dev/null 2>&1; then
		die "postgres: running as root but there is no 'postgres' user to run the server as"
	fi

	mkdir -p "$LOCAL_DIR" "$PG_RUN"
	if is_root; then
		chown postgres: "$PG_RUN"
	fi
	if ! pg_as test -w "$PG_RUN"; then
		die "postgres: $PG_RUN is not writable by the server user (is the repo path readable by 'postgres'?)"
	fi

	if [[ ! -s "$PG_DATA/PG_VERSION" ]]; then
		log "postgres: initialising $PG_DATA with $bindir/initdb"
		mkdir -p "$PG_DATA"
		chmod 700 "$PG_DATA"
		if is_root; then
			chown postgres: "$PG_DATA"
		fi
		pg_as "$bindir/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --no-locale >"$PG_RUN/initdb.log" 2>&1 ||
			{
				cat "$PG_RUN/initdb.log" >&2
				die "postgres: initdb failed"
			}
		# Unix sockets have a ~107 byte path limit; use TCP only if too long.
		sockdir=$PG_RUN
		if ((${#sockdir} > 90)); then
			sockdir=""
		fi
		pg_as tee -a "$PG_DATA/postgresql.conf" >/dev/null <<-EOF

			# --- private instance settings (scripts/servers.sh) ---
			port = $PG_PORT
			listen_addresses = '127.0.0.1'
			unix_socket_directories = '$sockdir'
		EOF
	fi

	log "postgres: starting private instance on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
	if ! pg_as "$bindir/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_START_TIMEOUT" start >/dev/null; then
		tail -n 30 "$PG_LOG" >&2 || true
		die "postgres: private instance did not start"
	fi
	wait_until "$PG_START_TIMEOUT" "postgres on 127.0.0.1:$PG_PORT" pg_private_answers ||
		die "postgres: private instance does not answer on 127.0.0.1:$PG_PORT"
}

stop_private_pg() {
	local bindir
	if [[ ! -f "$PG_DATA/postmaster.pid" ]]; then
		log "postgres: no private instance running (nothing to stop)"
		return 0
	fi
	bindir=$(pg_bindir) || die "postgres: cannot find pg_ctl to stop $PG_DATA"
	if ! pg_as "$bindir/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; then
		log "postgres: private instance not running (stale pid file)"
		return 0
	fi
	log "postgres: stopping private instance ($PG_DATA)"
	pg_as "$bindir/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null
}

# --- RabbitMQ ---------------------------------------------------------------
amqp_reachable() {
	local host port default_port=5672
	[[ $1 == amqps://* ]] && default_port=5671
	read -r host port < <(url_host_port "$1" "$default_port")
	tcp_open "$host" "$port"
}

rmq_private_answers() { tcp_open 127.0.0.1 "$RMQ_PORT"; }

# --- RabbitMQ management API --------------------------------------------------
# AMQP cannot create users or set permissions; `insurancectl subscriber` uses the
# management HTTP API for that, so every broker this script picks should have it.

# Percent-decodes $1 (user names and passwords in URLs).
url_decode() {
	local s=${1//\\/\\\\}
	printf '%b' "${s//%/\\x}"
}

API_USER=guest
API_PASSWORD=guest
# The API credentials: RABBITMQ_API_USER/RABBITMQ_API_PASSWORD when set (as for
# insurancectl), else the user and password of the AMQP URL $1, else guest/guest.
set_api_credentials() {
	local rest userinfo
	rest=${1#*://}
	rest=${rest%%[/?#]*}
	API_USER=guest
	API_PASSWORD=guest
	if [[ $rest == *@* ]]; then
		userinfo=${rest%@*}
		API_USER=$(url_decode "${userinfo%%:*}")
		API_PASSWORD=""
		if [[ $userinfo == *:* ]]; then
			API_PASSWORD=$(url_decode "${userinfo#*:}")
		fi
	fi
	API_USER=${RABBITMQ_API_USER:-$API_USER}
	API_PASSWORD=${RABBITMQ_API_PASSWORD:-$API_PASSWORD}
}

check_api_login() {
	local code
	code=$(api_status "$1")
	if [[ $code == 200 ]]; then
		log "rabbitmq: management API answers at $1"
	else
		log "rabbitmq: WARNING: management API at $1 answers $code for user '$API_USER' (set RABBITMQ_API_USER/RABBITMQ_API_PASSWORD for insurancectl)"
	fi
}

# A broker with a resource alarm (disk or memory below its limit) blocks every publishing
# connection: tests would wait on it until their watchdog ends them. Stop here instead and say
# why. GET /api/health/checks/alarms is 200 without an alarm, 503 with one.
check_alarms() {
	local code
	code=$(api_status "$1" health/checks/alarms)
	case $code in
	200) ;;
	503) die "rabbitmq: the broker at $1 has a resource alarm (disk or memory below its limit) and blocks publishers; free space ($(df -h --output=avail / 2>/dev/null | tail -1 | tr -d ' ') available) or memory, then run this again" ;;
	*) log "rabbitmq: WARNING: could not read the broker's alarms at $1 (HTTP $code)" ;;
	esac
}

# The shovel plugin answers (the data-sharing hold of a freeze moves each line's events to
# the subscribers through a dynamic shovel): GET /api/shovels is 200, not 404.
shovels_answer() {
	[[ $(api_status "$1" shovels) == 200 ]]
}

# For a configured broker on this machine: enable the shovel plugins when they are missing.
ensure_configured_shovel() {
	local api_url=${1%/} log_file
	[[ $(api_status "$api_url") == 200 ]] || return 0
	shovels_answer "$api_url" && return 0
	have rabbitmq-plugins || die "rabbitmq: the shovel plugin is not enabled and rabbitmq-plugins is not installed to enable it"
	log "rabbitmq: enabling rabbitmq_shovel on the local broker (the freeze's data-sharing hold)"
	log_file="$LOCAL_DIR/rabbitmq-plugins.log"
	if ! as_root timeout 120 rabbitmq-plugins enable rabbitmq_shovel rabbitmq_shovel_management >"$log_file" 2>&1; then
		cat "$log_file" >&2
		die "rabbitmq: could not enable rabbitmq_shovel on the local broker"
	fi
	wait_until "$RMQ_API_TIMEOUT" "the shovel API at $api_url" shovels_answer "$api_url" ||
		die "rabbitmq: rabbitmq_shovel is enabled but $api_url/api/shovels does not answer"
}

is_local_host() {
	case "$1" in
	localhost | ::1 | 127.*) return 0 ;;
	*) return 1 ;;
	esac
}

# For a configured broker this script uses: the API must answer at
# RABBITMQ_API_URL; if it does not and the broker is on this machine, enable the
# plugin on the system node (rabbitmq-plugins finds it through the system's
# rabbitmq-env.conf, e.g. rabbit@localhost; RABBITMQ_NODENAME overrides).
ensure_configured_api() {
	local amqp_url=$1 api_url=${2%/} amqp_host amqp_port api_host api_port log_file
	set_api_credentials "$amqp_url"
	if api_answers "$api_url"; then
		check_api_login "$api_url"
		is_local_host "$(url_host_port "$api_url" 80 | cut -d' ' -f1)" && ensure_configured_shovel "$api_url"
		return 0
	fi
	read -r amqp_host amqp_port < <(url_host_port "$amqp_url" 5672)
	read -r api_host api_port < <(url_host_port "$api_url" 80)
	if ! is_local_host "$amqp_host" || ! is_local_host "$api_host"; then
		log "rabbitmq: WARNING: management API $api_url does not answer and the broker is not on this machine; 'insurancectl subscriber' needs it (set RABBITMQ_API_URL)"
		return 0
	fi
	if [[ $amqp_port == "$RMQ_PORT" ]]; then
		die "rabbitmq: $(redact "$amqp_url") looks like a private instance (port $RMQ_PORT) without a management API at $api_url; run 'scripts/servers.sh stop' in the tree that started it, or set RABBITMQ_API_URL"
	fi
	have rabbitmq-plugins || die "rabbitmq: management API $api_url does not answer and rabbitmq-plugins is not installed to enable it"
	log "rabbitmq: management API $api_url does not answer; enabling rabbitmq_management on the local broker"
	log_file="$LOCAL_DIR/rabbitmq-plugins.log"
	if ! as_root timeout 120 rabbitmq-plugins enable rabbitmq_management >"$log_file" 2>&1; then
		cat "$log_file" >&2
		die "rabbitmq: could not enable rabbitmq_management on the local broker"
	fi
	if ! wait_until "$RMQ_API_TIMEOUT" "management API at $api_url" api_answers "$api_url"; then
		cat "$log_file" >&2
		die "rabbitmq: rabbitmq_management is enabled but $api_url does not answer within ${RMQ_API_TIMEOUT}s (is the broker's management.tcp.port $api_port? set RABBITMQ_API_URL)"
	fi
	check_api_login "$api_url"
	ensure_configured_shovel "$api_url"
}

# The private node's environment. Everything points into .local/rabbitmq so
# the system's /etc/rabbitmq and /var/lib/rabbitmq are neither read nor
# written (the cookie lands in $HOME, which is why the CLI needs it too).
RMQ_ENV=(
	HOME="$RMQ_HOME"
	RABBITMQ_CONF_ENV_FILE="$RMQ_ENV_CONF_FILE"
	RABBITMQ_CONFIG_FILE="$RMQ_CONF_FILE"
	RABBITMQ_ADVANCED_CONFIG_FILE="$RMQ_BASE/advanced.config"
	RABBITMQ_ENABLED_PLUGINS_FILE="$RMQ_PLUGINS_FILE"
	RABBITMQ_MNESIA_BASE="$RMQ_MNESIA"
	RABBITMQ_LOG_BASE="$RMQ_LOGS"
	RABBITMQ_PID_FILE="$RMQ_PID_FILE"
	RABBITMQ_NODENAME="$RMQ_NODE"
	RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
	RABBITMQ_NODE_PORT="$RMQ_PORT"
	RABBITMQ_DIST_PORT="$RMQ_DIST_PORT"
	ERL_EPMD_ADDRESS=127.0.0.1
	ERL_CRASH_DUMP="$RMQ_LOGS/erl_crash.dump"
)

# rmqctl <timeout-seconds> <args...>: the private node's rabbitmqctl, bounded.
# (The /usr/sbin wrapper would su to the rabbitmq user and lose $HOME.)
rmqctl() {
	local limit=$1
	shift
	timeout "$limit" env "${RMQ_ENV[@]}" "$RMQ_SBIN/rabbitmqctl" -n "$RMQ_NODE" -q "$@"
}

rmq_pid() {
	local pid
	[[ -s $RMQ_PID_FILE ]] || return 1
	pid=$(tr -dc '0-9' <"$RMQ_PID_FILE")
	[[ -n $pid ]] || return 1
	printf '%s\n' "$pid"
}

rmq_running() {
	local pid
	pid=$(rmq_pid) || return 1
	kill -0 "$pid" 2>/dev/null
}

RMQ_LAUNCHER_PID=""
rmq_pidfile_or_launcher_gone() {
	[[ -s $RMQ_PID_FILE ]] || ! kill -0 "$RMQ_LAUNCHER_PID" 2>/dev/null
}

start_private_rabbitmq() {
	if rmq_private_answers; then
		log "rabbitmq: reusing private instance on 127.0.0.1:$RMQ_PORT (node $RMQ_NODE)"
		if ! grep -qs rabbitmq_shovel "$RMQ_PLUGINS_FILE"; then
			die "rabbitmq: the private node was started without the management API or the shovel plugin (by an older scripts/servers.sh); run 'scripts/servers.sh stop', then this again"
		fi
		wait_private_api
		return 0
	fi
	if [[ ! -x "$RMQ_SBIN/rabbitmq-server" ]]; then
		install_packages rabbitmq-server
	fi
	[[ -x "$RMQ_SBIN/rabbitmq-server" ]] || die "rabbitmq: $RMQ_SBIN/rabbitmq-server not found"

	mkdir -p "$RMQ_HOME" "$RMQ_MNESIA" "$RMQ_LOGS"
	: >"$RMQ_ENV_CONF_FILE" # replaces /etc/rabbitmq/rabbitmq-env.conf
	# The management API: operator tooling creates subscriber users through it; the shovel
	# plugin: a freeze holds a line's events back from subscribers by removing its shovel.
	printf '[rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management].\n' >"$RMQ_PLUGINS_FILE"
	cat >"$RMQ_CONF_FILE" <<-EOF
		# private instance (scripts/servers.sh); replaces /etc/rabbitmq/rabbitmq.conf
		listeners.tcp.local = 127.0.0.1:$RMQ_PORT
		loopback_users.guest = true
		management.tcp.port = $RMQ_API_PORT
		management.tcp.ip = 127.0.0.1
	EOF

	if rmq_running; then
		# Started earlier but not (yet) listening: wait for it below.
		log "rabbitmq: private node $RMQ_NODE is running but not listening yet; waiting"
	else
		rm -f "$RMQ_PID_FILE"
		log "rabbitmq: starting private node $RMQ_NODE on 127.0.0.1:$RMQ_PORT (logs: $RMQ_LOGS)"
		local -a detach=()
		if have setsid; then
			detach=(setsid)
		else
			detach=(nohup)
		fi
		(cd "$RMQ_BASE" && exec "${detach[@]}" env "${RMQ_ENV[@]}" \
			RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
			"$RMQ_SBIN/rabbitmq-server") \
			>"$RMQ_LOGS/startup.log" 2>&1 </dev/null &
		RMQ_LAUNCHER_PID=$!
		disown "$RMQ_LAUNCHER_PID" 2>/dev/null || true

		# The pid file appears early in the boot; fail fast if the launcher dies.
		wait_until 60 "rabbitmq pid file $RMQ_PID_FILE" rmq_pidfile_or_launcher_gone || true
		if [[ ! -s $RMQ_PID_FILE ]]; then
			tail -n 30 "$RMQ_LOGS/startup.log" >&2 || true
			die "rabbitmq: private node did not start (see $RMQ_LOGS)"
		fi
	fi

	if ! rmqctl $((RMQ_START_TIMEOUT + 10)) wait --timeout "$RMQ_START_TIMEOUT" "$RMQ_PID_FILE" >/dev/null 2>&1; then
		tail -n 30 "$RMQ_LOGS/startup.log" >&2 || true
		die "rabbitmq: private node $RMQ_NODE did not come up within ${RMQ_START_TIMEOUT}s (see $RMQ_LOGS)"
	fi
	wait_until 30 "rabbitmq on 127.0.0.1:$RMQ_PORT" rmq_private_answers ||
		die "rabbitmq: private node is up but 127.0.0.1:$RMQ_PORT does not answer"
	wait_private_api
}

wait_private_api() {
	set_api_credentials "$RMQ_PRIVATE_URL"
	if ! wait_until "$RMQ_API_TIMEOUT" "management API at $RMQ_PRIVATE_API_URL" api_answers "$RMQ_PRIVATE_API_URL"; then
		tail -n 30 "$RMQ_LOGS/startup.log" >&2 || true
		die "rabbitmq: private node is up but its management API $RMQ_PRIVATE_API_URL does not answer (see $RMQ_LOGS)"
	fi
	check_api_login "$RMQ_PRIVATE_API_URL"
}

stop_private_rabbitmq() {
	local pid
	if ! rmq_running; then
		log "rabbitmq: no private instance running (nothing to stop)"
		rm -f "$RMQ_PID_FILE"
		return 0
	fi
	pid=$(rmq_pid)
	log "rabbitmq: stopping private node $RMQ_NODE (pid $pid)"
	rmqctl "$STOP_TIMEOUT" stop "$RMQ_PID_FILE" >/dev/null 2>&1 || true
	if ! wait_until "$STOP_TIMEOUT" "rabbitmq pid $pid to exit" pid_gone "$pid"; then
		log "rabbitmq: sending SIGTERM to $pid"
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_until 15 "rabbitmq pid $pid to exit" pid_gone "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$RMQ_PID_FILE"
}

# --- main -------------------------------------------------------------------
write_env() {
	local db_url=$1 amqp_url=$2 api_url=$3 tmp
	mkdir -p "$LOCAL_DIR"
	tmp=$(mktemp "$LOCAL_DIR/env.XXXXXX")
	{
		printf '# written by scripts/servers.sh; source it: . .local/env\n'
		printf 'export DATABASE_URL=%q\n' "$db_url"
		printf 'export AMQP_URL=%q\n' "$amqp_url"
		printf 'export RABBITMQ_API_URL=%q\n' "$api_url"
	} >"$tmp"
	mv -f "$tmp" "$ENV_FILE"
}

cmd_up() {
	local db_url amqp_url api_url
	case "$LOCAL_SERVERS" in
	auto | private) ;;
	*) die "LOCAL_SERVERS must be 'auto' or 'private' (got '$LOCAL_SERVERS')" ;;
	esac
	mkdir -p "$LOCAL_DIR"

	if [[ $LOCAL_SERVERS == auto ]] && pg_reachable "$DATABASE_URL"; then
		db_url=$DATABASE_URL
		log "postgres: using configured server $(redact "$db_url")"
	else
		[[ $LOCAL_SERVERS == auto ]] &&
			log "postgres: $(redact "$DATABASE_URL") not reachable; falling back to a private instance"
		start_private_pg
		db_url=$PG_PRIVATE_URL
		log "postgres: using private instance $db_url"
	fi

	if [[ $LOCAL_SERVERS == auto ]] && amqp_reachable "$AMQP_URL"; then
		amqp_url=$AMQP_URL
		api_url=${RABBITMQ_API_URL%/}
		log "rabbitmq: using configured server $(redact "$amqp_url")"
		ensure_configured_api "$amqp_url" "$api_url"
	else
		[[ $LOCAL_SERVERS == auto ]] &&
			log "rabbitmq: $(redact "$AMQP_URL") not reachable; falling back to a private instance"
		start_private_rabbitmq
		amqp_url=$RMQ_PRIVATE_URL
		api_url=$RMQ_PRIVATE_API_URL
		log "rabbitmq: using private instance $(redact "$amqp_url") (management API $api_url)"
	fi

	check_alarms "$api_url"
	write_env "$db_url" "$amqp_url" "$api_url"
	log "wrote $ENV_FILE"
}

cmd_stop() {
	local rc=0
	stop_private_pg || rc=1
	stop_private_rabbitmq || rc=1
	return "$rc"
}

case "${1:-up}" in
up | start) cmd_up ;;
stop) cmd_stop ;;
-h | --help | help) sed -n '2,20p' "${BASH_SOURCE[0]}" ;;
*) die "unknown command '$1' (use: up | stop)" ;;
esac
