#include "musespark/tokenizer.hpp"

#include <algorithm>
#include <deque>
#include <unordered_map>

#include "common/json_file.hpp"
#include "musespark/error.hpp"
#include "tokenizer/added_tokens.hpp"
#include "tokenizer/bpe.hpp"
#include "tokenizer/gguf_vocab.hpp"
#include "tokenizer/pipeline.hpp"
#include "tokenizer/utf8.hpp"

namespace musespark {

using namespace tokenizer;

struct Tokenizer::Impl {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  BpeModel model;
  std::deque<AddedToken> added;           // stable addresses for the matchers
  std::unordered_map<int32_t, const AddedToken*> added_by_id;
  std::unordered_map<std::string, int32_t> added_by_content;
  AddedTokenMatcher raw_matcher;          // added tokens with normalized: false
  AddedTokenMatcher normalized_matcher;   // added tokens with normalized: true
  int32_t vocab_size = 0;
  std::optional<int32_t> bos, eos;

  Impl(const nlohmann::json& json, const std::string& file)
      : normalizer(json.contains("normalizer") ? json["normalizer"] : nlohmann::json(), file),
        pre_tokenizer(json.contains("pre_tokenizer") ? json["pre_tokenizer"] : nlohmann::json(), file),
        model(model_of(json, file), file) {}

  static const nlohmann::json& model_of(const nlohmann::json& json, const std::string& file) {
    auto it = json.find("model");
    if (it == json.end() || !it->is_object())
      throw Error(ErrorKind::format, file, "model", "missing (an object is required)");
    auto type = it->find("type");
    if (type == it->end() || !type->is_string())
      throw Error(ErrorKind::format, file, "model.type", "missing (a string is required)");
    if (type->get<std::string>() != "BPE")
      throw Error(ErrorKind::unsupported, file, "model.type",
                  "model \"" + type->get<std::string>() + "\" is not supported (only BPE)");
    return *it;
  }

  // Text stages and BPE for one run of text that holds no raw-matched added token.
  void encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
    if (text.empty()) return;
    std::string normalized;
    if (!normalizer.identity()) {
      normalized = normalizer.apply(text);
      text = normalized;
    }
    std::deque<std::string> arena;
    std::vector<std::string_view> words;
    auto encode_words = [&](std::string_view run) {
      words.clear();
      pre_tokenizer.split(run, arena, words);
      for (std::string_view word : words) model.encode_word(word, ids);
    };
    if (normalized_matcher.empty()) {
      encode_words(text);
      return;
    }
    for (const auto& piece : normalized_matcher.split(text)) {
      if (piece.token) ids.push_back(piece.token->id);
      else encode_words(piece.text);
    }
  }

  const std::string& bytes_of(int32_t id) const {
    if (id >= 0 && id < vocab_size) {
      if (auto it = added_by_id.find(id); it != added_by_id.end()) return decoded_added.at(id);
      if (id < static_cast<int32_t>(model.bytes().size()) && !model.spelled()[id].empty()) return model.bytes()[id];
    }
    throw Error(ErrorKind::invalid_argument, "", "id",
                "token id " + std::to_string(id) + " is out of range [0, " + std::to_string(vocab_size) + ")");
  }
  // What the ByteLevel decoder makes of each added token: its characters
  // mapped back to bytes when all are in the byte-level alphabet, else its
  // UTF-8 text as is (HF's rule).
  std::unordered_map<int32_t, std::string> decoded_added;
};

namespace {

std::optional<std::string> token_name(const nlohmann::json& config, const char* key, const std::string& file) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (auto text = detail::token_content(*it)) return text;
  throw Error(ErrorKind::format, file, key, "expected a string or an object with a string \"content\"");
}

}  // namespace

struct Tokenizer::Json {
  const nlohmann::json& json;
};

