// DeepConf-style confidence (Fu et al., "Deep Think with Confidence", Meta AI
// 2025): how sure the model was of each token, smoothed over a sliding window,
// and the online early-stop threshold taken from warm-up agents.
//
// Everything here is pure arithmetic on numbers the sampler reports; nothing
// knows about tensors or agents.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "musespark/sampling.hpp"
#include "musespark/trace.hpp"

namespace musespark::detail {

// Token confidence C_t = -mean(logprob) over the given candidates (the top-k
// alternatives the sampler reported for one step; k = 20 in use). Higher is
// more confident: a peaked distribution leaves its runners-up with very low
// log-probabilities. 0 for an empty span. Pure; thread-safe; no errors.
double token_confidence(std::span<const TokenLogprob> top);

// Running confidence of one agent: feed it C_t for every sampled token.
//
//   group confidence  = mean C_t over a window of `window` consecutive tokens
//   current_group()   = the group ending at the latest token (early stop reads it)
//   lowest_group()    = the least confident full window so far
//   summary()         = the ConfidenceSummary of trace.hpp
//
// add() is O(1) amortised (a running window sum, re-summed exactly once per
// `window` additions so rounding cannot drift). Values are kept as float, the
// precision of the per-token series in the trace, and every statistic is
// computed from those stored values. Owns its storage; one tracker per agent;
// not thread-safe (use from the thread that decodes the agent).
class ConfidenceTracker {
 public:
  // window, tail >= 1, else Error{invalid_argument} naming "window"/"tail".
  ConfidenceTracker(int32_t window, int32_t tail);

  void add(double confidence);

  int64_t count() const noexcept { return static_cast<int64_t>(series_.size()); }
  int32_t window() const noexcept { return window_; }
  int32_t tail() const noexcept { return tail_; }

  // Mean of the last min(window, count) values; 0 before the first add.
  double current_group() const noexcept;
  // True once count() >= window: current_group() is then a full window.
  bool has_full_window() const noexcept { return count() >= window_; }
  // Minimum group confidence over every full window position; with fewer
  // tokens than a window, the mean of all values so far; 0 when empty.
  double lowest_group() const noexcept;

  // mean: mean of all values; lowest_group: as above; bottom10: mean of the
  // lowest 10% (floor, at least one) of the group confidences at every full
  // window position (the single partial group when no window is full); tail:
  // mean of the last min(tail, count) values; tokens: count(). All zero when
  // empty. O(count) for bottom10.
  ConfidenceSummary summary() const;

  // Every value added, in order (what the trace's token_confidence holds).
  const std::vector<float>& series() const noexcept { return series_; }

 private:
  int32_t window_;
  int32_t tail_;
  std::vector<float> series_;
  std::vector<float> groups_;  // group confidence at each full window position
  double total_ = 0;           // sum of series_
  double window_sum_ = 0;      // sum of the last min(window, count) values
  double lowest_ = 0;          // min of groups_ (valid when groups_ is not empty)
};

// The q-th percentile (q in [0, 100]) of `values` with linear interpolation
// between closest ranks, as numpy.percentile's default ("linear"):
// position = q/100 * (n-1) in the sorted values. Takes its argument by value
// (it sorts it). Error{invalid_argument} for empty values, q outside [0,100]
// or NaN. Pure; thread-safe.
double percentile(std::vector<double> values, double q);

// DeepConf's online early-stop threshold from the warm-up agents' lowest
// group confidences (each warm-up agent ran to the end):
//
//   threshold = percentile(warmup_lowest_groups, 100 * (1 - keep_fraction))
//
// A later agent stops (AgentStop::low_confidence) as soon as its current
// group confidence, over a full window, is strictly below the threshold. So
// the threshold is the lowest-group confidence that the weakest
// (1 - keep_fraction) of the warm-up agents fell below: keep_fraction 0.9
// ("DeepConf-high") stops only an agent that gets less confident than the 10%
// least confident warm-up agents ever got, and keeps about 90% of agents
// like them; keep_fraction 0.1 ("DeepConf-low") keeps only agents that stay
// as confident as the best 10% of the warm-up (threshold at the 90th
// percentile). keep_fraction 1 gives the minimum (stop only below every
// warm-up agent). Error{invalid_argument} for no warm-up values or
// keep_fraction outside (0, 1]. Pure; thread-safe.
double early_stop_threshold(std::span<const double> warmup_lowest_groups, double keep_fraction);

// Whether a group confidence falls below an early-stop threshold. Confidence
// is computed in float32, and the same tokens decoded in batches of other
// shapes agree only to about 1e-7 of their value; so a group counts as below
// only when it is lower by more than 1e-5 of the threshold's magnitude (an
// agent that repeats a warm-up's tokens is never stopped by rounding). Pure.
bool below_threshold(double group_confidence, double threshold) noexcept;

}  // namespace musespark::detail
