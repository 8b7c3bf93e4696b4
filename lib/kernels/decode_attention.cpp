// Decode attention on AVX-512 BF16 (see decode_attention.hpp).
//
// Per work item (a sequence and one KV head, with its `group` query heads):
//   1. scores: each key row (head_dim bf16) is loaded once and dotted with
//      every query head of the group by vdpbf16ps, into a float buffer;
//   2. softmax per query head in float32 (max, exp, sum) over all segments;
//   3. each value row is converted to float once and added, weighted, into
//      every query head's accumulators (registers); one rounding to bf16.
#include "kernels/decode_attention.hpp"

#include <immintrin.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "kernels/avx512_math.hpp"
#include "kernels/cpu_features.hpp"
#include "kernels/softmax.hpp"

namespace musespark::kernels {
namespace {

MUSESPARK_AVX512_BF16 inline __m512bh load_bh(const uint16_t* p) {
  return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
}

// Softmax of n floats in place: the max, then e^(x - max) and its sum by the
// sampler's loops (kernels/softmax.hpp, AVX-512 here), then one scaling.
MUSESPARK_AVX512_BF16 void softmax_in_place(float* s, int64_t n) {
  const __m512 inv = _mm512_set1_ps(static_cast<float>(1.0 / exp_shifted(s, n, max_of(s, n), 1.0f, s)));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = detail::lanes(n - i);
    _mm512_mask_storeu_ps(s + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + i), inv));
  }
}

struct Item {
  const uint16_t* q;  // the group's first query head
  uint16_t* out;      // likewise
  std::span<const KvView> views;
  int64_t kv_head;
};

// out[j0 + j][d0 .. d0 + 16 C) = sum over positions t of p[j0 + j][t] * v_t,
// rounded to bf16 once (round to nearest even, as ATen's float -> bf16).
// (Fixed-count loops are unrolled so the accumulators stay in registers:
// GCC does not unroll them at -O2 and would keep the arrays on the stack.)
template <int J, int C>
MUSESPARK_AVX512_BF16 void weigh_values(const Item& it, int64_t d0, int64_t j0, int64_t hd, int64_t L, const float* p) {
  __m512 acc[J][C];
#pragma GCC unroll 4
  for (int j = 0; j < J; ++j)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) acc[j][c] = _mm512_setzero_ps();
  int64_t t0 = 0;
  for (const KvView& v : it.views) {
    const uint16_t* vbase = v.v + it.kv_head * v.head_stride + d0;
    for (int64_t t = 0; t < v.length; ++t) {
      const uint16_t* vr = vbase + t * v.position_stride;
      __m512 x[C];
#pragma GCC unroll 4
      for (int c = 0; c < C; ++c) x[c] = detail::load_bf16x16(vr + 16 * c);
#pragma GCC unroll 4
      for (int j = 0; j < J; ++j) {
        const __m512 w = _mm512_set1_ps(p[(j0 + j) * L + t0 + t]);
#pragma GCC unroll 4
        for (int c = 0; c < C; ++c) acc[j][c] = _mm512_fmadd_ps(w, x[c], acc[j][c]);
      }
    }
    t0 += v.length;
  }
#pragma GCC unroll 4
  for (int j = 0; j < J; ++j)
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c)
      detail::store_bf16x16(it.out + (j0 + j) * hd + d0 + 16 * c, acc[j][c]);
}

