# switchyard container image.
#
#   docker build -t switchyard .
#   docker run --rm -v "$PWD/my-config:/etc/switchyard:ro" switchyard \
#       check /etc/switchyard/switchyard.toml
#   docker run --rm -p 8080:8080 -v "$PWD/my-config:/etc/switchyard" switchyard
#
# No configuration is baked in: mount a directory holding switchyard.toml at
# /etc/switchyard (the directory, not the single file: the admin API writes
# changes back with write-and-rename, and the file watcher has to see editors'
# rename-on-save). Make it writable by the container's user (uid 10001, or
# run with --user) if changes made through the admin API should persist.
#
# Works with the classic builder and with BuildKit.

FROM rust:1-slim-bookworm AS builder
WORKDIR /build

# protoc: the etcd client crate ([cluster]) generates its gRPC code at build
# time. (Outside the image, .cargo/config.toml points PROTOC at
# scripts/protoc-shim, which falls back on the vendored binary; the image
# keeps its context small and takes Debian's.)
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first, in their own layer, against stub sources, so that
# editing switchyard's code does not rebuild every crate. The stubs mirror
# the targets declared in Cargo.toml (lib, bin, bench "routing"); a new
# target or a build script needs a stub here too.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs \
 && : > src/lib.rs \
 && echo 'fn main() {}' > benches/routing.rs \
 && cargo build --release --locked \
 && rm -rf src benches

COPY src ./src
COPY benches ./benches
# COPY keeps the files' own timestamps, which can be older than the stubs'
# build: touch the crate roots so cargo rebuilds switchyard itself.
RUN touch src/lib.rs src/main.rs \
 && cargo build --release --locked \
 && install -m 0755 target/release/switchyard /usr/local/bin/switchyard


FROM debian:bookworm-slim

# curl is only for HEALTHCHECK.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 switchyard \
 && useradd --system --uid 10001 --gid switchyard --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin switchyard \
 && install -d -o switchyard -g switchyard -m 0755 /etc/switchyard

COPY --from=builder /usr/local/bin/switchyard /usr/local/bin/switchyard

USER 10001:10001
EXPOSE 8080

# The admin listener serves the proxy's own liveness on /health; it listens on
# 127.0.0.1:9901 unless [admin] listen says otherwise. Set HEALTHCHECK_URL
# (docker run -e ...) when the admin listener is elsewhere.
ENV HEALTHCHECK_URL=http://127.0.0.1:9901/health
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS --max-time 2 -o /dev/null "$HEALTHCHECK_URL" || exit 1

STOPSIGNAL SIGTERM
ENTRYPOINT ["switchyard"]
CMD ["run", "--config", "/etc/switchyard/switchyard.toml"]
