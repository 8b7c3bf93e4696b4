// AVX-512 loops: vdpbf16ps on bf16 panels, vpdpbusd on int8 panels.
//
// A tile is MR activation rows x NB panels (16 output rows each), all
// accumulators in registers (MR * NB <= 24 of the 32 zmm). Per k-group the
// tile loads NB 64-byte weight vectors once and multiplies each with the
// MR broadcast activation groups, so weights stream from memory exactly
// once per call (past 8 rows, slices of panels are re-read from L2), and
// accumulators never leave registers.
#include <algorithm>
#include <cstring>

#include "kernels/avx512_math.hpp"
#include "kernels/linear_isa.hpp"

#define MUSESPARK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vnni")))

namespace musespark::kernels::detail {
namespace {

// Rows per tile -> panels per tile: few rows leave registers for more
// independent accumulator chains (and more streams in flight).
constexpr int panels_per_tile(int mr) { return mr <= 4 ? 4 : 3; }
// Rows per tile at most; more rows are done in blocks of this many.
constexpr int64_t kMaxTileRows = 8;
// Bytes ahead of the loads that a tile of many rows prefetches each weight
// stream: with 5 or more rows a k-group takes long enough that the hardware
// prefetcher alone keeps too few lines in flight.
constexpr int64_t kPrefetchBytes = 2048;

inline uint32_t load_u32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}


MUSESPARK_AVX512 inline void store_row(const LinearArgs& a, int64_t row, int64_t n0, __m512 v, __mmask16 mask) {
  if (a.out_f32) {
    _mm512_mask_storeu_ps(static_cast<float*>(a.out) + row * a.out_stride + n0, mask, v);
  } else {
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
    _mm256_mask_storeu_epi16(static_cast<uint16_t*>(a.out) + row * a.out_stride + n0, mask, h);
  }
}

// What differs between the bf16 and int8 tiles. In both, one k-group of
// 16 output rows is 64 bytes of weights and one k-group of an activation
// row is 4 bytes (2 bf16 or 4 int8), broadcast to every lane.
struct Bf16Op {
  using Acc = __m512;
  static constexpr int64_t kGroup = kBf16Group;
  static const void* x(const LinearArgs& a) { return a.x_bf16; }
  MUSESPARK_AVX512 static Acc zero() { return _mm512_setzero_ps(); }
  MUSESPARK_AVX512 static Acc madd(Acc acc, __m512i w, __m512i x) {
    return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x);
  }
  // The epilogue of one panel (the 16 columns from n0).
  struct Columns {
    __m512 bias;
    MUSESPARK_AVX512 Columns(const LinearArgs& a, int64_t n0, __mmask16 mask)
        : bias(a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + n0) : _mm512_setzero_ps()) {}
    MUSESPARK_AVX512 __m512 finish(const LinearArgs&, int64_t, Acc acc) const { return _mm512_add_ps(acc, bias); }
  };
};

struct Int8Op {
  using Acc = __m512i;
  static constexpr int64_t kGroup = kInt8Group;
  static const void* x(const LinearArgs& a) { return a.x_q; }
  MUSESPARK_AVX512 static Acc zero() { return _mm512_setzero_si512(); }
  MUSESPARK_AVX512 static Acc madd(Acc acc, __m512i w, __m512i x) { return _mm512_dpbusd_epi32(acc, x, w); }
  struct Columns {
    __m512 bias, w_scale;
    __m512i offset;
    MUSESPARK_AVX512 Columns(const LinearArgs& a, int64_t n0, __mmask16 mask)
        : bias(a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + n0) : _mm512_setzero_ps()),
          w_scale(_mm512_maskz_loadu_ps(mask, a.weight_scale + n0)),
          // The activations carry +128 (unsigned): take 128 * the sum of each row's weights back.
          offset(_mm512_slli_epi32(_mm512_maskz_loadu_epi32(mask, a.weight_sum + n0), 7)) {}
    // int8_output, lane by lane.
    MUSESPARK_AVX512 __m512 finish(const LinearArgs& a, int64_t row, Acc acc) const {
      const __m512i dot = _mm512_sub_epi32(acc, offset);
      const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(a.x_scale[row]), w_scale);
      return _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(dot), scale), bias);
    }
  };
};

