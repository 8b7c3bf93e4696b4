// The vision encoder of a LLaVA-style model: a SigLIP-style ViT and the
// 2-layer MLP projector into the text model's hidden size. Tensor names and
// config fields: model/vision_config.hpp.
//
//   pixels [C,S,S] -> stem convs, if any -> patch conv (stride K) -> [N, D] in (row, col) order
//   + position embedding
//   per layer:  x += out_proj(attention(LN1(x)))   full bidirectional softmax,
//               x += fc2(act(fc1(LN2(x))))         scale 1/sqrt(head_dim), biases
//   post_layernorm -> linear_2(projector_act(linear_1(x))) -> [N, T]
//
// Internal: includes ATen. Preprocessing (resize, normalisation with
// image_mean/image_std) is the caller's: encode() takes the pixels ready.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <span>
#include <vector>

#include "model/safetensors.hpp"
#include "model/vision_config.hpp"

namespace musespark::detail {

struct VisionLayerWeights {
  at::Tensor norm1_weight, norm1_bias;
  at::Tensor q_proj, q_bias, k_proj, k_bias, v_proj, v_bias, out_proj, out_bias;
  at::Tensor norm2_weight, norm2_bias;
  at::Tensor fc1, fc1_bias, fc2, fc2_bias;
};

struct VisionWeights {
  std::vector<at::Tensor> stem_weight, stem_bias;  // per stem layer: [C_j,C_{j-1},3,3], [C_j]
  at::Tensor patch_weight, patch_bias;  // [D,C,K,K], [D] (K = P / stem stride)
  at::Tensor position;                  // [N,D]
  std::vector<VisionLayerWeights> layers;
  at::Tensor post_norm_weight, post_norm_bias;
  at::Tensor linear_1, linear_1_bias;   // [T,D], [T]
  at::Tensor linear_2, linear_2_bias;   // [T,T], [T]
};

// Immutable after construction: encode() may be called from several threads
// at once.
class VisionEncoder {
 public:
  // Walks the tensor table (vision_config.hpp), converting each tensor to
  // `dtype` (zero-copy where the file's dtype matches; `store`'s mappings are
  // kept alive by the tensors). `text_hidden` is the text model's
  // hidden_size, the projector's output width.
  // Throws Error{format} naming the tensor for a missing tensor or a wrong
  // shape (WeightStore::require), Error{invalid_argument} for text_hidden <= 0.
  VisionEncoder(VisionConfig config, const WeightStore& store, int64_t text_hidden, at::ScalarType dtype);

  // One image, ready-made: a floating tensor [num_channels, image_size,
  // image_size] (already resized and normalised). Returns a new contiguous
  // tensor [tokens_per_image(), text_hidden] in dtype(), one row per patch in
  // row-major (row, col) order. Throws Error{invalid_argument} (field
  // "pixels") for another shape, a non-floating dtype or non-finite values.
  at::Tensor encode(const at::Tensor& pixels_chw) const;
  // The same from raw float32 values in CHW order; `chw.size()` must be
  // num_channels * image_size * image_size. The span is only read during the call.
  at::Tensor encode(std::span<const float> chw) const;

  int64_t tokens_per_image() const noexcept { return config_.num_patches(); }
  int64_t text_hidden() const noexcept { return text_hidden_; }
  const VisionConfig& config() const noexcept { return config_; }
  at::ScalarType dtype() const noexcept { return dtype_; }
  int64_t parameter_count() const noexcept { return parameter_count_; }

 private:
  at::Tensor attention(const at::Tensor& h, const VisionLayerWeights& l) const;

  VisionConfig config_;
  int64_t text_hidden_;
  at::ScalarType dtype_;
  VisionWeights w_;
  int64_t parameter_count_ = 0;
};

}  // namespace musespark::detail
