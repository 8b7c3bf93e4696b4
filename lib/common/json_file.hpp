// Reading JSON files and fields with errors that name the file and the field.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "musespark/error.hpp"

namespace musespark::detail {

// Parses JSON text. Throws Error{format} naming `file` and `field` (either may
// be empty) when it is not JSON ("malformed JSON at byte N", counted from
// the start of `text`) or holds a number no double can hold.
nlohmann::json parse_json(std::string_view text, const std::string& file, const std::string& field = "");

// The bytes of a file. Error{io} naming it when it cannot be opened or read.
std::string read_file(const std::filesystem::path& file);

// Reads and parses a JSON file. Throws Error{io} if it cannot be read and
// Error{format} (with the parser's byte position) if it is not JSON.
nlohmann::json read_json_file(const std::filesystem::path& file);

// Typed access to `object[key]`; `file` is used only for the error message.
// required_*: Error{format} "missing" when absent or of the wrong type.
// optional_*: std::nullopt when absent or null; Error{format} when of the wrong type.
int64_t required_int(const nlohmann::json& object, const std::string& key, const std::string& file);
double required_number(const nlohmann::json& object, const std::string& key, const std::string& file);
std::string required_string(const nlohmann::json& object, const std::string& key, const std::string& file);
std::optional<int64_t> optional_int(const nlohmann::json& object, const std::string& key, const std::string& file);
std::optional<double> optional_number(const nlohmann::json& object, const std::string& key, const std::string& file);
std::optional<bool> optional_bool(const nlohmann::json& object, const std::string& key, const std::string& file);
std::optional<std::string> optional_string(const nlohmann::json& object, const std::string& key, const std::string& file);

// The text of a special token as tokenizer_config.json and
// special_tokens_map.json hold it: a string, or an AddedToken object with a
// string "content"; std::nullopt for anything else.
std::optional<std::string> token_content(const nlohmann::json& value);

// required_int that must also be > 0 (Error{format} "must be a positive integer").
int64_t positive_int(const nlohmann::json& object, const std::string& key, const std::string& file);

// A list of positive integers; empty when absent or null. Error{format}
// naming the key when it is not a list of positive integers.
std::vector<int64_t> optional_positive_ints(const nlohmann::json& object, const std::string& key, const std::string& file);

// Runs `f`; an Error it throws is re-thrown with its field named inside
// `prefix` ("prefix.field", or "prefix" when it had none), for nested objects.
template <class F>
auto within_field(const std::string& prefix, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    throw Error(e.kind(), e.file(), e.field().empty() ? prefix : prefix + "." + e.field(), e.message());
  }
}

}  // namespace musespark::detail
