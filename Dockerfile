# Build: docker build -t paver .
# Run:   docker run --rm -i paver parse < requests.jsonl
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY prompts ./prompts
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /app paver
WORKDIR /app
COPY --from=build /src/target/release/paver /usr/local/bin/paver
COPY config ./config
RUN mkdir -p var && chown paver var
USER paver
ENV PAVER_CONFIG=/app/config/paver.toml
EXPOSE 8080
ENTRYPOINT ["paver"]
CMD ["--help"]
