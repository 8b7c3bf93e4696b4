// Small AVX-512 helpers shared by the decode kernels: e^x and bf16 rounding
// of 16 floats. Internal; only for functions compiled with
// MUSESPARK_AVX512_BF16's target (callers check kernels::active_isa()).
#pragma once

#include <immintrin.h>

#include <cstdint>

// GCC 12's _mm512_undefined_* (inside several intrinsics, e.g.
// _mm512_reduce_add_ps) trips -W(maybe-)uninitialized by design; the values
// are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define MUSESPARK_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

namespace musespark::kernels::detail {

// e^x, x clamped to [-88, 88]: x = n ln2 + r with |r| <= ln2/2, e^r by a
// degree-6 polynomial (relative error about 1e-7, as Cephes' expf), scaled
// by 2^n.
MUSESPARK_AVX512_BF16 inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // ln 2 in two parts, so n * ln2 is subtracted without losing r's bits.
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(y, n);
}

// 16 bf16 values (bits) as floats, and floats rounded to bf16 (nearest even).
MUSESPARK_AVX512_BF16 inline __m512 load_bf16x16(const uint16_t* p) {
  return _mm512_cvtpbh_ps(reinterpret_cast<__m256bh>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
}
MUSESPARK_AVX512_BF16 inline void store_bf16x16(uint16_t* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
}
MUSESPARK_AVX512_BF16 inline __m512 round_bf16x16(__m512 v) { return _mm512_cvtpbh_ps(_mm512_cvtneps_pbh(v)); }

// The lanes of the 16 elements from here when `left` remain (none when
// left <= 0), and masked forms of the bf16 load and store (lanes off: read
// as 0, not written).
MUSESPARK_AVX512_BF16 inline __mmask16 lanes(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
}
MUSESPARK_AVX512_BF16 inline __m512 load_bf16_masked(const uint16_t* p, __mmask16 m) {
  return _mm512_cvtpbh_ps(reinterpret_cast<__m256bh>(_mm256_maskz_loadu_epi16(m, p)));
}
MUSESPARK_AVX512_BF16 inline void store_bf16_masked(uint16_t* p, __mmask16 m, __m512 v) {
  _mm256_mask_storeu_epi16(p, m, reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
}

}  // namespace musespark::kernels::detail
