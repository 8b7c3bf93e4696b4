// Reference ids and chat prompts for the default model's tokenizer files
// (tests/distill/test_tokenizer_files.cpp).
//
//   node tests/distill/reference_default_tokenizer.mjs <model_dir> <out.json>
//
// Loads <model_dir>/tokenizer.json and tokenizer_config.json (as written by
// write_tokenizer_files) with @lenml/tokenizers (the transformers.js port of
// HF tokenizers, with its Jinja engine) and writes
//   {"texts": [{text, ids}], "chats": [{messages, enable_thinking, text}]}
// where ids come from encode(text) without special tokens added and text from
// apply_chat_template with add_generation_prompt. Needs `npm install` at the
// repository root.
import { readFileSync, writeFileSync } from "node:fs";
import { TokenizerLoader } from "@lenml/tokenizers";

const [modelDir, outPath] = process.argv.slice(2);
if (!modelDir || !outPath) {
  console.error("usage: node reference_default_tokenizer.mjs <model_dir> <out.json>");
  process.exit(2);
}

const tokenizer = TokenizerLoader.fromPreTrained({
  tokenizerJSON: JSON.parse(readFileSync(`${modelDir}/tokenizer.json`, "utf8")),
  tokenizerConfig: JSON.parse(readFileSync(`${modelDir}/tokenizer_config.json`, "utf8")),
});

const texts = [
  "What is 37 + 48 - 19?",
  "37+48=85\n85-19=66\n</think>\n\n66",
  "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n",
  "<box>(333,0),(667,333)</box> red\n<zoom>(0,667),(333,1000)</zoom>47",
  "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>",
  "  spaces\tand\r\nnewlines  ",
  "Übersetze: 你好，世界 👋🏽 e\u0301",
  "<think <|im_end <|endoftext|>|>",
];

// Without assistant turns: this Jinja engine has no str.split/lstrip, which
// the template uses on assistant turns (render_default_chat.py checks those
// with Python's jinja2).
const conversations = [
  { messages: [{ role: "user", content: "What is 2 + 2?" }], enable_thinking: true },
  { messages: [{ role: "user", content: "What is 2 + 2?" }], enable_thinking: false },
  {
    messages: [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Hi" },
      { role: "system", content: "Later." },
      { role: "user", content: "Count to three." },
    ],
    enable_thinking: true,
  },
];

const out = {
  texts: texts.map((text) => ({ text, ids: Array.from(tokenizer.encode(text, { add_special_tokens: false })) })),
  chats: conversations.map((c) => ({
    ...c,
    text: tokenizer.apply_chat_template(c.messages, {
      tokenize: false,
      add_generation_prompt: true,
      enable_thinking: c.enable_thinking,
    }),
  })),
};
writeFileSync(outPath, JSON.stringify(out));
