#!/usr/bin/python3
"""Renders chat templates with Python jinja2 configured exactly as Hugging Face transformers'
apply_chat_template(tokenize=False) configures it (transformers/utils/chat_template_utils.py,
_compile_jinja_template and render_jinja_template; tokenization_utils_base.py for where the
template comes from and which named template is used). This is the oracle mii's C++ engine
(src/chat/) is compared with, byte for byte.

As a module: load_model_templates(path), special_tokens(config), render(template, variables,
special_tokens). As a program:

    jinja_oracle.py PATH [--template FILE] < variables.json

mirrors mii-chat-template: prints the rendered text; exit 1 with the message on stderr when the
template calls raise_exception, 2 on any other error.

Needs Debian's python3-jinja2 (3.1.x): run it with /usr/bin/python3.
"""
import functools
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateRefused(Exception):
    """The template's raise_exception(message) was called."""


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker: {% generation %}...{% endgeneration %} renders its body
    through a call block (tracking of assistant indices is not needed for the text)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


def _raise_exception(message):
    raise TemplateRefused(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # transformers replaces jinja2's tojson (which escapes HTML characters) with plain json.dumps.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format):
    return datetime.now().strftime(format)


@functools.lru_cache(maxsize=None)  # transformers caches compiled templates the same way
def compile_template(source):
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


_NAMED_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _token_text(v):
    if isinstance(v, dict):  # an AddedToken as tokenizer_config.json stores it
        return v["content"]
    return v


def special_tokens(config):
    """transformers' special_tokens_map for a tokenizer_config.json: the named tokens that are set,
    additional_special_tokens (a list) and the model-specific extra_special_tokens."""
    out = {}
    for key, v in config.items():
        if key in _NAMED_TOKENS and v is not None:
            out[key] = _token_text(v)
        elif key == "additional_special_tokens" and isinstance(v, list) and v:
            out[key] = [_token_text(t) for t in v]
        elif key == "extra_special_tokens" and isinstance(v, dict):
            for name, t in v.items():
                if t is not None:
                    out[name] = _token_text(t)
    return out


def load_model_templates(path):
    """(templates, special tokens): templates is a str, or a dict of named templates, picked as
    transformers does: chat_template.jinja (+ additional_chat_templates/*.jinja) in a model
    directory replace tokenizer_config.json's chat_template field."""
    config_path = path
    templates = None
    if os.path.isdir(path):
        config_path = os.path.join(path, "tokenizer_config.json")
        files = {}
        main = os.path.join(path, "chat_template.jinja")
        if os.path.isfile(main):
            files["default"] = open(main, encoding="utf-8").read()
        extra = os.path.join(path, "additional_chat_templates")
        if os.path.isdir(extra):
            for name in sorted(os.listdir(extra)):
                if name.endswith(".jinja"):
                    files[name[: -len(".jinja")]] = open(os.path.join(extra, name), encoding="utf-8").read()
        if len(files) == 1 and "default" in files:
            templates = files["default"]
        elif files:
            templates = files
    config = {}
    if os.path.isfile(config_path):
        config = json.load(open(config_path, encoding="utf-8"))
    if templates is None:
        field = config.get("chat_template")
        if isinstance(field, list):
            templates = {t["name"]: t["template"] for t in field}
        else:
            templates = field
    if templates is None:
        raise ValueError(f"{path}: no chat template")
    return templates, special_tokens(config)


def pick_template(templates, tools):
    """transformers' get_chat_template(chat_template=None, tools=tools)."""
    if isinstance(templates, dict):
        if tools is not None and "tool_use" in templates:
            return templates["tool_use"]
        if "default" in templates:
            return templates["default"]
        raise ValueError("multiple chat templates and no default")
    return templates


def render(templates, variables, tokens):
    """apply_chat_template(..., tokenize=False): render(messages=..., tools=..., documents=...,
    add_generation_prompt=..., **{**special_tokens_map, **kwargs})."""
    kwargs = dict(variables)
    args = {
        "tools": kwargs.pop("tools", None),
        "documents": kwargs.pop("documents", None),
        "add_generation_prompt": kwargs.pop("add_generation_prompt", False),
    }
    source = pick_template(templates, args["tools"])
    return compile_template(source).render(**args, **{**tokens, **kwargs})


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    path = argv[1]
    try:
        templates, tokens = load_model_templates(path) if "--template" not in argv else (None, None)
        if "--template" in argv:
            template_file = argv[argv.index("--template") + 1]
            templates = open(template_file, encoding="utf-8").read()
            config = os.path.join(path, "tokenizer_config.json") if os.path.isdir(path) else path
            tokens = special_tokens(json.load(open(config, encoding="utf-8"))) if os.path.isfile(config) else {}
        variables = json.loads(sys.stdin.read())
        sys.stdout.write(render(templates, variables, tokens))
        return 0
    except TemplateRefused as e:
        print(e, file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - every other failure is "the template is broken"
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
