# Paver in a container: `paver serve` on 0.0.0.0:8080 as a non-root user.
#
#   docker build -t paver .
#   docker run --rm -p 8080:8080 -v paver-var:/app/var \
#     -e PAVER_SLACK__BOT_TOKEN -e PAVER_SLACK__SIGNING_SECRET paver
#
# README "Running in a container" has the Kubernetes example.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# Dependencies first, in a layer of their own: rebuilt only when Cargo.toml
# or Cargo.lock change, not on every source edit. The placeholder crate has
# the real one's targets (a library and the `paver` binary).
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src target/release/.fingerprint/paver-* target/release/deps/paver-* target/release/deps/libpaver-*
COPY src ./src
COPY migrations ./migrations
COPY prompts ./prompts
RUN cargo build --release --locked && strip target/release/paver

FROM debian:bookworm-slim
# git and ssh: the GitOps driver and git docs sources push and pull with
# the git CLI; curl: the health check. Not pinned: bookworm's security
# updates replace the versions, and a pin would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git openssh-client curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin paver
WORKDIR /app
COPY --from=build /src/target/release/paver /usr/local/bin/paver
COPY config ./config
COPY prompts ./prompts
RUN mkdir -p var && chown paver:paver var
USER 10001
# The SQLite file, git clones and docs caches live in var/: keep it across
# restarts (with PostgreSQL, only the clones are there).
VOLUME ["/app/var"]
ENV PAVER_CONFIG=/app/config/paver.toml \
    PAVER_SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
# A shell form on purpose: Docker reads exit status 1 as unhealthy, and
# curl's own codes (7, 22) are mapped to it.
# hadolint ignore=DL3025
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["paver"]
CMD ["serve"]
