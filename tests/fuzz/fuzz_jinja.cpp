// A chat template (lib/tokenizer/jinja.hpp): parsed, then rendered with a
// small conversation. Bad templates may only throw musespark::Error.
#include <string_view>

#include "musespark/error.hpp"
#include "tokenizer/jinja.hpp"

using musespark::detail::jinja::Template;
using musespark::detail::jinja::Value;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Value context = Value::from_json(nlohmann::ordered_json::parse(R"({
    "messages": [{"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "Hi <think> ü 日本"},
                 {"role": "assistant", "content": "<think>\nhm\n</think>\n\nHello", "reasoning_content": "hm",
                  "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": [1, 2.5, null]}}}]},
                 {"role": "tool", "content": "42"}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
               "properties": {"a": {"type": "array", "items": {"type": "number"}}}, "required": ["a"]}}}],
    "add_generation_prompt": true, "enable_thinking": false, "bos_token": "<s>", "eos_token": "</s>"})"));
  try {
    Template t = Template::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.jinja");
    (void)t.render(context);
  } catch (const musespark::Error&) {
  }
  return 0;
}
