// GGUF models with DType::q4: block-quantised matrices repacked for the
// kernels as they are (no dequantized copy), against the same file
// dequantized to float32 (the reference path): logits close, greedy tokens
// the same, and the weights about the size of the file's.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>

#include "common/gguf.hpp"
#include "kernels/cpu_features.hpp"
#include "musespark/runtime.hpp"
#include "decode_support.hpp"
#include "support.hpp"

using namespace musespark;
using namespace test_support;
namespace fs = std::filesystem;

namespace {

// Rows of 256 so that the K-quants apply (hf_to_gguf.py falls back to Q8_0 otherwise).
const char* kShape =
    "--arch qwen3 --vocab 512 --hidden 256 --layers 2 --heads 4 --kv-heads 2 --head-dim 64 --intermediate 512 --seed 21";

// The tiny model as GGUF of `type` (hf_to_gguf.py's names), made once per process.
fs::path gguf_of(const std::string& folder_name, const std::string& args, const std::string& type) {
  const fs::path dir = tiny_model(folder_name, args);
  const fs::path out = process_dir("gguf-q4") / (folder_name + "-" + type + ".gguf");
  if (!fs::exists(out)) python_tool("hf_to_gguf.py " + dir.string() + " " + out.string() + " --type " + type + " --no-tokenizer");
  return out;
}

std::shared_ptr<const Model> load(const fs::path& file, DType dtype) {
  ModelOptions o;
  o.dtype = dtype;
  return Model::load(file, o);
}

const std::vector<int32_t> kTokens = {1, 17, 300, 42, 42, 7, 255, 100, 3, 64, 128, 9, 500, 2, 77, 301};

std::vector<float> teacher_forced(const std::shared_ptr<const Model>& model) {
  return test_support::teacher_forced(model, kTokens);
}

// Greedy continuation of a short prompt: prefill, then `n` decode steps.
std::vector<int32_t> greedy(const std::shared_ptr<const Model>& model, int n) {
  Runtime rt(model);
  SequenceId s = rt.create();
  rt.prefill(s, std::span(kTokens).first(5));
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    auto l = rt.logits(s);
    const int32_t next = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    out.push_back(next);
    rt.decode(std::span(&s, 1), std::span(&next, 1));
  }
  return out;
}

double max_abs(const std::vector<float>& v) {
  double out = 0;
  for (float x : v) out = std::max(out, double(std::fabs(x)));
  return out;
}

double max_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double out = 0;
  for (size_t i = 0; i < a.size(); ++i) out = std::max(out, double(std::fabs(a[i] - b[i])));
  return out;
}

// Positions (of vocab-wide rows) where the two argmaxes differ though the
// reference's best beats its second by more than `margin`.
int clear_disagreements(const std::vector<float>& ref, const std::vector<float>& test, int64_t vocab, double margin) {
  int out = 0;
  for (size_t p = 0; p + vocab <= ref.size(); p += vocab) {
    std::vector<float> r(ref.begin() + p, ref.begin() + p + vocab);
    const auto best = std::max_element(r.begin(), r.end()) - r.begin();
    const auto mine = std::max_element(test.begin() + p, test.begin() + p + vocab) - (test.begin() + p);
    std::nth_element(r.begin(), r.begin() + 1, r.end(), std::greater<float>());
    out += best != mine && r[0] - r[1] > margin;
  }
  return out;
}

int64_t tensor_bytes(const fs::path& file, bool matrices_only) {
  int64_t total = 0;
  const auto gguf = musespark::detail::GgufFile::open(file);  // alive while its tensors are read
  for (const auto& t : gguf.tensors())
    if (!matrices_only || t.shape.size() == 2) total += static_cast<int64_t>(t.nbytes);
  return total;
}

}  // namespace

TEST_CASE("gguf q4: Q4_K_M, Q4_0, Q8_0, Q6_K and Q5_K files decode as their dequantized selves") {
  struct Case {
    const char* type;
    bool greedy;       // the same greedy tokens (for Q4_0 a near tie of this random model flips one)
    double max_ratio;  // our weight bytes per token / the file's matrix bytes
  };
  // Our blocks carry float32 scale and offset per 32 (q4) or 16/32 (q8b) weights, where the
  // file has f16 per 32 or 6-bit per 16-32 with f16 per 256: more than the file.
  const Case cases[] = {{"q4_k_m", true, 1.55}, {"q4_0", false, 1.4}, {"q8_0", true, 1.25},
                        {"q6_k", true, 1.9}, {"q5_k", true, 1.9}};
  for (const Case& c : cases) {
    CAPTURE(std::string(c.type));
    const fs::path file = gguf_of("q4-qwen3", kShape, c.type);
    auto reference = load(file, DType::f32);
    auto packed = load(file, DType::q4);
    std::vector<float> want = teacher_forced(reference), got = teacher_forced(packed);
    REQUIRE(want.size() == got.size());
    const double max_logit = max_abs(want), max_diff = max_difference(want, got);
    MESSAGE(c.type << ": max |logit difference| " << max_diff << " of max |logit| " << max_logit);
    // The reference is float32 throughout; here activations are bf16 and int8 per block in each product.
    CHECK(max_diff > 0);
    CHECK(max_diff < 0.03 * max_logit);
    CHECK(clear_disagreements(want, got, 512, 2 * max_diff) == 0);
    if (c.greedy) CHECK(greedy(reference, 12) == greedy(packed, 12));
    // The matrices stay in their blocks: near the file's bytes, not the 4-8x of bf16 or f32.
    const double ratio = double(packed->info().bytes_per_token) / double(tensor_bytes(file, true));
    MESSAGE(c.type << ": weight bytes per token / the file's matrix bytes = " << ratio);
    CHECK(ratio > 0.9);
    CHECK(ratio < c.max_ratio);
    CHECK(packed->info().bytes_per_token < reference->info().bytes_per_token / 2);
  }
}

TEST_CASE("gguf q4: a q4 GGUF model's products do not depend on the instruction set") {
  // Below AVX-512 the other decode kernels (attention, norms) are libtorch's, the same for avx2
  // and none: there the logits must be bit-identical. AVX-512's bf16 attention differs a little.
  const fs::path file = gguf_of("q4-qwen3", kShape, "q4_k_m");
  std::vector<float> avx512 = teacher_forced(load(file, DType::q4));
  kernels::limit_isa(kernels::KernelIsa::none);
  std::vector<float> portable = teacher_forced(load(file, DType::q4));
  if (kernels::isa_supported(kernels::KernelIsa::avx2)) {
    kernels::limit_isa(kernels::KernelIsa::avx2);
    CHECK(teacher_forced(load(file, DType::q4)) == portable);
  }
  kernels::limit_isa(kernels::KernelIsa::avx512);
  CHECK(max_difference(avx512, portable) < 0.03 * max_abs(portable));
}

TEST_CASE("gguf q4: llama's interleaved q/k rows and an untied head are repacked in HF order") {
  const char* llama =
      "--arch llama --vocab 512 --hidden 256 --layers 1 --heads 4 --kv-heads 2 --intermediate 512 --no-tie --seed 22";
  const fs::path file = gguf_of("q4-llama", llama, "q4_k_m");
  std::vector<float> want = teacher_forced(load(file, DType::f32)), got = teacher_forced(load(file, DType::q4));
  CHECK(max_difference(want, got) < 0.03 * max_abs(want));
}
