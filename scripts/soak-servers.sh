#!/usr/bin/env bash
# Private servers for the chaos soak (issue 14 §2): a three-node RabbitMQ cluster and a
# PostgreSQL on this machine, all under .local/soak (git-ignored), beside (never instead of)
# the system's servers and those of scripts/servers.sh.
#
#   scripts/soak-servers.sh start           start what is not running, wait until the cluster
#                                           has 3 running nodes, every management API and
#                                           Postgres answer; write and print .local/soak/env
#   scripts/soak-servers.sh stop            stop the three nodes and Postgres
#   scripts/soak-servers.sh wipe            stop, then delete .local/soak (env file included)
#   scripts/soak-servers.sh status          nodes, cluster, quorum-queue members, Postgres
#   scripts/soak-servers.sh node-stop N     graceful stop of node soak-N (the whole node)
#   scripts/soak-servers.sh node-kill N     SIGKILL of soak-N's beam process
#   scripts/soak-servers.sh node-start N    start soak-N again, wait until it is back in the
#                                           cluster with 3 running nodes and every quorum
#                                           queue has all members online (no reset)
#   scripts/soak-servers.sh pg-restart [fast|immediate]   pg_ctl restart -m MODE (default fast)
#   scripts/soak-servers.sh pg-stop | pg-start
#   scripts/soak-servers.sh ctl N ARGS...    rabbitmqctl ARGS against soak-N (its HOME/cookie)
#
# RabbitMQ: nodes soak-1@localhost, soak-2@localhost, soak-3@localhost; AMQP on
# 127.0.0.1:56721..56723, Erlang distribution on 56731..56733, management API on
# http://127.0.0.1:56741..56743; user guest/guest; one Erlang cookie in .local/soak/home
# (the CLI needs that HOME too). Postgres 127.0.0.1:56432, superuser postgres (trust),
# database insurance, data .local/soak/pg, socket and log in .local/soak/pg-run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOG_TAG=soak-servers
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
API_USER=guest
API_PASSWORD=guest

SOAK_DIR="$ROOT/.local/soak"
ENV_FILE="$SOAK_DIR/env"
LOCK_FILE="$SOAK_DIR/lock"

# --- layout -------------------------------------------------------------------
NODES=(1 2 3)
RMQ_SBIN="/usr/lib/rabbitmq/bin"
RMQ_HOME="$SOAK_DIR/home" # .erlang.cookie, shared by the three nodes and the CLI
# The CLI's own distribution ports: away from the default 35672..35682 that the system
# broker's CLI uses, so neither waits for the other's free port.
RMQ_CTL_DIST_PORT_MIN=56750
RMQ_CTL_DIST_PORT_MAX=56769

node_name() { printf 'soak-%s@localhost' "$1"; }
node_dir() { printf '%s/rabbit-%s' "$SOAK_DIR" "$1"; }
amqp_port() { printf '%s' $((56720 + $1)); }
dist_port() { printf '%s' $((56730 + $1)); }
api_port() { printf '%s' $((56740 + $1)); }
api_url() { printf 'http://127.0.0.1:%s' "$(api_port "$1")"; }
pid_file() { printf '%s/rabbitmq.pid' "$(node_dir "$1")"; }

PG_PORT=56432
PG_DATA="$SOAK_DIR/pg"
PG_RUN="$SOAK_DIR/pg-run"
PG_LOG="$PG_RUN/postgres.log"

# Deadlines, in seconds.
NODE_START_TIMEOUT=180 # a node with data waits for its peers' tables while they boot
CLUSTER_TIMEOUT=120
API_TIMEOUT=90
QUEUE_TIMEOUT=120 # quorum queue members back online after a node start
NODE_STOP_TIMEOUT=60
PG_TIMEOUT=60

