// AVX2 + FMA loops over the same panels as the AVX-512 ones (the fallback on
// CPUs without AVX-512 BF16/VNNI).
//
// bf16: a 64-byte k-group is two 32-byte halves of 8 output rows; each
// 32-bit lane holds (w[k], w[k+1]) of one row, turned into two float vectors
// by a shift and a mask, then multiplied with broadcast float activations.
// int8: each 32-bit lane holds 4 k of one row; |x| (unsigned) times w with
// x's sign (vpsignb) in vpmaddubsw cannot saturate since |q| <= 127, and
// vpmaddwd with ones sums the pairs: the exact integer dot of the VNNI path.
// With AVX-VNNI (avx_vnni), one 256-bit vpdpbusd on activations stored +128
// as unsigned bytes does the same, and 128 x the row's weight sum is taken
// back in the epilogue, as in the AVX-512 loop.
#include <immintrin.h>

#include <cstring>

#include "kernels/linear_isa.hpp"

#define MUSESPARK_AVX2 __attribute__((target("avx2,fma")))
#define MUSESPARK_AVX_VNNI __attribute__((target("avx2,fma,avxvnni")))

namespace musespark::kernels::detail {
namespace {

constexpr int kMaxRows = 4;  // rows per tile: 8 accumulators of the 16 ymm

inline void store(const LinearArgs& a, int64_t row, int64_t col, float v) {
  if (a.out_f32) static_cast<float*>(a.out)[row * a.out_stride + col] = v;
  else static_cast<uint16_t*>(a.out)[row * a.out_stride + col] = bf16_bits(v);
}

template <int MR>
MUSESPARK_AVX2 void bf16_tile(const LinearArgs& a, int64_t panel, int64_t row0) {
  const int64_t groups = a.kp / kBf16Group;
  const uint16_t* w = static_cast<const uint16_t*>(a.weights) + panel * groups * kPanelRows * kBf16Group;
  const float* x = a.x_f32 + row0 * a.kp;
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xffff0000u));

  __m256 acc[MR][2];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m256 even[2], odd[2];
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 32 + h * 16));
      even[h] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
      odd[h] = _mm256_castsi256_ps(_mm256_and_si256(v, high));
    }
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      const __m256 xe = _mm256_set1_ps(x[m * a.kp + 2 * g]);
      const __m256 xo = _mm256_set1_ps(x[m * a.kp + 2 * g + 1]);
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) acc[m][h] = _mm256_fmadd_ps(odd[h], xo, _mm256_fmadd_ps(even[h], xe, acc[m][h]));
    }
  }
  const int64_t n0 = panel * kPanelRows;
  for (int m = 0; m < MR; ++m) {
    alignas(32) float out[16];
    _mm256_store_ps(out, acc[m][0]);
    _mm256_store_ps(out + 8, acc[m][1]);
    for (int64_t i = 0; i < 16 && n0 + i < a.n; ++i)
      store(a, row0 + m, n0 + i, out[i] + (a.bias ? a.bias[n0 + i] : 0.0f));
  }
}

// One row of an int8 tile: its 16 integer dots (two accumulators of 8) as
// outputs. `offset` is 128 when the activations were stored +128 (the
// AVX-VNNI loop): 128 x each output row's weight sum is taken back.
MUSESPARK_AVX2 inline void store_int8_row(const LinearArgs& a, int64_t panel, int64_t row, const __m256i acc[2],
                                          int32_t offset) {
  const int64_t n0 = panel * kPanelRows;
  alignas(32) int32_t dot[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(dot), acc[0]);
  _mm256_store_si256(reinterpret_cast<__m256i*>(dot + 8), acc[1]);
  for (int64_t i = 0; i < 16 && n0 + i < a.n; ++i) {
    const int32_t exact = offset ? dot[i] - offset * a.weight_sum[n0 + i] : dot[i];
    store(a, row, n0 + i, int8_output(exact, a.x_scale[row], a.weight_scale[n0 + i], a.bias ? a.bias[n0 + i] : 0.0f));
  }
}

