#include "musespark/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include <fmt/format.h>

#include "kernels/softmax.hpp"
#include "musespark/error.hpp"

namespace musespark {
namespace {

[[noreturn]] void bad(const char* field, const std::string& message) {
  throw Error(ErrorKind::invalid_argument, "", field, message);
}

// A uniform double in [0, 1) from 53 random bits: the same on every platform.
double uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

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
  scratch_.resize(static_cast<size_t>(vocab));
  const float max_logit = kernels::max_of(logits.data(), vocab);
  const double log_z = max_logit + std::log(kernels::exp_shifted(logits.data(), vocab, max_logit, 1.0f, scratch_.data()));
  auto logprob = [&](int32_t id) { return static_cast<float>(logits[id] - log_z); };
  // Higher logit first; the lower id wins a tie, so every order is total.
  auto more_likely = [](const float* l) {
    return [l](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
  };

  // Repetition penalty (divide positive logits, multiply negative ones).
  work_.assign(logits.begin(), logits.end());
  if (params_.repetition_penalty != 1.0f) {
    order_.assign(history.begin(), history.end());
    std::sort(order_.begin(), order_.end());
    order_.erase(std::unique(order_.begin(), order_.end()), order_.end());
    for (int32_t id : order_) {
      if (id < 0 || id >= vocab) continue;
      float& l = work_[id];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }

  int32_t chosen = 0;
  if (params_.temperature == 0.0f) {
    for (int32_t i = 1; i < vocab; ++i)
      if (work_[i] > work_[chosen]) chosen = i;
  } else {
    // Candidates are kept in vocabulary order, so the draw does not depend on
    // how a filter found them.
    const double inv_t = 1.0 / params_.temperature;
    double total = 0;
    if (params_.top_k > 0 && params_.top_k < vocab) {
      ids_.resize(vocab);
      std::iota(ids_.begin(), ids_.end(), 0);
      std::nth_element(ids_.begin(), ids_.begin() + params_.top_k, ids_.end(), more_likely(work_.data()));
      ids_.resize(params_.top_k);
      std::sort(ids_.begin(), ids_.end());
      float top = work_[ids_[0]];
      for (int32_t id : ids_) top = std::max(top, work_[id]);
      probs_.resize(ids_.size());
      for (size_t i = 0; i < ids_.size(); ++i) total += probs_[i] = std::exp((work_[ids_[i]] - top) * inv_t);
    } else {
      // Every token's weight relative to the most likely one, in one pass.
      const float top = kernels::max_of(work_.data(), vocab);
      total = kernels::exp_shifted(work_.data(), vocab, top, static_cast<float>(inv_t), scratch_.data());
      // With top-p, the nucleus is the most likely tokens up to top_p of the
      // mass: if the tokens of weight >= 1e-4 already hold that much, it is
      // among them (every other token is less likely than each of them), so
      // only they are candidates; else all are.
      float floor = 0;
      if (params_.top_p < 1.0f) {
        constexpr float kLikely = 1e-4f;
        double likely = 0;
        for (int32_t i = 0; i < vocab; ++i)
          if (scratch_[i] >= kLikely) likely += scratch_[i];
        if (likely >= params_.top_p * total) floor = kLikely;
      }
      ids_.clear();
      probs_.clear();
      for (int32_t i = 0; i < vocab; ++i)
        if (scratch_[i] >= floor) {
          ids_.push_back(i);
          probs_.push_back(scratch_[i]);
        }
      // The draw walks probs_ down from a point below total: total must be
      // their own sum (top-p's filter below recomputes it in any case).
      if (params_.top_p >= 1.0f) total = std::accumulate(probs_.begin(), probs_.end(), 0.0);
    }

    // Keeps the candidates i with keep[i], in order.
    auto compact = [&](auto&& keep) {
      size_t n = 0;
      for (size_t i = 0; i < ids_.size(); ++i)
        if (keep(i)) {
          ids_[n] = ids_[i];
          probs_[n] = probs_[i];
          ++n;
        }
      ids_.resize(n);
      probs_.resize(n);
      total = std::accumulate(probs_.begin(), probs_.end(), 0.0);
    };

    if (params_.top_p < 1.0f) {
      // The nucleus without sorting the vocabulary. First the candidates'
      // mass by bucket of probability (a float's bits order non-negative
      // floats; 32 buckets per power of two), walked from the top to the
      // bucket where top_p of the mass is reached: everything above it is in,
      // everything below out. Then, within that bucket only, a quickselect on
      // probability mass: order_[0, lo) are more likely than the rest of the
      // bucket and hold `above` < need with the buckets above; the boundary
      // lies in [lo, hi).
      const double need = params_.top_p * total;
      auto bucket = [&](size_t i) {
        const float f = static_cast<float>(probs_[i]);
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        return bits >> 18;
      };
      constexpr uint32_t kBuckets = (0x7f800000u >> 18) + 1;  // up to +infinity
      std::vector<double> mass_of(kBuckets, 0.0);
      for (size_t i = 0; i < ids_.size(); ++i) mass_of[bucket(i)] += probs_[i];
      double above = 0;
      uint32_t edge = 0;  // the boundary bucket; when rounding leaves need unreached, the lowest
      for (uint32_t b = kBuckets; b-- > 0;) {
        edge = b;
        if (above + mass_of[b] >= need) break;
        above += mass_of[b];
      }
      order_.clear();
      for (size_t i = 0; i < ids_.size(); ++i)
        if (bucket(i) == edge) order_.push_back(static_cast<int32_t>(i));
      auto by_prob = [&](int32_t a, int32_t b) { return probs_[a] > probs_[b] || (probs_[a] == probs_[b] && a < b); };
      size_t lo = 0, hi = order_.size();
      while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        std::nth_element(order_.begin() + lo, order_.begin() + mid, order_.begin() + hi, by_prob);
        double mass = 0;
        for (size_t i = lo; i < mid; ++i) mass += probs_[order_[i]];
        if (above + mass >= need) {
          hi = mid;
        } else {
          above += mass;
          lo = mid;
        }
      }
      // Buckets above the edge, and order_[0, hi) of the edge's, are the
      // smallest most-likely set reaching top_p.
      std::vector<char> in_nucleus(ids_.size(), 0);
      for (size_t i = 0; i < ids_.size(); ++i) in_nucleus[i] = bucket(i) > edge;
      for (size_t i = 0; i < hi; ++i) in_nucleus[order_[i]] = 1;
      compact([&](size_t i) { return in_nucleus[i] != 0; });
    }
    if (params_.min_p > 0.0f) {
      // probs_ are relative to the most likely candidate (which has 1).
      compact([&](size_t i) { return probs_[i] >= params_.min_p; });
    }
    double u = uniform(rng_) * total;
    chosen = ids_.back();
    for (size_t i = 0; i < ids_.size(); ++i) {
      u -= probs_[i];
      if (u < 0) {
        chosen = ids_[i];
        break;
      }
    }
  }

  SampledToken out;
  out.id = chosen;
  out.logprob = logprob(chosen);
  if (params_.top_logprobs > 0) {
    const int32_t k = std::min(params_.top_logprobs, vocab);
    const auto before = more_likely(logits.data());
    // The k most likely in order: one pass keeping a sorted list of k (most
    // tokens lose at the first comparison), the same as a partial sort.
    order_.clear();
    for (int32_t id = 0; id < vocab; ++id) {
      if (static_cast<int32_t>(order_.size()) == k && !before(id, order_.back())) continue;
      if (static_cast<int32_t>(order_.size()) == k) order_.pop_back();
      order_.insert(std::upper_bound(order_.begin(), order_.end(), id, before), id);
    }
    for (int32_t id : order_) out.top.push_back({id, logprob(id)});
  }
  return out;
}

}  // namespace musespark
