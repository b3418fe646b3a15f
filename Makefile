# Local development and CI entry points. See DESIGN.md section 7.
#   make servers        make sure PostgreSQL + RabbitMQ are reachable, write .local/env
#   make run            run all built services against them (Ctrl-C stops)
#   make test           servers, then the whole workspace test suite
#   make test-outage    the 3-minute database outage test of the messaging core
#   make lint           rustfmt check + clippy with warnings denied
#   make stop-servers   stop the private instances started by `make servers`
#   make soak-servers   the chaos soak's servers: a 3-node RabbitMQ cluster + a Postgres, write .local/soak/env
#   make drill CUTOVER=cutovers/wuhan-2021.yaml   replay a real cutover across the five services, print its report
#   make deploy-check   validate docker-compose.yml, the Dockerfile and k8s/ offline (also in `make test`)
#   make soak           the chaos soak: 3 broker nodes, faults, reconciliation (SOAK_MINUTES, default 30; not part of test)
#   make fuzz           every cargo-fuzz target (fuzz/) for FUZZ_SECS seconds each (default 60; not part of test)
#   make bench-collection / bench-core / bench-benefits / bench-notification   benchmarks (not part of test); append to BENCHMARKS.md
# LOCAL_SERVERS=auto|private (default auto) chooses configured vs private servers.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

LOCAL_SERVERS ?= auto
export LOCAL_SERVERS

ifdef CI
export CARGO_TERM_COLOR := never
endif

.PHONY: servers run test test-outage drill soak soak-servers lint stop-servers deploy-check fuzz bench-collection bench-core bench-benefits bench-notification

servers:
	bash scripts/servers.sh

run:
	bash scripts/run.sh

test: servers
	. .local/env && cargo test --workspace --all-targets

# The messaging core's database outage at full length (3 minutes; `make test` runs 20 s).
test-outage: servers
	. .local/env && CORE_OUTAGE_SECS=180 TEST_DEADLINE_SECS=900 cargo test -p testkit --test core_faults -- --exact a_long_database_outage_parks_nothing_and_answers_everything_afterwards

# A real cutover replayed in accelerated time across the five services (also in `make test`):
# its report, per phase: requests by outcome, open lines' latency, the held backlog's drain,
# deadlines moved. The traffic and the checks are written per timetable (cli/tests/drills.rs).
CUTOVER ?= cutovers/wuhan-2021.yaml
drill: servers
	case "$(CUTOVER)" in \
	  *wuhan-2021.yaml) t=the_wuhan_2021_cutover ;; \
	  *hangzhou-2020.yaml) t=the_hangzhou_2020_cutover ;; \
	  *) echo "make drill: CUTOVER is cutovers/wuhan-2021.yaml or cutovers/hangzhou-2020.yaml (the drills are written per timetable)" >&2; exit 2 ;; \
	esac; \
	. .local/env && cargo test -p insurancectl --test drills -- --exact --nocapture "$$t"_replayed_across_the_five_services 2>&1 \
	  | grep -E 'drill:|^test |test result|panicked|assertion|left|right'

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

stop-servers:
	bash scripts/servers.sh stop

# The chaos soak's own servers (issue 14 §2), under .local/soak: RabbitMQ nodes soak-1..3@localhost
# (AMQP 56721..56723, API 56741..56743) and Postgres on 56432. The script's other subcommands
# (stop, node-stop N, node-kill N, node-start N, pg-restart [fast|immediate], status) are the faults.
soak-servers:
	bash scripts/soak-servers.sh start

# No engine, no cluster: schemas, kustomize builds and the properties of issue 13 (§3, §4).
deploy-check:
	bash scripts/deploy-check.sh
	bash scripts/deploy-check.sh --self-test