# --- RabbitMQ nodes --------------------------------------------------------------
# The node's environment: everything in .local/soak/rabbit-N, so /etc/rabbitmq and
# /var/lib/rabbitmq (the system broker's) are neither read nor written.
NODE_ENV=()
node_env() {
	local n=$1 d
	d=$(node_dir "$n")
	NODE_ENV=(
		HOME="$RMQ_HOME"
		RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
		RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
		RABBITMQ_CONFIG_FILES="$d/conf.d"
		RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
		RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
		RABBITMQ_MNESIA_BASE="$d/mnesia"
		RABBITMQ_LOG_BASE="$d/log"
		RABBITMQ_PID_FILE="$(pid_file "$n")"
		RABBITMQ_NODENAME="$(node_name "$n")"
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="$(amqp_port "$n")"
		RABBITMQ_DIST_PORT="$(dist_port "$n")"
		RABBITMQ_CTL_DIST_PORT_MIN="$RMQ_CTL_DIST_PORT_MIN"
		RABBITMQ_CTL_DIST_PORT_MAX="$RMQ_CTL_DIST_PORT_MAX"
		ERL_EPMD_ADDRESS=127.0.0.1
		ERL_CRASH_DUMP="$d/log/erl_crash.dump"
	)
}

# rmqctl <N> <timeout-seconds> <args...>: rabbitmqctl against soak-N only, bounded. (The
# /usr/sbin wrapper would su to the rabbitmq user and lose HOME, hence the cookie.)
rmqctl() {
	local n=$1 limit=$2
	shift 2
	node_env "$n"
	timeout "$limit" env "${NODE_ENV[@]}" "$RMQ_SBIN/rabbitmqctl" -n "$(node_name "$n")" -q "$@"
}

rmqqueues() {
	local n=$1 limit=$2
	shift 2
	node_env "$n"
	timeout "$limit" env "${NODE_ENV[@]}" "$RMQ_SBIN/rabbitmq-queues" -n "$(node_name "$n")" -q "$@"
}

node_pid() {
	local f pid
	f=$(pid_file "$1")
	[[ -s $f ]] || return 1
	pid=$(tr -dc '0-9' <"$f")
	[[ -n $pid ]] || return 1
	printf '%s\n' "$pid"
}

# The pid file's process is alive and is this node's VM, not a recycled pid (the system
# broker's VM must never be signalled). The VM's command line has no node name (the boot
# sets it), its environment has the one it was started with.
node_running() {
	local pid
	pid=$(node_pid "$1") || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF -- "RABBITMQ_NODENAME=$(node_name "$1")"
}

# A node that has booted before: it knows its cluster and rejoins it by itself.
node_has_data() { [[ -e "$(node_dir "$1")/mnesia/$(node_name "$1")/schema.DAT" ]]; }

make_cookie() {
	mkdir -p "$RMQ_HOME"
	chmod 700 "$RMQ_HOME"
	if [[ ! -s $RMQ_HOME/.erlang.cookie ]]; then
		(
			umask 077
			head -c 30 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f0-9' 'A-P' >"$RMQ_HOME/.erlang.cookie"
		)
	fi
	chmod 600 "$RMQ_HOME/.erlang.cookie"
}

# Written on every start, so a changed setting here takes effect at the next node start.
write_node_config() {
	local n=$1 d m
	d=$(node_dir "$n")
	mkdir -p "$d/mnesia" "$d/log" "$d/conf.d"
	: >"$d/rabbitmq-env.conf" # replaces /etc/rabbitmq/rabbitmq-env.conf
	# The management API: the soak's driver creates per-service users through it; the
	# shovel plugins: a freeze's data-sharing hold (as on the broker of scripts/servers.sh).
	printf '[rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management].\n' >"$d/enabled_plugins"
	{
		printf '# soak node %s (scripts/soak-servers.sh); replaces /etc/rabbitmq/rabbitmq.conf\n' "$(node_name "$n")"
		printf 'listeners.tcp.local = 127.0.0.1:%s\n' "$(amqp_port "$n")"
		printf 'management.tcp.ip = 127.0.0.1\n'
		printf 'management.tcp.port = %s\n' "$(api_port "$n")"
		printf 'default_user = guest\ndefault_pass = guest\nloopback_users = none\n'
		# Three nodes beside the system broker on a 24 GB machine.
		printf 'vm_memory_high_watermark.relative = 0.15\n'
		printf 'disk_free_limit.absolute = 50MB\n'
		printf 'cluster_name = soak\n'
		# A blank node joins the first of these that is up (see start_nodes for the order).
		printf 'cluster_formation.peer_discovery_backend = classic_config\n'
		for m in "${NODES[@]}"; do
			printf 'cluster_formation.classic_config.nodes.%s = %s\n' "$m" "$(node_name "$m")"
		done
	} >"$d/rabbitmq.conf"
}

