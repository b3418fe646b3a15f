#!/usr/bin/env bash
# The tools that check the published contract (issue 13 §5), installed into .local/contract-tools
# where they are missing (a fresh Debian machine gets nodejs, npm and python3-venv first):
#   scripts/contract-tools.sh install            install or update (when the manifests changed)
#   scripts/contract-tools.sh validate FILE      validate an AsyncAPI document with the AsyncAPI parser
#   scripts/contract-tools.sh python ARGS...     run the venv's python (pika, jsonschema)
# Safe to call from parallel tests: the install holds a lock.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="$root/.local/contract-tools"
log() { echo "[contract-tools] $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo "$@"; else
		log "need root (or sudo) to run: $*"
		exit 1
	fi
}

packages() {
	log "installing Debian packages: $*"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

stamp_of() { cat "$root/tools/asyncapi/package.json" "$root/tools/asyncapi/package-lock.json" \
	"$root/tools/pika-client/requirements.txt" | sha256sum | cut -d' ' -f1; }

install() {
	mkdir -p "$dir"
	exec 9>"$dir/.lock"
	flock 9
	local want
	want=$(stamp_of)
	if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$want" ]; then
		return 0
	fi
	local missing=()
	have node || missing+=(nodejs)
	have npm || missing+=(npm)
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
	((${#missing[@]} == 0)) || packages "${missing[@]}"
	log "installing the AsyncAPI parser and the Python client's packages into $dir"
	cp "$root/tools/asyncapi/package.json" "$root/tools/asyncapi/package-lock.json" "$dir/"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	[ -x "$dir/venv/bin/python" ] || python3 -m venv "$dir/venv"
	"$dir/venv/bin/pip" install -q --disable-pip-version-check -r "$root/tools/pika-client/requirements.txt"
	echo "$want" >"$dir/.stamp"
}

case "${1:-}" in
install) install ;;
validate)
	install
	# The script resolves @asyncapi/parser from the install folder's node_modules.
	cp "$root/tools/asyncapi/validate.mjs" "$dir/validate.mjs.tmp.$$"
	mv "$dir/validate.mjs.tmp.$$" "$dir/validate.mjs"
	node "$dir/validate.mjs" "${2:?usage: validate FILE}"
	;;
python)
	install
	shift
	exec "$dir/venv/bin/python" "$@"
	;;
*)
	echo "usage: $0 install | validate FILE | python ARGS..." >&2
	exit 2
	;;
esac
