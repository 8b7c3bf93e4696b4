// Sampling arithmetic against hand-computed values.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "musespark/error.hpp"
#include "musespark/sampling.hpp"

using namespace musespark;

namespace {
std::map<int32_t, int> histogram(SamplingParams p, const std::vector<float>& logits, int n) {
  Sampler s(p);
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) h[s.sample(logits, {}).id]++;
  return h;
}
const std::vector<float> kLogits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
}  // namespace

TEST_CASE("sampler: greedy picks the argmax and reports model log-probabilities") {
  SamplingParams p;
  p.top_logprobs = 3;
  Sampler s(p);
  SampledToken t = s.sample(kLogits, {});
  CHECK(t.id == 0);
  CHECK(t.logprob == doctest::Approx(std::log(0.5)).epsilon(1e-5));
  REQUIRE(t.top.size() == 3);
  CHECK(t.top[0].id == 0);
  CHECK(t.top[1].id == 1);
  CHECK(t.top[2].id == 2);
  CHECK(t.top[1].logprob == doctest::Approx(std::log(0.3)).epsilon(1e-5));
  // Logits shifted by a constant give the same log-probabilities.
  std::vector<float> shifted = kLogits;
  for (auto& l : shifted) l += 10;
  CHECK(s.sample(shifted, {}).logprob == doctest::Approx(std::log(0.5)).epsilon(1e-5));
}

TEST_CASE("sampler: temperature 1 follows the distribution") {
  SamplingParams p;
  p.temperature = 1;
  p.seed = 3;
  auto h = histogram(p, kLogits, 40000);
  CHECK(h[0] / 40000.0 == doctest::Approx(0.5).epsilon(0.03));
  CHECK(h[1] / 40000.0 == doctest::Approx(0.3).epsilon(0.04));
  CHECK(h[2] / 40000.0 == doctest::Approx(0.15).epsilon(0.06));
  CHECK(h[3] / 40000.0 == doctest::Approx(0.05).epsilon(0.12));
}

TEST_CASE("sampler: top-k, top-p and min-p keep the right tokens") {
  SamplingParams p;
  p.temperature = 1;
  p.top_k = 2;
  auto h = histogram(p, kLogits, 20000);
  CHECK(h.count(2) == 0);
  CHECK(h.count(3) == 0);
  CHECK(double(h[0]) / h[1] == doctest::Approx(0.5 / 0.3).epsilon(0.06));

  p = {};
  p.temperature = 1;
  p.top_p = 0.7f;  // 0.5 + 0.3 reaches 0.7: two tokens
  h = histogram(p, kLogits, 20000);
  CHECK(h.size() == 2);
  CHECK(double(h[0]) / h[1] == doctest::Approx(0.5 / 0.3).epsilon(0.06));

  p.top_p = 0.5f;  // the first token alone reaches it
  h = histogram(p, kLogits, 2000);
  CHECK(h.size() == 1);

  p = {};
  p.temperature = 1;
  p.min_p = 0.25f;  // keeps p >= 0.125: tokens 0, 1, 2
  h = histogram(p, kLogits, 20000);
  CHECK(h.count(3) == 0);
  CHECK(h.count(2) == 1);
}

TEST_CASE("sampler: top-p over a large, flat vocabulary keeps exactly the nucleus") {
  std::vector<float> logits(5000);
  for (int i = 0; i < 5000; ++i) logits[i] = -0.001f * i;  // nearly flat: the nucleus needs > 1024 tokens
  SamplingParams p;
  p.temperature = 1;
  p.top_p = 0.9f;
  p.seed = 5;
  auto h = histogram(p, logits, 5000);
  int beyond = 0;
  for (auto [id, n] : h) {
    CHECK(id < 5000);
    if (id >= 1024) beyond += n;
  }
  CHECK(beyond > 0);
  int max_id = h.rbegin()->first;
  // 0.9 of the mass lies below id ~2244 (1 - e^{-0.001 n} = 0.9 (1 - e^{-5})).
  CHECK(max_id < 2260);
  CHECK(max_id > 1800);
}

TEST_CASE("sampler: top-p keeps exactly the most likely tokens when their probabilities spread over octaves") {
  // 2000 tokens with logits spread over [-3, 0]: the nucleus boundary falls
  // inside a run of tokens of nearly equal probability, which must be split
  // exactly (the most likely first, then the lower id).
  std::vector<float> logits(2000);
  uint64_t state = 12345;
  for (float& l : logits) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    l = -3.0f * static_cast<float>(state >> 40) / static_cast<float>(1ull << 24);
  }
  std::vector<int32_t> by_mass(logits.size());
  std::iota(by_mass.begin(), by_mass.end(), 0);
  std::sort(by_mass.begin(), by_mass.end(),
            [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  double total = 0;
  for (float l : logits) total += std::exp(double(l));
  // The reference nucleus, plus the next token when the boundary is too
  // close to call in float arithmetic.
  std::set<int32_t> allowed;
  double mass = 0;
  for (int32_t id : by_mass) {
    const double before = mass;
    mass += std::exp(double(logits[id]));
    if (before >= 0.5 * total * (1 + 1e-6)) break;
    allowed.insert(id);
  }
  REQUIRE(allowed.size() > 100);
  REQUIRE(allowed.size() < 1900);
  SamplingParams p;
  p.temperature = 1;
  p.top_p = 0.5f;
  p.seed = 3;
  auto h = histogram(p, logits, 20000);
  int outside = 0;
  for (auto [id, n] : h)
    if (!allowed.count(id)) outside += n;
  CHECK(outside == 0);
  CHECK(h.size() > allowed.size() * 9 / 10);  // and the nucleus is sampled across
}

TEST_CASE("sampler: the same seed gives the same tokens") {
  SamplingParams p;
  p.temperature = 0.9f;
  p.seed = 77;
  Sampler a(p), b(p);
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 200; ++i) {
    ta.push_back(a.sample(kLogits, {}).id);
    tb.push_back(b.sample(kLogits, {}).id);
  }
  CHECK(ta == tb);
  p.seed = 78;
  Sampler c(p);
  std::vector<int32_t> tc;
  for (int i = 0; i < 200; ++i) tc.push_back(c.sample(kLogits, {}).id);
  CHECK(tc != ta);
}

TEST_CASE("sampler: repetition penalty discourages tokens already seen") {
  const std::vector<float> logits = {2.0f, 1.8f, -1.0f};
  SamplingParams p;
  p.repetition_penalty = 1.5f;
  Sampler s(p);
  const std::vector<int32_t> history = {0, 0};
  CHECK(s.sample(logits, {}).id == 0);
  CHECK(s.sample(logits, history).id == 1);  // 2.0 / 1.5 < 1.8
  // The reported log-probability is still the model's own.
  CHECK(s.sample(logits, history).logprob == doctest::Approx(1.8 - std::log(std::exp(2.0) + std::exp(1.8) + std::exp(-1.0))).epsilon(1e-5));
}

TEST_CASE("sampler: out-of-range parameters are refused, naming the field") {
  auto refused = [](SamplingParams p, const char* field) {
    try {
      Sampler s(p);
    } catch (const Error& e) {
      CHECK(e.field() == field);
      return;
    }
    FAIL("not refused: " << field);
  };
  SamplingParams p;
  p.temperature = -1;
  refused(p, "temperature");
  p = {};
  p.top_p = 0;
  refused(p, "top_p");
  p = {};
  p.min_p = 1;
  refused(p, "min_p");
  p = {};
  p.top_k = -2;
  refused(p, "top_k");
  p = {};
  p.repetition_penalty = 0;
  refused(p, "repetition_penalty");
}
