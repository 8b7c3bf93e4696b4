#include "model/config.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/json_file.hpp"
#include "musespark/error.hpp"

namespace musespark::detail {

namespace {

constexpr const char* kSupportedArchitectures = "Qwen3ForCausalLM, Qwen2ForCausalLM, LlamaForCausalLM";

[[noreturn]] void bad(ErrorKind kind, const std::string& file, const std::string& field, const std::string& message) {
  throw Error(kind, file, field, message);
}


double positive_number(const nlohmann::json& j, const std::string& key, const std::string& file, double fallback) {
  double v = optional_number(j, key, file).value_or(fallback);
  if (!(v > 0)) bad(ErrorKind::format, file, key, fmt::format("must be a positive number, got {}", v));
  return v;
}

// bos_token_id / eos_token_id: an integer, a list of integers, or null.
std::vector<int64_t> token_ids(const nlohmann::json& j, const std::string& key, const std::string& file,
                               int64_t vocab_size) {
  std::vector<int64_t> ids;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ids;
  auto take = [&](const nlohmann::json& v) {
    if (!v.is_number_integer())
      bad(ErrorKind::format, file, key,
          std::string("expected an integer or a list of integers, got ") + v.type_name());
    int64_t id = v.get<int64_t>();
    if (id < 0 || id >= vocab_size)
      bad(ErrorKind::format, file, key, fmt::format("token id {} is outside the vocabulary [0, {})", id, vocab_size));
    ids.push_back(id);
  };
  if (it->is_array()) {
    for (const auto& v : *it) take(v);
  } else {
    take(*it);
  }
  return ids;
}

// Our own settings of a model, calibrated on it: {"musespark":
// {"auto_confidence_threshold": T}}. Returns T, or 0 without one.
double parse_musespark_block(const nlohmann::json& j, const std::string& file) {
  auto it = j.find("musespark");
  if (it == j.end() || it->is_null()) return 0;
  if (!it->is_object())
    bad(ErrorKind::format, file, "musespark", std::string("expected an object or null, got ") + it->type_name());
  for (const auto& [key, value] : it->items())
    if (key != "auto_confidence_threshold")
      bad(ErrorKind::format, file, "musespark." + key, "unknown setting (known: auto_confidence_threshold)");
  if (!it->contains("auto_confidence_threshold")) return 0;
  return within_field("musespark", [&] { return positive_number(*it, "auto_confidence_threshold", file, 0); });
}

RopeScaling parse_rope_scaling(const nlohmann::json& j, const std::string& file) {
  RopeScaling out;
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_object())
    bad(ErrorKind::format, file, "rope_scaling", std::string("expected an object or null, got ") + it->type_name());
  const nlohmann::json& rs = *it;
  // HF spells it "rope_type"; older configs "type".
  const char* type_key = rs.contains("rope_type") ? "rope_type" : "type";
  auto type = within_field("rope_scaling", [&] { return optional_string(rs, type_key, file); });
  if (!type) bad(ErrorKind::format, file, "rope_scaling.rope_type", "missing");
  if (*type == "default") return out;  // HF: plain RoPE
  if (*type != "llama3")
    bad(ErrorKind::unsupported, file, "rope_scaling.rope_type",
        fmt::format("\"{}\" is not supported (supported: llama3, default)", *type));
  out.kind = RopeScalingKind::llama3;
  within_field("rope_scaling", [&] {
    out.factor = required_number(rs, "factor", file);
    out.low_freq_factor = required_number(rs, "low_freq_factor", file);
    out.high_freq_factor = required_number(rs, "high_freq_factor", file);
    out.original_max_position_embeddings = required_int(rs, "original_max_position_embeddings", file);
    if (!(out.factor > 0)) bad(ErrorKind::format, file, "factor", fmt::format("must be positive, got {}", out.factor));
    if (!(out.low_freq_factor > 0))
      bad(ErrorKind::format, file, "low_freq_factor", fmt::format("must be positive, got {}", out.low_freq_factor));
    if (!(out.high_freq_factor > out.low_freq_factor))
      bad(ErrorKind::format, file, "high_freq_factor",
          fmt::format("must be greater than low_freq_factor ({}), got {}", out.low_freq_factor, out.high_freq_factor));
    if (out.original_max_position_embeddings <= 0)
      bad(ErrorKind::format, file, "original_max_position_embeddings",
          fmt::format("must be a positive integer, got {}", out.original_max_position_embeddings));
    return 0;
  });
  return out;
}

}  // namespace

