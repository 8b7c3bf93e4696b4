"""`musespark template` against Python jinja2 configured as transformers' apply_chat_template.

The templates are the real Qwen3 and Llama 3 ones (node_modules) and ours in the shapes of Qwen2.5, DeepSeek-R1,
Llama 3.1, gpt-oss and Mistral (tests/tokenizer/jinja_templates); the conversations here are not among those of
the C++ golden cases (tests/tokenizer/jinja_expected.json), and the reference is rendered live.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import BIN, SOURCE_DIR

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "tokenizer"))
import jinja_reference as ref  # noqa: E402

CONVERSATION = {
    "tools": [{"type": "function", "function": {
        "name": "convert", "description": "Convert an amount between currencies",
        "parameters": {"type": "object", "properties": {
            "amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}},
            "required": ["amount", "from", "to"]}}}],
    "messages": [
        {"role": "system", "content": "You convert money.\n\nBe exact."},
        {"role": "user", "content": "  How much is 12.5 EUR in CHF?\t"},
        {"role": "assistant", "content": "", "reasoning_content": "Need the rate.",
         "tool_calls": [{"id": "c7", "type": "function",
                         "function": {"name": "convert", "arguments": {"amount": 12.5, "from": "EUR", "to": "CHF"}}}]},
        {"role": "tool", "content": "11.70"},
        {"role": "assistant", "content": "<think>\nrate 0.936\n</think>\n\n12.5 EUR is 11.70 CHF."},
        {"role": "user", "content": "Und 3 «Franken» → 円? 🙂"}],
}


def template_args(name, tmp_path):
    spec = ref.TEMPLATES[name]
    if "field" in spec:
        return ["--model", os.path.join(SOURCE_DIR, os.path.dirname(spec["path"]))], {}
    kwargs = {k: spec[k] for k in ("bos_token", "eos_token") if k in spec}
    return ["--template", os.path.join(SOURCE_DIR, spec["path"])], kwargs


def write(tmp_path, name, value):
    path = tmp_path / name
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("name,generation,thinking", [
    *[(n, True, None) for n in ref.TEMPLATES],
    ("qwen3", False, None), ("qwen3", True, False), ("reasoning_r1", True, True)])
def test_template_renders_as_jinja2(name, generation, thinking, tmp_path):
    source, config = ref.load_template(ref.TEMPLATES[name])
    args, kwargs = template_args(name, tmp_path)
    if thinking is not None:
        kwargs["enable_thinking"] = thinking
    context = ref.context_of(config, CONVERSATION, generation, thinking)
    try:
        want = ref.environment().from_string(source).render(**context)
    except Exception as e:  # the template refuses the conversation: so must we
        want = e
    cmd = [BIN, "template", *args, "--messages", write(tmp_path, "m.json", CONVERSATION["messages"]),
           "--tools", write(tmp_path, "t.json", CONVERSATION["tools"])]
    if kwargs:
        cmd += ["--kwargs", write(tmp_path, "k.json", kwargs)]
    if not generation:
        cmd.append("--no-generation-prompt")
    # strftime_now: the reference renders at its fixed moment, and so must we.
    p = subprocess.run(cmd, capture_output=True, env={**os.environ, "SOURCE_DATE_EPOCH": str(ref.SOURCE_DATE_EPOCH)})
    if isinstance(want, Exception):
        assert p.returncode == 1 and str(want) in p.stderr.decode(), p.stderr.decode()
    else:
        assert p.returncode == 0, p.stderr.decode()
        assert p.stdout.decode("utf-8") == want


def test_template_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% for m in messages %}\n{{ m.content }\n", encoding="utf-8")
    messages = write(tmp_path, "m.json", [{"role": "user", "content": "hi"}])
    p = subprocess.run([BIN, "template", "--template", str(bad), "--messages", messages], capture_output=True)
    err = p.stderr.decode()
    assert p.returncode == 1 and err.startswith("error: ") and "bad.jinja" in err and "line 2" in err, err
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    p = subprocess.run([BIN, "template", "--model", os.path.join(SOURCE_DIR, "models", "musespark-mini"),
                        "--messages", str(broken)], capture_output=True)
    err = p.stderr.decode()
    assert p.returncode == 1 and "broken.json" in err and "messages" in err, err