template <class Op, int MR, int NB>
MUSESPARK_AVX512 void tile(const LinearArgs& a, int64_t panel, int64_t row0) {
  const int64_t groups = a.kp / Op::kGroup;
  const int64_t panel_bytes = groups * 64;
  const char* w = static_cast<const char*>(a.weights) + panel * panel_bytes;
  const char* x = static_cast<const char*>(Op::x(a)) + row0 * groups * 4;

  typename Op::Acc acc[MR][NB];
#pragma GCC unroll 16
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[m][b] = Op::zero();

  for (int64_t g = 0; g < groups; ++g) {
    __m512i wv[NB];
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) wv[b] = _mm512_loadu_si512(w + b * panel_bytes + g * 64);
    if constexpr (MR >= 5) {
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) _mm_prefetch(w + b * panel_bytes + g * 64 + kPrefetchBytes, _MM_HINT_T0);
    }
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) {
      const __m512i xv = _mm512_set1_epi32(static_cast<int>(load_u32(x + (m * groups + g) * 4)));
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) acc[m][b] = Op::madd(acc[m][b], wv[b], xv);
    }
  }

#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b) {
    const int64_t n0 = (panel + b) * kPanelRows;
    if (n0 >= a.n) break;
    const __mmask16 mask = lanes(a.n - n0);
    const typename Op::Columns columns(a, n0, mask);
#pragma GCC unroll 16
    for (int m = 0; m < MR; ++m) store_row(a, row0 + m, n0, columns.finish(a, row0 + m, acc[m][b]), mask);
  }
}

// The k-group formats (bf16, int8) as an Op of tiles/all_rows.
template <class Op>
struct GroupOp {
  static constexpr int panels(int mr) { return panels_per_tile(mr); }
  static int64_t panel_bytes(const LinearArgs& a) { return a.kp / Op::kGroup * 64; }
  template <int MR, int NB>
  static void tile(const LinearArgs& a, int64_t panel, int64_t row0) { ::musespark::kernels::detail::tile<Op, MR, NB>(a, panel, row0); }
};

// All panels [p0, p1) for rows [row0, row0 + MR).
template <class Op, int MR>
void tiles(const LinearArgs& a, int64_t p0, int64_t p1, int64_t row0) {
  constexpr int NB = Op::panels(MR);
  int64_t p = p0;
  for (; p + NB <= p1; p += NB) Op::template tile<MR, NB>(a, p, row0);
  for (; p < p1; ++p) Op::template tile<MR, 1>(a, p, row0);
}

template <class Op>
void row_block(const LinearArgs& a, int64_t p0, int64_t p1, int64_t r) {
  switch (std::min(a.rows - r, kMaxTileRows)) {
    case 1: tiles<Op, 1>(a, p0, p1, r); break;
    case 2: tiles<Op, 2>(a, p0, p1, r); break;
    case 3: tiles<Op, 3>(a, p0, p1, r); break;
    case 4: tiles<Op, 4>(a, p0, p1, r); break;
    case 5: tiles<Op, 5>(a, p0, p1, r); break;
    case 6: tiles<Op, 6>(a, p0, p1, r); break;
    case 7: tiles<Op, 7>(a, p0, p1, r); break;
    default: tiles<Op, 8>(a, p0, p1, r); break;
  }
}

// Up to 8 rows: one pass over the panels. More: the panels in slices of
// about 256 KB (they stay in L2), each slice for every block of 8 rows, so
// the weights still come from memory once.
template <class Op>
void all_rows(const LinearArgs& a, int64_t p0, int64_t p1) {
  if (a.rows <= kMaxTileRows) {
    row_block<Op>(a, p0, p1, 0);
    return;
  }
  const int64_t panel_bytes = Op::panel_bytes(a);
  const int64_t slice = std::max<int64_t>(3, (256 << 10) / panel_bytes / 3 * 3);
  for (int64_t s = p0; s < p1; s += slice)
    for (int64_t r = 0; r < a.rows; r += kMaxTileRows) row_block<Op>(a, s, std::min(p1, s + slice), r);
}

