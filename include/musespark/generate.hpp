// musespark — generating text from one prompt: prefill, then decode until a
// stop token, a stop string or the token limit.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "musespark/runtime.hpp"
#include "musespark/sampling.hpp"
#include "musespark/tokenizer.hpp"

namespace musespark {

enum class StopReason { eos, stop_string, length };
const char* stop_reason_name(StopReason reason);  // "eos", "stop_string", "length"

struct GenerateOptions {
  int32_t max_tokens = 128;                 // generated tokens at most (>= 1)
  SamplingParams sampling;
  std::vector<int32_t> stop_token_ids;      // generation ends after one of these
  std::vector<std::string> stop_strings;    // generation ends when the text contains one
  // Called for every generated token; return false to stop early (reason: length).
  std::function<bool(const SampledToken& token)> on_token;
  // Called with each new piece of text, in order; their concatenation is
  // GenerateResult::text. Text is held back while it could be the start of a
  // stop string or of a UTF-8 character.
  std::function<void(std::string_view text)> on_text;
};

struct GenerateResult {
  std::vector<int32_t> tokens;       // generated ids, including the stop token if one ended it
  std::string text;                  // their text, without the stop token or stop string
  std::vector<SampledToken> details; // per generated token: its logprob and top alternatives
  StopReason stop_reason = StopReason::length;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// Runs `prompt` (at least one token) in a new sequence of `runtime` and
// generates. `tokenizer` may be null when no text is wanted; stop strings
// then need one (Error{invalid_argument}). The sequence is released before
// returning. Errors: those of Runtime::prefill/decode and validate(sampling).
GenerateResult generate(Runtime& runtime, const Tokenizer* tokenizer, std::span<const int32_t> prompt,
                        const GenerateOptions& options);

// For streaming text that stop strings may cut: the length of the longest
// end of `text` that is a proper beginning of one of `stops` — that much must
// be held back, it may yet become a stop string (generate's on_text and the
// server's stream hold back by this rule). No allocation; thread-safe.
size_t stop_string_holdback(std::string_view text, std::span<const std::string> stops) noexcept;

}  // namespace musespark
