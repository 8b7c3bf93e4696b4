#include "musespark/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include <fmt/format.h>

#include "musespark/error.hpp"

namespace musespark {
namespace {

[[noreturn]] void bad(const char* field, const std::string& message) {
  throw Error(ErrorKind::invalid_argument, "", field, message);
}

// A uniform double in [0, 1) from 53 random bits: the same on every platform.
double uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

struct Candidate {
  int32_t id;
  float logit;
};

bool more_likely(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

}  // namespace

void validate(const SamplingParams& p) {
  if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) bad("temperature", fmt::format("must be >= 0, got {}", p.temperature));
  if (p.top_k < 0) bad("top_k", fmt::format("must be >= 0, got {}", p.top_k));
  if (!(p.top_p > 0 && p.top_p <= 1)) bad("top_p", fmt::format("must be in (0, 1], got {}", p.top_p));
  if (!(p.min_p >= 0 && p.min_p < 1)) bad("min_p", fmt::format("must be in [0, 1), got {}", p.min_p));
  if (!(p.repetition_penalty > 0) || !std::isfinite(p.repetition_penalty))
    bad("repetition_penalty", fmt::format("must be > 0, got {}", p.repetition_penalty));
  if (p.top_logprobs < 0) bad("top_logprobs", fmt::format("must be >= 0, got {}", p.top_logprobs));
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) { validate(params); }

SampledToken Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const int32_t vocab = static_cast<int32_t>(logits.size());
  if (vocab == 0) bad("logits", "empty");

  // Model log-probabilities: log_softmax of the raw logits.
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max_logit);
  const double log_z = max_logit + std::log(sum);
  auto logprob = [&](int32_t id) { return static_cast<float>(logits[id] - log_z); };

  // Repetition penalty (divide positive logits, multiply negative ones).
  std::vector<Candidate> cand(vocab);
  for (int32_t i = 0; i < vocab; ++i) cand[i] = {i, logits[i]};
  if (params_.repetition_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= vocab) continue;
      float& l = cand[id].logit;
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }

  int32_t chosen;
  if (params_.temperature == 0.0f) {
    chosen = std::min_element(cand.begin(), cand.end(), more_likely)->id;
  } else {
    for (auto& c : cand) c.logit /= params_.temperature;
    // Candidates are kept sorted, most likely first, once a filter needs order.
    bool sorted = false;
    if (params_.top_k > 0 && params_.top_k < vocab) {
      std::partial_sort(cand.begin(), cand.begin() + params_.top_k, cand.end(), more_likely);
      cand.resize(params_.top_k);
      sorted = true;
    }
    const float top = std::max_element(cand.begin(), cand.end(), [](auto& a, auto& b) { return a.logit < b.logit; })->logit;
    std::vector<double> prob(cand.size());
    double total = 0;
    for (size_t i = 0; i < cand.size(); ++i) total += prob[i] = std::exp(static_cast<double>(cand[i].logit) - top);
    if (params_.top_p < 1.0f) {
      if (!sorted) {
        // The nucleus is almost always among the first few hundred tokens:
        // sort those, and the rest only if they do not reach top_p.
        std::vector<size_t> order(cand.size());
        std::iota(order.begin(), order.end(), 0);
        auto by_prob = [&](size_t a, size_t b) { return more_likely(cand[a], cand[b]); };
        size_t head = std::min<size_t>(order.size(), 1024);
        std::partial_sort(order.begin(), order.begin() + head, order.end(), by_prob);
        double head_mass = 0;
        for (size_t i = 0; i < head; ++i) head_mass += prob[order[i]];
        if (head_mass < params_.top_p * total) std::sort(order.begin(), order.end(), by_prob);
        std::vector<Candidate> c2;
        std::vector<double> p2;
        double cum = 0;
        for (size_t i = 0; i < order.size(); ++i) {
          c2.push_back(cand[order[i]]);
          p2.push_back(prob[order[i]]);
          cum += prob[order[i]];
          if (cum >= params_.top_p * total) break;
        }
        cand = std::move(c2);
        prob = std::move(p2);
      } else {
        double cum = 0;
        size_t keep = 0;
        while (keep < cand.size()) {
          cum += prob[keep++];
          if (cum >= params_.top_p * total) break;
        }
        cand.resize(keep);
        prob.resize(keep);
      }
      total = std::accumulate(prob.begin(), prob.end(), 0.0);
    }
    if (params_.min_p > 0.0f) {
      // prob is relative to the top candidate (which has prob 1).
      std::vector<Candidate> c2;
      std::vector<double> p2;
      for (size_t i = 0; i < cand.size(); ++i)
        if (prob[i] >= params_.min_p) {
          c2.push_back(cand[i]);
          p2.push_back(prob[i]);
        }
      cand = std::move(c2);
      prob = std::move(p2);
      total = std::accumulate(prob.begin(), prob.end(), 0.0);
    }
    double u = uniform(rng_) * total;
    chosen = cand.back().id;
    for (size_t i = 0; i < cand.size(); ++i) {
      u -= prob[i];
      if (u < 0) {
        chosen = cand[i].id;
        break;
      }
    }
  }

  SampledToken out;
  out.id = chosen;
  out.logprob = logprob(chosen);
  if (params_.top_logprobs > 0) {
    const int32_t k = std::min(params_.top_logprobs, vocab);
    std::vector<Candidate> raw(vocab);
    for (int32_t i = 0; i < vocab; ++i) raw[i] = {i, logits[i]};
    std::partial_sort(raw.begin(), raw.begin() + k, raw.end(), more_likely);
    for (int32_t i = 0; i < k; ++i) out.top.push_back({raw[i].id, logprob(raw[i].id)});
  }
  return out;
}

}  // namespace musespark
