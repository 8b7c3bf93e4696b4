// config.json parsing: the three architectures and every error case.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/config.hpp"
#include "support.hpp"
#include "musespark/error.hpp"

namespace fs = std::filesystem;
using musespark::Error;
using musespark::ErrorKind;
using musespark::detail::load_model_config;
using musespark::detail::ModelConfig;
using musespark::detail::RopeScalingKind;
using nlohmann::json;

namespace {

// The real Qwen3-0.6B config.json.
json qwen3_config() {
  return json::parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
    "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})");
}

// The real Qwen2.5-0.5B-Instruct config.json (no head_dim, no attention_bias).
json qwen2_config() {
  return json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true,
    "use_sliding_window": false, "vocab_size": 151936})");
}

// The real Llama-3.2-1B-Instruct config.json.
json llama_config() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
    "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

fs::path config_dir() { return test_support::process_dir("config"); }

fs::path write_config(const std::string& text, const std::string& name = "config.json") {
  fs::path dir = config_dir() / name;
  fs::create_directories(dir);
  fs::path path = dir / "config.json";
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

ModelConfig load(const json& j) { return load_model_config(write_config(j.dump())); }

// Expects loading `j` to fail with `kind`, naming config.json, `field`, and each of `more`.
void expect_error(const json& j, ErrorKind kind, const std::string& field, const std::vector<std::string>& more = {}) {
  fs::path path = write_config(j.dump());
  try {
    load_model_config(path);
    FAIL("no error; expected one about " << field);
  } catch (const Error& e) {
    const std::string what = e.what();
    INFO("what(): " << what);
    CHECK(static_cast<int>(e.kind()) == static_cast<int>(kind));
    CHECK(what.find("config.json") != std::string::npos);
    CHECK(e.field() == field);
    for (const auto& m : more) CHECK_MESSAGE(what.find(m) != std::string::npos, "missing \"" << m << "\"");
  }
}

}  // namespace

TEST_CASE("config: Qwen3-0.6B") {
  ModelConfig c = load(qwen3_config());
  CHECK(c.architecture == "Qwen3ForCausalLM");
  CHECK(c.vocab_size == 151936);
  CHECK(c.hidden_size == 1024);
  CHECK(c.intermediate_size == 3072);
  CHECK(c.num_hidden_layers == 28);
  CHECK(c.num_attention_heads == 16);
  CHECK(c.num_key_value_heads == 8);
  CHECK(c.head_dim == 128);  // not hidden/heads (64): the stated value wins
  CHECK(c.max_position_embeddings == 40960);
  CHECK(c.rms_norm_eps == doctest::Approx(1e-6));
  CHECK(c.rope_theta == 1000000.0);
  CHECK(c.rope_scaling.kind == RopeScalingKind::none);
  CHECK(c.tie_word_embeddings);
  CHECK(c.torch_dtype == "bfloat16");
  CHECK(c.bos_token_ids == std::vector<int64_t>{151643});
  CHECK(c.eos_token_ids == std::vector<int64_t>{151645});
  CHECK(c.qk_norm);
  CHECK(!c.qkv_bias);
}

TEST_CASE("config: Qwen2.5") {
  ModelConfig c = load(qwen2_config());
  CHECK(c.architecture == "Qwen2ForCausalLM");
  CHECK(c.head_dim == 64);  // 896 / 14
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.qkv_bias);
  CHECK(!c.qk_norm);
  CHECK(c.tie_word_embeddings);
}

