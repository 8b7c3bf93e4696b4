// musespark — choosing the next token from logits.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace musespark {

struct SamplingParams {
  float temperature = 0.0f;        // 0: greedy (argmax); otherwise logits are divided by it
  int32_t top_k = 0;               // keep the k most likely tokens; 0: all
  float top_p = 1.0f;              // keep the smallest set whose probability reaches p; 1: all
  float min_p = 0.0f;              // drop tokens below min_p times the top probability; 0: none
  float repetition_penalty = 1.0f; // >1 discourages tokens already in the sequence (HF/CTRL rule)
  uint64_t seed = 0;               // the same seed and logits give the same tokens
  int32_t top_logprobs = 0;        // report this many most likely alternatives per token
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0.0f;
};

// The token chosen, with log-probabilities under the model's own
// distribution (softmax of the raw logits, before penalty, temperature and
// filters), so they measure the model's confidence whatever the sampling.
struct SampledToken {
  int32_t id = 0;
  float logprob = 0.0f;
  std::vector<TokenLogprob> top;  // top_logprobs entries, most likely first
};

// The sampling of a reasoning agent whose request sets none — the one place
// these defaults are written: agents that sample (Thinking, Contemplating, a
// temperature above 0) use temperature 0.7 and top_p 0.95; greedy ones
// (Instant) temperature 0 and top_p 1.
inline constexpr float kAgentTemperature = 0.7f;
inline constexpr float kAgentTopP = 0.95f;
inline SamplingParams default_agent_sampling(bool sampled) {
  SamplingParams s;
  if (sampled) {
    s.temperature = kAgentTemperature;
    s.top_p = kAgentTopP;
  }
  return s;
}

// Throws Error{invalid_argument} naming the field for values out of range
// (negative temperature, top_p outside (0,1], min_p outside [0,1), negative
// top_k or top_logprobs, repetition_penalty <= 0).
void validate(const SamplingParams& params);

// One sampler per sequence: it owns the random stream. Not thread-safe;
// cheap to create.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Chooses a token from `logits` (vocab_size floats). `history` is the
  // sequence so far, used by the repetition penalty.
  SampledToken sample(std::span<const float> logits, std::span<const int32_t> history);

  const SamplingParams& params() const noexcept { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
  // Scratch reused between calls (a vocabulary's worth each).
  std::vector<float> work_;
  std::vector<int32_t> ids_;
  std::vector<double> probs_;
  std::vector<int32_t> order_;
  std::vector<float> scratch_;
};

}  // namespace musespark
