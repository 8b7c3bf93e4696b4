// The contract between PackedLinear (which prepares operands and splits the
// work) and the per-instruction-set loops (linear_avx512.cpp,
// linear_avx2.cpp, linear_portable.cpp). Internal; no ATen here.
//
// Packed layout ("panels"): output rows are grouped 16 at a time; panel p
// holds rows 16p..16p+15 for every k, stored k-group by k-group, and within
// a k-group lane by lane:
//   bf16: group = 2 consecutive k  -> 16 lanes x 2 x bf16 = 64 bytes
//   int8: group = 4 consecutive k  -> 16 lanes x 4 x int8 = 64 bytes
// so one 64-byte load is one k-group of 16 output rows: exactly the operand
// of vdpbf16ps / vpdpbusd with the activations' k-group broadcast, and every
// panel is one contiguous stream. K is padded with zero weights to a whole
// group; rows past N are zero.
//
// Block formats (q4, q8b) keep the same 16-row panels but store them block
// by block: `block` consecutive k (32 for q4; 16 or 32 for q8b) of 16 rows
// are the codes, then 16 float32 scales d, then 16 float32 offsets m
// (w = d * code + m, codes unsigned):
//   q4:  block 32 = 4 vectors of 64 bytes; byte j of lane i of vector v holds
//        code k = 4v + j in its low nibble and k = 16 + 4v + j in its high one;
//   q8b: block/4 vectors of 64 bytes, one k-group of 4 byte codes per lane.
// So each 64-byte vector (after the nibble split for q4) is again the
// unsigned operand of vpdpbusd, the activations' signed k-group broadcast.
#pragma once

#include <cstdint>

namespace musespark::kernels::detail {

inline constexpr int64_t kPanelRows = 16;
inline constexpr int64_t kBf16Group = 2;
inline constexpr int64_t kInt8Group = 4;

struct LinearArgs {
  // Weights: `panels` panels of kPanelRows x kp (kp = K padded to a group).
  const void* weights = nullptr;
  int64_t kp = 0;
  int64_t n = 0;  // valid output rows (columns of the result)
  // int8 only: per output row scale and sum of its quantised weights.
  const float* weight_scale = nullptr;
  const int32_t* weight_sum = nullptr;
  const float* bias = nullptr;  // [n] or null

  // Activations: `rows` rows of kp values (the padding is zero).
  int64_t rows = 0;
  const uint16_t* x_bf16 = nullptr;  // bf16 kernels on AVX-512
  const float* x_f32 = nullptr;      // bf16 kernels elsewhere
  // int8 kernels: x ~= x_scale[r] * q[r][k] with q in [-127, 127], stored
  // as int8, or as uint8 q + 128 when x_offset128 (AVX-512 VNNI multiplies
  // unsigned by signed bytes; the weight sums undo the offset exactly).
  const int8_t* x_q = nullptr;
  const float* x_scale = nullptr;
  bool x_offset128 = false;

  // Block formats: the block size, and per (row, block) of the activations
  // (quantised per block into x_q, signed, never offset): x_block_scale d_x
  // and x_block_sum = d_x * (sum of the block's q). Each output is
  //   sum over blocks of  (d_w * d_x) * dot(q_w, q_x) + m_w * x_block_sum
  // accumulated block by block in float32 with block_output (so every
  // instruction set gives bit-identical results), plus bias.
  int64_t block = 0;
  const float* x_block_scale = nullptr;
  const float* x_block_sum = nullptr;

