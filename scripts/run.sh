#!/usr/bin/env bash
# Runs every built service locally against the servers picked by
# scripts/servers.sh. Stays in the foreground; Ctrl-C / SIGTERM stops all.
#
# Inputs (environment): those of scripts/servers.sh (DATABASE_URL, AMQP_URL,
# LOCAL_SERVERS), plus
#   RUN_SKIP_BUILD=1   do not run `cargo build --bins` first
#   CARGO_TARGET_DIR   where the binaries are (default: target)
#   RUN_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (15)
#   TAX_AUTHORITY_SIM=0  do not start the simulated tax authority: the tax-authority
#                      subscriber is still provisioned (queue subscriber.tax-authority, user
#                      tax-authority, password in .local/tax-authority.password), so that an
#                      outside system can read the assessments and pay (record-payment)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# In start order; the ops port is 9101 + the position in this list, so a
# service keeps its port when others are missing.
SERVICES=(enrollment collection benefits card-issuance notification)
OPS_PORT_BASE=9101
DB_NAME=insurance
STOP_TIMEOUT="${RUN_STOP_TIMEOUT:-15}"

log() { printf '[run] %s\n' "$*" >&2; }
die() {
	printf '[run] ERROR: %s\n' "$*" >&2
	exit 1
}

# with_database <url> <name>: the same URL with another database name.
with_database() {
	local url=$1 db=$2 scheme rest query=""
	if [[ $url == *\?* ]]; then
		query="?${url#*\?}"
		url=${url%%\?*}
	fi
	scheme=${url%%://*}
	rest=${url#*://}
	rest=${rest%%/*}
	printf '%s://%s/%s%s\n' "$scheme" "$rest" "$db" "$query"
}

# Prefixes each line read from stdin with the service name.
prefix_lines() {
	local name=$1 line
	# Outlive Ctrl-C: keep printing until the service's output closes, so its shutdown
	# lines are not lost.
	trap '' INT TERM
	while IFS= read -r line || [[ -n $line ]]; do
		printf '%-14s| %s\n' "$name" "$line"
	done
}

bash scripts/servers.sh
# shellcheck source=/dev/null
. .local/env

command -v psql >/dev/null 2>&1 || die "psql not found (apt-get install -y postgresql-client)"
exists=$(psql "$DATABASE_URL" -Atqc "select 1 from pg_database where datname = '$DB_NAME'")
if [[ $exists != 1 ]]; then
	log "creating database $DB_NAME"
	# Tolerate a concurrent creator; re-check afterwards.
	psql "$DATABASE_URL" -qc "create database $DB_NAME" >/dev/null 2>&1 || true
	exists=$(psql "$DATABASE_URL" -Atqc "select 1 from pg_database where datname = '$DB_NAME'")
	[[ $exists == 1 ]] || die "could not create database $DB_NAME"
fi
INSURANCE_DB_URL=$(with_database "$DATABASE_URL" "$DB_NAME")

if [[ ${RUN_SKIP_BUILD:-0} != 1 ]]; then
	log "cargo build --bins"
	cargo build --bins
fi
BIN_DIR="${CARGO_TARGET_DIR:-target}/debug"

# Each service connects as a Postgres role of its own that owns its schema and nothing else
# (issue 13 §1); the operator tooling makes them, as on a cluster.
# On the broker each has a user of its own with the topology's grants, and they share one
# management-API user for the data-sharing shovels; guest is used by no service. Their
# passwords are made once and kept in .local (git-ignored).
ACCOUNTS_ENV="$ROOT/.local/accounts.env"
(
	umask 077
	touch "$ACCOUNTS_ENV"
	for s in ENROLLMENT COLLECTION BENEFITS CARD_ISSUANCE NOTIFICATION DATA_SHARING BANK_SIM INSTITUTION_SIM; do
		grep -q "^${s}_MQ_PASSWORD=" "$ACCOUNTS_ENV" ||
			printf '%s_MQ_PASSWORD=%s\n' "$s" "$(head -c 18 /dev/urandom | base64 | tr -d '/+=')" >>"$ACCOUNTS_ENV"
	done
)
set -a
# shellcheck source=/dev/null
. "$ACCOUNTS_ENV"
set +a
declare -A DB_ROLE=() MQ_USER=()
accounts=$("$BIN_DIR/insurancectl" accounts apply --database-url "$INSURANCE_DB_URL" &&
	"$BIN_DIR/insurancectl" accounts apply --broker --simulators --service enrollment) ||
	die "insurancectl accounts apply failed"
while read -r service kind name _; do
	case $kind in
	role) DB_ROLE[$service]=$name ;;
	user) MQ_USER[$service]=$name ;;
	esac
done <<<"$accounts"
for name in "${SERVICES[@]}"; do
	[[ -n ${DB_ROLE[$name]:-} && -n ${MQ_USER[$name]:-} ]] ||
		die "no database role or broker user for $name (insurancectl accounts apply)"
	log "$name runs as database role ${DB_ROLE[$name]} and broker user ${MQ_USER[$name]}"
done
[[ -n ${MQ_USER[data-sharing]:-} ]] || die "no data-sharing user (insurancectl accounts apply)"
AMQP_HOSTPART=${AMQP_URL#*://}
AMQP_HOSTPART=${AMQP_HOSTPART#*@}
# The AMQP URL of service $1, as its own user.
service_amqp_url() {
	local var
	var="$(tr 'a-z-' 'A-Z_' <<<"$1")_MQ_PASSWORD"
	printf 'amqp://%s:%s@%s' "${MQ_USER[$1]}" "${!var}" "$AMQP_HOSTPART"
}

PIDS=()
NAMES=()
STOPPING=0

stop_all() {
	local sig=${1:-TERM} pid deadline
	((STOPPING)) && return 0
	STOPPING=1
	trap '' INT TERM
	log "stopping services (SIG$sig)"
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	deadline=$((SECONDS + STOP_TIMEOUT))
	while any_alive && ((SECONDS < deadline)); do
		sleep 0.2
	done
	for pid in "${PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			log "pid $pid did not stop within ${STOP_TIMEOUT}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	wait 2>/dev/null || true
	log "all services stopped"
	exit 0
}

any_alive() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null && return 0
	done
	return 1
}

trap 'stop_all INT' INT
trap 'stop_all TERM' TERM
trap 'stop_all HUP' HUP

# start_service <index into SERVICES>: starts it and records its pid at the same slot, so
# that the supervision loop below can start it again.
declare -A SLOT=()
start_service() {
	local i=$1 name=${SERVICES[$1]} port=$((OPS_PORT_BASE + $1)) extra=()
	# The notification service binds to the simulated SMSC with its password.
	[[ $name == notification ]] && extra=(APP__SMS__ADDRESS="127.0.0.1:$SMSC_PORT" APP__SMS__PASSWORD="${SMSC_PASSWORD:-}")
	env "${extra[@]}" \
		APP__DATABASE__URL="$INSURANCE_DB_URL" \
		APP__DATABASE__USER="${DB_ROLE[$name]}" \
		APP__BROKER__URL="$(service_amqp_url "$name")" \
		APP__OPS__PORT="$port" \
		APP__MESSAGING__FREEZE__DATA_SHARING__API_URL="${RABBITMQ_API_URL:-}" \
		APP__MESSAGING__FREEZE__DATA_SHARING__API_USER="${MQ_USER[data-sharing]}" \
		APP__MESSAGING__FREEZE__DATA_SHARING__API_PASSWORD="$DATA_SHARING_MQ_PASSWORD" \
		APP_ENVIRONMENT=local \
		"$BIN_DIR/$name" > >(prefix_lines "$name") 2>&1 &
	local pid=$!
	if [[ -n ${SLOT[$name]:-} ]]; then
		PIDS[${SLOT[$name]}]=$pid
	else
		SLOT[$name]=${#PIDS[@]}
		PIDS+=("$pid")
		NAMES+=("$name")
	fi
}

# The SMS centre (simulators/smsc): the notification service binds to it over SMPP; every
# SMS it receives is printed (prefix "sms") and appended to .local/sms.jsonl. The password
# (at most 8 characters in SMPP) is kept in .local, git-ignored.
SMSC_PORT=${SMSC_PORT:-2775}
start_smsc() {
	local sim="$BIN_DIR/smsc-sim" pwfile="$ROOT/.local/smsc.password"
	[[ -x $sim && -x $BIN_DIR/notification ]] || return 0
	[[ -s $pwfile ]] || (umask 077 && head -c 12 /dev/urandom | base64 | tr -d '/+=' | cut -c1-8 >"$pwfile")
	SMSC_PASSWORD=$(cat "$pwfile")
	log "starting smsc-sim on 127.0.0.1:$SMSC_PORT (SMS texts below, prefixed 'sms')"
	SMSC_PASSWORD="$SMSC_PASSWORD" "$sim" --listen "127.0.0.1:$SMSC_PORT" --log-file "$ROOT/.local/sms.jsonl" \
		> >(prefix_lines sms) 2>&1 &
	PIDS+=("$!")
	NAMES+=("smsc-sim")
}
start_smsc

for i in "${!SERVICES[@]}"; do
	name=${SERVICES[$i]}
	bin="$BIN_DIR/$name"
	if [[ ! -x $bin ]]; then
		log "skipping $name (no $bin yet)"
		continue
	fi
	log "starting $name (ops port $((OPS_PORT_BASE + i)))"
	start_service "$i"
done

((${#PIDS[@]} > 0)) || die "no service binaries found in $BIN_DIR (looked for: ${SERVICES[*]})"

# Waits until every started service answers /readyz (or gives up after a deadline).
wait_ready() {
	local deadline=$((SECONDS + 60)) i port
	for i in "${!SERVICES[@]}"; do
		[[ -x $BIN_DIR/${SERVICES[$i]} ]] || continue
		port=$((OPS_PORT_BASE + i))
		until curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
			((SECONDS < deadline)) || return 1
			sleep 0.5
		done
	done
}

# The tax authority, as an external subscriber: provisioned by the operator tool with its own
# user (password kept in .local, git-ignored), then played by the simulator.
start_tax_authority() {
	local ctl="$BIN_DIR/insurancectl" sim="$BIN_DIR/tax-authority-sim" pwfile="$ROOT/.local/tax-authority.password"
	[[ -x $ctl && -x $sim && -x $BIN_DIR/collection ]] || return 0
	[[ -s $pwfile ]] || (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$pwfile")
	TAX_MQ_PASSWORD=$(cat "$pwfile")
	export TAX_MQ_PASSWORD
	if ! "$ctl" subscriber provision tax-authority \
		--bind '*.collection.contribution-assessed' \
		--publish 'commands:^(medical|social)\.collection\.record-payment$' \
		--password-env TAX_MQ_PASSWORD > >(prefix_lines provisioning) 2>&1; then
		log "could not provision the tax authority; payments will not flow"
		return 0
	fi
	local hostpart=${AMQP_URL#*://}
	hostpart=${hostpart#*@}
	if [[ ${TAX_AUTHORITY_SIM:-1} == 0 ]]; then
		log "TAX_AUTHORITY_SIM=0: not starting tax-authority-sim; nothing pays by itself"
		log "an outside tax authority reads queue subscriber.tax-authority and publishes record-payment"
		log "  as amqp://tax-authority:<.local/tax-authority.password>@${hostpart}"
		return 0
	fi
	log "starting tax-authority-sim (as broker user tax-authority)"
	TAX_AUTHORITY_AMQP_URL="amqp://tax-authority:${TAX_MQ_PASSWORD}@${hostpart}" \
		"$sim" > >(prefix_lines tax-authority) 2>&1 &
	PIDS+=("$!")
	NAMES+=("tax-authority-sim")
}

# The cooperating bank: opens card accounts, produces and ships cards (simulators/bank). It
# declares its own queue (subscriber.bank) and answers card issuance on the bank channel.
# BANK_SIM_ARGS passes options (--seed, --fail-account, --fail-production, --delay-ms).
start_bank() {
	local sim="$BIN_DIR/bank-sim"
	[[ -x $sim && -x $BIN_DIR/card-issuance ]] || return 0
	log "starting bank-sim (as broker user ${MQ_USER[bank-sim]})"
	# shellcheck disable=SC2086
	BANK_AMQP_URL="amqp://${MQ_USER[bank-sim]}:${BANK_SIM_MQ_PASSWORD}@${AMQP_HOSTPART}" "$sim" --fail-account 0 --fail-production 0 --delay-ms 1500 ${BANK_SIM_ARGS:-} \
		> >(prefix_lines bank) 2>&1 &
	PIDS+=("$!")
	NAMES+=("bank-sim")
}

# A card from application to activation: enrolled, applied for, photo approved at the counter,
# account and card made by the simulated bank, picked up and activated at the bank.
card_demo() {
	local ctl="$BIN_DIR/insurancectl" id body step="" i out=""
	[[ -x $ctl && -x $BIN_DIR/card-issuance && -x $BIN_DIR/bank-sim ]] || return 0
	# GB 11643 check character over a body with a fresh sequence from the clock.
	body="15020219880808$(printf '%03d' $((10#$(date +%N | cut -c1-3))))"
	local w=(7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2) checks=(1 0 X 9 8 7 6 5 4 3 2) sum=0
	for i in {0..16}; do sum=$((sum + ${body:i:1} * w[i])); done
	id="$body${checks[sum % 11]}"
	card() { "$ctl" send common card-issuance "$@" 2>&1 | head -n 1 || true; }
	echo "[card] enrolling a flexible worker, then applying for the card"
	"$ctl" send medical enrollment enroll-person --body "{\"id_number\":\"$id\",\"name\":\"刘敏\",\"phone\":\"13912340000\",\"category\":\"flexible\",\"insurance_types\":[\"employee_medical\"],\"effective_month\":\"$(date +%Y-%m)\"}" 2>&1 | head -n 1
	for i in {1..20}; do
		# Until card issuance has seen the enrollment event.
		out=$(card apply-card --body "{\"id_number\":\"$id\",\"bank\":\"ICBC\"}")
		[[ $out == ok* ]] && { echo "$out"; break; }
		sleep 0.5
	done
	card review-photo --body "{\"id_number\":\"$id\",\"approved\":true}"
	echo "[card] the bank opens the account, produces and ships the card"
	for i in {1..60}; do
		step=$("$ctl" --json send common card-issuance get-card-status --channel online --body "{\"id_number\":\"$id\"}" 2>/dev/null | grep -o '"step":"[a-z-]*"' | head -n 1 || true)
		echo "[card] status: $step"
		[[ $step == '"step":"arrived-at-branch"' ]] && break
		sleep 1
	done
	card pick-up-card --channel bank --body "{\"id_number\":\"$id\",\"representative\":{\"by\":\"self\"},\"documents\":[\"id_card\"],\"activate\":true}"
	"$ctl" --json send common card-issuance get-card-status --channel online --body "{\"id_number\":\"$id\"}" 2>&1 | grep -o '"state":"[a-z-]*"\|"text":"[^"]*"' | head -n 2
}

if wait_ready; then
	start_tax_authority
	start_bank
	if [[ ${RUN_DEMO:-1} == 1 ]]; then
		card_demo > >(prefix_lines card-demo) 2>&1 &
	fi
	if [[ ${RUN_DEMO:-1} == 1 && -x $BIN_DIR/insurancectl ]]; then
		log "playing a day at the agency (scripts/demo.sh; RUN_DEMO=0 skips it)"
		CTL="$BIN_DIR/insurancectl" bash scripts/demo.sh > >(prefix_lines demo) 2>&1 &
	fi
else
	log "services did not become ready within 60s; not starting the tax authority or the demo"
fi

cat >&2 <<EOF
[run] running: ${NAMES[*]}
[run] database: $INSURANCE_DB_URL
[run] broker:   $(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$AMQP_URL")
[run] send a first command from another terminal:
        . .local/env && target/debug/insurancectl send medical enrollment get-person --body '{"id_number":"11010519491231002X"}'
[run] Ctrl-C stops everything.
EOF

# Foreground: a service that exits on its own (it never should: it waits for what it depends
# on) is reported and started again, with a growing pause, until a signal stops everything.
declare -A RESTARTS=()
while true; do
	for j in "${!PIDS[@]}"; do
		pid=${PIDS[$j]}
		kill -0 "$pid" 2>/dev/null && continue
		((STOPPING)) && break
		rc=0
		wait "$pid" || rc=$?
		name=${NAMES[$j]}
		n=$((${RESTARTS[$name]:-0} + 1))
		RESTARTS[$name]=$n
		pause=$((n < 30 ? n : 30))
		log "$name exited (status $rc); starting it again in ${pause}s (restart $n)"
		sleep "$pause" &
		wait $! || true
		((STOPPING)) && break
		idx=-1
		for i in "${!SERVICES[@]}"; do [[ ${SERVICES[$i]} == "$name" ]] && idx=$i; done
		if ((idx >= 0)); then
			start_service "$idx"
		else
			log "$name is not restarted by this script"
			unset 'PIDS[j]'
		fi
	done
	# Interruptible pause: traps run as soon as a signal arrives.
	sleep 1 &
	wait $! || true
done
