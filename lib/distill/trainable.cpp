#include "distill/trainable.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>

#include "common/atomic_file.hpp"
#include "common/json_file.hpp"
#include "model/safetensors.hpp"
#include "model/weights_torch.hpp"
#include "musespark/error.hpp"

namespace musespark::detail {
namespace {

const std::string kVm = "vision_tower.vision_model.";

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  return weight * (x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps));
}

// x: [B, T, heads, hd]; cos/sin: [T, hd/2]. Rotate-half, as the engine.
at::Tensor rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  at::Tensor c = cos.unsqueeze(0).unsqueeze(2), s = sin.unsqueeze(0).unsqueeze(2);
  return at::cat({x1 * c - x2 * s, x2 * c + x1 * s}, -1);
}

constexpr double kRmsEps = 1e-6;
constexpr double kLayerNormEps = 1e-6;
constexpr double kRopeTheta = 10000.0;

}  // namespace

int64_t stem_stride(const ModelShape& shape) {
  int64_t s = 1;
  for (int64_t v : shape.stem_strides) s *= v;
  return s;
}

void TrainableModel::build_names() {
  const auto& s = shape_;
  const int64_t H = s.hidden_size, I = s.intermediate_size, hd = s.head_dim, V = ids_.vocab_size;
  auto add = [&](std::string name, std::vector<int64_t> dims) { layout_.emplace_back(std::move(name), std::move(dims)); };
  add("model.embed_tokens.weight", {V, H});
  for (int64_t i = 0; i < s.num_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    add(p + "input_layernorm.weight", {H});
    add(p + "self_attn.q_proj.weight", {s.num_heads * hd, H});
    add(p + "self_attn.k_proj.weight", {s.num_kv_heads * hd, H});
    add(p + "self_attn.v_proj.weight", {s.num_kv_heads * hd, H});
    add(p + "self_attn.o_proj.weight", {H, s.num_heads * hd});
    add(p + "self_attn.q_norm.weight", {hd});
    add(p + "self_attn.k_norm.weight", {hd});
    add(p + "post_attention_layernorm.weight", {H});
    add(p + "mlp.gate_proj.weight", {I, H});
    add(p + "mlp.up_proj.weight", {I, H});
    add(p + "mlp.down_proj.weight", {H, I});
  }
  add("model.norm.weight", {H});
  const int64_t D = s.vision_hidden_size, VI = s.vision_intermediate_size, P = s.patch_size;
  const int64_t N = (s.image_size / P) * (s.image_size / P);
  int64_t channels = 3;
  for (size_t i = 0; i < s.stem_channels.size(); ++i) {
    add(fmt::format("{}embeddings.stem.{}.weight", kVm, i), {s.stem_channels[i], channels, 3, 3});
    add(fmt::format("{}embeddings.stem.{}.bias", kVm, i), {s.stem_channels[i]});
    channels = s.stem_channels[i];
  }
  const int64_t K = P / stem_stride(s);
  add(kVm + "embeddings.patch_embedding.weight", {D, channels, K, K});
  add(kVm + "embeddings.patch_embedding.bias", {D});
  add(kVm + "embeddings.position_embedding.weight", {N, D});
  for (int64_t i = 0; i < s.vision_layers; ++i) {
    const std::string p = fmt::format("{}encoder.layers.{}.", kVm, i);
    for (const char* n : {"layer_norm1", "layer_norm2"}) {
      add(p + n + ".weight", {D});
      add(p + n + ".bias", {D});
    }
    for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      add(p + "self_attn." + n + ".weight", {D, D});
      add(p + "self_attn." + n + ".bias", {D});
    }
    add(p + "mlp.fc1.weight", {VI, D});
    add(p + "mlp.fc1.bias", {VI});
    add(p + "mlp.fc2.weight", {D, VI});
    add(p + "mlp.fc2.bias", {D});
  }
  add(kVm + "post_layernorm.weight", {D});
  add(kVm + "post_layernorm.bias", {D});
  add("multi_modal_projector.linear_1.weight", {H, D});
  add("multi_modal_projector.linear_1.bias", {H});
  add("multi_modal_projector.linear_2.weight", {H, H});
  add("multi_modal_projector.linear_2.bias", {H});
}