# Starts soak-N's VM in the background (its own session, no lock fd); returns at once.
launch_node() {
	local n=$1 d port
	d=$(node_dir "$n")
	# The ports are fixed: another work tree's soak cluster may hold them.
	for port in "$(amqp_port "$n")" "$(dist_port "$n")" "$(api_port "$n")"; do
		! tcp_open 127.0.0.1 "$port" ||
			die "rabbitmq: 127.0.0.1:$port is taken, but $(node_name "$n") of $SOAK_DIR is not running (another work tree's soak servers? stop them with their scripts/soak-servers.sh stop)"
	done
	write_node_config "$n"
	rm -f "$(pid_file "$n")"
	node_env "$n"
	log "rabbitmq: starting $(node_name "$n") (amqp 127.0.0.1:$(amqp_port "$n"), api $(api_url "$n"), logs $d/log)"
	(cd "$d" && exec setsid env "${NODE_ENV[@]}" \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
		"$RMQ_SBIN/rabbitmq-server") >>"$d/log/startup.log" 2>&1 </dev/null 9>&- &
	disown "$!" 2>/dev/null || true
}

node_booted() { rmqctl "$1" 40 await_startup --timeout 30 >/dev/null 2>&1; }

node_failure_report() {
	local d
	d=$(node_dir "$1")
	tail -n 20 "$d/log/startup.log" >&2 2>/dev/null || true
	tail -n 20 "$d/log/$(node_name "$1").log" >&2 2>/dev/null || true
}

wait_node_booted() {
	local n=$1
	if ! wait_until "$NODE_START_TIMEOUT" "$(node_name "$n") to finish booting (await_startup)" node_booted "$n"; then
		node_failure_report "$n"
		die "rabbitmq: $(node_name "$n") did not boot within ${NODE_START_TIMEOUT}s (see $(node_dir "$n")/log)"
	fi
}

# json_array KEY: the strings of the JSON array KEY in the (one-line) document on stdin.
json_array() {
	{ grep -o "\"$1\":\[[^]]*\]" || true; } | head -n 1 | sed -e 's/^[^[]*\[//' -e 's/\]$//' |
		tr ',' '\n' | tr -d '"' | sed '/^$/d'
}

# cluster_view N KEY: that node's cluster_status list KEY (running_nodes, disk_nodes).
cluster_view() {
	local json
	json=$(rmqctl "$1" 30 cluster_status --formatter json 2>/dev/null) || return 1
	json_array "$2" <<<"$json"
}

