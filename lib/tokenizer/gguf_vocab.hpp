// The tokenizer of a GGUF file: its tokenizer.ggml.* keys turned into the
// tokenizer.json that Hugging Face would hold for the same model, so one
// byte-level BPE reads both (token ids identical to the model's own
// tokenizer.json).
//
//   tokenizer.ggml.model   "gpt2" (byte-level BPE); anything else is
//                          Error{unsupported} naming the key
//   tokenizer.ggml.tokens  the token strings by id (byte-level spelling)
//   tokenizer.ggml.token_type  1 normal and 6 byte -> the BPE vocabulary;
//                          3 control -> added tokens marked special; 4
//                          user-defined -> added tokens not special;
//                          2 unknown, 5 unused -> no token
//   tokenizer.ggml.merges  "a b" per merge, by rank
//   tokenizer.ggml.pre     the pre-tokenizer, by llama.cpp's name: qwen2 and
//                          deepseek-r1-qwen (Qwen2's split, NFC), llama-bpe,
//                          llama3 and smaug-bpe (Llama 3's split; whole words
//                          in the vocabulary are kept, HF's ignore_merges),
//                          gpt2 and default (GPT-2's); others are
//                          Error{unsupported} naming the key and the name
//   tokenizer.ggml.bos_token_id / eos_token_id  -> bos / eos
#pragma once

#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/gguf.hpp"

namespace musespark::tokenizer {

struct GgufVocab {
  nlohmann::json tokenizer_json;
  std::optional<int32_t> bos, eos;
};

// Errors: Error{format} naming the file and the key for a missing or
// mistyped key, token_type or merges of the wrong length, a token id past
// tokenizer.ggml.tokens; Error{unsupported} as above.
GgufVocab gguf_vocab(const detail::GgufFile& gguf);

// The token id under `key` (tokenizer.ggml.bos_token_id, ...); std::nullopt
// when the file has no such key. Error{format} naming the file and the key
// when it is past tokenizer.ggml.tokens (or the file has no tokens).
std::optional<int32_t> gguf_token_id(const detail::GgufFile& gguf, const char* key);

}  // namespace musespark::tokenizer
