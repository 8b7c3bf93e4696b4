// Input embeddings injected in place of placeholder tokens (how an encoded
// image enters the text model), against the Python reference.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "musespark/error.hpp"
#include "musespark/runtime.hpp"
#include "support.hpp"

using namespace musespark;
using namespace test_support;

namespace {

const char* kArgs = "--arch qwen3 --vocab 256 --hidden 64 --layers 2 --heads 4 --kv-heads 2 --head-dim 16 "
                    "--intermediate 96 --tie --seed 41";

std::vector<float> random_rows(int64_t rows, int64_t width, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> v(rows * width);
  for (auto& x : v) x = n(rng);
  return v;
}

double max_diff(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

}  // namespace

TEST_CASE("injection: embeddings replace their tokens' exactly as the reference does") {
  auto dir = tiny_model("injection", kArgs);
  auto tmp = temp_dir("injection");
  const std::vector<int32_t> tokens = {5, 9, 250, 250, 250, 17, 3};  // 250: the placeholder
  const std::vector<float> rows = random_rows(3, 64, 7);
  std::ofstream(tmp / "rows.f32", std::ios::binary).write(reinterpret_cast<const char*>(rows.data()), rows.size() * 4);
  python_tool("reference_forward.py " + dir.string() + " --ids " + join(tokens) + " --inject 2:" +
              (tmp / "rows.f32").string() + " --out-logits " + (tmp / "ref.f32").string());
  const std::vector<float> ref = read_floats(tmp / "ref.f32");

  Runtime rt(Model::load(dir));
  auto emb = Embeddings::from_floats(rows, 3, 64);
  const std::vector<Injection> inj = {{2, emb}};
  SequenceId s = rt.create();
  std::vector<float> ours;
  rt.prefill(s, tokens, &ours, inj);
  CHECK(max_diff(ours, ref) < 1e-4);

  // Without the injection the logits differ: the rows did matter.
  SequenceId plain = rt.create();
  std::vector<float> plain_logits;
  rt.prefill(plain, tokens, &plain_logits);
  CHECK(max_diff(plain_logits, ref) > 1e-2);
}

TEST_CASE("injection: appended to running sequences in a batch (a zoom-in), same as in one prefill") {
  auto dir = tiny_model("injection", kArgs);
  Runtime rt(Model::load(dir));
  auto emb = Embeddings::from_floats(random_rows(2, 64, 8), 2, 64);
  const std::vector<int32_t> prompt = {1, 2, 3, 4};
  const std::vector<int32_t> crop = {200, 250, 250, 201};
  SequenceId root = rt.create();
  rt.prefill(root, prompt);
  auto agents = rt.fork_many(root, 2, 16);
  // Agent 0 takes the crop (4 tokens, 2 injected); agent 1 decodes one token, in one pass.
  const std::vector<int32_t> one = {77};
  const std::vector<Injection> inj = {{1, emb}};
  std::vector<std::span<const int32_t>> runs = {crop, one};
  std::vector<std::span<const Injection>> injections = {inj, {}};
  rt.extend(agents, runs, injections);

  SequenceId alone = rt.create();
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), crop.begin(), crop.end());
  const std::vector<Injection> shifted = {{5, emb}};
  rt.prefill(alone, all, nullptr, shifted);
  CHECK(max_diff(rt.logits(agents[0]), rt.logits(alone)) < 1e-5);

  // Errors: a misfit or a wrong width is refused before any work.
  auto wide = Embeddings::from_floats(random_rows(1, 32, 9), 1, 32);
  const std::vector<Injection> bad_width = {{0, wide}};
  CHECK_THROWS_AS(rt.prefill(alone, one, nullptr, bad_width), Error);
  const std::vector<Injection> overflow = {{3, emb}};
  CHECK_THROWS_AS(rt.prefill(alone, crop, nullptr, overflow), Error);
  CHECK(rt.length(alone) == 8);
  CHECK_THROWS_AS(Embeddings::from_floats(random_rows(2, 3, 1), 2, 4), Error);
}
