#!/usr/bin/python3
"""Compares mii-chat-template with Python jinja2 configured as transformers configures it
(jinja_oracle.py), byte for byte:

  1. the real chat templates in .cache/tokenizers/<model>/tokenizer_config.json (fetched by
     tools/fetch-tokenizers.sh) x the conversations of oracle_conversations.py;
  2. one small template per construct (oracle_constructs.py), and random templates drawn from the
     same constructs with random whitespace control (oracle_random.py, fixed seeds);
  3. where a template comes from: chat_template.jinja over tokenizer_config.json, named
     templates (a list in the config, additional_chat_templates/), "tool_use" picked with tools.

For each case both must agree: the same text, or the same raise_exception message, or both
fail (a mii::error / a jinja2 error).

Two ways to run mii's side:
  --runner build/tests/mii_chat_oracle_runner  writes every case with jinja2's outcome to a JSON
                                      file and runs the runner (tests/chat/oracle/runner.cpp) once,
                                      which renders them in-process (CTest's chat_oracle: fast);
  --tool build/tools/mii-chat-template runs the command-line tool once per case (slower; the same
                                      comparison through the tool's exit codes and stdout).

    /usr/bin/python3 tests/chat/oracle_test.py --runner build/tests/mii_chat_oracle_runner [--cache .cache/tokenizers] [-k NAME] [-v]
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jinja_oracle  # noqa: E402
from oracle_constructs import CASES, VARS  # noqa: E402
from oracle_conversations import CONVERSATIONS  # noqa: E402
from oracle_random import random_template  # noqa: E402

REAL_MODELS = ["llama3", "llama3_1", "qwen3", "gemma3", "deepseek_v3"]

CONSTRUCT_CONFIG = {
    "bos_token": "<s>",
    "eos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": False, "normalized": True},
    "pad_token": None,
    "unk_token": "<unk>",
    "additional_special_tokens": ["<a>", {"content": "<b>"}],
    "extra_special_tokens": {"image_token": "<img>"},
    "model_max_length": 1000000000000000019884624838656,
}


def oracle(templates, tokens, variables):
    """('ok', text) | ('refused', message) | ('error', description)"""
    # A fresh copy per render: jinja2 can modify what it is given (indent on a list extends it).
    variables = json.loads(json.dumps(variables))
    try:
        return "ok", jinja_oracle.render(templates, variables, tokens)
    except jinja_oracle.TemplateRefused as e:
        return "refused", str(e)
    except Exception as e:  # noqa: BLE001
        return "error", f"{type(e).__name__}: {e}"


def run_tool(tool, args, variables):
    p = subprocess.run([tool, *args], input=json.dumps(variables).encode(), capture_output=True, timeout=60)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    if p.returncode == 0:
        return "ok", out
    if p.returncode == 1:
        return "refused", err[:-1] if err.endswith("\n") else err
    if p.returncode == 2:
        return "error", err.strip()
    return "crash", f"exit {p.returncode}: {err.strip()}"


class Report:
    """Collects the cases: (name, jinja2's outcome, how mii renders it). finish() then runs mii:
    the tool a few at a time (starting a process costs tens of milliseconds here), or the runner
    once over all of them."""

    def __init__(self, verbose, tool=None, runner=None):
        self.passed = self.failed = 0
        self.verbose = verbose
        self.tool, self.runner = tool, runner
        self.kinds = {}
        self.cases = []

    def compare(self, name, expected, args, variables):
        self.kinds[expected[0]] = self.kinds.get(expected[0], 0) + 1
        self.cases.append((name, expected, args, variables))

    def finish(self, tmp):
        if self.tool:
            with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
                futures = [pool.submit(run_tool, self.tool, args, variables) for _, _, args, variables in self.cases]
                for (name, expected, _, _), future in zip(self.cases, futures):
                    self.check(name, expected, future.result())
            return
        # The runner reads the cases and compares; it prints the disagreements and the count.
        cases_file = os.path.join(tmp, "oracle_cases.json")
        rows = []
        for name, expected, args, variables in self.cases:
            row = {"name": name, "path": args[0], "variables": json.dumps(variables), "outcome": expected[0],
                   "text": expected[1] if expected[0] != "error" else ""}
            if len(args) == 3:  # PATH --template FILE
                row["template"] = args[2]
            rows.append(row)
        with open(cases_file, "w", encoding="utf-8") as f:
            json.dump(rows, f, ensure_ascii=False)
        p = subprocess.run([self.runner, cases_file])
        if p.returncode == 0:
            self.passed += len(self.cases)
        else:
            self.failed += 1

    def check(self, name, expected, actual):
        same = expected[0] == actual[0] and (expected[0] == "error" or expected[1] == actual[1])
        if same:
            self.passed += 1
            if self.verbose:
                print(f"ok   {name} ({expected[0]})")
            return
        self.failed += 1
        print(f"FAIL {name}")
        print(f"  jinja2: {expected[0]}: {expected[1]!r}")
        print(f"  mii:    {actual[0]}: {actual[1]!r}")


def check_real_templates(cache, report, only):
    for model in REAL_MODELS:
        path = os.path.join(cache, model)
        if not os.path.isfile(os.path.join(path, "tokenizer_config.json")):
            report.failed += 1
            print(f"FAIL {model}: {path}/tokenizer_config.json is missing (run tools/fetch-tokenizers.sh)")
            continue
        templates, tokens = jinja_oracle.load_model_templates(path)
        for conv_name, variables in CONVERSATIONS.items():
            name = f"{model}/{conv_name}"
            if only and only not in name:
                continue
            report.compare(name, oracle(templates, tokens, variables), [path], variables)


def check_constructs(report, only, tmp):
    config = os.path.join(tmp, "tokenizer_config.json")
    with open(config, "w", encoding="utf-8") as f:
        f.write(json.dumps(CONSTRUCT_CONFIG))
    tokens = jinja_oracle.special_tokens(json.loads(json.dumps(CONSTRUCT_CONFIG)))
    for index, (name, template, variable_sets) in enumerate(CASES):
        if only and only not in name:
            continue
        template_file = os.path.join(tmp, f"template{index}.jinja")
        with open(template_file, "w", encoding="utf-8", newline="") as f:
            f.write(template)
        for k, variables in enumerate(variable_sets or [VARS]):
            label = name if k == 0 else f"{name}#{k}"
            report.compare(label, oracle(template, tokens, variables), [config, "--template", template_file], variables)


def check_random(report, only, tmp, seeds):
    config = os.path.join(tmp, "tokenizer_config.json")
    tokens = jinja_oracle.special_tokens(CONSTRUCT_CONFIG)
    for seed in seeds:
        name = f"random/{seed}"
        if only and only not in name:
            continue
        template = random_template(seed)
        template_file = os.path.join(tmp, f"random{seed}.jinja")
        with open(template_file, "w", encoding="utf-8", newline="") as f:
            f.write(template)
        report.compare(name, oracle(template, tokens, VARS), [config, "--template", template_file], VARS)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def check_template_sources(report, only, tmp):
    """Where the template comes from, and which named one renders."""
    conv = {"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": True}
    with_tools = dict(conv, tools=[{"type": "function", "function": {"name": "f"}}])
    token_fields = {"bos_token": "<s>", "eos_token": "</s>"}
    layouts = {
        # chat_template.jinja wins over the config's field (transformers >= 4.43)
        "jinja_file_wins": {
            "tokenizer_config.json": json.dumps(dict(token_fields, chat_template="CONFIG {{ bos_token }}")),
            "chat_template.jinja": "FILE {{ bos_token }}{{ messages[0].content }}\n",
        },
        "config_field_only": {"tokenizer_config.json": json.dumps(dict(token_fields, chat_template="CONFIG {{ eos_token }}"))},
        "config_named_list": {
            "tokenizer_config.json": json.dumps(
                dict(token_fields, chat_template=[
                    {"name": "default", "template": "DEFAULT {{ tools is none }}"},
                    {"name": "tool_use", "template": "TOOLS {{ tools|length }}"},
                ])
            )
        },
        "config_named_no_default": {
            "tokenizer_config.json": json.dumps(dict(token_fields, chat_template=[{"name": "tool_use", "template": "T"}]))
        },
        "additional_templates": {
            "tokenizer_config.json": json.dumps(dict(token_fields, chat_template="CONFIG")),
            "chat_template.jinja": "MAIN",
            "additional_chat_templates/tool_use.jinja": "EXTRA TOOL {{ tools[0].function.name }}",
        },
        "jinja_file_without_config": {"chat_template.jinja": "NO CONFIG {{ bos_token is defined }}"},
    }
    for layout, files in layouts.items():
        model_dir = os.path.join(tmp, layout)
        for rel, text in files.items():
            write(os.path.join(model_dir, rel), text)
        templates, tokens = jinja_oracle.load_model_templates(model_dir)
        for conv_name, variables in (("plain", conv), ("tools", with_tools)):
            name = f"source/{layout}/{conv_name}"
            if only and only not in name:
                continue
            report.compare(name, oracle(templates, tokens, variables), [model_dir], variables)


def main():
    ap = argparse.ArgumentParser()
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--tool", help="mii-chat-template, run once per case")
    mode.add_argument("--runner", help="mii_chat_oracle_runner, which renders all cases in one process")
    ap.add_argument("--cache", default=os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "tokenizers"))
    ap.add_argument("-k", dest="only", default="")
    ap.add_argument("-v", dest="verbose", action="store_true")
    ap.add_argument("--random", type=int, default=300, help="how many random templates (seeds 0..N-1)")
    ap.add_argument("--random-from", type=int, default=0, help="first random seed")
    args = ap.parse_args()
    report = Report(args.verbose, tool=args.tool, runner=args.runner)
    with tempfile.TemporaryDirectory(prefix="mii-chat-oracle-") as tmp:
        check_real_templates(args.cache, report, args.only)
        check_constructs(report, args.only, tmp)
        check_template_sources(report, args.only, tmp)
        check_random(report, args.only, tmp, range(args.random_from, args.random_from + args.random))
        report.finish(tmp)
    print(f"chat oracle: jinja2 {jinja_oracle.jinja2.__version__}; outcomes compared: " +
          ", ".join(f"{k} {v}" for k, v in sorted(report.kinds.items())))
    if args.tool:
        print(f"{report.passed} passed, {report.failed} failed")
    return 1 if report.failed or report.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