TEST_CASE("config: Llama-3.2 with llama3 rope scaling") {
  ModelConfig c = load(llama_config());
  CHECK(c.architecture == "LlamaForCausalLM");
  CHECK(c.head_dim == 64);
  CHECK(c.rms_norm_eps == doctest::Approx(1e-5));
  CHECK(c.rope_theta == 500000.0);
  CHECK(c.rope_scaling.kind == RopeScalingKind::llama3);
  CHECK(c.rope_scaling.factor == 32.0);
  CHECK(c.rope_scaling.low_freq_factor == 1.0);
  CHECK(c.rope_scaling.high_freq_factor == 4.0);
  CHECK(c.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(c.bos_token_ids == std::vector<int64_t>{128000});
  CHECK((c.eos_token_ids == std::vector<int64_t>{128001, 128008, 128009}));
  CHECK(!c.qkv_bias);
  CHECK(!c.qk_norm);
}

TEST_CASE("config: defaults and accepted spellings") {
  json j = llama_config();
  j.erase("num_key_value_heads");
  j.erase("head_dim");
  j.erase("tie_word_embeddings");
  j.erase("torch_dtype");
  j["dtype"] = "float32";  // transformers >= 4.56
  j["bos_token_id"] = nullptr;
  j.erase("eos_token_id");
  j["rope_scaling"] = {{"type", "llama3"}, {"factor", 8}, {"low_freq_factor", 1},
                       {"high_freq_factor", 4}, {"original_max_position_embeddings", 8192}};
  ModelConfig c = load(j);
  CHECK(c.num_key_value_heads == 32);
  CHECK(c.head_dim == 64);
  CHECK(!c.tie_word_embeddings);
  CHECK(c.torch_dtype == "float32");
  CHECK(c.bos_token_ids.empty());
  CHECK(c.eos_token_ids.empty());
  CHECK(c.rope_scaling.kind == RopeScalingKind::llama3);
  CHECK(c.rope_scaling.factor == 8.0);

  json q = qwen3_config();
  q["head_dim"] = nullptr;  // null means "derive it"
  q["rope_scaling"] = {{"rope_type", "default"}};
  ModelConfig c2 = load(q);
  CHECK(c2.head_dim == 64);
  CHECK(c2.rope_scaling.kind == RopeScalingKind::none);
  CHECK(c2.auto_confidence_threshold == 0);  // no "musespark" block

  q["musespark"] = {{"auto_confidence_threshold", 9.5}};
  CHECK(load(q).auto_confidence_threshold == 9.5);
  q["musespark"] = json::object();
  CHECK(load(q).auto_confidence_threshold == 0);
}

TEST_CASE("config: errors name config.json and the field") {
  SUBCASE("unknown architecture") {
    json j = qwen3_config();
    j["architectures"] = {"MistralForCausalLM"};
    expect_error(j, ErrorKind::unsupported, "architectures",
                 {"MistralForCausalLM", "Qwen3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM"});
  }
  SUBCASE("architectures missing, empty, or not a list") {
    json j = qwen3_config();
    j.erase("architectures");
    expect_error(j, ErrorKind::format, "architectures", {"missing"});
    j["architectures"] = json::array();
    expect_error(j, ErrorKind::format, "architectures");
    j["architectures"] = "Qwen3ForCausalLM";
    expect_error(j, ErrorKind::format, "architectures");
  }
  SUBCASE("missing sizes") {
    for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "max_position_embeddings"}) {
      CAPTURE(key);
      json j = qwen3_config();
      j.erase(key);
      expect_error(j, ErrorKind::format, key, {"missing"});
    }
  }
  SUBCASE("non-positive sizes") {
    for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings"}) {
      CAPTURE(key);
      json j = qwen3_config();
      j[key] = key == std::string("hidden_size") ? -1 : 0;
      expect_error(j, ErrorKind::format, key, {"positive"});
    }
  }
  SUBCASE("mistyped field") {
    json j = qwen3_config();
    j["hidden_size"] = "1024";
    expect_error(j, ErrorKind::format, "hidden_size", {"integer"});
    j = qwen3_config();
    j["tie_word_embeddings"] = 1;
    expect_error(j, ErrorKind::format, "tie_word_embeddings", {"boolean"});
    j = qwen3_config();
    j["num_hidden_layers"] = 2.5;
    expect_error(j, ErrorKind::format, "num_hidden_layers");
  }
  SUBCASE("heads not divisible by kv heads") {
    json j = qwen3_config();
    j["num_key_value_heads"] = 3;
    expect_error(j, ErrorKind::format, "num_key_value_heads", {"does not divide", "16"});
  }
  SUBCASE("head_dim absent and hidden not divisible by heads") {
    json j = qwen2_config();
    j["num_attention_heads"] = 10;
    j["num_key_value_heads"] = 2;
    expect_error(j, ErrorKind::format, "head_dim", {"896"});
  }
  SUBCASE("odd head_dim") {
    json j = qwen3_config();
    j["head_dim"] = 127;
    expect_error(j, ErrorKind::format, "head_dim", {"even"});
  }
  SUBCASE("non-positive eps and theta") {
    json j = qwen3_config();
    j["rms_norm_eps"] = 0;
    expect_error(j, ErrorKind::format, "rms_norm_eps");
    j = qwen3_config();
    j["rope_theta"] = -1.0;
    expect_error(j, ErrorKind::format, "rope_theta");
  }
  SUBCASE("unsupported rope scaling type") {
    json j = llama_config();
    j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
    expect_error(j, ErrorKind::unsupported, "rope_scaling.rope_type", {"yarn", "llama3"});
    j["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
    expect_error(j, ErrorKind::unsupported, "rope_scaling.rope_type", {"linear"});
  }
  SUBCASE("rope scaling malformed") {
    json j = llama_config();
    j["rope_scaling"]["factor"] = nullptr;
    expect_error(j, ErrorKind::format, "rope_scaling.factor", {"missing"});
    j = llama_config();
    j["rope_scaling"].erase("original_max_position_embeddings");
    expect_error(j, ErrorKind::format, "rope_scaling.original_max_position_embeddings");
    j = llama_config();
    j["rope_scaling"]["high_freq_factor"] = 1.0;
    expect_error(j, ErrorKind::format, "rope_scaling.high_freq_factor", {"greater"});
    j = llama_config();
    j["rope_scaling"] = "llama3";
    expect_error(j, ErrorKind::format, "rope_scaling");
    j = llama_config();
    j["rope_scaling"].erase("rope_type");
    expect_error(j, ErrorKind::format, "rope_scaling.rope_type", {"missing"});
  }
  SUBCASE("our own settings") {
    json j = qwen3_config();
    j["musespark"] = 3;
    expect_error(j, ErrorKind::format, "musespark", {"object"});
    j["musespark"] = {{"auto_confidence_threshold", -1}};
    expect_error(j, ErrorKind::format, "musespark.auto_confidence_threshold", {"positive"});
    j["musespark"] = {{"auto_confidence_threshold", "high"}};
    expect_error(j, ErrorKind::format, "musespark.auto_confidence_threshold");
    j["musespark"] = {{"auto_threshold", 9}};
    expect_error(j, ErrorKind::format, "musespark.auto_threshold", {"unknown"});
  }
  SUBCASE("token ids") {
    json j = llama_config();
    j["eos_token_id"] = {128001, "x"};
    expect_error(j, ErrorKind::format, "eos_token_id", {"integer"});
    j = llama_config();
    j["bos_token_id"] = 200000;
    expect_error(j, ErrorKind::format, "bos_token_id", {"200000", "128256"});
    j = llama_config();
    j["eos_token_id"] = -1;
    expect_error(j, ErrorKind::format, "eos_token_id");
  }
  SUBCASE("features we would otherwise silently ignore") {
    json j = llama_config();
    j["hidden_act"] = "gelu";
    expect_error(j, ErrorKind::unsupported, "hidden_act", {"gelu"});
    j = llama_config();
    j["attention_bias"] = true;
    expect_error(j, ErrorKind::unsupported, "attention_bias", {"o_proj"});
    j = qwen3_config();
    j["attention_bias"] = true;
    expect_error(j, ErrorKind::unsupported, "attention_bias");
    j = llama_config();
    j["mlp_bias"] = true;
    expect_error(j, ErrorKind::unsupported, "mlp_bias");
    j = qwen2_config();
    j["use_sliding_window"] = true;
    expect_error(j, ErrorKind::unsupported, "use_sliding_window");
  }
  SUBCASE("not an object, malformed, missing") {
    expect_error(json::array({1, 2}), ErrorKind::format, "");
    fs::path bad = write_config("{\"architectures\": [", "malformed");
    try {
      load_model_config(bad);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("config.json") != std::string::npos);
      CHECK(static_cast<int>(e.kind()) == static_cast<int>(ErrorKind::format));
    }
    // Found by fuzzing (tests/fuzz): a number beyond a double's range made
    // the JSON parser throw its own exception instead of Error.
    for (const char* big : {"1.8888888888888888e72", "18446744073709551615", "-9.3e18"}) {
      CAPTURE(big);
      json j = qwen3_config();
      j["hidden_size"] = json::parse(big);
      expect_error(j, ErrorKind::format, "hidden_size", {"out of range"});
    }
    fs::path huge = write_config("{\"hidden_size\": 1e400}", "huge-number");
    try {
      load_model_config(huge);
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("config.json") != std::string::npos);
      CHECK(e.message().find("too large for a double") != std::string::npos);
      CHECK(static_cast<int>(e.kind()) == static_cast<int>(ErrorKind::format));
    }
    try {
      load_model_config(config_dir() / "absent" / "config.json");
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(static_cast<int>(e.kind()) == static_cast<int>(ErrorKind::io));
      CHECK(std::string(e.what()).find("absent") != std::string::npos);
    }
  }
}

