// The decode kernels against at::linear on the very weights they multiply
// by (PackedLinear::unpacked), for every instruction set this CPU has, on
// odd shapes and 1..16 rows (and a few more: prefill through the kernels).
#include "doctest_with_aten.hpp"

#include <vector>

#include "kernels/cpu_features.hpp"
#include "kernels/isa_support.hpp"
#include "kernels/packed_linear.hpp"

using namespace musespark::kernels;
using test_support::available_isas;
using test_support::IsaLimit;

namespace {

struct Shape {
  int64_t n, k;
};
// Odd widths (k not a whole k-group), n not a whole panel, one of everything;
// {300, 2050}: panels wide enough that past 8 rows the AVX-512 loops work in
// slices of 3 panels (19 panels: 6 slices and a remainder), split between
// threads in more than one chunk.
const Shape kShapes[] = {{1, 1}, {17, 33}, {33, 62}, {50, 7}, {130, 257}, {64, 128}, {300, 2050}};

// |kernel - reference| <= rel * (|x| |W|^T + |bias|) + 1e-6, element-wise:
// a bound on float32 summation error that holds for any order of the sum.
void check_close(const at::Tensor& got, const at::Tensor& want, const at::Tensor& magnitude, double rel) {
  at::Tensor excess = (got.to(at::kFloat) - want).abs() - (magnitude * rel + 1e-6);
  CHECK(excess.max().item<float>() <= 0.0f);
}

// The int8 path's own activations: what the kernel multiplies by.
at::Tensor quantised_activations(const at::Tensor& x) {
  at::Tensor amax = x.abs().amax(1, true);
  at::Tensor scale = amax / 127.0;
  return at::round(x * at::where(amax > 0, 127.0 / amax, at::zeros_like(amax))).clamp(-127, 127) * scale;
}

}  // namespace

TEST_CASE("kernels: bf16 panels equal at::linear on the same weights, every instruction set") {
  at::manual_seed(3);
  for (KernelIsa isa : available_isas()) {
    CAPTURE(std::string(isa_name(isa)));
    IsaLimit limit(isa);
    for (const auto& s : kShapes) {
      CAPTURE(s.n);
      CAPTURE(s.k);
      at::Tensor w = at::randn({s.n, s.k});
      at::Tensor bias = at::randn({s.n});
      const at::Tensor biases[] = {bias};
      PackedLinear p = PackedLinear::pack({&w, 1}, biases, WeightFormat::bf16);
      at::Tensor wf = p.unpacked();
      CHECK(at::equal(wf, w.to(at::kBFloat16).to(at::kFloat)));
      for (int64_t rows : {1, 2, 3, 5, 8, 9, 16, 17, 40}) {
        CAPTURE(rows);
        at::Tensor x = at::randn({rows, s.k}).to(at::kBFloat16);
        at::Tensor xf = x.to(at::kFloat);
        at::Tensor want = at::linear(xf, wf, bias);
        at::Tensor magnitude = at::linear(xf.abs(), wf.abs(), bias.abs());
        check_close(p(x, at::kFloat), want, magnitude, 1e-5);
        // bf16 results: one rounding of the float32 sum (half an ulp: 2^-9 relative).
        check_close(p(x, at::kBFloat16), want, magnitude, 1e-5 + 1.0 / 256);
      }
    }
  }
}

TEST_CASE("kernels: int8 panels equal at::linear on the quantised operands, bit-identical across instruction sets") {
  at::manual_seed(4);
  for (const auto& s : kShapes) {
    CAPTURE(s.n);
    CAPTURE(s.k);
    at::Tensor w = at::randn({s.n, s.k}) * at::rand({s.n, 1});  // rows of different scales
    at::Tensor bias = at::randn({s.n});
    const at::Tensor biases[] = {bias};
    PackedLinear p = PackedLinear::pack({&w, 1}, biases, WeightFormat::int8);
    at::Tensor wq = p.unpacked();
    // Quantisation error of the weights: at most half a step of each row.
    at::Tensor step = w.abs().amax(1, true) / 127.0;
    CHECK(((wq - w).abs() - step * 0.5001).max().item<float>() <= 0.0f);
    for (int64_t rows : {1, 4, 7, 16, 23}) {
      CAPTURE(rows);
      at::Tensor x = at::randn({rows, s.k}).to(at::kBFloat16);
      at::Tensor xq = quantised_activations(x.to(at::kFloat));
      at::Tensor want = at::linear(xq, wq, bias);
      at::Tensor magnitude = at::linear(xq.abs(), wq.abs(), bias.abs());
      at::Tensor first;
      for (KernelIsa isa : available_isas()) {
        CAPTURE(std::string(isa_name(isa)));
        IsaLimit limit(isa);
        at::Tensor got = p(x, at::kFloat);
        check_close(got, want, magnitude, 1e-5);
        if (!first.defined()) first = got;
        else CHECK(at::equal(got, first));
        // float32 activations give the same as their bf16 values.
        CHECK(at::equal(p(x.to(at::kFloat), at::kFloat), got));
      }
    }
  }
}

TEST_CASE("kernels: a row's result does not depend on the rows beside it") {
  at::manual_seed(5);
  at::Tensor w1 = at::randn({70, 96}), w2 = at::randn({30, 96});
  const at::Tensor both[] = {w1, w2};
  for (auto format : {WeightFormat::bf16, WeightFormat::int8}) {
    PackedLinear p = PackedLinear::pack(both, {}, format);
    CHECK(p.out_features() == 100);
    at::Tensor x = at::randn({11, 96}).to(at::kBFloat16);
    at::Tensor batch = p(x, at::kBFloat16);
    for (int64_t r : {0, 5, 10}) CHECK(at::equal(p(x.narrow(0, r, 1), at::kBFloat16), batch.narrow(0, r, 1)));
    // Stacked matrices: the columns of each, in order, as if packed alone.
    CHECK(at::equal(PackedLinear::pack({&w2, 1}, {}, format)(x, at::kBFloat16), batch.narrow(1, 70, 30)));
  }
}

TEST_CASE("kernels: the instruction set follows the CPU and the cap") {
  CHECK(active_isa() <= detected_isa());
  {
    IsaLimit limit(KernelIsa::avx2);
    CHECK(active_isa() <= KernelIsa::avx2);
  }
  {
    IsaLimit limit(KernelIsa::none);
    CHECK(active_isa() == KernelIsa::none);
  }
  {
    // avx_vnni only where the CPU has AVX-VNNI; else the cap lands on avx2.
    IsaLimit limit(KernelIsa::avx_vnni);
    const KernelIsa want = isa_supported(KernelIsa::avx_vnni) ? KernelIsa::avx_vnni
                                                              : std::min(detected_isa(), KernelIsa::avx2);
    CHECK(active_isa() == want);
    CHECK(std::string(isa_name(KernelIsa::avx_vnni)) == "avx_vnni");
  }
  CHECK(isa_supported(KernelIsa::none));
  CHECK(isa_supported(detected_isa()));
}