// Block formats (q4, q8b): per block, integer dots of the unsigned codes
// with the signed activations (vpdpbusd), then one float step per block
// (block_output). Tiles of MR rows x NB panels as above; NB shrinks with
// MR since each (row, panel) holds a float and an integer accumulator.
constexpr int block_panels_per_tile(int mr) { return mr <= 2 ? 4 : mr <= 4 ? 2 : 1; }

// The codes of one block of NB panels into dot[MR][NB]: q4 splits each
// 64-byte vector into its low nibbles (k 4v..4v+3) and high ones (k 16+4v..).
struct Q4Codes {
  static int64_t bytes(int64_t block) { return q4_code_bytes(block); }
  template <int MR, int NB>
  MUSESPARK_AVX512 static void dot(__m512i (&acc)[MR][NB], const char* w, int64_t panel_bytes, const int8_t* x,
                                   int64_t x_stride, int64_t block) {
    const __m512i low = _mm512_set1_epi8(15);
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      __m512i lo[NB], hi[NB];
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) {
        const __m512i packed = _mm512_loadu_si512(w + b * panel_bytes + v * 64);
        lo[b] = _mm512_and_si512(packed, low);
        hi[b] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low);
      }
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m512i xl = _mm512_set1_epi32(static_cast<int>(load_u32(x + m * x_stride + 4 * v)));
        const __m512i xh = _mm512_set1_epi32(static_cast<int>(load_u32(x + m * x_stride + 16 + 4 * v)));
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) acc[m][b] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(acc[m][b], lo[b], xl), hi[b], xh);
      }
    }
    (void)block;
  }
};

struct Q8bCodes {
  static int64_t bytes(int64_t block) { return q8b_code_bytes(block); }
  template <int MR, int NB>
  MUSESPARK_AVX512 static void dot(__m512i (&acc)[MR][NB], const char* w, int64_t panel_bytes, const int8_t* x,
                                   int64_t x_stride, int64_t block) {
    for (int64_t g = 0; g < block / 4; ++g) {
      __m512i wv[NB];
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) wv[b] = _mm512_loadu_si512(w + b * panel_bytes + g * 64);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m512i xv = _mm512_set1_epi32(static_cast<int>(load_u32(x + m * x_stride + 4 * g)));
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) acc[m][b] = _mm512_dpbusd_epi32(acc[m][b], wv[b], xv);
      }
    }
  }
};

template <class Codes, int MR, int NB>
MUSESPARK_AVX512 void block_tile(const LinearArgs& a, int64_t panel, int64_t row0) {
  const int64_t blocks = a.kp / a.block, code_bytes = Codes::bytes(a.block);
  const int64_t block_bytes = code_bytes + kBlockScaleBytes, panel_bytes = blocks * block_bytes;
  const char* w = static_cast<const char*>(a.weights) + panel * panel_bytes;
  const int8_t* x = a.x_q + row0 * a.kp;
  const float* xs = a.x_block_scale + row0 * blocks;
  const float* xm = a.x_block_sum + row0 * blocks;

  __m512 acc[MR][NB];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) acc[m][b] = _mm512_setzero_ps();
  for (int64_t blk = 0; blk < blocks; ++blk, w += block_bytes) {
    __m512i dot[MR][NB];
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) dot[m][b] = _mm512_setzero_si512();
    if constexpr (MR >= 5) {
      for (int64_t off = 0; off < block_bytes; off += 64) _mm_prefetch(w + off + kPrefetchBytes, _MM_HINT_T0);
    }
    Codes::template dot<MR, NB>(dot, w, panel_bytes, x + blk * a.block, a.kp, a.block);
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) {
      const __m512 d = _mm512_loadu_ps(w + b * panel_bytes + code_bytes);
      const __m512 mw = _mm512_loadu_ps(w + b * panel_bytes + code_bytes + 64);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        // block_output, lane by lane.
        const __m512 scale = _mm512_mul_ps(d, _mm512_set1_ps(xs[m * blocks + blk]));
        acc[m][b] = _mm512_fmadd_ps(mw, _mm512_set1_ps(xm[m * blocks + blk]),
                                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[m][b]), scale, acc[m][b]));
      }
    }
  }
