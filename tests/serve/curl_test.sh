#!/usr/bin/env bash
# curl against the mii-serve program (the binary, as a user starts it): answers equal to
# mii-generate --greedy, streaming, MII's REST example, limits, a client that leaves, and SIGTERM
# with requests in flight (they finish; past --shutdown-timeout they are cancelled; exit 0).
#   bash tests/serve/curl_test.sh MII_SERVE MII_GENERATE
source "$(dirname "$0")/oracle_lib.sh" "$@"

json() { "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); print($1, end='')"; }
expect_eq() { [[ $1 == "$2" ]] || fail "$3: got [$1], expected [$2]"; }
expect_in() { [[ $1 == *"$2"* ]] || fail "$3: [$1] does not contain [$2]"; }

start_server --max-body-bytes 1048576
echo "mii-serve at $SERVER_URL"
expected=$(greedy_text "DeepSpeed is" 16)
[[ -n $expected ]] || fail "mii-generate gave no text"

# Completions, whole and streamed, and chat: the same greedy text as mii-generate.
got=$(curl -sS "$SERVER_URL/v1/completions" -H 'Content-Type: application/json' \
  -d '{"model": "demo-llama", "prompt": "DeepSpeed is", "max_tokens": 16, "temperature": 0}' | json 'd["choices"][0]["text"]')
expect_eq "$got" "$expected" "curl completion"
streamed=$(curl -sSN "$SERVER_URL/v1/completions" -d '{"prompt": "DeepSpeed is", "max_tokens": 16, "temperature": 0, "stream": true}')
[[ $(tail -n 1 <<<"$streamed") == "data: [DONE]" ]] || fail "the stream does not end with data: [DONE]: $streamed"
got=$(grep '^data: {' <<<"$streamed" | sed 's/^data: //' | "$PYTHON" -c '
import json, sys
print("".join(json.loads(l)["choices"][0]["text"] for l in sys.stdin), end="")')
expect_eq "$got" "$expected" "curl streamed completion"
got=$(curl -sS "$SERVER_URL/v1/chat/completions" \
  -d '{"messages": [{"role": "user", "content": "DeepSpeed is"}], "max_tokens": 16, "temperature": 0}' |
  json 'd["choices"][0]["message"]["content"]')
expect_eq "$got" "$expected" "curl chat completion"

# DeepSpeed-MII's README example of its REST API.
answer=$(curl -sS --header "Content-Type: application/json" --request POST \
  -d '{"prompts": ["DeepSpeed is", "Seattle is"], "max_length": 128}' "$SERVER_URL/mii/demo-llama")
expect_eq "$(json 'len(d)' <<<"$answer")" 2 "MII REST: responses"
expect_eq "$(json 'sorted(d[0].keys())' <<<"$answer")" "['finish_reason', 'generated_length', 'generated_text', 'prompt_length']" "MII REST: keys"

# Refusals: status and message.
code=$(curl -sS -o "$WORK/err.json" -w '%{http_code}' "$SERVER_URL/v1/completions" -d '{"prompt": "x", "max_tokens": "many"}')
expect_eq "$code" 400 "wrong type"
expect_in "$(cat "$WORK/err.json")" "'max_tokens' must be an integer, got string \\\"many\\\"" "wrong type message"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$SERVER_URL/v1/completions" -d '{"prompt": "x"')
expect_eq "$code" 400 "malformed JSON"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$SERVER_URL/health" -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' a)")
expect_eq "$code" 431 "huge header"
head -c 2000000 /dev/zero | tr '\0' a >"$WORK/big.txt"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$SERVER_URL/v1/completions" --data-binary @"$WORK/big.txt")
expect_eq "$code" 413 "huge body"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$SERVER_URL/v1/completions" -d '{"prompt": "x", "model": "other"}')
expect_eq "$code" 404 "unknown model"

# A client that leaves mid-stream: its request is cancelled and its KV blocks freed.
curl -sSN --max-time 0.5 "$SERVER_URL/v1/completions" \
  -d '{"prompt": "x", "max_tokens": 1900, "ignore_eos": true, "stream": true}' >/dev/null 2>&1 || true
for _ in $(seq 1 100); do
  metrics=$(curl -sS "$SERVER_URL/metrics")
  [[ $metrics == *$'mii_kv_blocks_used 0\n'* && $metrics == *$'mii_requests_in_flight 0\n'* ]] && break
  sleep 0.05
done
expect_in "$metrics" $'mii_kv_blocks_used 0\n' "KV blocks after a client left"
expect_in "$metrics" 'status="499"} 1' "the left client's request in the metrics"
expect_eq "$(curl -sS "$SERVER_URL/health")" '{"status":"ok"}' "health"

# SIGTERM with a request in flight: it finishes, then mii-serve exits 0.
curl -sS "$SERVER_URL/v1/completions" -d '{"prompt": "x", "max_tokens": 400, "ignore_eos": true}' >"$WORK/inflight.json" &
curl_pid=$!
for _ in $(seq 1 200); do [[ $(curl -sS "$SERVER_URL/metrics") == *$'mii_requests_in_flight 1\n'* ]] && break; sleep 0.01; done
kill -TERM "$SERVER_PID"
wait "$curl_pid" || fail "the request in flight at SIGTERM failed"
expect_eq "$(json 'd["usage"]["completion_tokens"]' <"$WORK/inflight.json")" 400 "the request in flight at SIGTERM"
wait "$SERVER_PID" || fail "mii-serve exited with $? after SIGTERM"
SERVER_PID=
expect_in "$(cat "$SERVER_LOG")" "mii-serve: stopped" "the shutdown note"

# Past --shutdown-timeout the request is cancelled: 503, and mii-serve still exits 0, promptly.
start_server --shutdown-timeout 0.2
curl -sS -o "$WORK/cut.json" -w '%{http_code}' "$SERVER_URL/v1/completions" \
  -d '{"prompt": "x", "max_tokens": 2000, "ignore_eos": true}' >"$WORK/cut.code" &
curl_pid=$!
for _ in $(seq 1 200); do [[ $(curl -sS "$SERVER_URL/metrics") == *$'mii_requests_in_flight 1\n'* ]] && break; sleep 0.01; done
start=$SECONDS
kill -INT "$SERVER_PID"
wait "$SERVER_PID" || fail "mii-serve exited with $? after SIGINT"
SERVER_PID=
wait "$curl_pid" || true
(( SECONDS - start < 5 )) || fail "shutdown took $((SECONDS - start)) s with --shutdown-timeout 0.2"
expect_eq "$(cat "$WORK/cut.code")" 503 "a request cancelled at the shutdown deadline"
expect_in "$(cat "$WORK/cut.json")" "shutting down" "its message"
echo "curl: all checks passed"