bool TrainableModel::decays(const std::string& name) {
  auto ends = [&](std::string_view tail) {
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (ends(".bias") || name.find("norm") != std::string::npos) return false;
  return ends("_proj.weight") || ends("fc1.weight") || ends("fc2.weight") || ends("linear_1.weight") ||
         ends("linear_2.weight") || ends("patch_embedding.weight");
}

TrainableModel::TrainableModel(const ModelShape& shape, const SpecialIds& ids, uint64_t seed) : TrainableModel(shape, ids) {
  build_names();
  at::manual_seed(seed);
  const double residual_scale = 1.0 / std::sqrt(2.0 * static_cast<double>(shape.num_layers));
  for (const auto& [name, dims] : layout_) {
    at::Tensor t;
    auto ends = [&](std::string_view tail) {
      return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
    };
    if (ends(".bias")) {
      t = at::zeros(dims, at::kFloat);
    } else if (name.find("norm") != std::string::npos) {
      t = at::ones(dims, at::kFloat);
    } else {
      double std = 0.02;
      if (name.find(".stem.") != std::string::npos)  // He initialisation: the stem's activations keep their scale
        std = std::sqrt(2.0 / static_cast<double>(dims[1] * dims[2] * dims[3]));
      if (ends("o_proj.weight") || ends("down_proj.weight")) std *= residual_scale;
      t = at::randn(dims, at::kFloat) * std;
    }
    params_.emplace_back(name, t.set_requires_grad(true));
  }
}

TrainableModel TrainableModel::load(const std::filesystem::path& dir, const ModelShape& shape, const SpecialIds& ids) {
  TrainableModel m(shape, ids);
  m.build_names();
  const auto file = dir / "model.safetensors";
  std::map<std::string, at::Tensor> found;
  for (auto& [name, t] : read_safetensors(file)) found[name] = t;
  for (const auto& [name, dims] : m.layout_) {
    auto it = found.find(name);
    if (it == found.end()) throw Error(ErrorKind::format, file.string(), name, "missing tensor");
    if (it->second.sizes().vec() != dims)
      throw Error(ErrorKind::format, file.string(), name,
                  fmt::format("shape {}, expected {}", shape_string(it->second.sizes().vec()), shape_string(dims)));
    m.params_.emplace_back(name, it->second.set_requires_grad(true));
  }
  return m;
}

const at::Tensor& TrainableModel::p(const std::string& name) const {
  for (const auto& [n, t] : params_)
    if (n == name) return t;
  throw Error(ErrorKind::internal, "", name, "no such parameter");
}

int64_t TrainableModel::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_) n += t.numel();
  return n;
}

// pixels [N, 3, S, S] -> [N, patches, hidden]: the engine's VisionEncoder, batched.
at::Tensor TrainableModel::vision(const at::Tensor& pixels) const {
  const auto& s = shape_;
  const int64_t N = pixels.size(0), D = s.vision_hidden_size, heads = s.vision_heads, hd = D / heads;
  at::Tensor in = pixels;
  for (size_t i = 0; i < s.stem_channels.size(); ++i)
    in = at::gelu(at::conv2d(in, p(fmt::format("{}embeddings.stem.{}.weight", kVm, i)),
                             p(fmt::format("{}embeddings.stem.{}.bias", kVm, i)), {s.stem_strides[i], s.stem_strides[i]},
                             {1, 1}),
                  "tanh");
  const int64_t K = s.patch_size / stem_stride(s);
  at::Tensor x = at::conv2d(in, p(kVm + "embeddings.patch_embedding.weight"), p(kVm + "embeddings.patch_embedding.bias"),
                            {K, K});
  x = x.flatten(2).transpose(1, 2) + p(kVm + "embeddings.position_embedding.weight");  // [N, P, D]
  const int64_t P = x.size(1);
  for (int64_t i = 0; i < s.vision_layers; ++i) {
    const std::string l = fmt::format("{}encoder.layers.{}.", kVm, i);
    auto w = [&](const std::string& n) -> const at::Tensor& { return p(l + n); };
    at::Tensor h = at::layer_norm(x, {D}, w("layer_norm1.weight"), w("layer_norm1.bias"), kLayerNormEps);
    auto heads_of = [&](const char* proj) {
      return at::linear(h, w(std::string("self_attn.") + proj + ".weight"), w(std::string("self_attn.") + proj + ".bias"))
          .view({N, P, heads, hd})
          .transpose(1, 2);
    };
    at::Tensor q = heads_of("q_proj"), k = heads_of("k_proj"), v = heads_of("v_proj");
    at::Tensor probs = at::softmax(at::matmul(q, k.transpose(-1, -2)) * (1.0 / std::sqrt(double(hd))), -1);
    at::Tensor o = at::matmul(probs, v).transpose(1, 2).reshape({N, P, D});
    x = x + at::linear(o, w("self_attn.out_proj.weight"), w("self_attn.out_proj.bias"));
    h = at::layer_norm(x, {D}, w("layer_norm2.weight"), w("layer_norm2.bias"), kLayerNormEps);
    x = x + at::linear(at::gelu(at::linear(h, w("mlp.fc1.weight"), w("mlp.fc1.bias")), "tanh"), w("mlp.fc2.weight"),
                       w("mlp.fc2.bias"));
  }
  x = at::layer_norm(x, {D}, p(kVm + "post_layernorm.weight"), p(kVm + "post_layernorm.bias"), kLayerNormEps);
  x = at::gelu(at::linear(x, p("multi_modal_projector.linear_1.weight"), p("multi_modal_projector.linear_1.bias")),
               "none");
  return at::linear(x, p("multi_modal_projector.linear_2.weight"), p("multi_modal_projector.linear_2.bias"));
}