# The long fuzz run (issue 14 §3; `make test` runs the short one, shared/decoder-checks'
# proptests): each target of fuzz/ for FUZZ_SECS seconds on its corpus, seeded first; a
# crash or an input slower than 10 s fails the run. Corpus in fuzz/corpus/<target>, crashes
# in fuzz/artifacts/<target>, logs in fuzz/logs (all git-ignored). Needs a nightly toolchain.
FUZZ_SECS ?= 60
fuzz:
	rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
	cargo run -q -p decoder-checks --bin fuzz-seeds -- fuzz/corpus
	cargo +nightly fuzz build -a
	mkdir -p fuzz/logs; failed=""; \
	for t in $$(cargo +nightly fuzz list); do \
		echo "== fuzz $$t for $(FUZZ_SECS) s"; \
		cargo +nightly fuzz run -a $$t -- -max_total_time=$(FUZZ_SECS) -timeout=10 -max_len=8192 \
			-print_final_stats=1 2>&1 | tee fuzz/logs/$$t.log | grep -E '^(Done|stat::|==[0-9]+==|SUMMARY|artifact_prefix)|panicked|Test unit written' \
			|| failed="$$failed $$t"; \
		grep -q '^Done ' fuzz/logs/$$t.log || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (see fuzz/logs, fuzz/artifacts)"; exit 1; fi

# The chaos soak (issue 14 §2; not part of `test`): fresh private servers (three RabbitMQ nodes
# and a Postgres, scripts/soak-servers.sh), the five services and the SMS centre as processes,
# steady mixed load on both lines and a fault schedule reproducible from SOAK_SEED; at the end
# the reconciliation, a report in .local/soak/runs/ and its summary appended to BENCHMARKS.md.
# SOAK_MINUTES (30), SOAK_SEED, SOAK_WORKERS (4), SOAK_FAULT_GAP_SECS (25), SOAK_DRAIN_SECS (600).
SOAK_MINUTES ?= 30
soak:
	bash scripts/soak-servers.sh wipe
	bash scripts/soak-servers.sh start
	cargo build --bins
	SOAK_MINUTES=$(SOAK_MINUTES) cargo run -q -p testkit --bin soak

# Benchmark (not part of `test`): a month's assessment of a million persons; appends to BENCHMARKS.md.
# BENCH_COLLECTION_ARGS changes sizes and seeding, e.g. the enrolled state made through the
# services: BENCH_COLLECTION_ARGS="--seed services --persons 100000 --employers 1000" (which
# outlasts the test environments' 8-minute watchdog: it is lifted to an hour, as for bench-core).
bench-collection: servers
	. .local/env && TEST_DEADLINE_SECS=$${TEST_DEADLINE_SECS:-3600} cargo run --release -p bench --bin bench-collection -- --out BENCHMARKS.md $(BENCH_COLLECTION_ARGS)

# Benchmark (not part of `test`): the messaging core of issue 6 section 4 (isolation, event
# pipeline, command throughput against pgbench, where the time goes); appends to BENCHMARKS.md.
# BENCH_CORE_ARGS picks sections and sizes, e.g. BENCH_CORE_ARGS="--sections commands --no-write".
# The test environments' 8-minute watchdog is lifted to an hour: a thaw of 100,000 held
# commands outlasted it on a loaded machine (2026-12-08).
bench-core: servers
	. .local/env && TEST_DEADLINE_SECS=$${TEST_DEADLINE_SECS:-3600} cargo run --release -p bench --bin bench-core -- --out BENCHMARKS.md $(BENCH_CORE_ARGS)

# Benchmark (not part of `test`): real-time settlement through the broker (issue 9 section 6),
# against pgbench in the same sitting; appends to BENCHMARKS.md. BENCH_BENEFITS_ARGS passes options.
bench-benefits: servers
	. .local/env && cargo run --release -p bench --bin bench-benefits -- --out BENCHMARKS.md $(BENCH_BENEFITS_ARGS)

# Benchmark (not part of `test`): a bulk outage announcement to 100,000 recipients over SMPP
# through the SMSC simulator (issue 12); appends to BENCHMARKS.md. BENCH_NOTIFICATION_ARGS passes options.
bench-notification: servers
	. .local/env && cargo run --release -p bench --bin bench-notification -- --out BENCHMARKS.md $(BENCH_NOTIFICATION_ARGS)
