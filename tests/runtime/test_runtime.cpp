// Sequences, prefix sharing and batched decode on a tiny random model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "musespark/error.hpp"
#include "musespark/generate.hpp"
#include "musespark/runtime.hpp"
#include "support.hpp"

using namespace musespark;
using namespace test_support;

namespace {

std::shared_ptr<const Model> tiny() {
  static auto model = Model::load(tiny_model(
      "runtime-qwen3", "--arch qwen3 --vocab 256 --hidden 64 --layers 2 --heads 4 --kv-heads 2 --head-dim 16 "
                       "--intermediate 96 --tie --seed 21 --max-pos 512"));
  return model;
}

double max_diff(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

std::vector<float> copy(std::span<const float> s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("runtime: a forked sequence computes exactly what the same tokens computed alone do") {
  Runtime rt(tiny());
  const std::vector<int32_t> prompt = {5, 9, 200, 17, 3, 3, 88};
  const std::vector<int32_t> more = {12, 140, 7, 7, 250};

  SequenceId parent = rt.create();
  rt.prefill(parent, prompt);
  SequenceId child = rt.fork(parent);
  CHECK(rt.length(child) == 7);
  CHECK(std::vector<int32_t>(rt.tokens(child).begin(), rt.tokens(child).end()) == prompt);

  SequenceId alone = rt.create();
  rt.prefill(alone, prompt);
  for (int32_t t : more) {
    rt.decode(std::span(&child, 1), std::span(&t, 1));
    rt.decode(std::span(&alone, 1), std::span(&t, 1));
    CHECK(max_diff(rt.logits(child), rt.logits(alone)) < 1e-5);
  }
  // The parent keeps going after the fork without disturbing the child.
  const std::vector<float> child_before = copy(rt.logits(child));
  for (int32_t t : {1, 2, 3}) rt.decode(std::span(&parent, 1), std::span(&t, 1));
  int32_t t = 99;
  SequenceId check = rt.fork(child);
  rt.decode(std::span(&child, 1), std::span(&t, 1));
  rt.decode(std::span(&alone, 1), std::span(&t, 1));
  CHECK(max_diff(rt.logits(child), rt.logits(alone)) < 1e-5);
  CHECK(max_diff(rt.logits(check), child_before) == 0);
}

TEST_CASE("runtime: a fork outlives its released parent") {
  Runtime rt(tiny());
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6};
  SequenceId parent = rt.create();
  rt.prefill(parent, prompt);
  SequenceId child = rt.fork(parent, 8);
  rt.release(parent);
  CHECK(rt.live_sequences() == 1);
  int32_t t = 42;
  rt.decode(std::span(&child, 1), std::span(&t, 1));
  SequenceId alone = rt.create();
  std::vector<int32_t> all = prompt;
  all.push_back(42);
  rt.prefill(alone, all);
  CHECK(max_diff(rt.logits(child), rt.logits(alone)) < 1e-5);
}

TEST_CASE("runtime: batched decode equals one-by-one decode, sequences of different lengths") {
  Runtime rt(tiny());
  const std::vector<std::vector<int32_t>> prompts = {{4, 8, 15, 16, 23, 42}, {100}, {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}};
  std::vector<SequenceId> batch, single;
  for (const auto& p : prompts) {
    batch.push_back(rt.create());
    rt.prefill(batch.back(), p);
    single.push_back(rt.create());
    rt.prefill(single.back(), p);
  }
  std::vector<int32_t> next = {10, 20, 30};
  for (int step = 0; step < 4; ++step) {
    rt.decode(batch, next);
    for (size_t i = 0; i < single.size(); ++i) rt.decode(std::span(&single[i], 1), std::span(&next[i], 1));
    for (size_t i = 0; i < single.size(); ++i) {
      CAPTURE(step);
      CAPTURE(i);
      CHECK(max_diff(rt.logits(batch[i]), rt.logits(single[i])) < 1e-5);
    }
    for (auto& n : next) n = (n * 7 + 3) % 256;
  }
}

TEST_CASE("runtime: prefill in pieces equals prefill at once") {
  Runtime rt(tiny());
  const std::vector<int32_t> tokens = {9, 8, 7, 6, 5, 4, 3, 2, 1};
  SequenceId a = rt.create(), b = rt.create();
  rt.prefill(a, tokens);
  rt.prefill(b, std::span(tokens).first(4));
  rt.prefill(b, std::span(tokens).subspan(4));
  CHECK(max_diff(rt.logits(a), rt.logits(b)) < 1e-5);
}

TEST_CASE("runtime: bad input is refused and leaves the sequence as it was") {
  Runtime rt(tiny());
  SequenceId s = rt.create(8);
  const std::vector<int32_t> nine(9, 1);
  CHECK_THROWS_AS(rt.prefill(s, nine), Error);
  try {
    rt.prefill(s, nine);
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::context_overflow);
    CHECK(std::string(e.what()).find("capacity of 8") != std::string::npos);
  }
  CHECK(rt.length(s) == 0);
  const std::vector<int32_t> bad = {1, 256};
  try {
    rt.prefill(s, bad);
    FAIL("expected an error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::invalid_argument);
    CHECK(std::string(e.what()).find("256") != std::string::npos);
  }
  CHECK_THROWS_AS(rt.prefill(s, std::vector<int32_t>{}), Error);
  CHECK_THROWS_AS(rt.logits(s), Error);  // nothing prefilled yet
  CHECK_THROWS_AS(rt.prefill(12345, nine), Error);
  rt.prefill(s, std::vector<int32_t>{1, 2});
  std::vector<SequenceId> twice = {s, s};
  std::vector<int32_t> two = {1, 2};
  CHECK_THROWS_AS(rt.decode(twice, two), Error);
  CHECK(rt.length(s) == 2);
  CHECK_THROWS_AS(rt.create(100000), Error);
  CHECK_THROWS_AS(rt.fork(s, 100000), Error);
}

TEST_CASE("runtime: extend runs several tokens for one sequence and one for another in one pass") {
  Runtime rt(tiny());
  const std::vector<int32_t> p1 = {3, 1, 4, 1, 5}, p2 = {9, 2, 6};
  SequenceId a = rt.create(), b = rt.create(), a1 = rt.create(), b1 = rt.create();
  rt.prefill(a, p1);
  rt.prefill(b, p2);
  rt.prefill(a1, p1);
  rt.prefill(b1, p2);
  const std::vector<int32_t> three = {5, 3, 5}, one = {8};
  std::vector<SequenceId> ids = {a, b};
  std::vector<std::span<const int32_t>> runs = {three, one};
  rt.extend(ids, runs);
  rt.prefill(a1, three);
  rt.prefill(b1, one);
  CHECK(rt.length(a) == 8);
  CHECK(rt.length(b) == 4);
  CHECK(max_diff(rt.logits(a), rt.logits(a1)) < 1e-5);
  CHECK(max_diff(rt.logits(b), rt.logits(b1)) < 1e-5);
}

TEST_CASE("runtime: a fork of a prefix shares only that prefix") {
  Runtime rt(tiny());
  const std::vector<int32_t> common = {11, 22, 33, 44}, tail1 = {55, 66, 77}, tail2 = {88, 99};
  std::vector<int32_t> first = common;
  first.insert(first.end(), tail1.begin(), tail1.end());
  SequenceId parent = rt.create();
  rt.prefill(parent, first);
  SequenceId child = rt.fork(parent, 0, static_cast<int64_t>(common.size()));
  CHECK(rt.length(child) == 4);
  CHECK_THROWS_AS(rt.logits(child), Error);  // no logits until something is appended
  rt.prefill(child, tail2);
  std::vector<int32_t> second = common;
  second.insert(second.end(), tail2.begin(), tail2.end());
  SequenceId alone = rt.create();
  rt.prefill(alone, second);
  CHECK(max_diff(rt.logits(child), rt.logits(alone)) < 1e-5);
  CHECK(std::vector<int32_t>(rt.tokens(child).begin(), rt.tokens(child).end()) == second);
  CHECK_THROWS_AS(rt.fork(parent, 0, 8), Error);
  // Forking a fork's prefix that reaches into its shared part works too.
  SequenceId grandchild = rt.fork(child, 0, 2);
  rt.prefill(grandchild, std::vector<int32_t>{33, 44, 88, 99});
  CHECK(max_diff(rt.logits(grandchild), rt.logits(alone)) < 1e-5);
}

TEST_CASE("runtime: pooled forks decode together exactly as alone, at different lengths and in subsets") {
  Runtime rt(tiny());
  const std::vector<int32_t> prompt = {7, 1, 8, 2, 8, 1, 8};
  SequenceId root = rt.create();
  rt.prefill(root, prompt);
  std::vector<SequenceId> pooled = rt.fork_many(root, 4, 32);
  std::vector<SequenceId> alone;
  for (int i = 0; i < 4; ++i) alone.push_back(rt.fork(root, 32));
  CHECK(rt.length(pooled[3]) == 7);
  CHECK(rt.capacity(pooled[3]) == 7 + 32);

  // Slot 1 gets three extra tokens first: the pool's own lengths differ.
  const std::vector<int32_t> extra = {40, 41, 42};
  rt.prefill(pooled[1], extra);
  rt.prefill(alone[1], extra);

  std::vector<int32_t> next = {10, 20, 30, 40};
  for (int step = 0; step < 5; ++step) {
    // Step 2 leaves slot 2 out: slots 0, 1 and 3 decode, slot 2 waits.
    std::vector<SequenceId> batch;
    std::vector<int32_t> tokens;
    for (int i = 0; i < 4; ++i) {
      if (step == 2 && i == 2) continue;
      batch.push_back(pooled[i]);
      tokens.push_back(next[i]);
      rt.decode(std::span(&alone[i], 1), std::span(&next[i], 1));
    }
    rt.decode(batch, tokens);
    for (int i = 0; i < 4; ++i) {
      CAPTURE(step);
      CAPTURE(i);
      CHECK(rt.length(pooled[i]) == rt.length(alone[i]));
      CHECK(max_diff(rt.logits(pooled[i]), rt.logits(alone[i])) < 1e-5);
    }
    for (auto& n : next) n = (n * 5 + 1) % 256;
  }
  CHECK_THROWS_AS(rt.fork_many(root, 0), Error);
}

TEST_CASE("runtime: pooled decode stays finite when the pool's memory held NaN before") {
  // The pool's K/V are uninitialised. Hand the allocator blocks of exactly
  // the pool's size (2 layers, 4 slots, 2 KV heads, 7 + 32 positions, head
  // dim 16, f32) filled with NaN, so the pool is likely to be made of them.
  const size_t bytes = size_t(2) * 4 * 2 * (7 + 32) * 16 * sizeof(float);
  std::vector<void*> blocks(16, nullptr);
  for (auto& b : blocks) {
    REQUIRE(posix_memalign(&b, 64, bytes) == 0);
    std::fill_n(static_cast<float*>(b), bytes / sizeof(float), std::numeric_limits<float>::quiet_NaN());
  }
  for (auto* b : blocks) std::free(b);

  Runtime rt(tiny());
  SequenceId root = rt.create();
  rt.prefill(root, std::vector<int32_t>{7, 1, 8, 2, 8, 1, 8});
  std::vector<SequenceId> pooled = rt.fork_many(root, 4, 32);
  // Slot 1 runs 20 tokens ahead (as an agent does when a zoom-in's image is
  // appended): the others' batched decode reads their masked positions up to it.
  std::vector<int32_t> ahead(20);
  for (int i = 0; i < 20; ++i) ahead[i] = 30 + i;
  rt.prefill(pooled[1], ahead);
  SequenceId alone = rt.fork(root, 32);
  for (int step = 0; step < 3; ++step) {
    std::vector<int32_t> tokens = {10, 20, 30, 40};
    rt.decode(pooled, tokens);
    rt.decode(std::span(&alone, 1), std::span(&tokens[0], 1));
    for (int i = 0; i < 4; ++i) {
      CAPTURE(step);
      CAPTURE(i);
      const auto logits = rt.logits(pooled[i]);
      CHECK(std::all_of(logits.begin(), logits.end(), [](float x) { return std::isfinite(x); }));
    }
    CHECK(max_diff(rt.logits(pooled[0]), rt.logits(alone)) < 1e-5);
  }
}

TEST_CASE("stop_string_holdback: the longest end that may still become a stop string") {
  const std::vector<std::string> stops = {"</answer>", "STOP", ""};
  CHECK(stop_string_holdback("the answer is 4</ans", stops) == 5);
  CHECK(stop_string_holdback("wait ST", stops) == 2);
  CHECK(stop_string_holdback("wait S", stops) == 1);
  CHECK(stop_string_holdback("no match here", stops) == 0);
  CHECK(stop_string_holdback("", stops) == 0);
  CHECK(stop_string_holdback("STOP", stops) == 0);  // a whole stop string is found, not held
  CHECK(stop_string_holdback("<", std::vector<std::string>{}) == 0);
}