cluster_complete_at() {
	local running
	running=$(cluster_view "$1" running_nodes) || return 1
	[[ $(grep -c . <<<"$running") -eq ${#NODES[@]} ]]
}

node_api_up() { [[ $(api_status "$(api_url "$1")") == 200 ]]; }

# A blank node that came up alone (a formation race: its peer was not ready yet) is made
# a member by join_cluster. A node that has been a member lists all three nodes and is
# never reset here.
ensure_member() {
	local n=$1 members peer
	members=$(cluster_view "$n" disk_nodes) || return 0
	[[ $(grep -c . <<<"$members") -eq 1 ]] || return 0
	for peer in "${NODES[@]}"; do
		[[ $peer != "$n" ]] || continue
		node_running "$peer" || continue
		[[ $(cluster_view "$peer" disk_nodes | grep -c .) -gt 1 ]] || continue
		log "rabbitmq: $(node_name "$n") formed a cluster of its own; joining it to $(node_name "$peer")"
		rmqctl "$n" 60 stop_app
		rmqctl "$n" 60 reset
		rmqctl "$n" 60 join_cluster "$(node_name "$peer")"
		rmqctl "$n" 60 start_app
		return 0
	done
}

wait_cluster_complete() {
	local n=$1
	if ! wait_until "$CLUSTER_TIMEOUT" "$(node_name "$n") to see ${#NODES[@]} running nodes" cluster_complete_at "$n"; then
		rmqctl "$n" 30 cluster_status >&2 || true
		die "rabbitmq: the cluster seen from $(node_name "$n") does not have ${#NODES[@]} running nodes"
	fi
}

# Every quorum queue has all its members online (the live view; the management API's lags
# by its statistics interval). Until then a second node down could cost a queue its quorum.
quorum_complete_at() {
	local out
	out=$(rmqctl "$1" 60 list_queues name type members online --no-table-headers 2>/dev/null) || return 1
	awk -F'\t' '$2 == "quorum" && split($3, m, ",") != split($4, o, ",") { short++ } END { exit short > 0 }' <<<"$out"
}

wait_quorum_online() {
	local n=$1
	if ! wait_until "$QUEUE_TIMEOUT" "every quorum queue to have all its members online" quorum_complete_at "$n"; then
		rmqctl "$n" 60 list_queues name type members online >&2 || true
		die "rabbitmq: quorum queues with members still offline after ${QUEUE_TIMEOUT}s"
	fi
}

wait_api() {
	local n=$1
	wait_until "$API_TIMEOUT" "management API $(api_url "$n")" node_api_up "$n" ||
		die "rabbitmq: $(node_name "$n") is up but its management API $(api_url "$n") does not answer 200 for guest"
}

# Nodes that have been members start together: a node that was not the last to stop waits
# for its peers' tables, so starting them one by one could wait for nothing. Blank nodes
# then join by peer discovery, one at a time: when no node is up yet, the first blank one
# boots alone and the others find it (blank nodes booting at once could each form their own
# cluster, or join concurrently).
start_nodes() {
	local n
	local -a with_data=() blank=() joined=()
	for n in "${NODES[@]}"; do
		if node_running "$n"; then
			log "rabbitmq: $(node_name "$n") is running (pid $(node_pid "$n"))"
		elif node_has_data "$n"; then
			with_data+=("$n")
		else
			blank+=("$n")
		fi
	done
	for n in "${with_data[@]}"; do launch_node "$n"; done
	for n in "${with_data[@]}"; do wait_node_booted "$n"; done
	joined=("${blank[@]}")
	if ((${#blank[@]})); then
		local any_up=""
		for n in "${NODES[@]}"; do
			node_running "$n" && any_up=1
		done
		if [[ -z $any_up ]]; then
			launch_node "${blank[0]}"
			wait_node_booted "${blank[0]}"
			blank=("${blank[@]:1}")
		fi
		for n in "${blank[@]}"; do
			launch_node "$n"
			wait_node_booted "$n"
		done
	fi
	for n in "${joined[@]}"; do ensure_member "$n"; done
	for n in "${NODES[@]}"; do wait_cluster_complete "$n"; done
	for n in "${NODES[@]}"; do wait_api "$n"; done
	wait_quorum_online "${NODES[0]}"
}

# stop_node <N>: graceful `rabbitmqctl stop`, then SIGTERM, then SIGKILL after deadlines.
stop_node() {
	local n=$1 pid
	if ! node_running "$n"; then
		log "rabbitmq: $(node_name "$n") is not running"
		return 0
	fi
	pid=$(node_pid "$n")
	log "rabbitmq: stopping $(node_name "$n") (pid $pid)"
	rmqctl "$n" "$NODE_STOP_TIMEOUT" stop "$(pid_file "$n")" >/dev/null 2>&1 || true
	if ! wait_until "$NODE_STOP_TIMEOUT" "$(node_name "$n") (pid $pid) to exit" pid_gone "$pid"; then
		log "rabbitmq: sending SIGTERM to $(node_name "$n") (pid $pid)"
		kill -TERM "$pid" 2>/dev/null || true
		if ! wait_until 15 "$(node_name "$n") (pid $pid) to exit" pid_gone "$pid"; then
			log "rabbitmq: sending SIGKILL to $(node_name "$n") (pid $pid)"
			kill -KILL "$pid" 2>/dev/null || true
			wait_until 10 "$(node_name "$n") (pid $pid) to exit" pid_gone "$pid" || return 1
		fi
	fi
}

kill_node() {
	local n=$1 pid
	node_running "$n" || die "rabbitmq: $(node_name "$n") is not running"
	pid=$(node_pid "$n")
	log "rabbitmq: SIGKILL to $(node_name "$n") (pid $pid)"
	kill -KILL "$pid"
	wait_until 10 "$(node_name "$n") (pid $pid) to exit" pid_gone "$pid" ||
		die "rabbitmq: $(node_name "$n") (pid $pid) survived SIGKILL"
}

ensure_rabbitmq_installed() {
	[[ -x "$RMQ_SBIN/rabbitmq-server" ]] || install_packages rabbitmq-server
	[[ -x "$RMQ_SBIN/rabbitmq-server" ]] || die "rabbitmq: $RMQ_SBIN/rabbitmq-server not found"
	have curl || install_packages curl
}

# --- PostgreSQL ------------------------------------------------------------------
PSQL=(psql -X -h 127.0.0.1 -p "$PG_PORT" -U postgres -Atq)

pg_answers() { PGCONNECT_TIMEOUT=3 "${PSQL[@]}" -d postgres -c 'select 1' >/dev/null 2>&1; }

pg_ctl_() {
	local bindir
	bindir=$(pg_bindir) || die "postgres: no pg_ctl under /usr/lib/postgresql/*/bin"
	pg_as "$bindir/pg_ctl" -D "$PG_DATA" "$@" 9>&-
}

pg_running() { [[ -f "$PG_DATA/postmaster.pid" ]] && pg_ctl_ status >/dev/null 2>&1; }

ensure_pg_installed() {
	pg_bindir >/dev/null || install_packages postgresql
	pg_bindir >/dev/null || die "postgres: no initdb/pg_ctl under /usr/lib/postgresql/*/bin"
	have psql || install_packages postgresql-client
	if is_root && ! id postgres >/dev/null 2>&1; then
		die "postgres: running as root but there is no 'postgres' user to run the server as"
	fi
}

pg_init() {
	local bindir
	mkdir -p "$PG_RUN"
	is_root && chown postgres: "$PG_RUN"
	pg_as test -w "$PG_RUN" ||
		die "postgres: $PG_RUN is not writable by the server user (is the repo path readable by 'postgres'?)"
	[[ -s "$PG_DATA/PG_VERSION" ]] && return 0
	bindir=$(pg_bindir)
	log "postgres: initialising $PG_DATA with $bindir/initdb"
	mkdir -p "$PG_DATA"
	chmod 700 "$PG_DATA"
	is_root && chown postgres: "$PG_DATA"
	# --auth=trust: local and 127.0.0.1/::1 connections need no password.
	pg_as "$bindir/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --no-locale >"$PG_RUN/initdb.log" 2>&1 ||
		{
			cat "$PG_RUN/initdb.log" >&2
			die "postgres: initdb failed"
		}
	((${#PG_RUN} <= 90)) || die "postgres: $PG_RUN is too long for a unix socket path"
	pg_as tee -a "$PG_DATA/postgresql.conf" >/dev/null <<-EOF

		# --- soak instance settings (scripts/soak-servers.sh) ---
		port = $PG_PORT
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$PG_RUN'
		max_connections = 300
	EOF
}

wait_pg() {
	if ! wait_until "$PG_TIMEOUT" "postgres on 127.0.0.1:$PG_PORT" pg_answers; then
		tail -n 30 "$PG_LOG" >&2 || true
		die "postgres: does not answer on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
	fi
}

ensure_database() {
	if [[ -z $("${PSQL[@]}" -d postgres -c "select 1 from pg_database where datname = 'insurance'") ]]; then
		log "postgres: creating database insurance"
		"${PSQL[@]}" -d postgres -c 'create database insurance' >/dev/null
	fi
}

start_pg() {
	ensure_pg_installed
	if pg_answers && ! pg_running; then
		die "postgres: 127.0.0.1:$PG_PORT answers, but not from $PG_DATA (another work tree's soak servers? stop them with their scripts/soak-servers.sh stop)"
	fi
	pg_init
	if pg_answers; then
		log "postgres: running on 127.0.0.1:$PG_PORT"
	elif pg_running; then
		log "postgres: running but not answering yet (recovery?); waiting"
	else
		log "postgres: starting on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
		pg_ctl_ -l "$PG_LOG" -w -t "$PG_TIMEOUT" start >/dev/null || {
			tail -n 30 "$PG_LOG" >&2 || true
			die "postgres: did not start"
		}
	fi
	wait_pg
	ensure_database
}

stop_pg() {
	local pid
	if ! pg_bindir >/dev/null || ! pg_running; then
		log "postgres: not running"
		return 0
	fi
	log "postgres: stopping (fast)"
	pg_ctl_ -m fast -w -t "$PG_TIMEOUT" stop >/dev/null && return 0
	log "postgres: fast shutdown timed out; immediate"
	pg_ctl_ -m immediate -w -t 15 stop >/dev/null && return 0
	pid=$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null | tr -dc '0-9')
	if [[ -n $pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$PG_DATA"; then
		log "postgres: SIGKILL to postmaster $pid"
		kill -KILL "$pid" 2>/dev/null || true
		wait_until 10 "postmaster $pid to exit" pid_gone "$pid"
	fi
}

restart_pg() {
	local mode=${1:-fast}
	case $mode in
	fast | immediate | smart) ;;
	*) die "pg-restart: mode is fast or immediate (got '$mode')" ;;
	esac
	ensure_pg_installed
	[[ -s "$PG_DATA/PG_VERSION" ]] || die "postgres: no data in $PG_DATA; run start first"
	log "postgres: restart -m $mode"
	pg_ctl_ -m "$mode" -l "$PG_LOG" -w -t "$PG_TIMEOUT" restart >/dev/null || {
		tail -n 30 "$PG_LOG" >&2 || true
		die "postgres: restart -m $mode failed"
	}
	wait_pg
}

# --- commands ------------------------------------------------------------------------
write_env() {
	local n tmp amqp=() hosts=() apis=() names=()
	for n in "${NODES[@]}"; do
		amqp+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/%2f")
		hosts+=("127.0.0.1:$(amqp_port "$n")")
		apis+=("$(api_url "$n")")
		names+=("$(node_name "$n")")
	done
	tmp=$(mktemp "$SOAK_DIR/env.XXXXXX")
	{
		local IFS=,
		printf '# written by scripts/soak-servers.sh start; source it: . .local/soak/env\n'
		printf 'export SOAK_AMQP_URLS=%s\n' "${amqp[*]}"
		printf 'export SOAK_AMQP_HOSTS=%s\n' "${hosts[*]}"
		printf 'export SOAK_API_URLS=%s\n' "${apis[*]}"
		printf 'export SOAK_DATABASE_URL=postgres://postgres@127.0.0.1:%s/insurance\n' "$PG_PORT"
		printf 'export SOAK_ADMIN_DATABASE_URL=postgres://postgres@127.0.0.1:%s/postgres\n' "$PG_PORT"
		IFS=' '
		printf 'export SOAK_NODES="%s"\n' "${names[*]}"
	} >"$tmp"
	mv -f "$tmp" "$ENV_FILE"
}

# A node with a resource alarm blocks every publisher: say so now rather than in the soak.
warn_alarms() {
	local n code
	for n in "${NODES[@]}"; do
		code=$(api_status "$(api_url "$n")" health/checks/alarms)
		[[ $code == 200 ]] || log "rabbitmq: WARNING: $(node_name "$n") reports a resource alarm (HTTP $code on health/checks/alarms)"
	done
}

cmd_start() {
	ensure_rabbitmq_installed
	make_cookie
	start_pg
	start_nodes
	warn_alarms
	write_env
	log "wrote $ENV_FILE"
	cat "$ENV_FILE"
}

cmd_stop() {
	local n rc=0
	local -a pids=()
	for n in "${NODES[@]}"; do
		stop_node "$n" &
		pids+=("$!")
	done
	for n in "${pids[@]}"; do
		wait "$n" || rc=1
	done
	stop_pg || rc=1
	return "$rc"
}

cmd_wipe() {
	cmd_stop || die "not everything stopped; not deleting $SOAK_DIR"
	[[ $SOAK_DIR == */.local/soak ]] || die "refusing to delete $SOAK_DIR"
	log "deleting $SOAK_DIR"
	rm -rf "$SOAK_DIR"
}

node_arg() {
	[[ ${1:-} =~ ^[1-3]$ ]] || die "node number is 1, 2 or 3 (got '${1:-}')"
}

cmd_node_start() {
	local n=$1 m was_blank=""
	ensure_rabbitmq_installed
	make_cookie
	node_has_data "$n" || was_blank=1
	# Alone, a node that was not the last to stop would wait minutes for its peers' tables.
	for m in "${NODES[@]}"; do
		[[ $m == "$n" ]] || node_running "$m" || die "rabbitmq: $(node_name "$m") is not running either; use start"
	done
	if node_running "$n"; then
		log "rabbitmq: $(node_name "$n") is running (pid $(node_pid "$n"))"
	else
		launch_node "$n"
	fi
	wait_node_booted "$n"
	[[ -z $was_blank ]] || ensure_member "$n"
	wait_cluster_complete "$n"
	wait_api "$n"
	wait_quorum_online "$n"
}

cmd_status() {
	local n rc=0 seen="" running
	for n in "${NODES[@]}"; do
		if node_running "$n"; then
			printf '%s  running  pid %s  amqp 127.0.0.1:%s  api %s\n' "$(node_name "$n")" "$(node_pid "$n")" "$(amqp_port "$n")" "$(api_url "$n")"
			[[ -n $seen ]] || seen=$n
		else
			printf '%s  down\n' "$(node_name "$n")"
			rc=3
		fi
	done
	if [[ -n $seen ]]; then
		running=$(cluster_view "$seen" running_nodes | paste -sd ' ') || running="?"
		printf 'cluster (seen from %s): running %s\n' "$(node_name "$seen")" "$running"
		printf 'queues (name, type, members, online):\n'
		rmqctl "$seen" 30 list_queues name type members online --no-table-headers 2>&1 | sed 's/^/  /' || true
	fi
	if pg_answers; then
		printf 'postgres 127.0.0.1:%s  up\n' "$PG_PORT"
	else
		printf 'postgres 127.0.0.1:%s  down\n' "$PG_PORT"
		rc=3
	fi
	return "$rc"
}

# One command at a time changes the servers (two `start`s at once would launch a node twice).
take_lock() {
	mkdir -p "$SOAK_DIR"
	exec 9>"$LOCK_FILE"
	flock -w 600 9 || die "another scripts/soak-servers.sh holds $LOCK_FILE"
}

cmd=${1:-}
started=$SECONDS
case "$cmd" in
start | stop | wipe | node-stop | node-kill | node-start | pg-restart | pg-stop | pg-start) take_lock ;;
esac
case "$cmd" in
start) cmd_start ;;
stop) cmd_stop ;;
wipe) cmd_wipe ;;
status)
	cmd_status
	exit
	;;
node-stop)
	node_arg "${2:-}"
	stop_node "$2"
	;;
node-kill)
	node_arg "${2:-}"
	kill_node "$2"
	;;
node-start)
	node_arg "${2:-}"
	cmd_node_start "$2"
	;;
pg-restart) restart_pg "${2:-fast}" ;;
pg-stop) stop_pg ;;
pg-start) start_pg ;;
ctl)
	node_arg "${2:-}"
	n=$2
	shift 2
	node_env "$n"
	exec env "${NODE_ENV[@]}" "$RMQ_SBIN/rabbitmqctl" -n "$(node_name "$n")" "$@"
	;;
-h | --help | help)
	sed -n '2,25p' "${BASH_SOURCE[0]}"
	exit 0
	;;
*) die "unknown command '$cmd' (see: scripts/soak-servers.sh help)" ;;
esac
log "$* done in $((SECONDS - started))s"
