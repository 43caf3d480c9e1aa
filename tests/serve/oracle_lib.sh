# Sourced by the serve oracle tests (tests/serve/*_test.sh): a demo-model copy with a chat
# template, a mii-serve on a free port, and mii-generate's greedy answers to compare with.
#
#   source tests/serve/oracle_lib.sh "$MII_SERVE" "$MII_GENERATE"
#   start_server [extra mii-serve options...]   # sets SERVER_URL, SERVER_PID, SERVER_LOG
#   greedy_text "DeepSpeed is" 16               # mii-generate --greedy's completion
set -euo pipefail

MII_SERVE=$1
MII_GENERATE=$2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Debian's python3 when there is one: a pyenv shim first on PATH costs a second per start.
PYTHON=$(command -v /usr/bin/python3 || command -v python3)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mii-serve-oracle.XXXXXX")
SERVER_PID=

cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -KILL "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  [[ -n ${SERVER_LOG:-} && -f $SERVER_LOG ]] && { echo "--- mii-serve's log:" >&2; tail -n 40 "$SERVER_LOG" >&2; }
  exit 1
}

# The demo model with a tokenizer_config.json whose chat template renders a user message as
# BOS + its text: a chat answer is then the completion of that text, which mii-generate gives.
MODEL=$WORK/demo-llama
cp -r "$ROOT/tests/fixtures/models/demo-llama" "$MODEL"
cat >"$MODEL/tokenizer_config.json" <<'EOF'
{
  "bos_token": "<s>",
  "eos_token": "</s>",
  "chat_template": "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] + ' ' }}{% elif m['role'] == 'user' %}{{ m['content'] }}{% else %}{{ m['content'] + '</s>' }}{% endif %}{% endfor %}{% if messages[-1]['role'] == 'assistant' %}{{ raise_exception('the last message must not be the assistant\\'s') }}{% endif %}"
}
EOF

ENGINE_OPTS=(--backend host --host-threads 1 --kv-block-size 16 --kv-cache-blocks 512)

start_server() {
  SERVER_LOG=$WORK/server.log
  "$MII_SERVE" "$MODEL" --port 0 "${ENGINE_OPTS[@]}" "$@" 2>"$SERVER_LOG" &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    SERVER_URL=$(grep -o 'at http://[0-9.]*:[0-9]*' "$SERVER_LOG" | head -1 | sed 's/^at //') || true
    [[ -n $SERVER_URL ]] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || fail "mii-serve exited at startup"
    sleep 0.1
  done
  fail "mii-serve printed no URL within 30 s"
}

greedy_text() {
  "$MII_GENERATE" "$MODEL" --backend host --greedy --prompt "$1" --max-new-tokens "$2" --json 2>/dev/null |
    "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["generated_text"], end="")'
}
