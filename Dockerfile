# syntax=docker/dockerfile:1
# backstop — multi-stage build: cargo-chef caches dependencies; the runtime
# image (the default, last stage) is Debian slim with a non-root user and only
# the gateway. The chaos upstream has its own stage for the compose demo
# (`docker build --target mock .`).
# Not built by CI (no Docker engine there); linted by hadolint (scripts/lint-deploy).

FROM rust:1-slim-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
RUN cargo build --release -p backstop -p backstop-mock --bins

FROM debian:bookworm-slim AS mock
# curl only for the compose healthcheck. Not pinned to a Debian revision
# (hadolint DL3008): bookworm's security updates replace it, and a pinned
# revision stops resolving; the base image's tag fixes the distribution.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home mock
COPY --from=builder /app/target/release/backstop-mock /usr/local/bin/backstop-mock
USER 10001
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/backstop-mock"]
CMD ["--listen", "0.0.0.0:9090"]

FROM debian:bookworm-slim AS runtime
# curl only for the HEALTHCHECK (unpinned, as in the mock stage); TLS roots
# are built into the binary (rustls + webpki roots).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home backstop
COPY --from=builder /app/target/release/backstop /usr/local/bin/backstop
COPY config/backstop.toml /etc/backstop/backstop.toml
USER 10001
ENV BACKSTOP_CONFIG=/etc/backstop/backstop.toml \
    BACKSTOP_LISTEN=0.0.0.0:8080 \
    BACKSTOP_LOG__FORMAT=json
EXPOSE 8080
# Exec form: no shell in the loop. curl -f exits non-zero on a non-2xx answer
# or no answer, and Docker counts any non-zero exit as a failed check.
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/backstop"]
