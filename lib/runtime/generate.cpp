#include "musespark/generate.hpp"

#include <algorithm>
#include <chrono>
#include <optional>

#include "musespark/error.hpp"

namespace musespark {

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::eos: return "eos";
    case StopReason::stop_string: return "stop_string";
    case StopReason::length: return "length";
  }
  return "length";
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

size_t stop_string_holdback(std::string_view text, std::span<const std::string> stops) noexcept {
  size_t hold = 0;
  for (const auto& s : stops) {
    if (s.empty()) continue;
    for (size_t n = std::min(s.size() - 1, text.size()); n > hold; --n)
      if (text.substr(text.size() - n) == std::string_view(s).substr(0, n)) {
        hold = n;
        break;
      }
  }
  return hold;
}

GenerateResult generate(Runtime& runtime, const Tokenizer* tokenizer, std::span<const int32_t> prompt,
                        const GenerateOptions& options) {
  validate(options.sampling);
  if (options.max_tokens < 1)
    throw Error(ErrorKind::invalid_argument, "", "max_tokens", "must be at least 1");
  if (prompt.empty()) throw Error(ErrorKind::invalid_argument, "", "prompt", "is empty");
  if (!tokenizer && !options.stop_strings.empty())
    throw Error(ErrorKind::invalid_argument, "", "stop_strings", "need a tokenizer");
  for (const auto& s : options.stop_strings)
    if (s.empty()) throw Error(ErrorKind::invalid_argument, "", "stop_strings", "an empty stop string");

  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  const int64_t max_context = runtime.model().info().max_context;
  const int64_t capacity = std::min<int64_t>(max_context, result.prompt_tokens + options.max_tokens);
  if (result.prompt_tokens >= max_context)
    throw Error(ErrorKind::context_overflow, "", "prompt",
                std::to_string(prompt.size()) + " tokens leave no room to generate within the context of " +
                    std::to_string(max_context) + " tokens");

  const SequenceId seq = runtime.create(capacity);
  struct Release {
    Runtime& rt;
    SequenceId id;
    ~Release() { rt.release(id); }
  } release{runtime, seq};

  auto t0 = Clock::now();
  runtime.prefill(seq, prompt);
  result.prefill_seconds = seconds_since(t0);

  Sampler sampler(options.sampling);
  // Models pad their vocabulary beyond the tokenizer's (Qwen3: 151936 rows,
  // 151669 tokens); with a tokenizer, ids without a token are never sampled.
  size_t sample_vocab = static_cast<size_t>(runtime.model().info().vocab_size);
  if (tokenizer) sample_vocab = std::min<size_t>(sample_vocab, tokenizer->vocab_size());
  std::optional<Tokenizer::StreamDecoder> stream;
  if (tokenizer) stream.emplace(*tokenizer);
  std::string text;      // all text so far
  size_t emitted = 0;    // bytes of `text` passed to on_token
  t0 = Clock::now();
  for (int32_t step = 0; step < options.max_tokens; ++step) {
    SampledToken tok = sampler.sample(runtime.logits(seq).first(sample_vocab), runtime.tokens(seq));
    result.tokens.push_back(tok.id);
    result.details.push_back(tok);
    const bool is_stop_token = std::find(options.stop_token_ids.begin(), options.stop_token_ids.end(), tok.id) !=
                               options.stop_token_ids.end();
    if (is_stop_token) {
      result.stop_reason = StopReason::eos;
      if (options.on_token) options.on_token(tok);
      break;
    }
    bool stop_string_found = false;
    if (stream) {
      text += stream->push(tok.id);
      for (const auto& s : options.stop_strings) {
        size_t at = text.find(s, emitted > s.size() ? emitted - s.size() : 0);
        if (at != std::string::npos) {
          text.resize(at);
          stop_string_found = true;
        }
      }
    }
    const size_t ready = stop_string_found ? text.size() : text.size() - stop_string_holdback(text, options.stop_strings);
    if (ready > emitted) {
      if (options.on_text) options.on_text(std::string_view(text).substr(emitted, ready - emitted));
      emitted = ready;
    }
    const bool go_on = !options.on_token || options.on_token(tok);
    if (stop_string_found) {
      result.stop_reason = StopReason::stop_string;
      break;
    }
    if (!go_on || step + 1 == options.max_tokens) break;
    const int32_t next = tok.id;
    runtime.decode(std::span<const SequenceId>(&seq, 1), std::span<const int32_t>(&next, 1));
  }
  if (stream && result.stop_reason != StopReason::stop_string) {
    text += stream->flush();
    // Text held back for a stop string that never came.
    if (options.on_text && text.size() > emitted) options.on_text(std::string_view(text).substr(emitted));
  }
  result.decode_seconds = seconds_since(t0);
  result.text = std::move(text);
  return result;
}

}  // namespace musespark
