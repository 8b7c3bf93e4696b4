#include "model/gguf_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>
#include <optional>

#include "musespark/error.hpp"

namespace musespark::detail {

namespace {

[[noreturn]] void bad(ErrorKind kind, const GgufFile& f, const std::string& field, const std::string& message) {
  throw Error(kind, f.path(), field, message);
}

int64_t positive(const GgufFile& f, const std::string& key, std::optional<int64_t> fallback = std::nullopt) {
  const GgufValue* v = f.find(key);
  if (!v) {
    if (fallback) return *fallback;
    bad(ErrorKind::format, f, key, "missing");
  }
  const uint64_t n = v->as_u64();
  if (n == 0 || n > (uint64_t(1) << 40)) bad(ErrorKind::format, f, key, fmt::format("must be a positive size, got {}", n));
  return static_cast<int64_t>(n);
}

double positive_float(const GgufFile& f, const std::string& key, double fallback) {
  const GgufValue* v = f.find(key);
  if (!v) return fallback;
  const double x = v->as_f64();
  if (!(x > 0)) bad(ErrorKind::format, f, key, fmt::format("must be positive, got {}", x));
  return x;
}

// HF name of a GGUF tensor; empty for one the model does not read.
std::string hf_name(std::string_view name) {
  static const std::pair<std::string_view, std::string_view> globals[] = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"}};
  for (const auto& [g, h] : globals)
    if (name == g) return std::string(h);
  if (!name.starts_with("blk.")) return "";
  const size_t dot = name.find('.', 4);
  if (dot == std::string_view::npos) return "";
  const std::string_view layer = name.substr(4, dot - 4), part = name.substr(dot + 1);
  if (layer.empty() || layer.find_first_not_of("0123456789") != std::string_view::npos) return "";
  static const std::pair<std::string_view, std::string_view> parts[] = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_q.bias", "self_attn.q_proj.bias"},
      {"attn_k.bias", "self_attn.k_proj.bias"},
      {"attn_v.bias", "self_attn.v_proj.bias"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"attn_q_norm.weight", "self_attn.q_norm.weight"},
      {"attn_k_norm.weight", "self_attn.k_norm.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"}};
  for (const auto& [g, h] : parts)
    if (part == g) return fmt::format("model.layers.{}.{}", layer, h);
  return "";
}

uint16_t to_bf16(float f) {
  uint32_t bits = std::bit_cast<uint32_t>(f);
  if ((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu)) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

// The buffers of dequantized tensors, and the mapping of the rest.
struct Owned {
  GgufFile file;
  std::vector<std::vector<std::byte>> buffers;
};

ModelConfig config_of(const GgufFile& f) {
  ModelConfig c;
  const std::string arch = f.architecture();
  if (arch == "qwen3") c.architecture = "Qwen3ForCausalLM";
  else if (arch == "qwen2") c.architecture = "Qwen2ForCausalLM";
  else if (arch == "llama") c.architecture = "LlamaForCausalLM";
  else
    bad(ErrorKind::unsupported, f, "general.architecture",
        fmt::format("\"{}\" is not supported (supported: qwen3, qwen2, llama)", arch));
  const std::string p = arch + ".";
  c.hidden_size = positive(f, p + "embedding_length");
  c.num_hidden_layers = positive(f, p + "block_count");
  c.intermediate_size = positive(f, p + "feed_forward_length");
  c.num_attention_heads = positive(f, p + "attention.head_count");
  c.num_key_value_heads = positive(f, p + "attention.head_count_kv", c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    bad(ErrorKind::format, f, p + "attention.head_count_kv",
        fmt::format("{} does not divide attention.head_count ({})", c.num_key_value_heads, c.num_attention_heads));
  std::optional<int64_t> even_split;
  if (c.hidden_size % c.num_attention_heads == 0) even_split = c.hidden_size / c.num_attention_heads;
  c.head_dim = positive(f, p + "attention.key_length", even_split);
  if (positive(f, p + "attention.value_length", c.head_dim) != c.head_dim)
    bad(ErrorKind::unsupported, f, p + "attention.value_length", "must equal attention.key_length");
  if (c.head_dim % 2 != 0)
    bad(ErrorKind::format, f, p + "attention.key_length", fmt::format("must be even for rotary embeddings, got {}", c.head_dim));
  c.max_position_embeddings = positive(f, p + "context_length");
  c.rms_norm_eps = positive_float(f, p + "attention.layer_norm_rms_epsilon", 1e-6);
  c.rope_theta = positive_float(f, p + "rope.freq_base", 10000.0);
  if (const GgufValue* type = f.find(p + "rope.scaling.type"); type && type->as_string() != "none")
    bad(ErrorKind::unsupported, f, p + "rope.scaling.type",
        fmt::format("\"{}\" is not supported (only none, or llama3's rope_freqs.weight)", type->as_string()));
  const GgufTensor* embed = f.find_tensor("token_embd.weight");
  if (!embed || embed->shape.size() != 2) bad(ErrorKind::format, f, "token_embd.weight", "missing, or not a matrix");
  c.vocab_size = embed->shape[1];
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  c.qk_norm = arch == "qwen3";
  c.qkv_bias = arch == "qwen2" || f.find_tensor("blk.0.attn_q.bias") != nullptr;
  if (const GgufTensor* freqs = f.find_tensor("rope_freqs.weight")) {
    if (freqs->type != GgmlType::f32 || freqs->numel() != c.head_dim / 2)
      bad(ErrorKind::format, f, "rope_freqs.weight", fmt::format("expected {} F32 factors", c.head_dim / 2));
    c.rope_freq_factors.resize(static_cast<size_t>(freqs->numel()));
    std::memcpy(c.rope_freq_factors.data(), freqs->data, freqs->nbytes);
    for (float x : c.rope_freq_factors)
      if (!(x > 0)) bad(ErrorKind::format, f, "rope_freqs.weight", "factors must be positive");
  }
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    const GgufValue* v = f.find(key);
    if (!v) continue;
    const uint64_t id = v->as_u64();
    if (id >= static_cast<uint64_t>(c.vocab_size))
      bad(ErrorKind::format, f, key, fmt::format("token id {} is outside the vocabulary [0, {})", id, c.vocab_size));
    if (std::find(c.eos_token_ids.begin(), c.eos_token_ids.end(), int64_t(id)) == c.eos_token_ids.end())
      c.eos_token_ids.push_back(static_cast<int64_t>(id));
  }
  if (const GgufValue* v = f.find("tokenizer.ggml.bos_token_id")) c.bos_token_ids.push_back(static_cast<int64_t>(v->as_u64()));
  c.torch_dtype = "gguf";
  return c;
}

}  // namespace

int64_t gguf_source_row(const TensorView& view, int64_t row) noexcept {
  const int64_t hd = view.interleaved_head_dim;
  if (hd == 0) return row;
  const int64_t h = row / hd, s = (row % hd) / (hd / 2), j = row % (hd / 2);
  return h * hd + 2 * j + s;
}

GgufModel load_gguf_model(const GgufFile& gguf, DType target, bool keep_blocks) {
  if (target != DType::f32 && target != DType::bf16)
    throw Error(ErrorKind::invalid_argument, "", "dtype", "GGUF tensors are read as f32 or bf16");
  GgufModel out;
  out.config = config_of(gguf);
  const ModelConfig& c = out.config;
  const bool llama = gguf.architecture() == "llama";
  auto owned = std::make_shared<Owned>(Owned{gguf, {}});
  std::vector<TensorView> views;
  std::vector<float> scratch;  // one row, for bf16 targets
  for (const GgufTensor& t : gguf.tensors()) {
    std::string name = hf_name(t.name);
    if (name.empty()) continue;
    TensorView v;
    v.name = std::move(name);
    v.file = gguf.path();
    v.shape.assign(t.shape.rbegin(), t.shape.rend());
    // llama.cpp's converter interleaves the two rotary halves of each head's
    // q and k rows: HF row h*hd + s*hd/2 + j is GGUF row h*hd + 2j + s.
    const bool q = t.name.ends_with("attn_q.weight"), k = t.name.ends_with("attn_k.weight");
    const bool permuted = llama && (q || k);
    const bool plain = t.type == GgmlType::f32 || t.type == GgmlType::f16 || t.type == GgmlType::bf16;
    if (plain && !permuted) {
      v.dtype = t.type == GgmlType::f32 ? DType::f32 : t.type == GgmlType::f16 ? DType::f16 : DType::bf16;
      v.data = t.data;
      v.nbytes = t.nbytes;
      views.push_back(std::move(v));
      continue;
    }
    const int64_t n = t.row_length(), r = t.rows();
    const int64_t heads = q ? c.num_attention_heads : c.num_key_value_heads, hd = c.head_dim;
    if (permuted && r != heads * hd)
      bad(ErrorKind::format, gguf, t.name, fmt::format("{} rows, expected {} heads of {}", r, heads, hd));
    v.interleaved_head_dim = permuted ? hd : 0;
    if (keep_blocks && t.shape.size() == 2 && affine_layout(t.type)) {
      v.dtype = target;  // what its rows dequantize to
      v.gguf_blocks = &t;
      v.nbytes = t.nbytes;
      views.push_back(std::move(v));
      continue;
    }
    const size_t width = target == DType::f32 ? sizeof(float) : sizeof(uint16_t);
    std::vector<std::byte> buffer(static_cast<size_t>(t.numel()) * width);
    scratch.resize(target == DType::f32 ? 0 : static_cast<size_t>(n));
    for (int64_t row = 0; row < r; ++row) {
      std::byte* dst = buffer.data() + static_cast<size_t>(row * n) * width;
      // f32 targets are dequantized straight into the buffer, bf16 ones through one row of floats.
      const std::span<float> floats = target == DType::f32
                                          ? std::span<float>(reinterpret_cast<float*>(dst), static_cast<size_t>(n))
                                          : std::span<float>(scratch);
      dequantize_row(t, gguf_source_row(v, row), floats);
      if (target == DType::f32) continue;
      auto* out = reinterpret_cast<uint16_t*>(dst);
      for (size_t i = 0; i < floats.size(); ++i) out[i] = to_bf16(floats[i]);
    }
    v.dtype = target;
    v.data = buffer.data();
    v.nbytes = buffer.size();
    owned->buffers.push_back(std::move(buffer));  // moving a vector keeps its heap block
    views.push_back(std::move(v));
  }
  out.weights = WeightStore::of_views(gguf.path(), std::move(views), std::move(owned));
  return out;
}

}  // namespace musespark::detail
