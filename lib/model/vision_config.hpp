// The vision half of a LLaVA-style multimodal model, read from the same HF
// `config.json` as the text model.
//
// The text model's fields stay at the top level (model/config.hpp reads
// them); a multimodal model adds, with HF's field names:
//
//   "vision_config": {
//     "model_type": "musespark_vit",      // or "siglip_vision_model" (same tensors); optional
//     "image_size": 224,                  // the square input side S, in pixels
//     "patch_size": 14,                   // must divide image_size
//     "num_channels": 3,                  // optional, default 3 (only RGB is supported)
//     "hidden_size": 64,
//     "intermediate_size": 128,
//     "num_hidden_layers": 2,
//     "num_attention_heads": 4,           // must divide hidden_size
//     "stem_channels": [32, 32],          // optional: a convolutional stem (see below)
//     "stem_strides": [1, 2],             // one per stem layer; their product divides patch_size
//     "layer_norm_eps": 1e-6,             // optional, default 1e-6
//     "hidden_act": "gelu_pytorch_tanh",  // optional (SigLIP's default); or "gelu" (exact erf)
//     "image_mean": [0.5, 0.5, 0.5],      // optional, one per channel, default 0.5
//     "image_std":  [0.5, 0.5, 0.5]       // optional, one per channel (> 0), default 0.5
//   },
//   "projector_hidden_act": "gelu",       // optional, default "gelu" (LLaVA's)
//   "image_token": "<|image_pad|>",       // optional strings: how the tokenizer spells them
//   "image_token_id": 151655,             // required ("image_token_index", LLaVA's name, also read)
//   "vision_start_token": "<|vision_start|>",
//   "vision_end_token": "<|vision_end|>"
//
// The stem (this project's extension; absent in SigLIP): layer j is a 3 x 3
// convolution with C_j output channels, stride stem_strides[j] and padding 1,
// then hidden_act. C_{-1} = num_channels. The patch embedding then reads the
// stem's last output (C = C_last channels) with kernel and stride K =
// patch_size / (product of the strides); without a stem C = num_channels and
// K = patch_size. Either way each patch of patch_size pixels becomes a token.
//
// Activations: "gelu" is the exact erf form; "gelu_pytorch_tanh" (and its
// older spelling "gelu_new") the tanh approximation.
//
// The tensors this describes (SigLIP-style ViT: no class token, learned
// absolute positions, pre-LN blocks; LLaVA's 2-layer MLP projector), with
// D = hidden_size, I = intermediate_size, P = patch_size, N = num_patches(),
// T = the text model's hidden_size:
//
//   vision_tower.vision_model.embeddings.stem.{j}.{weight [C_j,C_{j-1},3,3], bias [C_j]}  (with a stem)
//   vision_tower.vision_model.embeddings.patch_embedding.{weight [D,C,K,K], bias [D]}
//   vision_tower.vision_model.embeddings.position_embedding.weight [N,D]
//   vision_tower.vision_model.encoder.layers.{i}.layer_norm1.{weight,bias} [D]
//   vision_tower.vision_model.encoder.layers.{i}.self_attn.{q,k,v,out}_proj.{weight [D,D], bias [D]}
//   vision_tower.vision_model.encoder.layers.{i}.layer_norm2.{weight,bias} [D]
//   vision_tower.vision_model.encoder.layers.{i}.mlp.fc1.{weight [I,D], bias [I]}
//   vision_tower.vision_model.encoder.layers.{i}.mlp.fc2.{weight [D,I], bias [D]}
//   vision_tower.vision_model.post_layernorm.{weight,bias} [D]
//   multi_modal_projector.linear_1.{weight [T,D], bias [T]}
//   multi_modal_projector.linear_2.{weight [T,T], bias [T]}
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace musespark::detail {

enum class VisionActivation {
  gelu,       // "gelu": x * Phi(x), exact (erf)
  gelu_tanh,  // "gelu_pytorch_tanh" / "gelu_new": the tanh approximation
};

struct VisionConfig {
  std::string model_type;  // as written; may be empty
  int64_t image_size = 0;
  int64_t patch_size = 0;
  int64_t num_channels = 3;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  std::vector<int64_t> stem_channels;  // empty: no stem
  std::vector<int64_t> stem_strides;   // as many as stem_channels
  double layer_norm_eps = 1e-6;
  VisionActivation hidden_act = VisionActivation::gelu_tanh;
  std::vector<double> image_mean;  // num_channels values
  std::vector<double> image_std;   // num_channels values, all > 0

  // Top-level fields of the multimodal config.
  VisionActivation projector_hidden_act = VisionActivation::gelu;
  int64_t image_token_id = -1;
  std::string image_token;         // may be empty
  std::string vision_start_token;  // may be empty
  std::string vision_end_token;    // may be empty

  int64_t head_dim() const noexcept { return hidden_size / num_attention_heads; }
  // The product of the stem's strides (1 without a stem); patch_embedding's kernel is patch_size / this.
  int64_t stem_stride() const noexcept {
    int64_t s = 1;
    for (int64_t v : stem_strides) s *= v;
    return s;
  }
  int64_t patches_per_side() const noexcept { return image_size / patch_size; }
  // Patches of one image = the tokens it becomes in the text model.
  int64_t num_patches() const noexcept { return patches_per_side() * patches_per_side(); }
};

// The activation of an HF `hidden_act` spelling; std::nullopt if unknown.
std::optional<VisionActivation> parse_vision_activation(const std::string& name) noexcept;

// Reads the vision part of `config_json`. Returns std::nullopt when the file
// has no "vision_config" (or it is null): a text-only model.
//
// Throws musespark::Error naming the file and the field ("vision_config.patch_size",
// "image_token_id", ...): Error{io} if the file cannot be read; Error{format}
// for malformed JSON, a vision_config that is not an object, missing or
// mistyped fields, non-positive sizes, a patch_size that does not divide
// image_size, heads that do not divide hidden_size, stem_channels and
// stem_strides of different lengths or strides whose product does not divide
// patch_size, image_mean/image_std of
// the wrong length or a non-positive std, a missing image_token_id or one
// outside [0, vocab_size) when vocab_size is given; Error{unsupported} for an
// unknown hidden_act / projector_hidden_act, a model_type of another layout,
// or num_channels other than 3.
std::optional<VisionConfig> load_vision_config(const std::filesystem::path& config_json);

}  // namespace musespark::detail