at::Tensor TrainableModel::forward(const Input& in, at::Tensor* image_embeddings) const {
  const auto& s = shape_;
  const int64_t B = in.tokens.size(0), T = in.tokens.size(1), H = s.hidden_size, hd = s.head_dim;
  const int64_t nh = s.num_heads, nkv = s.num_kv_heads;
  const at::Tensor& embed = p("model.embed_tokens.weight");
  at::Tensor x = at::embedding(embed, in.tokens).view({B * T, H});
  if (in.pixels.defined() && in.pixels.size(0) > 0) {
    at::Tensor images = vision(in.pixels);
    x = x.index_put({in.image_rows}, images.reshape({-1, H}).to(x.scalar_type()));
    if (image_embeddings) *image_embeddings = images;
  }
  x = x.view({B, T, H});

  at::Tensor exponent = at::arange(0, hd, 2, at::kLong).to(at::kFloat) / static_cast<double>(hd);
  at::Tensor inv_freq = 1.0 / at::pow(kRopeTheta, exponent);
  at::Tensor freqs = at::outer(at::arange(T, at::kLong).to(at::kFloat), inv_freq);
  at::Tensor cos = freqs.cos(), sin = freqs.sin();
  at::Tensor mask = at::full({T, T}, -INFINITY, at::kFloat).triu(1);

  for (int64_t i = 0; i < s.num_layers; ++i) {
    const std::string l = fmt::format("model.layers.{}.", i);
    auto w = [&](const char* n) -> const at::Tensor& { return p(l + n); };
    at::Tensor h = rms_norm(x, w("input_layernorm.weight"), kRmsEps);
    at::Tensor q = rms_norm(at::linear(h, w("self_attn.q_proj.weight")).view({B, T, nh, hd}), w("self_attn.q_norm.weight"), kRmsEps);
    at::Tensor k = rms_norm(at::linear(h, w("self_attn.k_proj.weight")).view({B, T, nkv, hd}), w("self_attn.k_norm.weight"), kRmsEps);
    at::Tensor v = at::linear(h, w("self_attn.v_proj.weight")).view({B, T, nkv, hd});
    q = rope(q, cos, sin).transpose(1, 2);  // [B, nh, T, hd]
    k = rope(k, cos, sin).transpose(1, 2);
    v = v.transpose(1, 2);
    if (nkv != nh) {  // grouped-query: query head j reads kv head j / (nh / nkv)
      k = k.repeat_interleave(nh / nkv, 1);
      v = v.repeat_interleave(nh / nkv, 1);
    }
    at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * (1.0 / std::sqrt(double(hd))) + mask;
    at::Tensor o = at::matmul(at::softmax(scores, -1), v).transpose(1, 2).reshape({B, T, nh * hd});
    x = x + at::linear(o, w("self_attn.o_proj.weight"));
    h = rms_norm(x, w("post_attention_layernorm.weight"), kRmsEps);
    x = x + at::linear(at::silu(at::linear(h, w("mlp.gate_proj.weight"))) * at::linear(h, w("mlp.up_proj.weight")),
                       w("mlp.down_proj.weight"));
  }
  at::Tensor selected = x.view({B * T, H}).index_select(0, in.rows);
  return at::linear(rms_norm(selected, p("model.norm.weight"), kRmsEps), embed);
}

