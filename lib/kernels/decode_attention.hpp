// Attention of one new token per sequence over its KV cache, for the bf16
// decode step of a few sequences (the agents of a round).
//
// Each sequence attends over its own chain of KV segments (shared prefixes,
// then its own) with its own lengths: nothing is padded, masked or copied.
// Per (sequence, KV head) the keys and values are streamed once for all the
// query heads that share them (GQA). Scores, softmax and the weighted sum of
// values are in float32 (products of bf16 inputs, as vdpbf16ps forms them);
// the result is rounded to bf16 once. ATen's sequence in
// lib/model/transformer.cpp rounds the scores and the probabilities to bf16
// on the way, so the two agree to bf16 rounding, not bit for bit.
//
// Internal. Runs where the CPU has AVX-512 BF16 (decode_attention_available);
// elsewhere the caller keeps ATen's path. Thread safety: reentrant; large
// calls use ATen's intra-op threads (serially inside a parallel region).
#pragma once

#include <cstdint>
#include <span>

namespace musespark::kernels {

// One segment of one layer's cache: the first `length` positions, bf16 bits.
// Position p of KV head h starts at k + h * head_stride + p * position_stride
// (head_dim contiguous elements); the same offsets in v.
struct KvView {
  const uint16_t* k = nullptr;
  const uint16_t* v = nullptr;
  int64_t length = 0;
  int64_t head_stride = 0;
  int64_t position_stride = 0;
};

struct DecodeAttentionShape {
  int64_t heads = 0;      // query heads
  int64_t kv_heads = 0;   // divides heads
  int64_t head_dim = 0;   // a multiple of 32
  float scale = 1.0f;     // applied to q.k (1/sqrt(head_dim))
};

// Whether decode_attention runs on this CPU for this shape (AVX-512 BF16 not
// capped by MUSESPARK_KERNELS / limit_isa, head_dim a multiple of 32).
bool decode_attention_available(const DecodeAttentionShape& shape) noexcept;

// q: rows x [heads * head_dim] bf16 bits, row r at q + r * q_row_stride.
// Row r attends over views[first[r] .. first[r + 1]) in order (first has
// rows + 1 entries; at least one position per row). out: rows x [heads *
// head_dim] bf16 bits, contiguous. Query head h reads KV head
// h / (heads / kv_heads), as in HF's repeat_kv.
void decode_attention(const uint16_t* q, int64_t q_row_stride, int64_t rows, const DecodeAttentionShape& shape,
                      std::span<const KvView> views, std::span<const int64_t> first, uint16_t* out);

}  // namespace musespark::kernels
