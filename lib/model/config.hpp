// The text model's configuration, read from an HF `config.json`.
//
// Architecture differences are data (STYLE.md): one struct, with the HF
// field names, and flags for what differs between Qwen3, Qwen2 and Llama.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace musespark::detail {

enum class RopeScalingKind { none, llama3 };

struct RopeScaling {
  RopeScalingKind kind = RopeScalingKind::none;
  // llama3 ("rope_type": "llama3"): HF field names.
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;           // "Qwen3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;    // defaults to num_attention_heads
  int64_t head_dim = 0;               // defaults to hidden_size / num_attention_heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  // Per-frequency divisors of the rotary inverse frequencies (head_dim / 2 of
  // them; empty: none): a GGUF's rope_freqs.weight, llama3 scaling written out.
  std::vector<float> rope_freq_factors;
  bool tie_word_embeddings = false;
  // "musespark": {"auto_confidence_threshold": T}: Auto's escalation
  // threshold calibrated for this model (musespark eval); 0: none.
  double auto_confidence_threshold = 0;
  std::string torch_dtype;            // as written in the file ("bfloat16", "float32", ...), may be empty
  std::vector<int64_t> bos_token_ids; // bos_token_id: an int or a list; may be empty
  std::vector<int64_t> eos_token_ids; // eos_token_id: an int or a list; may be empty

  // What the architecture implies (set by the parser from `architecture`,
  // except attention_bias which Llama configs may state).
  bool qk_norm = false;   // Qwen3: RMSNorm over each head of q and k before RoPE
  bool qkv_bias = false;  // Qwen2: bias on q_proj, k_proj, v_proj (Llama: "attention_bias")
};

// Parses and validates `config.json`. Throws musespark::Error naming the file
// and the field: missing or mistyped fields, non-positive sizes, heads that do
// not divide, an unknown architecture or rope_scaling type.
ModelConfig load_model_config(const std::filesystem::path& config_json);

}  // namespace musespark::detail
