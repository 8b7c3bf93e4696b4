// The model being trained: its parameters under their checkpoint (HF) names,
// and a forward pass with autograd written with ATen ops, computing exactly
// what the inference engine computes (lib/model/transformer.cpp and
// vision_encoder.cpp) so that a trained folder loads and answers there. A test
// checks the two against each other.
#pragma once

#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "musespark/distill.hpp"

namespace musespark::detail {

// Token ids of the default model's tokenizer that the trainer needs.
struct SpecialIds {
  int64_t vocab_size = 0;
  int64_t im_end = -1;
  int64_t pad = -1;
  int64_t image_pad = -1;
};

// The product of shape.stem_strides (1 without a stem).
int64_t stem_stride(const ModelShape& shape);

// Image tokens per picture: (image_size / patch_size)^2.
inline int64_t picture_tokens(const ModelShape& shape) {
  return (shape.image_size / shape.patch_size) * (shape.image_size / shape.patch_size);
}

class TrainableModel {
 public:
  // Fresh weights for `shape`, drawn from `seed`: matrices N(0, 0.02) (residual
  // output projections scaled by 1/sqrt(2 layers)), norms 1, biases 0.
  TrainableModel(const ModelShape& shape, const SpecialIds& ids, uint64_t seed);
  // The weights of a model folder written by save() (f32 or bf16 safetensors).
  // Throws Error{format} naming the file and tensor when one is missing or of
  // the wrong shape.
  static TrainableModel load(const std::filesystem::path& dir, const ModelShape& shape, const SpecialIds& ids);

  // config.json and model.safetensors (f32) into `dir`.
  void save(const std::filesystem::path& dir) const;

  const ModelShape& shape() const { return shape_; }
  const std::vector<std::pair<std::string, at::Tensor>>& parameters() const { return params_; }
  int64_t parameter_count() const;
  // Whether a parameter is a matrix that weight decay applies to.
  static bool decays(const std::string& name);

  struct Input {
    at::Tensor tokens;      // [B, T] int64
    at::Tensor pixels;      // [N, 3, S, S] float32, or undefined without images
    at::Tensor image_rows;  // [N * S/P * S/P] int64: rows of the flattened [B*T] sequence that take the images' embeddings
    at::Tensor rows;        // [R] int64: the rows whose next-token logits are wanted
  };
  // Logits [R, vocab] (float32) at input.rows. Records autograd history when
  // grad mode is on and parameters require grad.
  // With `image_embeddings`, also sets it to the pictures' embeddings as the
  // text model receives them ([N, patches, hidden], with history).
  at::Tensor forward(const Input& input, at::Tensor* image_embeddings = nullptr) const;

  // The config.json text of `shape` (Qwen3ForCausalLM + vision_config).
  static std::string config_json(const ModelShape& shape, const SpecialIds& ids);
  // The shape described by a config.json written by config_json().
  static ModelShape read_shape(const std::filesystem::path& config_json);

 private:
  TrainableModel(const ModelShape& shape, const SpecialIds& ids) : shape_(shape), ids_(ids) {}
  void build_names();
  const at::Tensor& p(const std::string& name) const;
  at::Tensor vision(const at::Tensor& pixels) const;

  ModelShape shape_;
  SpecialIds ids_;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<std::pair<std::string, std::vector<int64_t>>> layout_;
};

// Writes tensors as a safetensors file (F32 or BF16 as they are; others refused).
void write_safetensors(const std::filesystem::path& file, const std::vector<std::pair<std::string, at::Tensor>>& tensors);
// Reads every tensor of a safetensors file as float32 (copies).
std::vector<std::pair<std::string, at::Tensor>> read_safetensors(const std::filesystem::path& file);

}  // namespace musespark::detail