#pragma GCC unroll 4
  for (int b = 0; b < NB; ++b) {
    const int64_t n0 = (panel + b) * kPanelRows;
    if (n0 >= a.n) break;
    const __mmask16 mask = lanes(a.n - n0);
    const __m512 bias = a.bias ? _mm512_maskz_loadu_ps(mask, a.bias + n0) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) store_row(a, row0 + m, n0, _mm512_add_ps(acc[m][b], bias), mask);
  }
}

// The block formats as an Op of tiles/all_rows below.
template <class Codes>
struct BlockOp {
  static constexpr int panels(int mr) { return block_panels_per_tile(mr); }
  static int64_t panel_bytes(const LinearArgs& a) {
    return a.kp / a.block * (Codes::bytes(a.block) + kBlockScaleBytes);
  }
  template <int MR, int NB>
  static void tile(const LinearArgs& a, int64_t panel, int64_t row0) { block_tile<Codes, MR, NB>(a, panel, row0); }
};

// Up to 16 floats from element i of x (bf16 bits or float32), zero past `left`.
MUSESPARK_AVX512 inline __m512 load_floats(const void* x, bool is_bf16, int64_t i, int64_t left) {
  const __mmask16 mask = lanes(left);
  if (!is_bf16) return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(x) + i);
  return load_bf16_masked(static_cast<const uint16_t*>(x) + i, mask);
}

}  // namespace

void bf16_panels_avx512(const LinearArgs& a, int64_t p0, int64_t p1) { all_rows<GroupOp<Bf16Op>>(a, p0, p1); }
void int8_panels_avx512(const LinearArgs& a, int64_t p0, int64_t p1) { all_rows<GroupOp<Int8Op>>(a, p0, p1); }
void q4_panels_avx512(const LinearArgs& a, int64_t p0, int64_t p1) { all_rows<BlockOp<Q4Codes>>(a, p0, p1); }
void q8b_panels_avx512(const LinearArgs& a, int64_t p0, int64_t p1) { all_rows<BlockOp<Q8bCodes>>(a, p0, p1); }

MUSESPARK_AVX512 void quantize_rows_avx512(const void* x, bool x_is_bf16, int64_t rows, int64_t k, int64_t kp,
                                           int8_t* q, float* scale, bool offset128) {
  const __m512i offset = _mm512_set1_epi32(offset128 ? 128 : 0);
  for (int64_t r = 0; r < rows; ++r) {
    __m512 vmax = _mm512_setzero_ps();
    for (int64_t i = 0; i < k; i += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(load_floats(x, x_is_bf16, r * k + i, k - i)));
    const float amax = _mm512_reduce_max_ps(vmax);
    const __m512 inverse = _mm512_set1_ps(quantize_inverse(amax));
    scale[r] = amax / 127.0f;
    int8_t* out = q + r * kp;
    for (int64_t i = 0; i < kp; i += 16) {
      // Past k the load gives zero, which quantises to the value of zero.
      const __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(load_floats(x, x_is_bf16, r * k + i, k - i), inverse),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      __m512i iv = _mm512_cvttps_epi32(v);
      iv = _mm512_min_epi32(_mm512_max_epi32(iv, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
      const __m128i bytes = _mm512_cvtepi32_epi8(_mm512_add_epi32(iv, offset));
      const __mmask16 mask = lanes(kp - i);
      _mm_mask_storeu_epi8(out + i, mask, bytes);
    }
  }
}

}  // namespace musespark::kernels::detail
