// DeepConf confidence arithmetic against hand-computed values.
#include <doctest/doctest.h>

#include <cmath>
#include <random>

#include "musespark/error.hpp"
#include "reasoning/confidence.hpp"

using namespace musespark;
using namespace musespark::detail;

TEST_CASE("confidence: token confidence is minus the mean top-k log-probability") {
  std::vector<TokenLogprob> top = {{1, -1.0f}, {2, -2.0f}, {3, -3.0f}, {4, -6.0f}};
  CHECK(token_confidence(top) == doctest::Approx(3.0));
  std::vector<TokenLogprob> peaked = {{1, -0.01f}, {2, -9.0f}};
  std::vector<TokenLogprob> flat = {{1, -0.69f}, {2, -0.70f}};
  CHECK(token_confidence(peaked) > token_confidence(flat));  // sure -> higher
  CHECK(token_confidence({}) == 0.0);
}

TEST_CASE("confidence: tracker with window 3 over a known series") {
  // Series 2, 4, 3, 1, 0.5, 2.5. Full windows: [2,4,3]=3, [4,3,1]=8/3,
  // [3,1,0.5]=1.5, [1,0.5,2.5]=4/3.
  ConfidenceTracker t(3, 2);
  CHECK(t.count() == 0);
  CHECK(t.current_group() == 0.0);
  CHECK(t.lowest_group() == 0.0);
  CHECK(t.summary().tokens == 0);
  CHECK(t.summary().mean == 0.0);

  t.add(2);
  CHECK(t.current_group() == doctest::Approx(2.0));
  CHECK(t.lowest_group() == doctest::Approx(2.0));
  t.add(4);
  CHECK_FALSE(t.has_full_window());
  CHECK(t.current_group() == doctest::Approx(3.0));  // mean of the two so far
  CHECK(t.lowest_group() == doctest::Approx(3.0));
  ConfidenceSummary partial = t.summary();  // fewer tokens than a window
  CHECK(partial.mean == doctest::Approx(3.0));
  CHECK(partial.lowest_group == doctest::Approx(3.0));
  CHECK(partial.bottom10 == doctest::Approx(3.0));
  CHECK(partial.tail == doctest::Approx(3.0));
  CHECK(partial.tokens == 2);

  t.add(3);
  CHECK(t.has_full_window());
  CHECK(t.current_group() == doctest::Approx(3.0));
  t.add(1);
  CHECK(t.current_group() == doctest::Approx(8.0 / 3));
  CHECK(t.lowest_group() == doctest::Approx(8.0 / 3));
  t.add(0.5);
  CHECK(t.current_group() == doctest::Approx(1.5));
  t.add(2.5);
  CHECK(t.current_group() == doctest::Approx(4.0 / 3));
  CHECK(t.lowest_group() == doctest::Approx(4.0 / 3));

  ConfidenceSummary s = t.summary();
  CHECK(s.tokens == 6);
  CHECK(s.mean == doctest::Approx(13.0 / 6));
  CHECK(s.lowest_group == doctest::Approx(4.0 / 3));
  CHECK(s.bottom10 == doctest::Approx(4.0 / 3));  // 4 groups: the lowest one
  CHECK(s.tail == doctest::Approx(1.5));          // (0.5 + 2.5) / 2
  REQUIRE(t.series().size() == 6);
  CHECK(t.series()[4] == 0.5f);
}

TEST_CASE("confidence: bottom10 averages the lowest tenth of the windows") {
  // Window 1: the groups are the values 20, 19, ..., 1. Lowest 10% of 20
  // groups = {1, 2}; tail 5 = mean(5, 4, 3, 2, 1).
  ConfidenceTracker t(1, 5);
  for (int v = 20; v >= 1; --v) t.add(v);
  ConfidenceSummary s = t.summary();
  CHECK(s.bottom10 == doctest::Approx(1.5));
  CHECK(s.tail == doctest::Approx(3.0));
  CHECK(s.lowest_group == doctest::Approx(1.0));
  CHECK(s.mean == doctest::Approx(10.5));

  // Window 2 over 0, 10, 0, 10, ... (21 values): 20 groups all equal to 5.
  ConfidenceTracker u(2, 3);
  for (int i = 0; i < 21; ++i) u.add(i % 2 ? 10 : 0);
  CHECK(u.summary().bottom10 == doctest::Approx(5.0));
  CHECK(u.summary().tail == doctest::Approx(10.0 / 3));  // 0, 10, 0
}

