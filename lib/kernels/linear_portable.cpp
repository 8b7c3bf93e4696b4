// Plain C++ loops over the packed panels: the int8 path on CPUs without
// AVX2, and the reference the vector loops are tested against.
#include "kernels/linear_isa.hpp"

namespace musespark::kernels::detail {
namespace {

float value(uint16_t bf16) { return bf16_to_float(bf16); }
int32_t value(int8_t q) { return q; }

float value(const void* x, bool is_bf16, int64_t i) {
  return is_bf16 ? bf16_to_float(static_cast<const uint16_t*>(x)[i]) : static_cast<const float*>(x)[i];
}

void store(const LinearArgs& a, int64_t row, int64_t col, float v) {
  if (a.out_f32) static_cast<float*>(a.out)[row * a.out_stride + col] = v;
  else static_cast<uint16_t*>(a.out)[row * a.out_stride + col] = bf16_bits(v);
}

}  // namespace

namespace {

// Every panel of [p0, p1), every row: acc[i] = sum over k of w * x in Acc
// (float or int32), then finish(row, column, acc).
template <typename Weight, typename Activation, typename Acc, typename Finish>
void panels(const LinearArgs& a, int64_t p0, int64_t p1, int64_t group, const Activation* x_all,
            Finish&& finish) {
  const int64_t groups = a.kp / group;
  const auto* weights = static_cast<const Weight*>(a.weights);
  for (int64_t p = p0; p < p1; ++p) {
    const Weight* w = weights + p * groups * kPanelRows * group;
    for (int64_t r = 0; r < a.rows; ++r) {
      Acc acc[kPanelRows] = {};
      const Activation* x = x_all + r * a.kp;
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t i = 0; i < kPanelRows; ++i)
          for (int64_t t = 0; t < group; ++t) acc[i] += Acc(value(w[(g * kPanelRows + i) * group + t])) * Acc(x[g * group + t]);
      for (int64_t i = 0; i < kPanelRows && p * kPanelRows + i < a.n; ++i) {
        const int64_t col = p * kPanelRows + i;
        store(a, r, col, finish(r, col, acc[i]));
      }
    }
  }
}

float bias(const LinearArgs& a, int64_t col) { return a.bias ? a.bias[col] : 0.0f; }

}  // namespace

void bf16_panels_portable(const LinearArgs& a, int64_t p0, int64_t p1) {
  panels<uint16_t, float, float>(a, p0, p1, kBf16Group, a.x_f32,
                                 [&](int64_t, int64_t col, float acc) { return acc + bias(a, col); });
}

void int8_panels_portable(const LinearArgs& a, int64_t p0, int64_t p1) {
  panels<int8_t, int8_t, int32_t>(a, p0, p1, kInt8Group, a.x_q, [&](int64_t r, int64_t col, int32_t acc) {
    return int8_output(acc, a.x_scale[r], a.weight_scale[col], bias(a, col));
  });
}

namespace {

// Every panel of [p0, p1), every row, block by block: `code(block, lane, t)`
// is the weight code of element t of a block of one lane.
template <typename Code>
void block_panels(const LinearArgs& a, int64_t p0, int64_t p1, int64_t code_bytes, Code&& code) {
  const int64_t blocks = a.kp / a.block, block_bytes = code_bytes + kBlockScaleBytes;
  const auto* weights = static_cast<const uint8_t*>(a.weights);
  for (int64_t p = p0; p < p1; ++p) {
    for (int64_t r = 0; r < a.rows; ++r) {
      float acc[kPanelRows] = {};
      const int8_t* x = a.x_q + r * a.kp;
      for (int64_t b = 0; b < blocks; ++b) {
        const uint8_t* w = weights + (p * blocks + b) * block_bytes;
        float d[kPanelRows], m[kPanelRows];
        __builtin_memcpy(d, w + code_bytes, sizeof d);
        __builtin_memcpy(m, w + code_bytes + sizeof d, sizeof m);
        for (int64_t i = 0; i < kPanelRows; ++i) {
          int32_t dot = 0;
          for (int64_t t = 0; t < a.block; ++t) dot += int32_t(code(w, i, t)) * x[b * a.block + t];
          acc[i] = block_output(acc[i], dot, d[i], m[i], a.x_block_scale[r * blocks + b], a.x_block_sum[r * blocks + b]);
        }
      }
      for (int64_t i = 0; i < kPanelRows && p * kPanelRows + i < a.n; ++i) {
        const int64_t col = p * kPanelRows + i;
        store(a, r, col, acc[i] + bias(a, col));
      }
    }
  }
}

}  // namespace

void q4_panels_portable(const LinearArgs& a, int64_t p0, int64_t p1) {
  block_panels(a, p0, p1, q4_code_bytes(a.block), [](const uint8_t* w, int64_t lane, int64_t t) {
    const int64_t half = t / 16, v = (t % 16) / 4, j = t % 4;
    return (w[v * 64 + lane * 4 + j] >> (4 * half)) & 15;
  });
}

void q8b_panels_portable(const LinearArgs& a, int64_t p0, int64_t p1) {
  block_panels(a, p0, p1, q8b_code_bytes(a.block),
               [](const uint8_t* w, int64_t lane, int64_t t) { return w[(t / 4) * 64 + lane * 4 + t % 4]; });
}

void quantize_blocks(const void* x, bool x_is_bf16, int64_t rows, int64_t k, int64_t kp, int64_t block, int8_t* q,
                     float* x_block_scale, float* x_block_sum) {
  const int64_t blocks = kp / block;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t begin = b * block, end = begin + block < k ? begin + block : k;
      float amax = 0.0f;
      for (int64_t i = begin; i < end; ++i) {
        const float v = __builtin_fabsf(value(x, x_is_bf16, r * k + i));
        amax = v > amax ? v : amax;
      }
      const float inverse = quantize_inverse(amax);
      int32_t sum = 0;
      int8_t* out = q + r * kp;
      for (int64_t i = begin; i < begin + block; ++i) {
        int v = i < end ? static_cast<int>(round_even(value(x, x_is_bf16, r * k + i) * inverse)) : 0;
        v = v < -127 ? -127 : v > 127 ? 127 : v;
        out[i] = static_cast<int8_t>(v);
        sum += v;
      }
      x_block_scale[r * blocks + b] = amax / 127.0f;
      x_block_sum[r * blocks + b] = amax / 127.0f * static_cast<float>(sum);
    }
  }
}

void quantize_rows_portable(const void* x, bool x_is_bf16, int64_t rows, int64_t k, int64_t kp, int8_t* q,
                            float* scale, bool offset128) {
  const int offset = offset128 ? 128 : 0;
  for (int64_t r = 0; r < rows; ++r) {
    float amax = 0.0f;
    for (int64_t i = 0; i < k; ++i) {
      const float a = __builtin_fabsf(value(x, x_is_bf16, r * k + i));
      amax = a > amax ? a : amax;
    }
    const float inverse = quantize_inverse(amax);
    scale[r] = amax / 127.0f;
    int8_t* out = q + r * kp;
    for (int64_t i = 0; i < k; ++i) {
      int v = static_cast<int>(round_even(value(x, x_is_bf16, r * k + i) * inverse));
      v = v < -127 ? -127 : v > 127 ? 127 : v;
      out[i] = static_cast<int8_t>(static_cast<uint8_t>(v + offset));
    }
    for (int64_t i = k; i < kp; ++i) out[i] = static_cast<int8_t>(static_cast<uint8_t>(offset));
  }
}

}  // namespace musespark::kernels::detail
