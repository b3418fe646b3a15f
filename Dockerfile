# syntax=docker/dockerfile:1
# One image recipe for every binary of the workspace (DESIGN.md §6, issue 13 §3):
#   docker build --build-arg BIN=enrollment -t insurance/enrollment .
# BIN is a binary name: enrollment, collection, benefits, card-issuance, notification (the
# services), tax-authority-sim, bank-sim, institution-sim, smsc-sim (the simulators) or
# insurancectl (the operator's client, also used by the cutover Job).
# Checked offline by scripts/deploy-check.sh (hadolint); there is no engine on the dev machines.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
ARG BIN
WORKDIR /src
COPY . .
# The registry and target folders are build caches (BuildKit), so the binary is copied out in
# the same step. A service's configuration/ folder goes with it (APP_CONFIG_DIR below).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    test -n "${BIN}" || { echo "build with --build-arg BIN=<binary>" >&2; exit 1; } \
    && cargo build --release --locked --bin "${BIN}" \
    && mkdir -p /out/bin /out/configuration \
    && cp "target/release/${BIN}" /out/bin/app \
    && if [ -d "services/${BIN}/configuration" ]; then cp -R "services/${BIN}/configuration/." /out/configuration/; fi

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ARG BIN
# curl: the compose health checks ask the ops port's /readyz from inside the container
# (Kubernetes probes need nothing in the image). ca-certificates: amqps:// and verify-full.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 insurance \
    && useradd --system --uid 10001 --gid insurance --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin insurance
COPY --from=builder /out/bin/app /usr/local/bin/app
COPY --from=builder /out/configuration /app/configuration
WORKDIR /app
# Layered configuration (shared/platform/src/config.rs): base.yaml, then production.yaml, then
# APP__… variables; the ops port listens on every interface so probes can reach it.
ENV APP_CONFIG_DIR=/app/configuration \
    APP_ENVIRONMENT=production \
    APP__OPS__HOST=0.0.0.0 \
    INSURANCE_BINARY=${BIN}
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# SIGTERM starts the graceful shutdown (not ready, drain, flush the relay).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/app"]