TEST_CASE("config: reads what tests/tools/make_tiny_model.py writes") {
  fs::path root = config_dir() / "tiny";
  fs::remove_all(root);
  const std::string script =
      "import sys; sys.path.insert(0, '" MUSESPARK_SOURCE_DIR "/tests/tools'); import make_tiny_model as m; "
      "r = sys.argv[1]; "
      "m.main([r + '/qwen3', '--arch', 'qwen3', '--head-dim', '32', '--layers', '1']); "
      "m.main([r + '/qwen2', '--arch', 'qwen2', '--layers', '1']); "
      "m.main([r + '/llama', '--arch', 'llama', '--layers', '1', '--rope-scaling', 'llama3', '--tie'])";
  const std::string command = std::string(MUSESPARK_PYTHON) + " -c \"" + script + "\" " + root.string();
  REQUIRE(std::system(command.c_str()) == 0);

  ModelConfig q3 = load_model_config(root / "qwen3" / "config.json");
  CHECK(q3.architecture == "Qwen3ForCausalLM");
  CHECK(q3.head_dim == 32);
  CHECK(q3.qk_norm);
  CHECK(q3.tie_word_embeddings);
  CHECK(q3.vocab_size == 512);
  CHECK(q3.num_key_value_heads == 2);
  CHECK(q3.torch_dtype == "float32");

  ModelConfig q2 = load_model_config(root / "qwen2" / "config.json");
  CHECK(q2.qkv_bias);
  CHECK(q2.head_dim == 16);
  CHECK(!q2.tie_word_embeddings);

  ModelConfig ll = load_model_config(root / "llama" / "config.json");
  CHECK(ll.rope_scaling.kind == RopeScalingKind::llama3);
  CHECK(ll.tie_word_embeddings);
  CHECK(!ll.qkv_bias);
  CHECK(ll.eos_token_ids.size() == 1);
}
