// Whole models with the decode kernels: bf16 against libtorch's bf16, int8's
// accuracy cost (KL divergence of next-token distributions), and int8's
// independence from the instruction set.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu_features.hpp"
#include "musespark/runtime.hpp"
#include "decode_support.hpp"
#include "support.hpp"

using namespace musespark;
using namespace test_support;

namespace {

// The parity tests' tiny models (tests/model/test_forward_parity.cpp): tied
// Qwen3 with q/k norms, and untied Qwen2 with qkv biases.
const char* kQwen3 = "--arch qwen3 --vocab 512 --hidden 64 --layers 2 --heads 4 --kv-heads 2 --head-dim 32 --intermediate 128 --tie --seed 11";
const char* kQwen2 = "--arch qwen2 --vocab 512 --hidden 64 --layers 2 --heads 4 --kv-heads 2 --intermediate 128 --no-tie --seed 12";
const std::vector<int32_t> kTokens = {1, 17, 300, 42, 42, 7, 255, 100, 3, 64, 128, 9, 500, 2, 77, 301, 5, 6, 90, 411};

std::shared_ptr<const Model> load(const std::filesystem::path& dir, DType dtype,
                                  kernels::KernelIsa isa = kernels::KernelIsa::avx512) {
  kernels::limit_isa(isa);
  ModelOptions o;
  o.dtype = dtype;
  auto m = Model::load(dir, o);
  kernels::limit_isa(kernels::KernelIsa::avx512);
  return m;
}

std::vector<float> teacher_forced(const std::shared_ptr<const Model>& model) {
  return test_support::teacher_forced(model, kTokens);
}

// Mean over positions of KL(softmax(ref) || softmax(test)), in nats.
double mean_kl(const std::vector<float>& ref, const std::vector<float>& test, int64_t vocab) {
  double total = 0;
  const int64_t positions = static_cast<int64_t>(ref.size()) / vocab;
  for (int64_t p = 0; p < positions; ++p) {
    auto log_softmax = [&](const float* l) {
      double mx = *std::max_element(l, l + vocab), sum = 0;
      for (int64_t i = 0; i < vocab; ++i) sum += std::exp(l[i] - mx);
      std::vector<double> out(vocab);
      for (int64_t i = 0; i < vocab; ++i) out[i] = l[i] - mx - std::log(sum);
      return out;
    };
    auto a = log_softmax(ref.data() + p * vocab), b = log_softmax(test.data() + p * vocab);
    for (int64_t i = 0; i < vocab; ++i) total += std::exp(a[i]) * (a[i] - b[i]);
  }
  return total / positions;
}

}  // namespace

TEST_CASE("kernels: bf16 decode through the kernels stays within bf16 rounding of libtorch's") {
  for (const char* args : {kQwen3, kQwen2}) {
    CAPTURE(std::string(args));
    auto dir = tiny_model(std::string(args) == kQwen3 ? "qwen3" : "qwen2", args);
    std::vector<float> plain = teacher_forced(load(dir, DType::bf16, kernels::KernelIsa::none));
    std::vector<float> packed = teacher_forced(load(dir, DType::bf16));
    REQUIRE(plain.size() == packed.size());
    double max_logit = 0, max_diff = 0;
    for (size_t i = 0; i < plain.size(); ++i) {
      max_logit = std::max(max_logit, double(std::fabs(plain[i])));
      max_diff = std::max(max_diff, double(std::fabs(plain[i] - packed[i])));
    }
    // The forward parity test's bf16 tolerance (0.05 of the largest logit).
    CHECK(max_diff < 0.05 * max_logit + 0.02);
    CHECK(mean_kl(plain, packed, 512) < 1e-3);
  }
}

TEST_CASE("kernels: int8 weights cost a small KL divergence against bf16") {
  for (const char* args : {kQwen3, kQwen2}) {
    CAPTURE(std::string(args));
    auto dir = tiny_model(std::string(args) == kQwen3 ? "qwen3" : "qwen2", args);
    std::vector<float> f32 = teacher_forced(load(dir, DType::f32));
    std::vector<float> bf16 = teacher_forced(load(dir, DType::bf16));
    std::vector<float> int8 = teacher_forced(load(dir, DType::int8));
    const double kl_bf16 = mean_kl(f32, bf16, 512), kl_int8 = mean_kl(bf16, int8, 512);
    MESSAGE("mean KL(f32 || bf16) = " << kl_bf16 << ", KL(bf16 || int8) = " << kl_int8 << " nats");
    CHECK(kl_int8 < 3e-3);
    CHECK(kl_int8 > 0.0);  // int8 really is in use
  }
}

TEST_CASE("kernels: int8 models give the same logits on every instruction set") {
  auto dir = tiny_model("qwen2", kQwen2);
  std::vector<float> best = teacher_forced(load(dir, DType::int8));
  if (kernels::detected_isa() >= kernels::KernelIsa::avx2) {
    kernels::limit_isa(kernels::KernelIsa::avx2);
    CHECK(teacher_forced(load(dir, DType::int8)) == best);
  }
  kernels::limit_isa(kernels::KernelIsa::none);
  CHECK(teacher_forced(load(dir, DType::int8)) == best);
  kernels::limit_isa(kernels::KernelIsa::avx512);
}

TEST_CASE("kernels: q4 weights (quantised at load) cost a bounded KL divergence against bf16") {
  for (const char* args : {kQwen3, kQwen2}) {
    CAPTURE(std::string(args));
    auto dir = tiny_model(std::string(args) == kQwen3 ? "qwen3" : "qwen2", args);
    std::vector<float> bf16 = teacher_forced(load(dir, DType::bf16));
    std::vector<float> int8 = teacher_forced(load(dir, DType::int8));
    auto q4_model = load(dir, DType::q4);
    std::vector<float> q4 = teacher_forced(q4_model);
    const double kl_int8 = mean_kl(bf16, int8, 512), kl_q4 = mean_kl(bf16, q4, 512);
    MESSAGE("mean KL(bf16 || int8) = " << kl_int8 << ", KL(bf16 || q4) = " << kl_q4 << " nats");
    CHECK(kl_q4 < 0.05);
    CHECK(kl_q4 > kl_int8);  // 4 bits really are in use
    // q4 reads about 6 bits a weight (4-bit codes, float32 scale and offset per 32) against int8's 8.
    const double ratio = double(q4_model->info().bytes_per_token) / double(load(dir, DType::int8)->info().bytes_per_token);
    CHECK(ratio < 0.85);
  }
}

TEST_CASE("kernels: q4 models give the same logits on every instruction set") {
  // Run (not only loaded) under each cap. This model's head_dim (16) keeps attention on libtorch
  // everywhere, so the whole decode is bit-identical.
  auto dir = tiny_model("qwen2", kQwen2);
  auto model = load(dir, DType::q4);
  std::vector<float> avx512 = teacher_forced(model);
  kernels::limit_isa(kernels::KernelIsa::none);
  std::vector<float> portable = teacher_forced(model);
  if (kernels::isa_supported(kernels::KernelIsa::avx2)) {
    kernels::limit_isa(kernels::KernelIsa::avx2);
    CHECK(teacher_forced(model) == portable);
  }
  kernels::limit_isa(kernels::KernelIsa::avx512);
  CHECK(avx512 == portable);
}

TEST_CASE("kernels: dtype names round-trip, int8 and q4 included") {
  for (DType d : {DType::f32, DType::bf16, DType::int8, DType::q4}) CHECK(parse_dtype(dtype_name(d)) == d);
}
