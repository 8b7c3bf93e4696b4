#include "kernels/softmax.hpp"

#include <algorithm>
#include <cmath>

#include "kernels/avx512_math.hpp"
#include "kernels/cpu_features.hpp"

namespace musespark::kernels {
namespace {

using detail::exp16;
using detail::lanes;

MUSESPARK_AVX512_BF16 float max_of_avx512(const float* x, int64_t n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  // max(v, m) returns m when v is NaN: NaNs are skipped; lanes past n read -inf.
  for (int64_t i = 0; i < n; i += 16)
    m = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), lanes(n - i), x + i), m);
  return _mm512_reduce_max_ps(m);
}

MUSESPARK_AVX512_BF16 double exp_shifted_avx512(const float* x, int64_t n, float shift, float scale, float* out) {
  const __m512 s = _mm512_set1_ps(shift), k = _mm512_set1_ps(scale);
  double total = 0;
  // Float lanes over blocks of 1024 values, each block's sum added in double.
  for (int64_t block = 0; block < n; block += 1024) {
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = block; i < std::min(n, block + 1024); i += 16) {
      const __mmask16 m = lanes(n - i);
      const __m512 e = exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), s), k));
      _mm512_mask_storeu_ps(out + i, m, e);
      acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, e));
    }
    total += _mm512_reduce_add_ps(acc);
  }
  return total;
}

}  // namespace

float max_of(const float* x, int64_t n) noexcept {
  if (active_isa() == KernelIsa::avx512) return max_of_avx512(x, n);
  float best = -INFINITY;
  for (int64_t i = 0; i < n; ++i)
    if (x[i] > best) best = x[i];
  return best;
}

double exp_shifted(const float* x, int64_t n, float shift, float scale, float* out) noexcept {
  if (active_isa() == KernelIsa::avx512) return exp_shifted_avx512(x, n, shift, scale, out);
  double total = 0;
  for (int64_t i = 0; i < n; ++i) total += out[i] = std::exp((x[i] - shift) * scale);
  return total;
}

}  // namespace musespark::kernels
