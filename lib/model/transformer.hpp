// The decoder-only transformer shared by Qwen3, Qwen2 and Llama: RMSNorm,
// rotate-half RoPE (optionally llama3-scaled), GQA attention (optional qkv
// bias, optional per-head q/k RMSNorm), SwiGLU MLP, optional tied embeddings.
// The differences are fields of ModelConfig, not subclasses (STYLE.md).
//
// Internal: includes ATen. The runtime calls forward() with a batch of
// (tokens, KV cache) items; forward knows nothing of sampling or sequences.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <span>
#include <vector>

#include "kernels/packed_linear.hpp"
#include "model/config.hpp"
#include "model/kv_cache.hpp"
#include "model/safetensors.hpp"
#include "musespark/runtime.hpp"

namespace musespark::detail {

// How the matrices of the layers and the head are held.
enum class MatrixFormat {
  plain,  // tensors of the compute dtype; every product is at::linear
  bf16,   // plain bf16 tensors for prefill, plus packed copies for decode
  int8,   // packed int8 only (kernels/packed_linear.hpp), for every product
  q4,     // packed block formats only: GGUF block-quantised matrices repacked
          // as they are (q4 / q8b), every other matrix quantised to q4
};

struct LayerWeights {
  at::Tensor input_norm, post_attention_norm;
  // Plain matrices (undefined with MatrixFormat::int8 and q4).
  at::Tensor q_proj, k_proj, v_proj, o_proj;
  at::Tensor q_bias, k_bias, v_bias;   // undefined unless config.qkv_bias
  at::Tensor q_norm, k_norm;           // undefined unless config.qk_norm
  at::Tensor gate_proj, up_proj, down_proj;
  // Packed for the kernels (undefined with MatrixFormat::plain): q|k|v and
  // gate|up stacked so that each is one call.
  kernels::PackedLinear qkv, o, gate_up, down;
};

struct TransformerWeights {
  at::Tensor embed_tokens;  // [vocab, hidden]; undefined when the table is embed_packed
  // A GGUF block-quantised token table (MatrixFormat::q4), looked up row by
  // row (PackedLinear::unpacked_rows); lm_head_packed itself when tied.
  kernels::PackedLinear embed_packed;
  at::Tensor final_norm;    // [hidden]
  at::Tensor lm_head;       // [vocab, hidden]; the embedding itself when tied (undefined with int8, q4)
  kernels::PackedLinear lm_head_packed;
  std::vector<LayerWeights> layers;
};

// One sequence's share of a forward pass: `count` tokens appended to `cache`
// at positions cache->length() .. +count.
struct ForwardItem {
  const int32_t* tokens = nullptr;
  int64_t count = 0;
  KvCache* cache = nullptr;
  bool all_logits = false;  // logits for every token, not just the last
  // Input embeddings replacing some tokens' ([rows, hidden] at offset).
  std::span<const Injection> injections;
};

}  // namespace musespark::detail

namespace musespark {
struct Embeddings::Impl {
  at::Tensor rows;  // [rows, width], float32
};
}  // namespace musespark

namespace musespark::detail {

class Transformer {
 public:
  // Walks the tensor table: every required tensor with its expected shape,
  // converted to `dtype` (zero-copy where the file's dtype matches), the
  // matrices packed as `matrices` says (bf16, int8 and q4 need dtype bf16).
  Transformer(ModelConfig config, const WeightStore& weights, at::ScalarType dtype,
              int64_t max_context, MatrixFormat matrices = MatrixFormat::plain);

  const ModelConfig& config() const noexcept { return config_; }
  at::ScalarType dtype() const noexcept { return dtype_; }
  int64_t parameter_count() const noexcept { return parameter_count_; }
  int64_t bytes_per_token() const noexcept { return bytes_per_token_; }

  // Runs all items' tokens in one pass and appends their K/V to the caches.
  // Returns float32 logits [rows, vocab], where each item contributes its last
  // token's row (or all its rows with all_logits), in item order.
  // Callers check capacity and token ranges first; this only asserts.
  at::Tensor forward(std::span<const ForwardItem> items) const;

  // A KV segment sized for this model.
  std::shared_ptr<KvSegment> new_segment(int64_t capacity) const;
  // `count` segments that are slots of one pool (see KvPool).
  std::vector<std::shared_ptr<KvSegment>> new_pooled_segments(int64_t count, int64_t capacity) const;

 private:
  at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight) const;
  // Whether a product over `rows` rows goes through the packed kernels:
  // always for int8 and q4; for bf16 up to 16 rows (decode), where streaming the
  // weights once beats libtorch, which wins on prefill's large products.
  bool use_packed(int64_t rows) const noexcept;
  at::Tensor attention(const ForwardItem& item, const at::Tensor& q, const at::Tensor& k,
                       const at::Tensor& v, int64_t layer) const;
  // One decode token for each of several items whose own segments are slots
  // of one pool and whose shared prefixes are the same; returns [B, heads*hd].
  at::Tensor pooled_attention(std::span<const ForwardItem* const> items, const at::Tensor& q,
                              const at::Tensor& k, const at::Tensor& v, int64_t layer) const;

  ModelConfig config_;
  at::ScalarType dtype_;
  MatrixFormat matrices_;
  TransformerWeights w_;
  at::Tensor rope_cos_, rope_sin_;  // [max_context, head_dim/2], float32
  int64_t parameter_count_ = 0;
  int64_t bytes_per_token_ = 0;
};

}  // namespace musespark::detail
