// The fused decode ops against the ATen sequences they replace
// (lib/model/transformer.cpp), on bf16 rows.
#include "doctest_with_aten.hpp"

#include <string>

#include "kernels/cpu_features.hpp"
#include "kernels/decode_ops.hpp"

using namespace musespark::kernels;

namespace {

at::Tensor reference_rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor normed = xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps);
  return w * normed.to(x.scalar_type());
}

at::Tensor reference_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  return at::cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);
}

// At most one bf16 step apart anywhere (sums may be ordered differently),
// and mostly identical.
void check_near(const at::Tensor& got, const at::Tensor& want) {
  REQUIRE(got.sizes() == want.sizes());
  at::Tensor g = got.to(at::kFloat), w = want.to(at::kFloat);
  at::Tensor diff = (g - w).abs();
  CHECK((diff - w.abs() * (1.0 / 128) - 1e-30).max().item<float>() <= 0.0f);
  CHECK(at::ne(g, w).to(at::kFloat).mean().item<float>() < 0.02);
}

// Runs fn with the AVX-512 loops and with the scalar ones (capped at avx2),
// whichever this CPU has.
template <typename Fn>
void each_path(Fn&& fn) {
  for (KernelIsa isa : {KernelIsa::avx512, KernelIsa::avx2}) {
    if (!isa_supported(isa)) continue;
    CAPTURE(std::string(isa_name(isa)));
    limit_isa(isa);
    fn();
  }
  limit_isa(KernelIsa::avx512);
}

}  // namespace

TEST_CASE("decode ops: rms_norm and add_rms_norm as ATen computes them in bf16") {
  each_path([] {
    at::manual_seed(6);
    for (int64_t rows : {1, 3, 16}) {
      at::Tensor x = at::randn({rows, 333}).to(at::kBFloat16);
      at::Tensor y = at::randn({rows, 333}).to(at::kBFloat16);
      at::Tensor w = (at::rand({333}) + 0.5).to(at::kBFloat16);
      check_near(rms_norm(x, w, 1e-6), reference_rms_norm(x, w, 1e-6));
      auto [sum, normed] = add_rms_norm(x, y, w, 1e-6);
      CHECK(at::equal(sum, x + y));
      check_near(normed, reference_rms_norm(x + y, w, 1e-6));
      // Strided rows (a narrow of a wider tensor).
      at::Tensor wide = at::randn({rows, 400}).to(at::kBFloat16);
      check_near(rms_norm(wide.narrow(1, 10, 333), w, 1e-6), reference_rms_norm(wide.narrow(1, 10, 333), w, 1e-6));
    }
  });
}

TEST_CASE("decode ops: norm_rope and silu_mul as ATen computes them in bf16") {
  each_path([] {
    at::manual_seed(7);
    for (int64_t hd : {64, 40}) {  // 40: half a head is 20, not a whole vector
      CAPTURE(hd);
      const int64_t rows = 5, heads = 3;
      // As the transformer has them: heads of a [rows, 2*heads*hd] product, strided.
      at::Tensor qkv = at::randn({rows, 2 * heads * hd}).to(at::kBFloat16);
      at::Tensor q = qkv.narrow(1, heads * hd, heads * hd).view({rows, heads, hd});
      at::Tensor angles = at::rand({rows, hd / 2}) * 6;
      at::Tensor cos = angles.cos().to(at::kBFloat16), sin = angles.sin().to(at::kBFloat16);
      at::Tensor w = (at::rand({hd}) + 0.5).to(at::kBFloat16);
      CHECK(at::equal(norm_rope(q, at::Tensor(), 1e-6, cos, sin), reference_rope(q, cos, sin)));
      check_near(norm_rope(q, w, 1e-6, cos, sin), reference_rope(reference_rms_norm(q, w, 1e-6), cos, sin));
    }
    at::Tensor gate_up = at::randn({5, 2 * 100}).to(at::kBFloat16) * 3;
    check_near(silu_mul(gate_up), at::silu(gate_up.narrow(1, 0, 100)) * gate_up.narrow(1, 100, 100));
  });
}
