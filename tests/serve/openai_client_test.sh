#!/usr/bin/env bash
# The official `openai` npm client (the oracle for the OpenAI protocol) against mii-serve on the
# demo model; greedy answers must equal mii-generate --greedy's.
#   bash tests/serve/openai_client_test.sh MII_SERVE MII_GENERATE
# The openai package is installed once into .cache/npm (pinned; needs the npm registry the first time).
source "$(dirname "$0")/oracle_lib.sh" "$@"

OPENAI_VERSION=6.30.1  # the 6.x line runs on Node 20 (7.x needs Node 22)
NPM_DIR=$ROOT/.cache/npm
if [[ ! -f $NPM_DIR/node_modules/openai/package.json ]] ||
   [[ $("$PYTHON" -c "import json; print(json.load(open('$NPM_DIR/node_modules/openai/package.json'))['version'])") != "$OPENAI_VERSION" ]]; then
  command -v npm >/dev/null || fail "npm is needed to install the openai package"
  mkdir -p "$NPM_DIR"
  (cd "$NPM_DIR" && npm install --no-audit --no-fund --prefix . "openai@$OPENAI_VERSION" >/dev/null) || fail "npm install openai@$OPENAI_VERSION failed"
fi

# mii-generate --greedy's answers (one JSON line per prompt), keyed by prompt.
prompts=("DeepSpeed is" "Seattle is" "The quick brown fox" "Once upon a time,")
args=()
for p in "${prompts[@]}"; do args+=(--prompt "$p"); done
"$MII_GENERATE" "$MODEL" --backend host --greedy --max-new-tokens 16 --json "${args[@]}" >"$WORK/greedy.jsonl" 2>/dev/null ||
  fail "mii-generate failed"
"$PYTHON" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
prompts = sys.argv[3:]
json.dump({prompts[r["index"]]: r["generated_text"] for r in rows}, open(sys.argv[2], "w"))
' "$WORK/greedy.jsonl" "$WORK/expected.json" "${prompts[@]}"

# mii-generate --n 2's seeded samples (top_p 1: OpenAI's default), keyed by prompt: the choices
# prompt * 2 + k of a completions request with n = 2 and the same seed.
"$MII_GENERATE" "$MODEL" --backend host --n 2 --seed 7 --temperature 1.5 --top-p 1 --max-new-tokens 12 --json \
  "${args[@]}" >"$WORK/samples.jsonl" 2>/dev/null || fail "mii-generate --n 2 failed"
"$PYTHON" -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
prompts = sys.argv[3:]
json.dump({prompts[r["index"]]: [s["generated_text"] for s in r["samples"]] for r in rows}, open(sys.argv[2], "w"))
' "$WORK/samples.jsonl" "$WORK/samples.json" "${prompts[@]}"

start_server --api-key oracle-key
node "$ROOT/tests/serve/openai_client_test.js" "$NPM_DIR/node_modules/openai" "$SERVER_URL" oracle-key "$WORK/expected.json" \
  "$WORK/samples.json" ||
  fail "the openai client's checks failed"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || fail "mii-serve exited with $? after SIGTERM"
SERVER_PID=
echo "openai npm client: all checks passed"
