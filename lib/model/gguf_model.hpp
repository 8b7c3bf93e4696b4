// Reading a text model from a GGUF file (llama.cpp's layout) into the same
// ModelConfig and WeightStore (HF tensor names, PyTorch shapes) that an HF
// folder gives, so one Transformer runs both.
//
// Architectures: general.architecture "qwen3", "qwen2", "llama"; anything
// else is Error{unsupported} naming the file, general.architecture and the
// name. Hyper-parameters come from "<arch>.embedding_length",
// ".block_count", ".feed_forward_length", ".attention.head_count",
// ".attention.head_count_kv", ".attention.key_length",
// ".attention.layer_norm_rms_epsilon", ".rope.freq_base",
// ".context_length"; the vocabulary size from token_embd.weight; tied
// embeddings when there is no output.weight; Llama 3.1's rope scaling from
// the rope_freqs.weight tensor (one factor per frequency, as llama.cpp's
// converter writes it). EOS ids from tokenizer.ggml.eos_token_id and
// .eot_token_id / .eom_token_id.
//
// Tensors: F32, F16 and BF16 are wrapped without copying; quantized ones
// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K ... Q6_K) are dequantized at load, with
// ggml's arithmetic, into `target` (f32 or bf16) buffers the store owns. For
// "llama", attn_q and attn_k rows are put back in HF's order (llama.cpp's
// converter interleaves each head's two rotary halves).
//
// Errors: Error{format} naming the file and the key for a missing or
// mistyped hyper-parameter, sizes that do not fit together (heads that do not
// divide, an odd head_dim, a tensor whose shape disagrees), a token id past
// the vocabulary; Error{unsupported} for rope scaling other than none or
// llama3's factors, or a tensor type that cannot be dequantized.
#pragma once

#include "common/gguf.hpp"
#include "model/config.hpp"
#include "model/safetensors.hpp"

namespace musespark::detail {

struct GgufModel {
  ModelConfig config;
  WeightStore weights;
};

// `target`: DType::f32 or DType::bf16 (what quantized tensors become).
// keep_blocks: 2-D tensors of a type with an affine block form
// (common/gguf.hpp's affine_layout: Q4_0 ... Q6_K) are not dequantized but
// left in the file as views with TensorView::gguf_blocks set, for the
// Transformer to repack (MatrixFormat::q4).
GgufModel load_gguf_model(const GgufFile& gguf, DType target, bool keep_blocks = false);

// The GGUF row (of a view with interleaved_head_dim) that HF row `row` is read from.
int64_t gguf_source_row(const TensorView& view, int64_t row) noexcept;

}  // namespace musespark::detail
