#include <ATen/Parallel.h>

#include <algorithm>
#include <thread>

#include "kernels/cpu_features.hpp"
#include "model/gguf_model.hpp"
#include "model/model_impl.hpp"
#include "model/vision_config.hpp"
#include "musespark/image.hpp"
#include "musespark/runtime.hpp"
#include "musespark/error.hpp"

namespace musespark {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::int8: return "int8";
    case DType::q4: return "q4";
  }
  return "f32";
}

DType parse_dtype(const std::string& name) {
  if (name == "f32" || name == "float32") return DType::f32;
  if (name == "bf16" || name == "bfloat16") return DType::bf16;
  if (name == "int8") return DType::int8;
  if (name == "q4") return DType::q4;
  throw Error(ErrorKind::invalid_argument, "", "dtype", "expected f32, bf16, int8 or q4, got '" + name + "'");
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

const ModelInfo& Model::info() const noexcept { return impl_->info; }

std::shared_ptr<const Embeddings> Model::encode_image(const Image& image) const {
  if (!impl_->vision)
    throw Error(ErrorKind::unsupported, (impl_->info.directory / "config.json").string(), "vision_config",
                "this model has no vision encoder: it cannot see images");
  std::vector<float> pixels = detail::preprocess(image, impl_->preprocess);
  auto rows = std::make_unique<Embeddings::Impl>();
  rows->rows = impl_->vision->encode(pixels);
  return std::make_shared<const Embeddings>(std::move(rows));
}

int resolve_threads(int threads) noexcept {
  return threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

std::shared_ptr<const Model> Model::load(const std::filesystem::path& directory, const ModelOptions& options) {
  std::error_code ec;
  const bool gguf = std::filesystem::is_regular_file(directory, ec);  // a .gguf file, else an HF folder
  if (!gguf && !std::filesystem::is_directory(directory))
    throw Error(ErrorKind::io, directory.string(), "", "not a directory");
  if (options.threads < 0)
    throw Error(ErrorKind::invalid_argument, "", "threads", "must be 0 (all cores) or positive");
  if (options.max_context < 0)
    throw Error(ErrorKind::invalid_argument, "", "max_context", "must be 0 (default) or positive");

  const int threads = resolve_threads(options.threads);
  at::set_num_threads(threads);

  detail::ModelConfig config;
  detail::WeightStore store;
  const std::filesystem::path config_file = gguf ? directory : directory / "config.json";
  if (gguf) {
    auto m = detail::load_gguf_model(detail::GgufFile::open(directory),
                                     options.dtype == DType::f32 ? detail::DType::f32 : detail::DType::bf16,
                                     /*keep_blocks=*/options.dtype == DType::q4);
    config = std::move(m.config);
    store = std::move(m.weights);
  } else {
    config = detail::load_model_config(config_file);
  }
  int64_t max_context = options.max_context > 0 ? options.max_context
                                                : std::min<int64_t>(config.max_position_embeddings, 4096);
  if (max_context > config.max_position_embeddings)
    throw Error(ErrorKind::invalid_argument, "", "max_context",
                "must not exceed max_position_embeddings (" +
                    std::to_string(config.max_position_embeddings) + ") of " + config_file.string());

  if (!gguf) store = detail::WeightStore::open(directory);
  // Activations (and the KV cache) are bf16 for bf16, int8 and q4 weights.
  // bf16 decode takes our kernels only where they beat libtorch (AVX2 and up).
  const at::ScalarType dtype = options.dtype == DType::f32 ? at::kFloat : at::kBFloat16;
  detail::MatrixFormat matrices = detail::MatrixFormat::plain;
  if (options.dtype == DType::int8) matrices = detail::MatrixFormat::int8;
  if (options.dtype == DType::q4) matrices = detail::MatrixFormat::q4;
  if (options.dtype == DType::bf16 && kernels::active_isa() != kernels::KernelIsa::none)
    matrices = detail::MatrixFormat::bf16;

  auto impl = std::make_unique<Impl>();
  impl->transformer = std::make_unique<detail::Transformer>(config, store, dtype, max_context, matrices);
  ModelInfo& info = impl->info;
  info.architecture = config.architecture;
  info.directory = directory;
  info.vocab_size = config.vocab_size;
  info.hidden_size = config.hidden_size;
  info.intermediate_size = config.intermediate_size;
  info.num_layers = config.num_hidden_layers;
  info.num_heads = config.num_attention_heads;
  info.num_kv_heads = config.num_key_value_heads;
  info.head_dim = config.head_dim;
  info.max_position_embeddings = config.max_position_embeddings;
  info.max_context = max_context;
  info.tied_embeddings = config.tie_word_embeddings;
  info.dtype = options.dtype;
  info.threads = threads;
  info.parameter_count = impl->transformer->parameter_count();
  info.bytes_per_token = impl->transformer->bytes_per_token();
  for (int64_t id : config.eos_token_ids) info.eos_token_ids.push_back(static_cast<int32_t>(id));
  info.auto_confidence_threshold = config.auto_confidence_threshold;

  if (auto vision = gguf ? std::nullopt : detail::load_vision_config(config_file)) {
    const std::string file = (directory / "config.json").string();
    if (vision->num_channels != 3 || vision->image_mean.size() != 3 || vision->image_std.size() != 3)
      throw Error(ErrorKind::unsupported, file, "vision_config.num_channels", "only RGB (3 channels) is supported");
    if (vision->image_token_id >= config.vocab_size)
      throw Error(ErrorKind::format, file, "image_token_id", "outside the vocabulary");
    impl->preprocess.image_size = static_cast<int32_t>(vision->image_size);
    for (int c = 0; c < 3; ++c) {
      impl->preprocess.mean[c] = static_cast<float>(vision->image_mean[c]);
      impl->preprocess.std[c] = static_cast<float>(vision->image_std[c]);
    }
    info.vision = true;
    info.image_token_id = static_cast<int32_t>(vision->image_token_id);
    info.image_token = vision->image_token;
    info.vision_start_token = vision->vision_start_token;
    info.vision_end_token = vision->vision_end_token;
    impl->vision = std::make_unique<detail::VisionEncoder>(*vision, store, config.hidden_size, dtype);
    info.image_tokens = impl->vision->tokens_per_image();
    info.parameter_count += impl->vision->parameter_count();
  }
  return std::shared_ptr<const Model>(new Model(std::move(impl)));
}

}  // namespace musespark
