"""Regenerates tests/distill/default_chat_expected.json (used by test_tokenizer_files.cpp).

Renders conversations with the default model's chat_template, taken from
lib/distill/tokenizer_files.cpp (the raw string kChatTemplate), using Python's
jinja2 configured as HF transformers does (sandboxed, trim_blocks,
lstrip_blocks). @lenml/tokenizers' Jinja engine has no str.split/lstrip, so
it cannot render assistant turns; hence this script. The output is committed
with the template it was made from (the test fails when they differ); CI does
not need jinja2. Usage (from the repo root):

    python3 tests/distill/render_default_chat.py
"""
import json, os, re

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
source = open(ROOT + '/lib/distill/tokenizer_files.cpp', encoding='utf-8').read()
template = re.search(r'R"TEMPLATE\((.*?)\)TEMPLATE"', source, re.S).group(1)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
t = env.from_string(template)
convs = {
 "single_user": [{"role": "user", "content": "What is 2 + 2?"}],
 "with_system": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a prime."}],
 "multi_turn_with_think": [{"role": "system", "content": "Be helpful."}, {"role": "user", "content": "Hi"},
   {"role": "assistant", "content": "<think>\nThe user greets.\n</think>\n\nHello! How can I help?"},
   {"role": "user", "content": "Count to three."}],
 "last_assistant_keeps_think": [{"role": "user", "content": "What is 12 + 30?"},
   {"role": "assistant", "content": "<think>\n12+30=42\n</think>\n\n42"}],
 "last_assistant_without_think": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "answer"}],
 "open_think_prefill": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "partial\n</think>\n\nok"}],
 "tool_round_trip": [{"role": "user", "content": "Weather?"},
   {"role": "assistant", "content": "<think>\nneed tool\n</think>\n\ncalling"},
   {"role": "tool", "content": "sunny"}, {"role": "tool", "content": "22C"},
   {"role": "assistant", "content": "<think>\ngot it\n</think>\n\nSunny, 22C."}],
 "system_later": [{"role": "user", "content": "a"}, {"role": "system", "content": "late"}, {"role": "user", "content": "b"}],
 "no_user": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "<think>\nx\n</think>\n\ny"}],
}
out = {}
for name, msgs in convs.items():
  for gen in [True, False]:
    for think in [True, False]:
      out[f"{name}|{gen}|{think}"] = t.render(messages=msgs, add_generation_prompt=gen, enable_thinking=think)
json.dump({"chat_template": template, "convs": convs, "out": out},
          open(ROOT + '/tests/distill/default_chat_expected.json', 'w', encoding='utf-8'), indent=1, ensure_ascii=False)
