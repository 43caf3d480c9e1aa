#!/usr/bin/python3
"""Writes the seed corpus of tests/fuzz/fuzz_chat_template.cpp (tests/fuzz/corpus/chat_template/)
from the chat suite's own cases: the construct templates of oracle_constructs.py with their
variables (mode byte 0: TEMPLATE NUL VARIABLES), the conversations of oracle_conversations.py for
each real template the fuzzer loads from the cache (odd mode bytes), and a few random templates of
oracle_random.py. Deterministic; keeps the corpus small.

    /usr/bin/python3 tests/chat/make_fuzz_corpus.py
"""
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from oracle_constructs import CASES, VARS  # noqa: E402
from oracle_conversations import CONVERSATIONS  # noqa: E402
from oracle_random import random_template  # noqa: E402

OUT = os.path.join(HERE, "..", "fuzz", "corpus", "chat_template")


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    variables = json.dumps(VARS, ensure_ascii=False).encode()
    for name, template, _ in CASES[::3]:
        write(f"construct_{name}.bin", b"\x00" + template.encode() + b"\x00" + variables)
    for mode, model in ((1, "llama3"), (3, "qwen3"), (5, "gemma3"), (7, "deepseek_v3")):
        for conv in ("system_multi_turn", "tool_calls", "unicode", "roles_not_alternating", "content_parts"):
            write(f"real_{model}_{conv}.bin", bytes([mode]) + json.dumps(CONVERSATIONS[conv], ensure_ascii=False).encode())
    for seed in range(0, 40, 4):
        write(f"random_{seed}.bin", b"\x00" + random_template(seed).encode())


if __name__ == "__main__":
    main()
