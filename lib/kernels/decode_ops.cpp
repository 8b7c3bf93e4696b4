#include "kernels/decode_ops.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>

#include "kernels/avx512_math.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/linear_isa.hpp"

namespace musespark::kernels {
namespace {

using detail::bf16_bits;
using detail::bf16_to_float;

float round_bf16(float v) { return bf16_to_float(bf16_bits(v)); }

const uint16_t* bits(const at::Tensor& t) { return reinterpret_cast<const uint16_t*>(t.data_ptr()); }
uint16_t* bits_mut(at::Tensor& t) { return reinterpret_cast<uint16_t*>(t.data_ptr()); }

void require_bf16(const at::Tensor& t, const char* what) {
  if (t.scalar_type() != at::kBFloat16 || t.stride(-1) != 1)
    throw std::invalid_argument(std::string("decode op: ") + what + " must be bf16 with a contiguous last dim");
}

// AVX-512 forms of the loops below (callers check active_isa()): the same
// roundings, 16 lanes at a time, tails by mask.
using detail::lanes;
using detail::load_bf16_masked;
using detail::store_bf16_masked;

MUSESPARK_AVX512_BF16 void to_floats_avx512(const uint16_t* in, int64_t n, float* out) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    _mm512_mask_storeu_ps(out + i, m, load_bf16_masked(in + i, m));
  }
}

// s = round(a + b) as bits, and as floats in row.
MUSESPARK_AVX512_BF16 void add_avx512(const uint16_t* a, const uint16_t* b, int64_t n, uint16_t* s, float* row) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 v = detail::round_bf16x16(_mm512_add_ps(load_bf16_masked(a + i, m), load_bf16_masked(b + i, m)));
    store_bf16_masked(s + i, m, v);
    _mm512_mask_storeu_ps(row + i, m, v);
  }
}

MUSESPARK_AVX512_BF16 void rms_norm_row_avx512(const float* x, const uint16_t* w, int64_t n, float eps,
                                               uint16_t* out) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
    s0 = _mm512_fmadd_ps(a, a, s0);
    s1 = _mm512_fmadd_ps(b, b, s1);
  }
  for (; i < n; i += 16) {
    const __m512 a = _mm512_maskz_loadu_ps(lanes(n - i), x + i);
    s0 = _mm512_fmadd_ps(a, a, s0);
  }
  const float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / static_cast<float>(n);
  const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(mean + eps));
  for (i = 0; i < n; i += 16) {
    const __mmask16 m = lanes(n - i);
    const __m512 v = detail::round_bf16x16(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    store_bf16_masked(out + i, m, _mm512_mul_ps(load_bf16_masked(w + i, m), v));
  }
}

// The rotation of one head of floats x (hd = 2 * half) into bf16 bits o.
MUSESPARK_AVX512_BF16 void rope_avx512(const float* x, const uint16_t* c, const uint16_t* s, int64_t half,
                                       uint16_t* o) {
  using detail::round_bf16x16;
  for (int64_t i = 0; i < half; i += 16) {
    const __mmask16 m = lanes(half - i);
    const __m512 ci = load_bf16_masked(c + i, m), si = load_bf16_masked(s + i, m);
    const __m512 x1 = _mm512_maskz_loadu_ps(m, x + i), x2 = _mm512_maskz_loadu_ps(m, x + i + half);
    store_bf16_masked(o + i, m,
                      _mm512_sub_ps(round_bf16x16(_mm512_mul_ps(x1, ci)), round_bf16x16(_mm512_mul_ps(x2, si))));
    store_bf16_masked(o + i + half, m,
                      _mm512_add_ps(round_bf16x16(_mm512_mul_ps(x2, ci)), round_bf16x16(_mm512_mul_ps(x1, si))));
  }
}

bool avx512() { return active_isa() == KernelIsa::avx512; }

void to_floats(const uint16_t* in, int64_t n, float* out) {
  if (avx512()) return to_floats_avx512(in, n, out);
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
}

// One row of n: out = w * round(x * rsqrt(mean(x^2) + eps)), rounded. The
// sum of squares runs in 32 float32 lanes with AVX-512, in double otherwise:
// either way within rounding of ATen's float32 mean.
void rms_norm_row(const float* x, const uint16_t* w, int64_t n, double eps, uint16_t* out) {
  if (avx512()) return rms_norm_row_avx512(x, w, n, static_cast<float>(eps), out);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += double(x[i]) * x[i];
  const float mean = static_cast<float>(sum / double(n));
  const float inv = 1.0f / std::sqrt(mean + static_cast<float>(eps));
  for (int64_t i = 0; i < n; ++i) out[i] = bf16_bits(bf16_to_float(w[i]) * round_bf16(x[i] * inv));
}

