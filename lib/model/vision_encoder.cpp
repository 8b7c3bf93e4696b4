#include "model/vision_encoder.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include <fmt/format.h>

#include "model/weights_torch.hpp"
#include "musespark/error.hpp"

namespace musespark::detail {
namespace {

at::Tensor activation(const at::Tensor& x, VisionActivation act) {
  return at::gelu(x, act == VisionActivation::gelu_tanh ? "tanh" : "none");
}

[[noreturn]] void bad_pixels(const std::string& message) {
  throw Error(ErrorKind::invalid_argument, "", "pixels", message);
}

}  // namespace

VisionEncoder::VisionEncoder(VisionConfig config, const WeightStore& store, int64_t text_hidden,
                             at::ScalarType dtype)
    : config_(std::move(config)), text_hidden_(text_hidden), dtype_(dtype) {
  if (text_hidden <= 0)
    throw Error(ErrorKind::invalid_argument, "", "text_hidden", fmt::format("must be positive, got {}", text_hidden));
  const auto& c = config_;
  const int64_t D = c.hidden_size, I = c.intermediate_size, P = c.patch_size, T = text_hidden;

  auto load = [&](const std::string& name, std::vector<int64_t> shape) {
    at::Tensor t = to_tensor(store.require(name, shape), dtype_, store.keepalive());
    parameter_count_ += t.numel();
    return t;
  };

  const std::string vm = "vision_tower.vision_model.";
  int64_t channels = c.num_channels;
  for (size_t j = 0; j < c.stem_channels.size(); ++j) {
    w_.stem_weight.push_back(load(fmt::format("{}embeddings.stem.{}.weight", vm, j), {c.stem_channels[j], channels, 3, 3}));
    w_.stem_bias.push_back(load(fmt::format("{}embeddings.stem.{}.bias", vm, j), {c.stem_channels[j]}));
    channels = c.stem_channels[j];
  }
  const int64_t K = P / c.stem_stride();
  w_.patch_weight = load(vm + "embeddings.patch_embedding.weight", {D, channels, K, K});
  w_.patch_bias = load(vm + "embeddings.patch_embedding.bias", {D});
  w_.position = load(vm + "embeddings.position_embedding.weight", {c.num_patches(), D});
  w_.layers.resize(c.num_hidden_layers);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = fmt::format("{}encoder.layers.{}.", vm, i);
    VisionLayerWeights& l = w_.layers[i];
    l.norm1_weight = load(p + "layer_norm1.weight", {D});
    l.norm1_bias = load(p + "layer_norm1.bias", {D});
    l.q_proj = load(p + "self_attn.q_proj.weight", {D, D});
    l.q_bias = load(p + "self_attn.q_proj.bias", {D});
    l.k_proj = load(p + "self_attn.k_proj.weight", {D, D});
    l.k_bias = load(p + "self_attn.k_proj.bias", {D});
    l.v_proj = load(p + "self_attn.v_proj.weight", {D, D});
    l.v_bias = load(p + "self_attn.v_proj.bias", {D});
    l.out_proj = load(p + "self_attn.out_proj.weight", {D, D});
    l.out_bias = load(p + "self_attn.out_proj.bias", {D});
    l.norm2_weight = load(p + "layer_norm2.weight", {D});
    l.norm2_bias = load(p + "layer_norm2.bias", {D});
    l.fc1 = load(p + "mlp.fc1.weight", {I, D});
    l.fc1_bias = load(p + "mlp.fc1.bias", {I});
    l.fc2 = load(p + "mlp.fc2.weight", {D, I});
    l.fc2_bias = load(p + "mlp.fc2.bias", {D});
  }
  w_.post_norm_weight = load(vm + "post_layernorm.weight", {D});
  w_.post_norm_bias = load(vm + "post_layernorm.bias", {D});
  w_.linear_1 = load("multi_modal_projector.linear_1.weight", {T, D});
  w_.linear_1_bias = load("multi_modal_projector.linear_1.bias", {T});
  w_.linear_2 = load("multi_modal_projector.linear_2.weight", {T, T});
  w_.linear_2_bias = load("multi_modal_projector.linear_2.bias", {T});
}

