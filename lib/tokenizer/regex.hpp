// A compiled PCRE2 pattern (UTF + UCP, JIT where available) with the syntax
// of the Rust `regex` crate that HF `tokenizers` uses.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace musespark::tokenizer {

class Regex {
 public:
  // Compiles `pattern`. Rust-regex `\s` / `\S` are rewritten to match
  // Unicode White_Space exactly (PCRE2's \s lacks U+0085). Errors:
  // Error{format} naming `file` and `field` when the pattern does not compile.
  Regex(const std::string& pattern, const std::string& file, const std::string& field);
  // A pattern matching `literal` exactly.
  static std::string escape(std::string_view literal);

  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // All non-overlapping matches in `text` (valid UTF-8), as [begin, end) byte
  // offsets, left to right. Thread-safe (per-call match state).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Code;
  std::unique_ptr<Code> code_;
};

// Rewrites Rust-regex whitespace classes for PCRE2 (exposed for tests).
std::string translate_rust_regex(std::string_view pattern);

}  // namespace musespark::tokenizer