template <int MR>
MUSESPARK_AVX2 void int8_tile(const LinearArgs& a, int64_t panel, int64_t row0) {
  const int64_t groups = a.kp / kInt8Group;
  const int8_t* w = static_cast<const int8_t*>(a.weights) + panel * groups * kPanelRows * kInt8Group;
  const int8_t* x = a.x_q + row0 * a.kp;
  const __m256i ones = _mm256_set1_epi16(1);

  __m256i acc[MR][2];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_si256();
  for (int64_t g = 0; g < groups; ++g) {
    __m256i wv[2];
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) wv[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 64 + h * 32));
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      int32_t x4;
      std::memcpy(&x4, x + m * a.kp + g * 4, 4);
      const __m256i xv = _mm256_set1_epi32(x4);
      const __m256i magnitude = _mm256_abs_epi8(xv);
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        const __m256i pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(wv[h], xv));
        acc[m][h] = _mm256_add_epi32(acc[m][h], _mm256_madd_epi16(pairs, ones));
      }
    }
  }
  for (int m = 0; m < MR; ++m) store_int8_row(a, panel, row0 + m, acc[m], 0);
}

template <int MR>
MUSESPARK_AVX_VNNI void int8_vnni_tile(const LinearArgs& a, int64_t panel, int64_t row0) {
  const int64_t groups = a.kp / kInt8Group;
  const int8_t* w = static_cast<const int8_t*>(a.weights) + panel * groups * kPanelRows * kInt8Group;
  const int8_t* x = a.x_q + row0 * a.kp;

  __m256i acc[MR][2];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) acc[m][0] = acc[m][1] = _mm256_setzero_si256();
  for (int64_t g = 0; g < groups; ++g) {
    __m256i wv[2];
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) wv[h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 64 + h * 32));
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      int32_t x4;
      std::memcpy(&x4, x + m * a.kp + g * 4, 4);
      const __m256i xv = _mm256_set1_epi32(x4);
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) acc[m][h] = _mm256_dpbusd_avx_epi32(acc[m][h], xv, wv[h]);
    }
  }
  for (int m = 0; m < MR; ++m) store_int8_row(a, panel, row0 + m, acc[m], 128);
}

// Block formats: per block and 8-lane half, integer dots of the codes
// (unsigned) with the activations (signed) by vpmaddubsw + vpmaddwd, then
// block_output. q4 codes are < 16, so a pair sums to at most 2*15*127;
// q8b's bytes are split into nibbles first for the same reason (255*127*2
// would saturate vpmaddubsw), the high half's dot shifted back by 4.
struct Q4Half {
  static int64_t bytes(int64_t block) { return q4_code_bytes(block); }
  MUSESPARK_AVX2 static __m256i dot(const uint8_t* w, const int8_t* x, int64_t block) {
    const __m256i low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256i acc = _mm256_setzero_si256();
    for (int v = 0; v < 4; ++v) {
      const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + v * 64));
      int32_t xl, xh;
      std::memcpy(&xl, x + 4 * v, 4);
      std::memcpy(&xh, x + 16 + 4 * v, 4);
      const __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(packed, low), _mm256_set1_epi32(xl));
      const __m256i hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(packed, 4), low), _mm256_set1_epi32(xh));
      acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_add_epi16(lo, hi), ones));
    }
    (void)block;
    return acc;
  }
};

struct Q8bHalf {
  static int64_t bytes(int64_t block) { return q8b_code_bytes(block); }
  MUSESPARK_AVX2 static __m256i dot(const uint8_t* w, const int8_t* x, int64_t block) {
    const __m256i low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256i lo_acc = _mm256_setzero_si256(), hi_acc = _mm256_setzero_si256();
    for (int64_t g = 0; g < block / 4; ++g) {
      const __m256i codes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 64));
      int32_t x4;
      std::memcpy(&x4, x + 4 * g, 4);
      const __m256i xv = _mm256_set1_epi32(x4);
      lo_acc = _mm256_add_epi32(lo_acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(codes, low), xv), ones));
      hi_acc = _mm256_add_epi32(
          hi_acc, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(codes, 4), low), xv), ones));
    }
    return _mm256_add_epi32(lo_acc, _mm256_slli_epi32(hi_acc, 4));
  }
};