  // Result: rows x n, row stride out_stride elements, float32 or bf16.
  void* out = nullptr;
  int64_t out_stride = 0;
  bool out_f32 = false;
};

// Each computes output columns of panels [p0, p1) for all rows.
void bf16_panels_avx512(const LinearArgs& a, int64_t p0, int64_t p1);
void bf16_panels_avx2(const LinearArgs& a, int64_t p0, int64_t p1);
void bf16_panels_portable(const LinearArgs& a, int64_t p0, int64_t p1);
void int8_panels_avx512(const LinearArgs& a, int64_t p0, int64_t p1);
void int8_panels_avx2(const LinearArgs& a, int64_t p0, int64_t p1);
void int8_panels_avx_vnni(const LinearArgs& a, int64_t p0, int64_t p1);  // x_offset128 activations
void int8_panels_portable(const LinearArgs& a, int64_t p0, int64_t p1);
void q4_panels_avx512(const LinearArgs& a, int64_t p0, int64_t p1);
void q4_panels_avx2(const LinearArgs& a, int64_t p0, int64_t p1);
void q4_panels_portable(const LinearArgs& a, int64_t p0, int64_t p1);
void q8b_panels_avx512(const LinearArgs& a, int64_t p0, int64_t p1);
void q8b_panels_avx2(const LinearArgs& a, int64_t p0, int64_t p1);
void q8b_panels_portable(const LinearArgs& a, int64_t p0, int64_t p1);

// Bytes of one block of one panel: codes, then 16 scales and 16 offsets.
inline constexpr int64_t kBlockScaleBytes = 2 * kPanelRows * 4;
inline int64_t q4_code_bytes(int64_t block) { return block * kPanelRows / 2; }
inline int64_t q8b_code_bytes(int64_t block) { return block * kPanelRows; }

// One block's step of a block-format output (see LinearArgs::block).
inline float block_output(float acc, int32_t dot, float w_scale, float w_offset, float x_scale, float x_sum) {
  const float scale = w_scale * x_scale;
  return __builtin_fmaf(w_offset, x_sum, __builtin_fmaf(static_cast<float>(dot), scale, acc));
}

// Shared epilogue arithmetic of the int8 kernels, so every instruction set
// gives bit-identical results: (sum of q_x * q_w) * (x_scale * w_scale) + bias.
inline float int8_output(int32_t dot, float x_scale, float w_scale, float bias) {
  const float scale = x_scale * w_scale;
  return static_cast<float>(dot) * scale + bias;
}

// float -> bf16 bits, round to nearest even (as vcvtneps2bf16; NaN stays NaN).
inline uint16_t bf16_bits(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

}  // namespace musespark::kernels::detail

namespace musespark::kernels::detail {

// Quantises `rows` activation rows of `k` values (bf16 bits or float32, row
// stride k) into q (row stride kp, the padding set to the value of zero) and
// one scale per row: scale = max|x| / 127, q = round-half-even(x * 127/max|x|).
// Both versions give identical bytes.
void quantize_rows_portable(const void* x, bool x_is_bf16, int64_t rows, int64_t k, int64_t kp, int8_t* q,
                            float* scale, bool offset128);
void quantize_rows_avx512(const void* x, bool x_is_bf16, int64_t rows, int64_t k, int64_t kp, int8_t* q,
                          float* scale, bool offset128);

// Block formats' activations: each block of `block` values of a row (k a
// whole number of blocks past the padding: kp) quantised on its own,
// d = max|x| / 127, q = round-half-even(x * 127/max|x|); x_block_scale gets
// d and x_block_sum d * (sum of q), [rows, kp / block] each. One version
// for every instruction set (it is a small part of a product's time).
void quantize_blocks(const void* x, bool x_is_bf16, int64_t rows, int64_t k, int64_t kp, int64_t block, int8_t* q,
                     float* x_block_scale, float* x_block_sum);

// The scalar steps both share.
inline float quantize_inverse(float amax) { return amax > 0.0f ? 127.0f / amax : 0.0f; }
// Round half to even without the rounding mode or libm: exact for |v| < 2^22.
inline float round_even(float v) {
  volatile float magic = 12582912.0f;  // 1.5 * 2^23 (volatile: the two steps must not be folded)
  return (v + magic) - magic;
}

}  // namespace musespark::kernels::detail