// One (row, KV head): `group` query heads of head_dim (a multiple of 32).
MUSESPARK_AVX512_BF16 void attend(const Item& it, int64_t group, int64_t hd, float scale, std::vector<float>& scores) {
  int64_t L = 0;
  for (const KvView& v : it.views) L += v.length;
  scores.resize(static_cast<size_t>(group * L));
  const int64_t chunks = hd / 32;  // 32 bf16 per 64-byte vector

  // 1. Scores: scores[j * L + t] = scale * q_j . k_t.
  int64_t t0 = 0;
  for (const KvView& v : it.views) {
    const uint16_t* kbase = v.k + it.kv_head * v.head_stride;
    for (int64_t t = 0; t < v.length; ++t) {
      const uint16_t* kr = kbase + t * v.position_stride;
      for (int64_t j = 0; j < group; ++j) {
        const uint16_t* qj = it.q + j * hd;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        int64_t c = 0;
        for (; c + 2 <= chunks; c += 2) {
          a0 = _mm512_dpbf16_ps(a0, load_bh(qj + c * 32), load_bh(kr + c * 32));
          a1 = _mm512_dpbf16_ps(a1, load_bh(qj + c * 32 + 32), load_bh(kr + c * 32 + 32));
        }
        if (c < chunks) a0 = _mm512_dpbf16_ps(a0, load_bh(qj + c * 32), load_bh(kr + c * 32));
        scores[j * L + t0 + t] = scale * _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
      }
    }
    t0 += v.length;
  }

  // 2. Softmax per query head.
  for (int64_t j = 0; j < group; ++j) softmax_in_place(scores.data() + j * L, L);

  // 3. Weighted values, a block of at most 4 query heads x 64 dimensions at
  // a time with every accumulator in a register; each value row is read
  // once per block (each element once in all).
  for (int64_t d0 = 0; d0 < hd; d0 += 64)
    for (int64_t j0 = 0; j0 < group; j0 += 4) {
      const int jn = static_cast<int>(std::min<int64_t>(4, group - j0));
      const bool full = hd - d0 >= 64;  // else 32 dimensions left (head_dim % 32 == 0)
      switch (jn * 2 + full) {
        case 2: weigh_values<1, 2>(it, d0, j0, hd, L, scores.data()); break;
        case 3: weigh_values<1, 4>(it, d0, j0, hd, L, scores.data()); break;
        case 4: weigh_values<2, 2>(it, d0, j0, hd, L, scores.data()); break;
        case 5: weigh_values<2, 4>(it, d0, j0, hd, L, scores.data()); break;
        case 6: weigh_values<3, 2>(it, d0, j0, hd, L, scores.data()); break;
        case 7: weigh_values<3, 4>(it, d0, j0, hd, L, scores.data()); break;
        case 8: weigh_values<4, 2>(it, d0, j0, hd, L, scores.data()); break;
        default: weigh_values<4, 4>(it, d0, j0, hd, L, scores.data()); break;
      }
    }
}

}  // namespace

bool decode_attention_available(const DecodeAttentionShape& s) noexcept {
  return active_isa() == KernelIsa::avx512 && s.head_dim > 0 && s.head_dim % 32 == 0 && s.kv_heads > 0 &&
         s.heads % s.kv_heads == 0;
}

void decode_attention(const uint16_t* q, int64_t q_row_stride, int64_t rows, const DecodeAttentionShape& s,
                      std::span<const KvView> views, std::span<const int64_t> first, uint16_t* out) {
  const int64_t group = s.heads / s.kv_heads, hd = s.head_dim;
  std::vector<Item> items;
  items.reserve(static_cast<size_t>(rows * s.kv_heads));
  int64_t work = 0;  // key and value elements read
  for (int64_t r = 0; r < rows; ++r) {
    auto row_views = views.subspan(static_cast<size_t>(first[r]), static_cast<size_t>(first[r + 1] - first[r]));
    for (const KvView& v : row_views) work += 2 * v.length * hd * s.kv_heads;
    for (int64_t g = 0; g < s.kv_heads; ++g)
      items.push_back({q + r * q_row_stride + g * group * hd, out + r * s.heads * hd + g * group * hd, row_views, g});
  }
  auto run = [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    for (int64_t i = begin; i < end; ++i) attend(items[i], group, hd, s.scale, scores);
  };
  const int64_t n = static_cast<int64_t>(items.size());
  // A parallel region costs a few microseconds: worth it from about 256 K
  // cached elements (a few hundred positions at Qwen3-0.6B's shape).
  if (work < (int64_t(1) << 18) || at::get_num_threads() <= 1 || at::in_parallel_region()) run(0, n);
  else at::parallel_for(0, n, 1, run);
}

}  // namespace musespark::kernels
