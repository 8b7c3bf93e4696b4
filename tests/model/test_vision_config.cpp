// vision_config parsing (the vision part of a multimodal config.json) and every error case.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.hpp"
#include "model/vision_config.hpp"
#include "musespark/error.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using musespark::Error;
using musespark::ErrorKind;
using musespark::detail::load_model_config;
using musespark::detail::load_vision_config;
using musespark::detail::VisionActivation;
using musespark::detail::VisionConfig;
using nlohmann::json;

namespace {

// A Qwen3 text config with the multimodal fields as make_tiny_model.py --vision writes them.
json multimodal_config() {
  return json::parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
    "intermediate_size": 3072, "max_position_embeddings": 40960, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
    "rope_theta": 1000000, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "vocab_size": 151936,
    "vision_config": {"model_type": "musespark_vit", "image_size": 224, "patch_size": 14, "num_channels": 3,
                      "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                      "num_attention_heads": 4, "layer_norm_eps": 1e-5, "hidden_act": "gelu",
                      "image_mean": [0.48, 0.45, 0.40], "image_std": [0.26, 0.26, 0.27]},
    "projector_hidden_act": "gelu_pytorch_tanh", "image_token": "<|image_pad|>", "image_token_id": 151655,
    "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>"})");
}

fs::path write_config(const json& j, const std::string& name) {
  fs::path dir = test_support::process_dir("vision-config") / name;
  fs::create_directories(dir);
  fs::path path = dir / "config.json";
  std::ofstream(path, std::ios::trunc) << j.dump();
  return path;
}

std::optional<VisionConfig> load(const json& j, const std::string& name = "case") {
  return load_vision_config(write_config(j, name));
}

// The error that loading `j` gives; fails the test if there is none.
Error error_of(const json& j) {
  try {
    load(j, "error");
  } catch (const Error& e) {
    return e;
  }
  FAIL("no error");
  return Error(ErrorKind::internal, "", "", "");
}

}  // namespace

TEST_CASE("vision config: every field of a multimodal config.json") {
  auto c = load(multimodal_config());
  REQUIRE(c.has_value());
  CHECK(c->model_type == "musespark_vit");
  CHECK(c->image_size == 224);
  CHECK(c->patch_size == 14);
  CHECK(c->num_channels == 3);
  CHECK(c->hidden_size == 64);
  CHECK(c->intermediate_size == 128);
  CHECK(c->num_hidden_layers == 2);
  CHECK(c->num_attention_heads == 4);
  CHECK(c->layer_norm_eps == doctest::Approx(1e-5));
  CHECK(c->hidden_act == VisionActivation::gelu);
  CHECK(c->image_mean == std::vector<double>{0.48, 0.45, 0.40});
  CHECK(c->image_std == std::vector<double>{0.26, 0.26, 0.27});
  CHECK(c->projector_hidden_act == VisionActivation::gelu_tanh);
  CHECK(c->image_token_id == 151655);
  CHECK(c->image_token == "<|image_pad|>");
  CHECK(c->vision_start_token == "<|vision_start|>");
  CHECK(c->vision_end_token == "<|vision_end|>");
  CHECK(c->head_dim() == 16);
  CHECK(c->patches_per_side() == 16);
  CHECK(c->num_patches() == 256);
  // The text model's loader reads the same file unchanged.
  CHECK(load_model_config(write_config(multimodal_config(), "text-too")).hidden_size == 1024);
}

TEST_CASE("vision config: a text-only config has none") {
  json j = multimodal_config();
  j.erase("vision_config");
  CHECK_FALSE(load(j).has_value());
  j["vision_config"] = nullptr;
  CHECK_FALSE(load(j).has_value());
}

