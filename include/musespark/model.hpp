// musespark — loading a model folder.
//
// A model is an HF-layout folder: config.json, model.safetensors (or shards
// listed in model.safetensors.index.json), tokenizer.json and
// tokenizer_config.json; or one GGUF file (llama.cpp's format) holding the
// same. Supported architectures: Qwen3ForCausalLM, Qwen2ForCausalLM,
// LlamaForCausalLM (GGUF: qwen3, qwen2, llama).
//
// Weights are memory-mapped; tensors whose dtype equals the compute dtype are
// used in place (no copy), others are converted once at load.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace musespark {

// The dtype weights are held and computed in.
//   f32, bf16: weights and activations of that type.
//   int8: the matrices quantised at load to int8 per output row (symmetric,
//         float32 scales) and multiplied with activations quantised per row
//         at each product; everything else (embeddings, norms, the KV cache,
//         activations between products) in bf16. Half the bytes of bf16 per
//         decoded token; the accuracy cost is measured in the README.
//   q4:   4-bit weights. An HF folder's matrices are quantised at load per
//         block of 32 along each row (16 levels between the block's min and
//         max, float32 scale and offset); a GGUF file's block-quantised
//         matrices (Q4_0, Q4_1, Q4_K as 4-bit; Q5_*, Q6_K, Q8_0, Q2_K,
//         Q3_K as 8-bit codes) are repacked as they are, without loss and
//         without a dequantized copy. Activations are quantised per block
//         of the weights to int8 for each product (as llama.cpp does);
//         everything else as for int8.
// Values are only ever appended.
enum class DType { f32, bf16, int8, q4 };

// "f32" / "bf16" / "int8" / "q4"; parse_dtype throws Error{invalid_argument} for anything else.
const char* dtype_name(DType dtype);
DType parse_dtype(const std::string& name);

struct ModelOptions {
  DType dtype = DType::f32;
  // Intra-op threads for tensor work. 0 means one per core. This is a
  // process-wide setting of the tensor backend: the last model loaded wins.
  int threads = 0;
  // The longest sequence (prompt + generated tokens) a runtime will hold;
  // 0 means min(max_position_embeddings, 4096). Sequences are refused with
  // Error{context_overflow} beyond it.
  int64_t max_context = 0;
};

// The intra-op threads a `threads` setting means (ModelOptions,
// DistillOptions): itself when positive, else one per core (at least 1).
int resolve_threads(int threads) noexcept;

struct ModelInfo {
  std::string architecture;
  std::filesystem::path directory;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  int64_t max_context = 0;           // as resolved from ModelOptions
  bool tied_embeddings = false;
  DType dtype = DType::f32;
  int threads = 1;                   // as resolved from ModelOptions
  // Every weight loaded: the text transformer and, for a model with vision,
  // its vision tower and projector.
  int64_t parameter_count = 0;
  // Bytes of weights read to decode one token: every matrix once, plus one
  // row of the embedding table (the roofline of DESIGN.md's "Performance").
  int64_t bytes_per_token = 0;
  std::vector<int32_t> eos_token_ids;  // from config.json (may be empty)
  // Auto's escalation threshold calibrated for this model, from config.json's
  // "musespark": {"auto_confidence_threshold": T} (written by
  // scripts/train-default-model from `musespark eval`); 0: none.
  double auto_confidence_threshold = 0;

  // Vision (models with a vision_config: a ViT and a projector).
  bool vision = false;
  int64_t image_tokens = 0;          // placeholder tokens per image (and per zoom-in)
  int32_t image_token_id = -1;       // the placeholder token
  std::string image_token;           // its text, e.g. "<|image_pad|>"
  std::string vision_start_token;    // written before the placeholders (may be empty)
  std::string vision_end_token;      // written after them (may be empty)
};

class Runtime;
class Image;
class Embeddings;

// An immutable loaded model. Share it (std::shared_ptr<const Model>) between
// as many Runtimes and threads as you like: nothing in it changes after load.
class Model {
 public:
  // Loads config.json and the weights of `directory`, or a GGUF file (a
  // qwen3, qwen2 or llama text model; quantized tensors are dequantized at
  // load to the compute dtype, or with DType::q4 kept in their blocks:
  // lib/model/gguf_model.hpp). Throws
  // musespark::Error naming the file and field for every problem: missing
  // files, malformed JSON or GGUF, unknown architecture, bad safetensors
  // headers, missing tensors, wrong shapes or dtypes.
  static std::shared_ptr<const Model> load(const std::filesystem::path& directory,
                                           const ModelOptions& options = {});

  const ModelInfo& info() const noexcept;

  // Encodes an image for the text model (vision models only): resized and
  // normalised as vision_config says, through the ViT and the projector;
  // info().image_tokens rows, to inject at the image's placeholder tokens.
  // Error{unsupported} for a model without vision. Thread-safe.
  std::shared_ptr<const Embeddings> encode_image(const Image& image) const;

  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  struct Impl;  // internal (lib/model); not part of the API

 private:
  friend class Runtime;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace musespark