std::unique_ptr<Tokenizer::Impl> Tokenizer::build(const Json& doc, const std::string& file) {
  const nlohmann::json& json = doc.json;
  if (!json.is_object()) throw Error(ErrorKind::format, file, "", "expected a JSON object");

  auto impl = std::make_unique<Impl>(json, file);
  if (auto decoder = json.find("decoder"); decoder == json.end() || decoder->is_null()) {
    throw Error(ErrorKind::unsupported, file, "decoder", "missing: only the ByteLevel decoder is supported");
  } else if (!decoder->is_object() || decoder->value("type", "") != "ByteLevel") {
    throw Error(ErrorKind::unsupported, file, "decoder.type",
                "decoder \"" + (decoder->is_object() ? decoder->value("type", "") : std::string()) +
                    "\" is not supported (only ByteLevel)");
  }

  int32_t max_id = static_cast<int32_t>(impl->model.spelled().size()) - 1;
  if (auto added = json.find("added_tokens"); added != json.end() && !added->is_null()) {
    if (!added->is_array()) throw Error(ErrorKind::format, file, "added_tokens", "expected an array");
    for (size_t i = 0; i < added->size(); ++i) {
      const auto& entry = (*added)[i];
      std::string field = "added_tokens[" + std::to_string(i) + "]";
      if (!entry.is_object()) throw Error(ErrorKind::format, file, field, "expected an object");
      auto field_of = [&](const char* key) { return field + "." + key; };
      auto flag = [&](const char* key, bool fallback) {
        auto it = entry.find(key);
        if (it == entry.end() || it->is_null()) return fallback;
        if (!it->is_boolean()) throw Error(ErrorKind::format, file, field_of(key), "expected a boolean");
        return it->get<bool>();
      };
      AddedToken token;
      auto id = entry.find("id");
      if (id == entry.end() || !id->is_number_integer() || id->get<int64_t>() < 0 || id->get<int64_t>() > INT32_MAX)
        throw Error(ErrorKind::format, file, field_of("id"), "missing or not a non-negative integer id");
      token.id = static_cast<int32_t>(id->get<int64_t>());
      auto content = entry.find("content");
      if (content == entry.end() || !content->is_string())
        throw Error(ErrorKind::format, file, field_of("content"), "missing (a string is required)");
      token.content = content->get<std::string>();
      if (find_invalid_utf8(token.content))
        throw Error(ErrorKind::format, file, field_of("content"), "not valid UTF-8");
      token.special = flag("special", false);
      token.lstrip = flag("lstrip", false);
      token.rstrip = flag("rstrip", false);
      token.single_word = flag("single_word", false);
      token.normalized = flag("normalized", !token.special);
      max_id = std::max(max_id, token.id);
      impl->added.push_back(std::move(token));
    }
  }
  impl->vocab_size = max_id + 1;
  std::vector<const AddedToken*> raw, normalized;
  for (const AddedToken& token : impl->added) {
    impl->added_by_id.emplace(token.id, &token);
    impl->added_by_content.emplace(token.content, token.id);
    impl->decoded_added.emplace(token.id, byte_level_to_bytes(token.content).value_or(token.content));
    (token.normalized && !impl->normalizer.identity() ? normalized : raw).push_back(&token);
  }
  impl->raw_matcher = AddedTokenMatcher(raw);
  impl->normalized_matcher = AddedTokenMatcher(normalized);
  return impl;
}

Tokenizer Tokenizer::load(const std::filesystem::path& model_dir) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(model_dir, ec)) {  // a GGUF file
    GgufVocab vocab = gguf_vocab(detail::GgufFile::open(model_dir));
    Tokenizer t(build(Json{vocab.tokenizer_json}, model_dir.string()));
    t.impl_->bos = vocab.bos;
    t.impl_->eos = vocab.eos;
    return t;
  }
  auto path = model_dir / "tokenizer.json";
  const nlohmann::json json = detail::read_json_file(path);
  auto impl = build(Json{json}, path.string());

  auto config_path = model_dir / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    const std::string config_file = config_path.string();
    nlohmann::json config = detail::read_json_file(config_path);
    Tokenizer probe(std::move(impl));
    auto resolve = [&](const char* key) -> std::optional<int32_t> {
      auto name = token_name(config, key, config_file);
      if (!name) return std::nullopt;
      auto id = probe.token_id(*name);
      if (!id) throw Error(ErrorKind::format, config_file, key, "token \"" + *name + "\" is not in tokenizer.json");
      return id;
    };
    probe.impl_->bos = resolve("bos_token");
    probe.impl_->eos = resolve("eos_token");
    return probe;
  }
  return Tokenizer(std::move(impl));
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  if (auto bad = find_invalid_utf8(text))
    throw Error(ErrorKind::format, "", "text", "invalid UTF-8 at byte " + std::to_string(*bad));
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 1);
  if (impl_->raw_matcher.empty()) {
    impl_->encode_plain(text, ids);
    return ids;
  }
  for (const auto& piece : impl_->raw_matcher.split(text)) {
    if (piece.token) ids.push_back(piece.token->id);
    else impl_->encode_plain(piece.text, ids);
  }
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    const std::string& b = impl_->bytes_of(id);
    if (skip_special && is_special(id)) continue;
    bytes += b;
  }
  return utf8_lossy(bytes);
}

std::string Tokenizer::token_bytes(int32_t id) const { return impl_->bytes_of(id); }

std::string Tokenizer::token_string(int32_t id) const {
  impl_->bytes_of(id);  // range check
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return it->second->content;
  return impl_->model.spelled()[id];
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  std::string key(token);
  if (auto it = impl_->added_by_content.find(key); it != impl_->added_by_content.end()) return it->second;
  if (auto it = impl_->model.spelled_to_id().find(key); it != impl_->model.spelled_to_id().end()) return it->second;
  return std::nullopt;
}

int32_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

bool Tokenizer::is_special(int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && it->second->special;
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }

Tokenizer::StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(&tokenizer), skip_special_(skip_special) {}

std::string Tokenizer::StreamDecoder::push(int32_t id) {
  const std::string& bytes = tokenizer_->impl_->bytes_of(id);
  if (skip_special_ && tokenizer_->is_special(id)) return {};
  pending_ += bytes;
  // Emit everything but a trailing sequence that a later byte could still
  // complete; lossy decoding of the emitted part then equals that of the whole.
  size_t keep = incomplete_utf8_tail(pending_);
  std::string out = utf8_lossy(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string Tokenizer::StreamDecoder::flush() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace musespark
