#include "tokenizer/pipeline.hpp"

#include "musespark/error.hpp"

namespace musespark::tokenizer {

namespace {

// GPT-2's pattern, used by ByteLevel when use_regex is true.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string type_of(const nlohmann::json& config, const std::string& file, const std::string& field) {
  if (!config.is_object()) throw Error(ErrorKind::format, file, field, "expected an object");
  auto it = config.find("type");
  if (it == config.end() || !it->is_string())
    throw Error(ErrorKind::format, file, field + ".type", "missing (a string is required)");
  return it->get<std::string>();
}

bool bool_field(const nlohmann::json& config, const char* key, bool fallback, const std::string& file,
                const std::string& field) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw Error(ErrorKind::format, file, field + "." + key, "expected a boolean");
  return it->get<bool>();
}

}  // namespace

Normalizer::Normalizer(const nlohmann::json& config, const std::string& file) {
  if (!config.is_null()) add(config, file, "normalizer");
}

void Normalizer::add(const nlohmann::json& config, const std::string& file, const std::string& field) {
  std::string type = type_of(config, file, field);
  if (type == "Sequence") {
    auto it = config.find("normalizers");
    if (it == config.end() || !it->is_array())
      throw Error(ErrorKind::format, file, field + ".normalizers", "missing (an array is required)");
    for (size_t i = 0; i < it->size(); ++i) add((*it)[i], file, field + ".normalizers[" + std::to_string(i) + "]");
  } else if (type == "NFC") {
    forms_.push_back(NormalForm::nfc);
  } else if (type == "NFD") {
    forms_.push_back(NormalForm::nfd);
  } else if (type == "NFKC") {
    forms_.push_back(NormalForm::nfkc);
  } else if (type == "NFKD") {
    forms_.push_back(NormalForm::nfkd);
  } else {
    throw Error(ErrorKind::unsupported, file, field + ".type", "normalizer \"" + type + "\" is not supported");
  }
}

std::string Normalizer::apply(std::string_view text) const {
  std::string out(text);
  for (NormalForm form : forms_) out = normalize(out, form);
  return out;
}

PreTokenizer::PreTokenizer(const nlohmann::json& config, const std::string& file) {
  if (config.is_null())
    throw Error(ErrorKind::unsupported, file, "pre_tokenizer",
                "missing: byte-level BPE needs a ByteLevel pre-tokenizer");
  add(config, file, "pre_tokenizer");
  if (!has_byte_level_)
    throw Error(ErrorKind::unsupported, file, "pre_tokenizer",
                "no ByteLevel pre-tokenizer: only byte-level BPE tokenizers are supported");
}

void PreTokenizer::add(const nlohmann::json& config, const std::string& file, const std::string& field) {
  std::string type = type_of(config, file, field);
  if (type == "Sequence") {
    auto it = config.find("pretokenizers");
    if (it == config.end() || !it->is_array())
      throw Error(ErrorKind::format, file, field + ".pretokenizers", "missing (an array is required)");
    for (size_t i = 0; i < it->size(); ++i)
      add((*it)[i], file, field + ".pretokenizers[" + std::to_string(i) + "]");
  } else if (type == "Split") {
    Step step;
    auto pattern = config.find("pattern");
    if (pattern == config.end() || !pattern->is_object())
      throw Error(ErrorKind::format, file, field + ".pattern", "missing (an object {\"Regex\": ...} is required)");
    if (auto r = pattern->find("Regex"); r != pattern->end() && r->is_string()) {
      step.regex.emplace(r->get<std::string>(), file, field + ".pattern.Regex");
    } else if (auto s = pattern->find("String"); s != pattern->end() && s->is_string()) {
      step.regex.emplace(Regex::escape(s->get<std::string>()), file, field + ".pattern.String");
    } else {
      throw Error(ErrorKind::format, file, field + ".pattern", "expected {\"Regex\": string} or {\"String\": string}");
    }
    if (bool_field(config, "invert", false, file, field))
      throw Error(ErrorKind::unsupported, file, field + ".invert", "invert: true is not supported");
    auto behavior = config.find("behavior");
    std::string b = behavior != config.end() && behavior->is_string() ? behavior->get<std::string>() : "";
    if (b == "Removed") step.remove_matches = true;
    else if (b != "Isolated")
      throw Error(ErrorKind::unsupported, file, field + ".behavior",
                  "behavior \"" + b + "\" is not supported (Isolated or Removed)");
    steps_.push_back(std::move(step));
  } else if (type == "ByteLevel") {
    has_byte_level_ = true;
    Step step;
    step.add_prefix_space = bool_field(config, "add_prefix_space", true, file, field);
    if (bool_field(config, "use_regex", true, file, field)) step.regex.emplace(kGpt2Pattern, file, field);
    if (step.regex || step.add_prefix_space) steps_.push_back(std::move(step));
  } else {
    throw Error(ErrorKind::unsupported, file, field + ".type", "pre-tokenizer \"" + type + "\" is not supported");
  }
}

void PreTokenizer::split(std::string_view text, std::deque<std::string>& arena,
                         std::vector<std::string_view>& out) const {
  std::vector<std::string_view> current{text}, next;
  for (const Step& step : steps_) {
    next.clear();
    for (std::string_view piece : current) {
      if (step.add_prefix_space && (piece.empty() || piece.front() != ' ')) {
        arena.push_back(" " + std::string(piece));
        piece = arena.back();
      }
      if (!step.regex) {
        next.push_back(piece);
        continue;
      }
      size_t last = 0;
      for (auto [begin, end] : step.regex->find_all(piece)) {
        if (begin > last) next.push_back(piece.substr(last, begin - last));
        if (!step.remove_matches) next.push_back(piece.substr(begin, end - begin));
        last = end;
      }
      if (last < piece.size()) next.push_back(piece.substr(last));
    }
    current.swap(next);
  }
  for (std::string_view piece : current)
    if (!piece.empty()) out.push_back(piece);
}

}  // namespace musespark::tokenizer
