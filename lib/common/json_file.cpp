#include "common/json_file.hpp"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

namespace musespark::detail {

nlohmann::json parse_json(std::string_view text, const std::string& file, const std::string& field) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(ErrorKind::format, file, field, "malformed JSON at byte " + std::to_string(e.byte));
  } catch (const nlohmann::json::out_of_range&) {
    // 406: a number literal beyond the range of a double (1e400).
    throw Error(ErrorKind::format, file, field, "a number is too large for a double (beyond 1.8e308)");
  }
}

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorKind::io, file.string(), "", "cannot open file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(ErrorKind::io, file.string(), "", "read failed");
  return text.str();
}

nlohmann::json read_json_file(const std::filesystem::path& file) { return parse_json(read_file(file), file.string()); }

std::optional<std::string> token_content(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object())
    if (auto content = value.find("content"); content != value.end() && content->is_string())
      return content->get<std::string>();
  return std::nullopt;
}

namespace {
const nlohmann::json* find(const nlohmann::json& object, const std::string& key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}
[[noreturn]] void wrong_type(const std::string& file, const std::string& key, const char* wanted,
                             const nlohmann::json& got) {
  throw Error(ErrorKind::format, file, key,
              std::string("expected ") + wanted + ", got " + std::string(got.type_name()));
}
}  // namespace

std::optional<int64_t> optional_int(const nlohmann::json& object, const std::string& key, const std::string& file) {
  const auto* v = find(object, key);
  if (!v) return std::nullopt;
  auto out_of_range = [&] {
    throw Error(ErrorKind::format, file, key, "integer " + v->dump() + " is out of range (beyond 64 bits)");
  };
  if (v->is_number_unsigned()) {
    if (v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) out_of_range();
    return static_cast<int64_t>(v->get<uint64_t>());
  }
  if (v->is_number_integer()) return v->get<int64_t>();
  // Integers written as 2.0 are accepted; 2.5 is not. (The range check comes
  // first: converting a double beyond int64 is undefined; found by fuzzing.)
  if (v->is_number_float()) {
    double d = v->get<double>();
    if (d == std::trunc(d)) {
      if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) out_of_range();
      return static_cast<int64_t>(d);
    }
  }
  wrong_type(file, key, "an integer", *v);
}

std::optional<double> optional_number(const nlohmann::json& object, const std::string& key, const std::string& file) {
  const auto* v = find(object, key);
  if (!v) return std::nullopt;
  if (v->is_number()) return v->get<double>();
  wrong_type(file, key, "a number", *v);
}

std::optional<bool> optional_bool(const nlohmann::json& object, const std::string& key, const std::string& file) {
  const auto* v = find(object, key);
  if (!v) return std::nullopt;
  if (v->is_boolean()) return v->get<bool>();
  wrong_type(file, key, "a boolean", *v);
}

std::optional<std::string> optional_string(const nlohmann::json& object, const std::string& key, const std::string& file) {
  const auto* v = find(object, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  wrong_type(file, key, "a string", *v);
}

int64_t positive_int(const nlohmann::json& object, const std::string& key, const std::string& file) {
  const int64_t v = required_int(object, key, file);
  if (v <= 0) throw Error(ErrorKind::format, file, key, "must be a positive integer, got " + std::to_string(v));
  return v;
}

std::vector<int64_t> optional_positive_ints(const nlohmann::json& object, const std::string& key, const std::string& file) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return {};
  std::vector<int64_t> out;
  if (it->is_array())
    for (const auto& v : *it) {
      if (!v.is_number_integer() || v.get<int64_t>() <= 0) break;
      out.push_back(v.get<int64_t>());
    }
  if (!it->is_array() || out.size() != it->size())
    throw Error(ErrorKind::format, file, key, "expected a list of positive integers, got " + it->dump());
  return out;
}

int64_t required_int(const nlohmann::json& object, const std::string& key, const std::string& file) {
  if (auto v = optional_int(object, key, file)) return *v;
  throw Error(ErrorKind::format, file, key, "missing (an integer is required)");
}
double required_number(const nlohmann::json& object, const std::string& key, const std::string& file) {
  if (auto v = optional_number(object, key, file)) return *v;
  throw Error(ErrorKind::format, file, key, "missing (a number is required)");
}
std::string required_string(const nlohmann::json& object, const std::string& key, const std::string& file) {
  if (auto v = optional_string(object, key, file)) return *v;
  throw Error(ErrorKind::format, file, key, "missing (a string is required)");
}

}  // namespace musespark::detail