std::string TrainableModel::config_json(const ModelShape& s, const SpecialIds& ids) {
  nlohmann::ordered_json j;
  j["architectures"] = {"Qwen3ForCausalLM"};
  j["model_type"] = "qwen3";
  j["vocab_size"] = ids.vocab_size;
  j["hidden_size"] = s.hidden_size;
  j["intermediate_size"] = s.intermediate_size;
  j["num_hidden_layers"] = s.num_layers;
  j["num_attention_heads"] = s.num_heads;
  j["num_key_value_heads"] = s.num_kv_heads;
  j["head_dim"] = s.head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = s.max_position_embeddings;
  j["rms_norm_eps"] = kRmsEps;
  j["rope_theta"] = kRopeTheta;
  j["tie_word_embeddings"] = true;
  j["attention_bias"] = false;
  j["torch_dtype"] = "float32";
  j["eos_token_id"] = ids.im_end;
  j["pad_token_id"] = ids.pad;
  j["image_token"] = "<|image_pad|>";
  j["image_token_id"] = ids.image_pad;
  j["vision_start_token"] = "<|vision_start|>";
  j["vision_end_token"] = "<|vision_end|>";
  j["projector_hidden_act"] = "gelu";
  j["vision_config"] = {{"model_type", "musespark_vit"},
                        {"image_size", s.image_size},
                        {"patch_size", s.patch_size},
                        {"num_channels", 3},
                        {"hidden_size", s.vision_hidden_size},
                        {"intermediate_size", s.vision_intermediate_size},
                        {"num_hidden_layers", s.vision_layers},
                        {"num_attention_heads", s.vision_heads},
                        {"stem_channels", s.stem_channels},
                        {"stem_strides", s.stem_strides},
                        {"layer_norm_eps", kLayerNormEps},
                        {"hidden_act", "gelu_pytorch_tanh"},
                        {"image_mean", {0.5, 0.5, 0.5}},
                        {"image_std", {0.5, 0.5, 0.5}}};
  return j.dump(2) + "\n";
}

ModelShape TrainableModel::read_shape(const std::filesystem::path& config_json) {
  const std::string file = config_json.string();
  nlohmann::json j = read_json_file(config_json);
  ModelShape s;
  s.hidden_size = positive_int(j, "hidden_size", file);
  s.intermediate_size = positive_int(j, "intermediate_size", file);
  s.num_layers = positive_int(j, "num_hidden_layers", file);
  s.num_heads = positive_int(j, "num_attention_heads", file);
  s.num_kv_heads = positive_int(j, "num_key_value_heads", file);
  s.head_dim = positive_int(j, "head_dim", file);
  s.max_position_embeddings = positive_int(j, "max_position_embeddings", file);
  if (!j.contains("vision_config") || !j["vision_config"].is_object())
    throw Error(ErrorKind::format, file, "vision_config", "missing: the trainer's models have a vision tower");
  const auto& v = j["vision_config"];
  within_field("vision_config", [&] {
    s.vision_hidden_size = positive_int(v, "hidden_size", file);
    s.vision_intermediate_size = positive_int(v, "intermediate_size", file);
    s.vision_layers = positive_int(v, "num_hidden_layers", file);
    s.vision_heads = positive_int(v, "num_attention_heads", file);
    s.image_size = positive_int(v, "image_size", file);
    s.patch_size = positive_int(v, "patch_size", file);
    s.stem_channels = optional_positive_ints(v, "stem_channels", file);
    s.stem_strides = optional_positive_ints(v, "stem_strides", file);
  });
  return s;
}

void TrainableModel::save(const std::filesystem::path& dir) const {
  std::filesystem::create_directories(dir);
  write_file_atomically(dir / "config.json", config_json(shape_, ids_));
  std::vector<std::pair<std::string, at::Tensor>> plain;
  for (const auto& [name, t] : params_) plain.emplace_back(name, t.detach());
  write_safetensors(dir / "model.safetensors", plain);
}

void write_safetensors(const std::filesystem::path& file,
                       const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  size_t offset = 0;
  std::vector<at::Tensor> data;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.detach().contiguous();
    const char* dtype = c.scalar_type() == at::kFloat ? "F32" : c.scalar_type() == at::kBFloat16 ? "BF16" : nullptr;
    if (!dtype) throw Error(ErrorKind::invalid_argument, file.string(), name, "only F32 and BF16 tensors are written");
    const size_t bytes = c.numel() * c.element_size();
    header[name] = {{"dtype", dtype}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    data.push_back(c);
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data section 8-byte aligned
  const uint64_t length = text.size();
  // A reader never sees half a file (AtomicFile).
  AtomicFile out(file);
  char prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  out.write(prefix, 8);
  out.write(text);
  for (const auto& c : data) out.write(c.data_ptr(), c.numel() * c.element_size());
  out.commit();
}

std::vector<std::pair<std::string, at::Tensor>> read_safetensors(const std::filesystem::path& file) {
  SafetensorsFile st = SafetensorsFile::open(file);
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& view : st.tensors()) {
    if (view.dtype != DType::f32 && view.dtype != DType::bf16 && view.dtype != DType::f16)
      throw Error(ErrorKind::format, file.string(), view.name,
                  fmt::format("dtype {}, expected F32, BF16 or F16", dtype_name(view.dtype)));
    out.emplace_back(view.name, to_tensor(view, at::kFloat, st.keepalive()).clone());
  }
  return out;
}

}  // namespace musespark::detail
