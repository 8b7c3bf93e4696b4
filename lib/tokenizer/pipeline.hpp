// The text stages of tokenizer.json before the model: normalizer and
// pre-tokenizer, read from JSON and applied to one run of plain text.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/regex.hpp"
#include "tokenizer/utf8.hpp"

namespace musespark::tokenizer {

// tokenizer.json's `normalizer`: null, a Unicode normal form, or a Sequence of them.
class Normalizer {
 public:
  Normalizer() = default;
  // Errors: Error{unsupported} naming `file` and the field for other types.
  Normalizer(const nlohmann::json& config, const std::string& file);
  bool identity() const { return forms_.empty(); }
  std::string apply(std::string_view text) const;

 private:
  void add(const nlohmann::json& config, const std::string& file, const std::string& field);
  std::vector<NormalForm> forms_;
};

// tokenizer.json's `pre_tokenizer`: ByteLevel, or a Sequence of Split and
// ByteLevel. The byte-to-alphabet mapping of ByteLevel is not done here:
// the BPE model works on raw bytes.
class PreTokenizer {
 public:
  // Errors: Error{unsupported}/Error{format} naming `file` and the field.
  PreTokenizer(const nlohmann::json& config, const std::string& file);

  // Appends the pre-tokens of `text`. Pieces point into `text` or into
  // `arena` (for pieces the pre-tokenizer had to build).
  void split(std::string_view text, std::deque<std::string>& arena, std::vector<std::string_view>& out) const;

  bool has_byte_level() const { return has_byte_level_; }

 private:
  struct Step {
    std::optional<Regex> regex;  // split at matches; none: no splitting
    bool remove_matches = false;  // Split behavior "Removed"
    bool add_prefix_space = false;  // ByteLevel add_prefix_space
  };
  void add(const nlohmann::json& config, const std::string& file, const std::string& field);
  std::vector<Step> steps_;
  bool has_byte_level_ = false;
};

}  // namespace musespark::tokenizer