ModelConfig load_model_config(const std::filesystem::path& config_json) {
  const std::string file = config_json.string();
  const nlohmann::json j = read_json_file(config_json);
  if (!j.is_object()) bad(ErrorKind::format, file, "", std::string("expected a JSON object, got ") + j.type_name());

  ModelConfig c;
  auto arch = j.find("architectures");
  if (arch == j.end() || arch->is_null())
    bad(ErrorKind::format, file, "architectures", fmt::format("missing (one of: {})", kSupportedArchitectures));
  if (!arch->is_array() || arch->empty() || !(*arch)[0].is_string())
    bad(ErrorKind::format, file, "architectures", "expected a non-empty list of strings");
  c.architecture = (*arch)[0].get<std::string>();
  const bool qwen3 = c.architecture == "Qwen3ForCausalLM";
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  const bool llama = c.architecture == "LlamaForCausalLM";
  if (!qwen3 && !qwen2 && !llama)
    bad(ErrorKind::unsupported, file, "architectures",
        fmt::format("\"{}\" is not supported (supported: {})", c.architecture, kSupportedArchitectures));

  c.vocab_size = positive_int(j, "vocab_size", file);
  c.hidden_size = positive_int(j, "hidden_size", file);
  c.intermediate_size = positive_int(j, "intermediate_size", file);
  c.num_hidden_layers = positive_int(j, "num_hidden_layers", file);
  c.num_attention_heads = positive_int(j, "num_attention_heads", file);
  c.num_key_value_heads = optional_int(j, "num_key_value_heads", file).value_or(c.num_attention_heads);
  if (c.num_key_value_heads <= 0)
    bad(ErrorKind::format, file, "num_key_value_heads",
        fmt::format("must be a positive integer, got {}", c.num_key_value_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    bad(ErrorKind::format, file, "num_key_value_heads",
        fmt::format("{} does not divide num_attention_heads ({})", c.num_key_value_heads, c.num_attention_heads));

  if (auto hd = optional_int(j, "head_dim", file)) {
    if (*hd <= 0) bad(ErrorKind::format, file, "head_dim", fmt::format("must be a positive integer, got {}", *hd));
    c.head_dim = *hd;
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      bad(ErrorKind::format, file, "head_dim",
          fmt::format("missing, and hidden_size ({}) is not a multiple of num_attention_heads ({})", c.hidden_size,
                      c.num_attention_heads));
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0)
    bad(ErrorKind::format, file, "head_dim", fmt::format("must be even for rotary embeddings, got {}", c.head_dim));

  c.max_position_embeddings = positive_int(j, "max_position_embeddings", file);
  c.rms_norm_eps = positive_number(j, "rms_norm_eps", file, 1e-6);
  c.rope_theta = positive_number(j, "rope_theta", file, 10000.0);
  c.rope_scaling = parse_rope_scaling(j, file);
  c.tie_word_embeddings = optional_bool(j, "tie_word_embeddings", file).value_or(false);
  // transformers >= 4.56 writes "dtype" instead of "torch_dtype".
  c.torch_dtype = optional_string(j, "torch_dtype", file).value_or(optional_string(j, "dtype", file).value_or(""));
  c.bos_token_ids = token_ids(j, "bos_token_id", file, c.vocab_size);
  c.eos_token_ids = token_ids(j, "eos_token_id", file, c.vocab_size);
  c.auto_confidence_threshold = parse_musespark_block(j, file);

  // What we do not implement is refused rather than silently ignored.
  if (auto act = optional_string(j, "hidden_act", file); act && *act != "silu")
    bad(ErrorKind::unsupported, file, "hidden_act", fmt::format("\"{}\" is not supported (only silu)", *act));
  const bool attention_bias = optional_bool(j, "attention_bias", file).value_or(false);
  if (qwen2) {
    c.qkv_bias = true;  // Qwen2 always has q/k/v biases and no o_proj bias.
  } else if (attention_bias) {
    // In HF's Llama and Qwen3, attention_bias also puts a bias on o_proj.
    bad(ErrorKind::unsupported, file, "attention_bias",
        "true is not supported for " + c.architecture + " (it adds a bias to o_proj)");
  }
  c.qk_norm = qwen3;
  if (llama && optional_bool(j, "mlp_bias", file).value_or(false))
    bad(ErrorKind::unsupported, file, "mlp_bias", "true is not supported");
  if ((qwen2 || qwen3) && optional_bool(j, "use_sliding_window", file).value_or(false))
    bad(ErrorKind::unsupported, file, "use_sliding_window", "true is not supported");
  return c;
}

}  // namespace musespark::detail