TEST_CASE("confidence: the running window matches a direct computation over a long series") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> dist(0.0, 20.0);
  ConfidenceTracker t(7, 13);
  std::vector<double> values;
  double lowest = INFINITY;
  for (int i = 0; i < 20000; ++i) {
    double v = static_cast<float>(dist(rng));
    values.push_back(v);
    t.add(v);
    size_t n = values.size();
    size_t w = std::min<size_t>(n, 7);
    double sum = 0;
    for (size_t j = n - w; j < n; ++j) sum += values[j];
    if (n >= 7) lowest = std::min(lowest, sum / 7);
    if (i % 997 == 0 || i > 19990) {
      CHECK(t.current_group() == doctest::Approx(sum / static_cast<double>(w)).epsilon(1e-9));
      // Before the first full window: the mean of everything so far.
      CHECK(t.lowest_group() == doctest::Approx(n >= 7 ? lowest : sum / static_cast<double>(n)).epsilon(1e-6));
    }
  }
}

TEST_CASE("confidence: tracker arguments are checked") {
  CHECK_THROWS_AS(ConfidenceTracker(0, 5), Error);
  CHECK_THROWS_AS(ConfidenceTracker(5, 0), Error);
  try {
    ConfidenceTracker(-1, 5);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::invalid_argument);
    CHECK(e.field() == "window");
  }
}

TEST_CASE("confidence: percentile interpolates linearly like numpy") {
  CHECK(percentile({1, 2, 3, 4}, 10) == doctest::Approx(1.3));
  CHECK(percentile({4, 1, 3, 2}, 10) == doctest::Approx(1.3));  // order does not matter
  CHECK(percentile({1, 2, 3, 4}, 50) == doctest::Approx(2.5));
  CHECK(percentile({1, 2, 3, 4}, 0) == doctest::Approx(1.0));
  CHECK(percentile({1, 2, 3, 4}, 100) == doctest::Approx(4.0));
  CHECK(percentile({10, 20}, 25) == doctest::Approx(12.5));
  CHECK(percentile({7}, 90) == doctest::Approx(7.0));
  CHECK_THROWS_AS(percentile({}, 50), Error);
  CHECK_THROWS_AS(percentile({1, 2}, 101), Error);
  CHECK_THROWS_AS(percentile({1, 2}, -1), Error);
  CHECK_THROWS_AS(percentile({1, 2}, NAN), Error);
}

TEST_CASE("confidence: early-stop threshold from warm-up lowest groups") {
  std::vector<double> warmup = {5, 1, 4, 2, 3};
  // keep 0.9 (DeepConf-high): 10th percentile of 1..5 = 1 + 0.4 * 1.
  CHECK(early_stop_threshold(warmup, 0.9) == doctest::Approx(1.4));
  // keep 0.1 (DeepConf-low): 90th percentile = 4 + 0.6 * 1.
  CHECK(early_stop_threshold(warmup, 0.1) == doctest::Approx(4.6));
  CHECK(early_stop_threshold(warmup, 1.0) == doctest::Approx(1.0));
  CHECK_THROWS_AS(early_stop_threshold(warmup, 0.0), Error);
  CHECK_THROWS_AS(early_stop_threshold(warmup, 1.5), Error);
  CHECK_THROWS_AS(early_stop_threshold({}, 0.9), Error);
}

TEST_CASE("confidence: rounding never puts a warm-up's own tokens below its threshold") {
  // Seen with musespark-mini: a warm-up's lowest group (the threshold at keep
  // 1) and the same tokens decoded by a later agent in a smaller batch.
  const double threshold = 11.396192908287048;
  CHECK_FALSE(below_threshold(11.39619255065918, threshold));
  CHECK_FALSE(below_threshold(threshold, threshold));
  CHECK(below_threshold(11.337793111801147, threshold));  // a different trace, 0.06 lower
  CHECK(below_threshold(threshold - 1e-3, threshold));
  CHECK(below_threshold(-0.5, 0.0));
  CHECK_FALSE(below_threshold(0.0, 0.0));
}