TEST_CASE("vision config: defaults of the optional fields (SigLIP's and LLaVA's)") {
  json j = multimodal_config();
  for (const char* key : {"model_type", "num_channels", "layer_norm_eps", "hidden_act", "image_mean", "image_std"})
    j["vision_config"].erase(key);
  for (const char* key : {"projector_hidden_act", "image_token", "vision_start_token", "vision_end_token"}) j.erase(key);
  auto c = load(j);
  REQUIRE(c.has_value());
  CHECK(c->model_type.empty());
  CHECK(c->num_channels == 3);
  CHECK(c->layer_norm_eps == doctest::Approx(1e-6));
  CHECK(c->hidden_act == VisionActivation::gelu_tanh);
  CHECK(c->projector_hidden_act == VisionActivation::gelu);
  CHECK(c->image_mean == std::vector<double>(3, 0.5));
  CHECK(c->image_std == std::vector<double>(3, 0.5));
  CHECK(c->stem_channels.empty());
  CHECK(c->stem_stride() == 1);
  CHECK(c->image_token.empty());
  CHECK(c->vision_start_token.empty());
}

TEST_CASE("vision config: a convolutional stem") {
  json j = multimodal_config();
  j["vision_config"]["stem_channels"] = {16, 24};
  j["vision_config"]["stem_strides"] = {1, 2};
  auto c = load(j);
  REQUIRE(c.has_value());
  CHECK(c->stem_channels == std::vector<int64_t>{16, 24});
  CHECK(c->stem_strides == std::vector<int64_t>{1, 2});
  CHECK(c->stem_stride() == 2);
  CHECK(c->num_patches() == 256);  // the stem does not change the tokens per image

  auto error_of = [&](json stem_channels, json stem_strides) {
    json k = multimodal_config();
    k["vision_config"]["stem_channels"] = stem_channels;
    k["vision_config"]["stem_strides"] = stem_strides;
    try {
      load(k);
    } catch (const Error& e) {
      CHECK(e.kind() == ErrorKind::format);
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  CHECK(error_of({16, 24}, {1}).find("vision_config.stem_strides") != std::string::npos);
  CHECK(error_of({16, 24}, {1}).find("one per stem layer") != std::string::npos);
  CHECK(error_of({16}, {4}).find("does not divide patch_size (14)") != std::string::npos);
  CHECK(error_of({16, 0}, {1, 1}).find("vision_config.stem_channels") != std::string::npos);
  CHECK(error_of("16", {1}).find("list of positive integers") != std::string::npos);
}

TEST_CASE("vision config: other accepted spellings") {
  json j = multimodal_config();
  j["vision_config"]["model_type"] = "siglip_vision_model";
  j["vision_config"]["hidden_act"] = "gelu_new";
  j.erase("image_token_id");
  j["image_token_index"] = 32000;  // LLaVA's name
  auto c = load(j);
  REQUIRE(c.has_value());
  CHECK(c->hidden_act == VisionActivation::gelu_tanh);
  CHECK(c->image_token_id == 32000);
}

TEST_CASE("vision config: errors name config.json and the field") {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    ErrorKind kind;
    const char* field;
    const char* message_part;
  };
  auto vc = [](const char* key, json value) { return [=](json& j) { j["vision_config"][key] = value; }; };
  auto top = [](const char* key, json value) { return [=](json& j) { j[key] = value; }; };
  const Case cases[] = {
      {"vision_config not an object", top("vision_config", 5), ErrorKind::format, "vision_config", "object"},
      {"image_size missing", [](json& j) { j["vision_config"].erase("image_size"); }, ErrorKind::format,
       "vision_config.image_size", "missing"},
      {"image_size a string", vc("image_size", "224"), ErrorKind::format, "vision_config.image_size", "integer"},
      {"patch_size zero", vc("patch_size", 0), ErrorKind::format, "vision_config.patch_size", "positive"},
      {"patch_size does not divide", vc("patch_size", 15), ErrorKind::format, "vision_config.patch_size",
       "does not divide image_size"},
      {"hidden_size negative", vc("hidden_size", -64), ErrorKind::format, "vision_config.hidden_size", "positive"},
      {"intermediate_size missing", [](json& j) { j["vision_config"].erase("intermediate_size"); }, ErrorKind::format,
       "vision_config.intermediate_size", "missing"},
      {"num_hidden_layers zero", vc("num_hidden_layers", 0), ErrorKind::format, "vision_config.num_hidden_layers",
       "positive"},
      {"heads do not divide", vc("num_attention_heads", 5), ErrorKind::format, "vision_config.num_attention_heads",
       "does not divide hidden_size"},
      {"layer_norm_eps zero", vc("layer_norm_eps", 0), ErrorKind::format, "vision_config.layer_norm_eps", "positive"},
      {"unknown hidden_act", vc("hidden_act", "relu"), ErrorKind::unsupported, "vision_config.hidden_act",
       "\"relu\" is not supported"},
      {"hidden_act a number", vc("hidden_act", 1), ErrorKind::format, "vision_config.hidden_act", "string"},
      {"quick_gelu (CLIP)", vc("hidden_act", "quick_gelu"), ErrorKind::unsupported, "vision_config.hidden_act",
       "not supported"},
      {"grey images", vc("num_channels", 1), ErrorKind::unsupported, "vision_config.num_channels", "only 3"},
      {"a CLIP tower", vc("model_type", "clip_vision_model"), ErrorKind::unsupported, "vision_config.model_type",
       "not supported"},
      {"image_mean too short", vc("image_mean", json::array({0.5, 0.5})), ErrorKind::format,
       "vision_config.image_mean", "one per channel"},
      {"image_mean not a list", vc("image_mean", 0.5), ErrorKind::format, "vision_config.image_mean", "list"},
      {"image_std with a string", vc("image_std", json::array({0.5, "x", 0.5})), ErrorKind::format,
       "vision_config.image_std", "numbers"},
      {"image_std zero", vc("image_std", json::array({0.5, 0.0, 0.5})), ErrorKind::format, "vision_config.image_std",
       "positive"},
      {"unknown projector act", top("projector_hidden_act", "silu"), ErrorKind::unsupported, "projector_hidden_act",
       "\"silu\" is not supported"},
      {"image_token_id missing", [](json& j) { j.erase("image_token_id"); }, ErrorKind::format, "image_token_id",
       "required when vision_config is present"},
      {"image_token_id null", top("image_token_id", nullptr), ErrorKind::format, "image_token_id", "required"},
      {"image_token_id a string", top("image_token_id", "151655"), ErrorKind::format, "image_token_id", "integer"},
      {"image_token_id negative", top("image_token_id", -1), ErrorKind::format, "image_token_id", ">= 0"},
      {"image_token_id past the vocabulary", top("image_token_id", 151936), ErrorKind::format, "image_token_id",
       "outside the vocabulary"},
      {"image_token_index past the vocabulary",
       [](json& j) {
         j.erase("image_token_id");
         j["image_token_index"] = 200000;
       },
       ErrorKind::format, "image_token_index", "outside the vocabulary"},
      {"image_token a number", top("image_token", 7), ErrorKind::format, "image_token", "string"},
      {"vision_end_token a list", top("vision_end_token", json::array()), ErrorKind::format, "vision_end_token",
       "string"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    json j = multimodal_config();
    c.edit(j);
    Error e = error_of(j);
    CHECK(e.kind() == c.kind);
    CHECK(e.field() == c.field);
    CHECK(e.file().find("config.json") != std::string::npos);
    CHECK(e.message().find(c.message_part) != std::string::npos);
    CHECK(std::string(e.what()).find(c.field) != std::string::npos);
  }
}

TEST_CASE("vision config: unreadable and malformed files") {
  try {
    load_vision_config(test_support::process_dir("vision-config") / "nowhere" / "config.json");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::io);
  }
  fs::path path = write_config(json(), "malformed");
  std::ofstream(path, std::ios::trunc) << "{\"vision_config\": {";
  try {
    load_vision_config(path);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::format);
    CHECK(e.message().find("malformed JSON") != std::string::npos);
  }
  path = write_config(json::array({1, 2}), "not-an-object");
  CHECK_THROWS_AS(load_vision_config(path), Error);
}
