// musespark — byte-level BPE tokenizer read from an HF `tokenizer.json`.
//
// Encodes and decodes exactly as Hugging Face `tokenizers` does for the
// byte-level BPE files of Qwen3 / Qwen2.5 / Llama 3:
//
//   raw text ─▶ added/special tokens matched in the raw text
//            ─▶ normalizer (NFC, or none)
//            ─▶ pre-tokenizer (Split by regex, ByteLevel)
//            ─▶ BPE merges by rank (ignore_merges honoured)
//
// and decodes with the ByteLevel decoder (invalid UTF-8 in the decoded bytes
// becomes U+FFFD, as HF's lossy decoding does).
//
// Supported tokenizer.json parts (anything else is Error{unsupported} naming
// `tokenizer.json` and the field, e.g. `model.type`):
//   normalizer:     null | NFC | NFD | NFKC | NFKD | Sequence of those
//   pre_tokenizer:  ByteLevel | Sequence of Split (Regex or String pattern,
//                   behavior Isolated or Removed, invert false) and ByteLevel
//   model:          BPE (vocab, merges as "a b" or ["a","b"], ignore_merges)
//   decoder:        ByteLevel
// The post_processor is ignored: encode() never adds BOS/EOS.
//
// Thread safety: a Tokenizer is immutable after load(); every const method may
// be called from any number of threads at once (the internal BPE word cache
// is guarded by its own lock). A StreamDecoder is one stream's state: use each
// from one thread at a time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace musespark {

class Tokenizer {
 public:
  // Loads <model_dir>/tokenizer.json and, if present,
  // <model_dir>/tokenizer_config.json (bos_token, eos_token); or, given a
  // GGUF file, its tokenizer.ggml.* keys (lib/tokenizer/gguf_vocab.hpp),
  // which give the same ids as the model's tokenizer.json.
  // Errors: Error{io} if tokenizer.json cannot be read; Error{format} if a file
  // is not JSON or a field is malformed; Error{unsupported} for a component
  // type this tokenizer does not implement. Each names the file and the field.
  static Tokenizer load(const std::filesystem::path& model_dir);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Token ids of `text` (raw UTF-8). No BOS/EOS is added; added and special
  // tokens written in the text (e.g. "<|im_start|>") are recognised as such.
  // Errors: Error{format} if `text` is not valid UTF-8 (names the byte offset).
  std::vector<int32_t> encode(std::string_view text) const;

  // The text for `ids`: token bytes concatenated, invalid UTF-8 replaced by
  // U+FFFD. With skip_special, special tokens (added tokens marked special)
  // are left out. Errors: Error{invalid_argument} for an id outside
  // [0, vocab_size()) or an id that no token has.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // The raw bytes token `id` stands for (may be part of a UTF-8 character).
  // For an added token, its content. Errors: as decode().
  std::string token_bytes(int32_t id) const;

  // The id of the token spelled exactly `token`, as written in tokenizer.json
  // (vocab entries in their byte-level spelling, e.g. "Ġhello", or an added
  // token's content, e.g. "<|im_end|>"); std::nullopt if there is none.
  std::optional<int32_t> token_id(std::string_view token) const;

  // The token spelled as in tokenizer.json for `id` (inverse of token_id).
  // Errors: as decode().
  std::string token_string(int32_t id) const;

  // max id + 1 over the vocab and the added tokens.
  int32_t vocab_size() const;

  // True for an added token marked "special"; false otherwise (also for ids
  // out of range).
  bool is_special(int32_t id) const;

  // Ids of tokenizer_config.json's bos_token / eos_token (a string or
  // {"content": ...}); std::nullopt when absent or null.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;

  // Streaming detokenisation: push ids one at a time and get back only
  // complete UTF-8 text, never half a character. The concatenation of every
  // push() and the final flush() equals decode() of all the ids pushed.
  // Holds a reference to the Tokenizer, which must outlive it. Not
  // thread-safe (one stream's state); cheap to create.
  class StreamDecoder {
   public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
    // Text completed by `id` (may be empty). Errors: as decode().
    std::string push(int32_t id);
    // The text still held back (an incomplete character becomes U+FFFD);
    // the decoder is empty afterwards and can be reused.
    std::string flush();

   private:
    const Tokenizer* tokenizer_;
    bool skip_special_;
    std::string pending_;  // bytes of a character not yet complete
  };

 private:
  struct Impl;
  struct Json;  // a parsed tokenizer.json (tokenizer.cpp)
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  static std::unique_ptr<Impl> build(const Json& json, const std::string& file);
  std::unique_ptr<Impl> impl_;
};

}  // namespace musespark
