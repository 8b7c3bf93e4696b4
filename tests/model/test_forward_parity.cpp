// The engine's logits against an independent forward pass written in Python
// with torch (tests/tools/reference_forward.py), on tiny random models of
// every architecture; and greedy generation token for token.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <thread>
#include <nlohmann/json.hpp>

#include "musespark/generate.hpp"
#include "musespark/runtime.hpp"
#include "support.hpp"

using namespace musespark;
using namespace test_support;

namespace {

struct Case {
  const char* name;
  const char* args;
};

const Case kCases[] = {
    {"qwen3", "--arch qwen3 --vocab 512 --hidden 64 --layers 2 --heads 4 --kv-heads 2 --head-dim 32 --intermediate 128 --tie --seed 11"},
    {"qwen2", "--arch qwen2 --vocab 512 --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128 --no-tie --seed 12"},
    {"llama", "--arch llama --vocab 512 --hidden 64 --layers 2 --heads 4 --kv-heads 1 --intermediate 160 --no-tie --rope-scaling llama3 --seed 13"},
    {"qwen3-bf16-sharded", "--arch qwen3 --vocab 384 --hidden 64 --layers 3 --heads 2 --kv-heads 2 --head-dim 48 --intermediate 96 --no-tie --dtype bf16 --shards 3 --seed 14"},
};

const std::vector<int32_t> kPrompt = {1, 17, 300, 42, 42, 7, 255, 100, 3, 64, 128, 9};

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

}  // namespace

TEST_CASE("forward: logits equal the Python reference for every architecture") {
  for (const auto& c : kCases) {
    CAPTURE(c.name);
    auto dir = tiny_model(c.name, c.args);
    auto ref_file = temp_dir(std::string("parity-") + c.name) / "logits.f32";
    auto meta = nlohmann::json::parse(
        python_tool("reference_forward.py " + dir.string() + " --ids " + join(kPrompt) + " --out-logits " + ref_file.string()));
    std::vector<float> ref = read_floats(ref_file);
    const int64_t vocab = meta["vocab"];
    REQUIRE(ref.size() == kPrompt.size() * vocab);

    Runtime rt(Model::load(dir));
    SequenceId seq = rt.create();
    std::vector<float> ours;
    rt.prefill(seq, kPrompt, &ours);
    REQUIRE(ours.size() == ref.size());
    CHECK(max_abs_diff(ours, ref) < 1e-4);
    // The last row is also what logits() reports.
    auto last = rt.logits(seq);
    CHECK(std::equal(last.begin(), last.end(), ours.end() - vocab));
  }
}

TEST_CASE("forward: bf16 compute stays close to the f32 reference") {
  auto dir = tiny_model("qwen3", kCases[0].args);
  auto ref_file = temp_dir("parity-bf16") / "logits.f32";
  python_tool("reference_forward.py " + dir.string() + " --ids " + join(kPrompt) + " --out-logits " + ref_file.string());
  std::vector<float> ref = read_floats(ref_file);
  ModelOptions opts;
  opts.dtype = DType::bf16;
  Runtime rt(Model::load(dir, opts));
  SequenceId seq = rt.create();
  std::vector<float> ours;
  rt.prefill(seq, kPrompt, &ours);
  REQUIRE(ours.size() == ref.size());
  double max_ref = 0;
  for (float v : ref) max_ref = std::max(max_ref, double(std::fabs(v)));
  CHECK(max_abs_diff(ours, ref) < 0.05 * max_ref + 0.02);
}

TEST_CASE("forward: greedy generation matches the reference token for token") {
  for (const auto& c : kCases) {
    CAPTURE(c.name);
    auto dir = tiny_model(c.name, c.args);
    auto ref = nlohmann::json::parse(python_tool("reference_forward.py " + dir.string() + " --ids " +
                                                 join(kPrompt) + " --greedy 20"));
    std::vector<int32_t> expected = ref["tokens"].get<std::vector<int32_t>>();
    Runtime rt(Model::load(dir));
    GenerateOptions opts;
    opts.max_tokens = 20;
    GenerateResult r = generate(rt, nullptr, kPrompt, opts);
    CHECK(r.tokens == expected);
  }
}

TEST_CASE("model: a threads setting of 0 means one per core, a positive one itself") {
  CHECK(musespark::resolve_threads(3) == 3);
  CHECK(musespark::resolve_threads(0) == static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  CHECK(musespark::resolve_threads(0) >= 1);
}
