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

// The scalar steps both share.
inline float quantize_inverse(float amax) { return amax > 0.0f ? 127.0f / amax : 0.0f; }
// Round half to even without the rounding mode or libm: exact for |v| < 2^22.
inline float round_even(float v) {
  volatile float magic = 12582912.0f;  // 1.5 * 2^23 (volatile: the two steps must not be folded)
  return (v + magic) - magic;
}

}  // namespace musespark::kernels::detail
