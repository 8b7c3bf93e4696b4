#include "model/vision_config.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/json_file.hpp"
#include "musespark/error.hpp"

namespace musespark::detail {

namespace {

constexpr const char* kSupportedActivations = "gelu, gelu_pytorch_tanh, gelu_new";

[[noreturn]] void bad(ErrorKind kind, const std::string& file, const std::string& field, const std::string& message) {
  throw Error(kind, file, field, message);
}


VisionActivation activation(const nlohmann::json& j, const std::string& key, const std::string& file,
                            VisionActivation fallback) {
  auto name = optional_string(j, key, file);
  if (!name) return fallback;
  auto act = parse_vision_activation(*name);
  if (!act)
    bad(ErrorKind::unsupported, file, key,
        fmt::format("\"{}\" is not supported (supported: {})", *name, kSupportedActivations));
  return *act;
}

// A list of `count` numbers, or `fallback` repeated when absent.
std::vector<double> per_channel(const nlohmann::json& j, const std::string& key, const std::string& file,
                                int64_t count, double fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::vector<double>(count, fallback);
  if (!it->is_array()) bad(ErrorKind::format, file, key, std::string("expected a list of numbers, got ") + it->type_name());
  if (static_cast<int64_t>(it->size()) != count)
    bad(ErrorKind::format, file, key,
        fmt::format("has {} values, expected one per channel (num_channels = {})", it->size(), count));
  std::vector<double> out;
  for (const auto& v : *it) {
    if (!v.is_number()) bad(ErrorKind::format, file, key, std::string("expected a list of numbers, got a ") + v.type_name());
    out.push_back(v.get<double>());
  }
  return out;
}

VisionConfig parse_vision(const nlohmann::json& v, const std::string& file) {
  VisionConfig c;
  c.model_type = optional_string(v, "model_type", file).value_or("");
  if (!c.model_type.empty() && c.model_type != "musespark_vit" && c.model_type != "siglip_vision_model")
    bad(ErrorKind::unsupported, file, "model_type",
        fmt::format("\"{}\" is not supported (supported: musespark_vit, siglip_vision_model)", c.model_type));
  c.image_size = positive_int(v, "image_size", file);
  c.patch_size = positive_int(v, "patch_size", file);
  if (c.image_size % c.patch_size != 0)
    bad(ErrorKind::format, file, "patch_size",
        fmt::format("{} does not divide image_size ({})", c.patch_size, c.image_size));
  c.num_channels = optional_int(v, "num_channels", file).value_or(3);
  if (c.num_channels != 3)
    bad(ErrorKind::unsupported, file, "num_channels", fmt::format("{} is not supported (only 3: RGB)", c.num_channels));
  c.hidden_size = positive_int(v, "hidden_size", file);
  c.intermediate_size = positive_int(v, "intermediate_size", file);
  c.num_hidden_layers = positive_int(v, "num_hidden_layers", file);
  c.num_attention_heads = positive_int(v, "num_attention_heads", file);
  if (c.hidden_size % c.num_attention_heads != 0)
    bad(ErrorKind::format, file, "num_attention_heads",
        fmt::format("{} does not divide hidden_size ({})", c.num_attention_heads, c.hidden_size));
  c.stem_channels = optional_positive_ints(v, "stem_channels", file);
  c.stem_strides = optional_positive_ints(v, "stem_strides", file);
  if (c.stem_strides.size() != c.stem_channels.size())
    bad(ErrorKind::format, file, "stem_strides",
        fmt::format("has {} values, expected one per stem layer (stem_channels has {})", c.stem_strides.size(),
                    c.stem_channels.size()));
  if (c.patch_size % c.stem_stride() != 0)
    bad(ErrorKind::format, file, "stem_strides",
        fmt::format("their product ({}) does not divide patch_size ({})", c.stem_stride(), c.patch_size));
  c.layer_norm_eps = optional_number(v, "layer_norm_eps", file).value_or(1e-6);
  if (!(c.layer_norm_eps > 0))
    bad(ErrorKind::format, file, "layer_norm_eps", fmt::format("must be a positive number, got {}", c.layer_norm_eps));
  c.hidden_act = activation(v, "hidden_act", file, VisionActivation::gelu_tanh);
  c.image_mean = per_channel(v, "image_mean", file, c.num_channels, 0.5);
  c.image_std = per_channel(v, "image_std", file, c.num_channels, 0.5);
  for (double s : c.image_std)
    if (!(s > 0)) bad(ErrorKind::format, file, "image_std", fmt::format("values must be positive, got {}", s));
  return c;
}

}  // namespace

std::optional<VisionActivation> parse_vision_activation(const std::string& name) noexcept {
  if (name == "gelu") return VisionActivation::gelu;
  if (name == "gelu_pytorch_tanh" || name == "gelu_new") return VisionActivation::gelu_tanh;
  return std::nullopt;
}

std::optional<VisionConfig> load_vision_config(const std::filesystem::path& config_json) {
  const std::string file = config_json.string();
  const nlohmann::json j = read_json_file(config_json);
  if (!j.is_object()) bad(ErrorKind::format, file, "", std::string("expected a JSON object, got ") + j.type_name());
  auto it = j.find("vision_config");
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_object())
    bad(ErrorKind::format, file, "vision_config", std::string("expected an object, got ") + it->type_name());

  VisionConfig c = within_field("vision_config", [&] { return parse_vision(*it, file); });

  c.projector_hidden_act = activation(j, "projector_hidden_act", file, VisionActivation::gelu);
  // Qwen-VL spells it image_token_id, LLaVA image_token_index.
  const char* id_key = j.contains("image_token_id") || !j.contains("image_token_index") ? "image_token_id"
                                                                                         : "image_token_index";
  auto id = optional_int(j, id_key, file);
  if (!id) bad(ErrorKind::format, file, "image_token_id", "missing (required when vision_config is present)");
  if (*id < 0) bad(ErrorKind::format, file, id_key, fmt::format("must be a token id >= 0, got {}", *id));
  if (auto vocab = optional_int(j, "vocab_size", file); vocab && *id >= *vocab)
    bad(ErrorKind::format, file, id_key, fmt::format("token id {} is outside the vocabulary [0, {})", *id, *vocab));
  c.image_token_id = *id;
  c.image_token = optional_string(j, "image_token", file).value_or("");
  c.vision_start_token = optional_string(j, "vision_start_token", file).value_or("");
  c.vision_end_token = optional_string(j, "vision_end_token", file).value_or("");
  return c;
}

}  // namespace musespark::detail
