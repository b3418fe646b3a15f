# shellcheck shell=bash
# Shared helpers of scripts/servers.sh and scripts/soak-servers.sh: sourced, not run.
# log/die prefix their lines with [$LOG_TAG] (default servers); pg_bindir reads $PG_DATA;
# api_status uses $API_USER/$API_PASSWORD (default guest/guest).

log() { printf '[%s] %s\n' "${LOG_TAG:-servers}" "$*" >&2; }
die() {
	printf '[%s] ERROR: %s\n' "${LOG_TAG:-servers}" "$*" >&2
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
is_root() { [[ "$(id -u)" -eq 0 ]]; }

tcp_open() {
	local host=$1 port=$2
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" >/dev/null 2>&1
}

# wait_until <seconds> <description> <command...>: polls until command succeeds.
wait_until() {
	local limit=$1 what=$2
	shift 2
	local deadline=$((SECONDS + limit))
	until "$@"; do
		if ((SECONDS >= deadline)); then
			log "timed out after ${limit}s waiting for $what"
			return 1
		fi
		sleep 0.5
	done
}

as_root() {
	if is_root; then
		"$@"
	elif have sudo; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

install_packages() {
	log "installing Debian packages: $*"
	as_root apt-get update
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
}

# --- PostgreSQL ---
# Directory with initdb/pg_ctl: the version the data dir was made with if
# known, else the newest installed.
pg_bindir() {
	local ver d best=""
	if [[ -s "$PG_DATA/PG_VERSION" ]]; then
		ver=$(<"$PG_DATA/PG_VERSION")
		if [[ -x "/usr/lib/postgresql/$ver/bin/pg_ctl" ]]; then
			printf '%s\n' "/usr/lib/postgresql/$ver/bin"
			return 0
		fi
	fi
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x "$d/initdb" && -x "$d/pg_ctl" ]] || continue
		if [[ -z $best ]] || [[ "$(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n1)" == "$d" ]]; then
			best=$d
		fi
	done
	[[ -n $best ]] || return 1
	printf '%s\n' "$best"
}

# Postgres refuses to run as root: run its tools as the postgres user then.
pg_as() {
	if is_root; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# --- processes ---
pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# --- RabbitMQ management API ---
: "${API_USER:=guest}" "${API_PASSWORD:=guest}"

# A value for a double-quoted curl config entry.
curl_quote() {
	local s=${1//\\/\\\\}
	printf '%s' "${s//\"/\\\"}"
}

# HTTP status of GET $1/api/overview with the API credentials; 000 when nothing
# answers. The credentials go through stdin, not the command line (ps shows that).
api_status() {
	local url=${1%/} path=${2:-overview}
	have curl || install_packages curl
	curl -s -o /dev/null -w '%{http_code}' --max-time 5 -K - "$url/api/$path" \
		<<<"user = \"$(curl_quote "$API_USER"):$(curl_quote "$API_PASSWORD")\"" || true
}

# The API is there: it answers, whether or not it takes our credentials.
api_answers() {
	local code
	code=$(api_status "$1")
	[[ $code == 200 || $code == 401 ]]
}