// As silu_mul's scalar loop, 16 at a time (the same roundings; e^x to about
// 1e-7 relative instead of libm's correctly rounded one, which bf16
// rounding hides but for rare ties). Returns the count done.
MUSESPARK_AVX512_BF16 int64_t silu_mul_avx512(const uint16_t* g, const uint16_t* u, uint16_t* o, int64_t n) {
  using namespace detail;
  const __m512 one = _mm512_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gi = load_bf16x16(g + i);
    const __m512 e = round_bf16x16(exp16(_mm512_sub_ps(_mm512_setzero_ps(), gi)));
    const __m512 silu = round_bf16x16(_mm512_div_ps(gi, round_bf16x16(_mm512_add_ps(one, e))));
    store_bf16x16(o + i, _mm512_mul_ps(silu, load_bf16x16(u + i)));
  }
  return i;
}

}  // namespace

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  require_bf16(x, "x");
  const int64_t rows = x.size(0), n = x.size(1);
  at::Tensor w = weight.contiguous();
  at::Tensor out = at::empty({rows, n}, x.options().memory_format(at::MemoryFormat::Contiguous));
  std::vector<float> row(n);
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* in = bits(x) + r * x.stride(0);
    to_floats(in, n, row.data());
    rms_norm_row(row.data(), bits(w), n, eps, bits_mut(out) + r * n);
  }
  return out;
}

std::pair<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& y, const at::Tensor& weight,
                                               double eps) {
  require_bf16(x, "x");
  require_bf16(y, "y");
  const int64_t rows = x.size(0), n = x.size(1);
  at::Tensor w = weight.contiguous();
  at::Tensor sum = at::empty({rows, n}, x.options().memory_format(at::MemoryFormat::Contiguous));
  at::Tensor out = at::empty_like(sum);
  std::vector<float> row(n);
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* a = bits(x) + r * x.stride(0);
    const uint16_t* b = bits(y) + r * y.stride(0);
    uint16_t* s = bits_mut(sum) + r * n;
    if (avx512()) {
      add_avx512(a, b, n, s, row.data());
    } else {
      for (int64_t i = 0; i < n; ++i) {
        s[i] = bf16_bits(bf16_to_float(a[i]) + bf16_to_float(b[i]));
        row[i] = bf16_to_float(s[i]);
      }
    }
    rms_norm_row(row.data(), bits(w), n, eps, bits_mut(out) + r * n);
  }
  return {sum, out};
}

at::Tensor norm_rope(const at::Tensor& heads, const at::Tensor& norm_weight, double eps, const at::Tensor& cos,
                     const at::Tensor& sin) {
  require_bf16(heads, "heads");
  const int64_t rows = heads.size(0), count = heads.size(1), hd = heads.size(2), half = hd / 2;
  at::Tensor c = cos.contiguous(), s = sin.contiguous();
  at::Tensor w = norm_weight.defined() ? norm_weight.contiguous() : at::Tensor();
  at::Tensor out = at::empty({rows, count, hd}, heads.options().memory_format(at::MemoryFormat::Contiguous));
  std::vector<float> x(hd);
  std::vector<uint16_t> normed(hd);
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* cr = bits(c) + r * half;
    const uint16_t* sr = bits(s) + r * half;
    for (int64_t h = 0; h < count; ++h) {
      const uint16_t* in = bits(heads) + r * heads.stride(0) + h * heads.stride(1);
      to_floats(in, hd, x.data());
      if (w.defined()) {
        rms_norm_row(x.data(), bits(w), hd, eps, normed.data());
        to_floats(normed.data(), hd, x.data());
      }
      uint16_t* o = bits_mut(out) + (r * count + h) * hd;
      if (avx512()) {
        rope_avx512(x.data(), cr, sr, half, o);
        continue;
      }
      for (int64_t i = 0; i < half; ++i) {
        const float ci = bf16_to_float(cr[i]), si = bf16_to_float(sr[i]);
        const float x1 = x[i], x2 = x[i + half];
        o[i] = bf16_bits(round_bf16(x1 * ci) - round_bf16(x2 * si));
        o[i + half] = bf16_bits(round_bf16(x2 * ci) + round_bf16(x1 * si));
      }
    }
  }
  return out;
}

at::Tensor silu_mul(const at::Tensor& gate_up) {
  require_bf16(gate_up, "gate_up");
  const int64_t rows = gate_up.size(0), inner = gate_up.size(1) / 2;
  at::Tensor out = at::empty({rows, inner}, gate_up.options().memory_format(at::MemoryFormat::Contiguous));
  for (int64_t r = 0; r < rows; ++r) {
    const uint16_t* g = bits(gate_up) + r * gate_up.stride(0);
    const uint16_t* u = g + inner;
    uint16_t* o = bits_mut(out) + r * inner;
    const int64_t done = avx512() ? silu_mul_avx512(g, u, o, inner) : 0;
    for (int64_t i = done; i < inner; ++i) {
      // As ATen's bf16 silu: every step of x / (1 + exp(-x)) rounded to bf16.
      const float gi = bf16_to_float(g[i]);
      const float silu = round_bf16(gi / round_bf16(1.0f + round_bf16(std::exp(-gi))));
      o[i] = bf16_bits(silu * bf16_to_float(u[i]));
    }
  }
  return out;
}

}  // namespace musespark::kernels
