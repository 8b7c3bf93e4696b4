#include "reasoning/confidence.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "musespark/error.hpp"

namespace musespark::detail {

double token_confidence(std::span<const TokenLogprob> top) {
  if (top.empty()) return 0;
  double sum = 0;
  for (const auto& t : top) sum += t.logprob;
  return -sum / static_cast<double>(top.size());
}

ConfidenceTracker::ConfidenceTracker(int32_t window, int32_t tail) : window_(window), tail_(tail) {
  if (window < 1)
    throw Error(ErrorKind::invalid_argument, "", "window", "must be at least 1, got " + std::to_string(window));
  if (tail < 1) throw Error(ErrorKind::invalid_argument, "", "tail", "must be at least 1, got " + std::to_string(tail));
}

void ConfidenceTracker::add(double confidence) {
  const float value = static_cast<float>(confidence);
  series_.push_back(value);
  total_ += value;
  const size_t n = series_.size();
  const size_t w = static_cast<size_t>(window_);
  if (n > w) {
    if (n % w == 0) {
      // Re-sum exactly once per window: keeps add() O(1) amortised and stops
      // the add/subtract rounding from accumulating over long traces.
      window_sum_ = 0;
      for (size_t i = n - w; i < n; ++i) window_sum_ += series_[i];
    } else {
      window_sum_ += static_cast<double>(value) - static_cast<double>(series_[n - 1 - w]);
    }
  } else {
    window_sum_ += value;
  }
  if (n >= w) {
    const double group = window_sum_ / static_cast<double>(w);
    lowest_ = groups_.empty() ? group : std::min(lowest_, group);
    groups_.push_back(static_cast<float>(group));
  }
}

double ConfidenceTracker::current_group() const noexcept {
  const size_t n = series_.size();
  if (n == 0) return 0;
  return window_sum_ / static_cast<double>(std::min(n, static_cast<size_t>(window_)));
}

double ConfidenceTracker::lowest_group() const noexcept {
  if (series_.empty()) return 0;
  if (groups_.empty()) return total_ / static_cast<double>(series_.size());
  return lowest_;
}

ConfidenceSummary ConfidenceTracker::summary() const {
  ConfidenceSummary s;
  const size_t n = series_.size();
  s.tokens = static_cast<int64_t>(n);
  if (n == 0) return s;
  s.mean = total_ / static_cast<double>(n);
  s.lowest_group = lowest_group();

  if (groups_.empty()) {
    s.bottom10 = s.mean;  // the single partial group
  } else {
    std::vector<float> sorted = groups_;
    const size_t k = std::max<size_t>(1, sorted.size() / 10);
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<ptrdiff_t>(k - 1), sorted.end());
    // After nth_element the first k elements are the k smallest (unordered).
    double sum = 0;
    for (size_t i = 0; i < k; ++i) sum += sorted[i];
    s.bottom10 = sum / static_cast<double>(k);
  }

  const size_t t = std::min(n, static_cast<size_t>(tail_));
  double tail_sum = 0;
  for (size_t i = n - t; i < n; ++i) tail_sum += series_[i];
  s.tail = tail_sum / static_cast<double>(t);
  return s;
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) throw Error(ErrorKind::invalid_argument, "", "values", "percentile of no values");
  if (!(q >= 0 && q <= 100))
    throw Error(ErrorKind::invalid_argument, "", "q", "must be in [0, 100], got " + std::to_string(q));
  std::sort(values.begin(), values.end());
  const double position = q / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(position));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double fraction = position - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * fraction;
}

bool below_threshold(double group_confidence, double threshold) noexcept {
  return group_confidence < threshold - 1e-5 * std::abs(threshold);
}

double early_stop_threshold(std::span<const double> warmup_lowest_groups, double keep_fraction) {
  if (warmup_lowest_groups.empty())
    throw Error(ErrorKind::invalid_argument, "", "warmup_lowest_groups", "no warm-up agents to set a threshold");
  if (!(keep_fraction > 0 && keep_fraction <= 1))
    throw Error(ErrorKind::invalid_argument, "", "keep_fraction",
                "must be in (0, 1], got " + std::to_string(keep_fraction));
  return percentile(std::vector<double>(warmup_lowest_groups.begin(), warmup_lowest_groups.end()),
                    100.0 * (1.0 - keep_fraction));
}

}  // namespace musespark::detail