// h: [N, D] -> [N, D]. As HF's eager attention: products in the compute
// dtype, softmax in float32.
at::Tensor VisionEncoder::attention(const at::Tensor& h, const VisionLayerWeights& l) const {
  const int64_t N = h.size(0), heads = config_.num_attention_heads, hd = config_.head_dim();
  auto split_heads = [&](const at::Tensor& t) { return t.view({N, heads, hd}).transpose(0, 1); };  // [heads, N, hd]
  at::Tensor q = split_heads(at::linear(h, l.q_proj, l.q_bias));
  at::Tensor k = split_heads(at::linear(h, l.k_proj, l.k_bias));
  at::Tensor v = split_heads(at::linear(h, l.v_proj, l.v_bias));
  at::Tensor scores = at::bmm(q, k.transpose(1, 2)).to(at::kFloat).mul_(1.0 / std::sqrt(double(hd)));
  at::Tensor probs = at::softmax(scores, -1).to(dtype_);
  at::Tensor out = at::bmm(probs, v).transpose(0, 1).reshape({N, heads * hd});
  return at::linear(out, l.out_proj, l.out_bias);
}

at::Tensor VisionEncoder::encode(const at::Tensor& pixels_chw) const {
  const auto& c = config_;
  const std::vector<int64_t> expected = {c.num_channels, c.image_size, c.image_size};
  if (pixels_chw.sizes().vec() != expected)
    bad_pixels(fmt::format("shape {}, expected {} (channels, height, width)", shape_string(pixels_chw.sizes().vec()),
                           shape_string(expected)));
  if (!at::isFloatingType(pixels_chw.scalar_type()))
    bad_pixels(fmt::format("dtype {}, expected a floating type", c10::toString(pixels_chw.scalar_type())));
  if (!at::isfinite(pixels_chw).all().item<bool>()) bad_pixels("contains NaN or infinite values");

  const int64_t D = c.hidden_size, N = c.num_patches();
  // [1,C,S,S] -> [1,D,S/P,S/P] -> [N,D], patches in row-major (row, col) order.
  at::Tensor x = pixels_chw.to(dtype_).unsqueeze(0);
  for (size_t j = 0; j < w_.stem_weight.size(); ++j)
    x = activation(at::conv2d(x, w_.stem_weight[j], w_.stem_bias[j], /*stride=*/{c.stem_strides[j], c.stem_strides[j]},
                              /*padding=*/{1, 1}),
                   c.hidden_act);
  const int64_t K = c.patch_size / c.stem_stride();
  x = at::conv2d(x, w_.patch_weight, w_.patch_bias, /*stride=*/{K, K});
  x = x.view({D, N}).t() + w_.position;
  for (const VisionLayerWeights& l : w_.layers) {
    at::Tensor h = at::layer_norm(x, {D}, l.norm1_weight, l.norm1_bias, c.layer_norm_eps);
    x = x + attention(h, l);
    h = at::layer_norm(x, {D}, l.norm2_weight, l.norm2_bias, c.layer_norm_eps);
    x = x + at::linear(activation(at::linear(h, l.fc1, l.fc1_bias), c.hidden_act), l.fc2, l.fc2_bias);
  }
  x = at::layer_norm(x, {D}, w_.post_norm_weight, w_.post_norm_bias, c.layer_norm_eps);
  x = at::linear(activation(at::linear(x, w_.linear_1, w_.linear_1_bias), c.projector_hidden_act), w_.linear_2,
                 w_.linear_2_bias);
  return x.contiguous();
}

at::Tensor VisionEncoder::encode(std::span<const float> chw) const {
  const auto& c = config_;
  const int64_t expected = c.num_channels * c.image_size * c.image_size;
  if (static_cast<int64_t>(chw.size()) != expected)
    bad_pixels(fmt::format("{} values, expected {} ({} channels of {}x{})", chw.size(), expected, c.num_channels,
                           c.image_size, c.image_size));
  // A non-owning view for the duration of the call; encode copies it on conversion or convolution.
  at::Tensor t = at::from_blob(const_cast<float*>(chw.data()), {c.num_channels, c.image_size, c.image_size},
                               at::TensorOptions().dtype(at::kFloat));
  return encode(t);
}

}  // namespace musespark::detail
