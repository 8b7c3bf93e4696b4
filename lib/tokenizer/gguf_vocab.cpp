#include "tokenizer/gguf_vocab.hpp"

#include <fmt/format.h>

#include <string_view>

#include "musespark/error.hpp"

namespace musespark::tokenizer {

namespace {

// The Split patterns of the two families' tokenizer.json files.
constexpr std::string_view kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

nlohmann::json split_then_bytes(std::string_view pattern) {
  return {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}};
}

}  // namespace

GgufVocab gguf_vocab(const detail::GgufFile& f) {
  const std::string& file = f.path();
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model != "gpt2")
    throw Error(ErrorKind::unsupported, file, "tokenizer.ggml.model",
                fmt::format("\"{}\" is not supported (only gpt2: byte-level BPE)", model));
  const std::string pre = f.find("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "default";
  nlohmann::json j;
  bool ignore_merges = false;
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
    j["normalizer"] = {{"type", "NFC"}};
    j["pre_tokenizer"] = split_then_bytes(kQwen2Split);
  } else if (pre == "llama-bpe" || pre == "llama3" || pre == "smaug-bpe") {
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = split_then_bytes(kLlama3Split);
    ignore_merges = true;
  } else if (pre == "gpt2" || pre == "default") {
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}};
  } else {
    throw Error(ErrorKind::unsupported, file, "tokenizer.ggml.pre",
                fmt::format("\"{}\" is not supported (qwen2, deepseek-r1-qwen, llama-bpe, llama3, smaug-bpe, gpt2)", pre));
  }
  const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens");
  std::vector<int32_t> types(tokens.size(), 1);
  if (f.find("tokenizer.ggml.token_type")) {
    types = f.get_i32_array("tokenizer.ggml.token_type");
    if (types.size() != tokens.size())
      throw Error(ErrorKind::format, file, "tokenizer.ggml.token_type",
                  fmt::format("{} types for {} tokens", types.size(), tokens.size()));
  }
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  for (size_t id = 0; id < tokens.size(); ++id) {
    const int32_t type = types[id];
    if (type == 1 || type == 6) {
      vocab[tokens[id]] = id;
    } else if (type == 3 || type == 4) {
      added.push_back({{"id", id}, {"content", tokens[id]}, {"special", type == 3}, {"normalized", false},
                       {"lstrip", false}, {"rstrip", false}, {"single_word", false}});
    } else if (type != 2 && type != 5) {
      throw Error(ErrorKind::format, file, fmt::format("tokenizer.ggml.token_type[{}]", id),
                  fmt::format("unknown token type {} (1 to 6)", type));
    }
  }
  nlohmann::json merges = nlohmann::json::array();
  if (f.find("tokenizer.ggml.merges"))
    for (auto& m : f.get_string_array("tokenizer.ggml.merges")) merges.push_back(std::move(m));
  j["model"] = {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)},
                {"ignore_merges", ignore_merges}};
  j["added_tokens"] = std::move(added);
  j["decoder"] = {{"type", "ByteLevel"}};

  GgufVocab out;
  out.tokenizer_json = std::move(j);
  out.bos = gguf_token_id(f, "tokenizer.ggml.bos_token_id");
  out.eos = gguf_token_id(f, "tokenizer.ggml.eos_token_id");
  return out;
}

std::optional<int32_t> gguf_token_id(const detail::GgufFile& gguf, const char* key) {
  const auto* v = gguf.find(key);
  if (!v) return std::nullopt;
  const uint64_t id = v->as_u64();
  const auto* tokens = gguf.find("tokenizer.ggml.tokens");
  const uint64_t n = tokens ? tokens->size() : 0;
  if (id >= n)
    throw Error(ErrorKind::format, gguf.path(), key,
                fmt::format("token id {} is past the {} tokens of tokenizer.ggml.tokens", id, n));
  return static_cast<int32_t>(id);
}

}  // namespace musespark::tokenizer
