// Sequences, prefix sharing and batched decode on a tiny random model.
#include <doctest/doctest.h>

#include <cmath>

#include "musespark/error.hpp"
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