template <class Codes>
MUSESPARK_AVX2 void block_panels(const LinearArgs& a, int64_t p0, int64_t p1) {
  const int64_t blocks = a.kp / a.block, code_bytes = Codes::bytes(a.block);
  const int64_t block_bytes = code_bytes + kBlockScaleBytes;
  for (int64_t p = p0; p < p1; ++p) {
    const uint8_t* panel = static_cast<const uint8_t*>(a.weights) + p * blocks * block_bytes;
    for (int64_t r = 0; r < a.rows; ++r) {
      const int8_t* x = a.x_q + r * a.kp;
      __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* w = panel + b * block_bytes;
        const __m256 xs = _mm256_set1_ps(a.x_block_scale[r * blocks + b]);
        const __m256 xm = _mm256_set1_ps(a.x_block_sum[r * blocks + b]);
#pragma GCC unroll 2
        for (int h = 0; h < 2; ++h) {
          const __m256i dot = Codes::dot(w + h * 32, x + b * a.block, a.block);
          const __m256 d = _mm256_loadu_ps(reinterpret_cast<const float*>(w + code_bytes) + 8 * h);
          const __m256 m = _mm256_loadu_ps(reinterpret_cast<const float*>(w + code_bytes + 64) + 8 * h);
          // block_output, lane by lane.
          acc[h] = _mm256_fmadd_ps(m, xm, _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_mul_ps(d, xs), acc[h]));
        }
      }
      alignas(32) float out[16];
      _mm256_store_ps(out, acc[0]);
      _mm256_store_ps(out + 8, acc[1]);
      const int64_t n0 = p * kPanelRows;
      for (int64_t i = 0; i < 16 && n0 + i < a.n; ++i) store(a, r, n0 + i, out[i] + (a.bias ? a.bias[n0 + i] : 0.0f));
    }
  }
}

template <template <int> class Tile>
void all_rows(const LinearArgs& a, int64_t p0, int64_t p1) {
  // Panel outer, rows inner: a panel is re-read from cache, not memory.
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t r = 0; r < a.rows; r += kMaxRows) {
      switch (a.rows - r >= kMaxRows ? kMaxRows : a.rows - r) {
        case 1: Tile<1>::run(a, p, r); break;
        case 2: Tile<2>::run(a, p, r); break;
        case 3: Tile<3>::run(a, p, r); break;
        default: Tile<4>::run(a, p, r); break;
      }
    }
}

template <int MR>
struct Bf16Tile {
  static void run(const LinearArgs& a, int64_t p, int64_t r) { bf16_tile<MR>(a, p, r); }
};
template <int MR>
struct Int8Tile {
  static void run(const LinearArgs& a, int64_t p, int64_t r) { int8_tile<MR>(a, p, r); }
};
template <int MR>
struct Int8VnniTile {
  static void run(const LinearArgs& a, int64_t p, int64_t r) { int8_vnni_tile<MR>(a, p, r); }
};

}  // namespace

void bf16_panels_avx2(const LinearArgs& a, int64_t p0, int64_t p1) { all_rows<Bf16Tile>(a, p0, p1); }
void int8_panels_avx2(const LinearArgs& a, int64_t p0, int64_t p1) { all_rows<Int8Tile>(a, p0, p1); }
void int8_panels_avx_vnni(const LinearArgs& a, int64_t p0, int64_t p1) { all_rows<Int8VnniTile>(a, p0, p1); }
void q4_panels_avx2(const LinearArgs& a, int64_t p0, int64_t p1) { block_panels<Q4Half>(a, p0, p1); }
void q8b_panels_avx2(const LinearArgs& a, int64_t p0, int64_t p1) { block_panels<Q8bHalf>(a, p0, p1); }

}  // namespace musespark::kernels::detail
