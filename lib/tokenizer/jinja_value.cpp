// Values of the Jinja interpreter: Python's str(), repr(), ==, truthiness and
// json.dumps for them, and their JSON conversion.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include <utf8proc.h>

#include "musespark/error.hpp"
#include "tokenizer/jinja.hpp"
#include "tokenizer/utf8.hpp"

namespace musespark::detail::jinja {

namespace {
constexpr uint32_t kMaxDepth = 512;  // lists and dicts nested deeper are refused

[[noreturn]] void fail(const std::string& message) { throw Error(ErrorKind::format, "", "", message); }
}  // namespace

struct Value::ListData {
  List items;
  uint32_t depth = 1;
};
struct Value::DictData {
  std::vector<Item> items;
  uint32_t depth = 1;
};
struct Value::FunctionData {
  std::string name;
  Function body;
};

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    utf8proc_int32_t cp;
    auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + pos),
                              static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
    if (n <= 0) {
      out += static_cast<char32_t>(0xDC80 + static_cast<unsigned char>(text[pos]));
      ++pos;
    } else {
      out += static_cast<char32_t>(cp);
      pos += static_cast<size_t>(n);
    }
  }
  return out;
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) {
    if (cp >= 0xDC80 && cp <= 0xDCFF)
      out += static_cast<char>(cp - 0xDC00);
    else
      tokenizer::append_utf8(out, cp);
  }
  return out;
}

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's layout: positional for
  // exponents in [-4, 16), else d.ddde+XX.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  auto e = sci.find('e');
  std::string digits = sci.substr(0, e);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  int exponent = std::stoi(sci.substr(e + 1));
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else if (static_cast<size_t>(exponent) + 1 >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(exponent) + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, static_cast<size_t>(exponent) + 1) + "." + digits.substr(static_cast<size_t>(exponent) + 1);
    }
  } else {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp[16];
    std::snprintf(exp, sizeof exp, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp;
  }
  return out;
}

Value::Value() : i_(0) {}
Value::Value(std::nullptr_t) : kind_(Kind::none), i_(0) {}
Value::Value(bool b) : kind_(Kind::boolean), b_(b) {}
Value::Value(int i) : kind_(Kind::integer), i_(i) {}
Value::Value(int64_t i) : kind_(Kind::integer), i_(i) {}
Value::Value(double d) : kind_(Kind::floating), d_(d) {}
Value::Value(std::string s) : kind_(Kind::string), i_(0), ref_(std::make_shared<const std::string>(std::move(s))) {}
Value::Value(std::string_view s) : Value(std::string(s)) {}
Value::Value(const char* s) : Value(std::string(s)) {}

Value Value::undefined(std::string hint) {
  Value v;
  if (!hint.empty()) v.ref_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value Value::list(List items) {
  auto data = std::make_shared<ListData>();
  for (const auto& item : items) data->depth = std::max(data->depth, item.depth() + 1);
  if (data->depth > kMaxDepth) fail("lists and dicts nest more than " + std::to_string(kMaxDepth) + " deep");
  data->items = std::move(items);
  Value v;
  v.kind_ = Kind::list;
  v.ref_ = std::move(data);
  return v;
}

Value Value::tuple(List items) {
  Value v = list(std::move(items));
  v.flag_ = true;
  return v;
}

Value Value::dict(std::vector<Item> items) {
  Value v;
  v.kind_ = Kind::dict;
  v.ref_ = std::make_shared<DictData>();
  for (auto& [key, value] : items) v.set(std::move(key), std::move(value));
  return v;
}

Value Value::make_namespace(std::vector<Item> items) {
  Value v = dict(std::move(items));
  v.flag_ = true;
  return v;
}

Value Value::function(std::string name, Function body) {
  Value v;
  v.kind_ = Kind::function;
  v.ref_ = std::make_shared<const FunctionData>(FunctionData{std::move(name), std::move(body)});
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& json) {
  struct Walk {
    static Value of(const nlohmann::ordered_json& j, uint32_t depth) {
      if (depth > kMaxDepth) fail("JSON nests more than " + std::to_string(kMaxDepth) + " deep");
      switch (j.type()) {
        case nlohmann::ordered_json::value_t::null: return Value(nullptr);
        case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
        case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
        case nlohmann::ordered_json::value_t::number_unsigned: {
          auto u = j.get<uint64_t>();
          if (u <= static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<int64_t>(u));
          return Value(static_cast<double>(u));
        }
        case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
        case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
        case nlohmann::ordered_json::value_t::array: {
          List items;
          items.reserve(j.size());
          for (const auto& e : j) items.push_back(of(e, depth + 1));
          return list(std::move(items));
        }
        case nlohmann::ordered_json::value_t::object: {
          Value d = dict();
          for (const auto& [k, e] : j.items()) d.set(k, of(e, depth + 1));
          return d;
        }
        default: fail("JSON binary values are not supported");
      }
    }
  };
  return Walk::of(json, 0);
}

nlohmann::ordered_json Value::to_json() const {
  switch (kind_) {
    case Kind::none: return nullptr;
    case Kind::boolean: return b_;
    case Kind::integer: return i_;
    case Kind::floating: return d_;
    case Kind::string: return as_string();
    case Kind::list: {
      auto out = nlohmann::ordered_json::array();
      for (const auto& e : as_list()) out.push_back(e.to_json());
      return out;
    }
    case Kind::dict: {
      auto out = nlohmann::ordered_json::object();
      for (const auto& [k, e] : items()) out[k] = e.to_json();
      return out;
    }
    default: fail("Object of type " + type_name() + " is not JSON serializable");
  }
}

namespace {
[[noreturn]] void wrong_kind(const char* wanted) {
  throw Error(ErrorKind::internal, "", "", std::string("jinja value is not ") + wanted);
}
}  // namespace

bool Value::as_bool() const {
  if (kind_ != Kind::boolean) wrong_kind("a bool");
  return b_;
}
int64_t Value::as_int() const {
  if (kind_ == Kind::boolean) return b_ ? 1 : 0;
  if (kind_ != Kind::integer) wrong_kind("an int");
  return i_;
}
double Value::as_double() const {
  if (kind_ == Kind::floating) return d_;
  return static_cast<double>(as_int());
}
const std::string& Value::as_string() const {
  if (kind_ != Kind::string) wrong_kind("a string");
  return *static_cast<const std::string*>(ref_.get());
}
const Value::List& Value::as_list() const {
  if (kind_ != Kind::list) wrong_kind("a list");
  return static_cast<const ListData*>(ref_.get())->items;
}
const std::vector<Value::Item>& Value::items() const {
  if (kind_ != Kind::dict) wrong_kind("a dict");
  return static_cast<const DictData*>(ref_.get())->items;
}
const std::string& Value::undefined_hint() const {
  static const std::string plain = "value is undefined";
  if (kind_ != Kind::undefined) wrong_kind("undefined");
  return ref_ ? *static_cast<const std::string*>(ref_.get()) : plain;
}
Value Value::call(const Arguments& args) const {
  if (kind_ != Kind::function) wrong_kind("a function");
  return static_cast<const FunctionData*>(ref_.get())->body(args);
}

const Value* Value::find(std::string_view key) const {
  if (kind_ != Kind::dict) return nullptr;
  for (const auto& [k, v] : items())
    if (k == key) return &v;
  return nullptr;
}

void Value::set(std::string key, Value value) {
  if (kind_ != Kind::dict) wrong_kind("a dict");
  // Dicts are shared, not copied: this is Python's reference semantics.
  auto* data = const_cast<DictData*>(static_cast<const DictData*>(ref_.get()));
  uint32_t depth = std::max(data->depth, value.depth() + 1);
  if (depth > kMaxDepth) fail("lists and dicts nest more than " + std::to_string(kMaxDepth) + " deep");
  data->depth = depth;
  for (auto& [k, v] : data->items)
    if (k == key) {
      v = std::move(value);
      return;
    }
  data->items.emplace_back(std::move(key), std::move(value));
}

uint32_t Value::depth() const {
  if (kind_ == Kind::list) return static_cast<const ListData*>(ref_.get())->depth;
  if (kind_ == Kind::dict) return static_cast<const DictData*>(ref_.get())->depth;
  return 0;
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::undefined:
    case Kind::none: return false;
    case Kind::boolean: return b_;
    case Kind::integer: return i_ != 0;
    case Kind::floating: return d_ != 0;
    case Kind::string: return !as_string().empty();
    case Kind::list: return !as_list().empty();
    case Kind::dict: return !items().empty();
    case Kind::function: return true;
  }
  return false;
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::undefined: return "Undefined";
    case Kind::none: return "NoneType";
    case Kind::boolean: return "bool";
    case Kind::integer: return "int";
    case Kind::floating: return "float";
    case Kind::string: return "str";
    case Kind::list: return flag_ ? "tuple" : "list";
    case Kind::dict: return flag_ ? "Namespace" : "dict";
    case Kind::function: return "function";
  }
  return "object";
}

namespace {

// Python's str.isprintable() for one code point, close enough: controls,
// separators other than the space, format characters and unassigned code
// points are not printable.
bool printable(char32_t cp) {
  if (cp < 0x20 || cp == 0x7F) return false;
  if (cp < 0x7F) return true;
  if (cp >= 0xD800 && cp <= 0xDFFF) return false;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
    case UTF8PROC_CATEGORY_ZS: return false;
    default: return true;
  }
}

void repr_string(std::string& out, const std::string& s) {
  bool single = s.find('\'') != std::string::npos;
  bool dbl = s.find('"') != std::string::npos;
  char quote = single && !dbl ? '"' : '\'';
  out += quote;
  for (char32_t cp : decode_utf8(s)) {
    char buf[16];
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
      std::snprintf(buf, sizeof buf, "\\udc%02x", static_cast<unsigned>(cp - 0xDC00));
      out += buf;
    } else if (printable(cp)) {
      tokenizer::append_utf8(out, cp);
    } else {
      if (cp < 0x100)
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
      else if (cp < 0x10000)
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      else
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(cp));
      out += buf;
    }
  }
  out += quote;
}

void repr_into(std::string& out, const Value& v, uint32_t level);

void str_into(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::undefined: return;
    case Value::Kind::string: out += v.as_string(); return;
    default: repr_into(out, v, 0);
  }
}

constexpr size_t kMaxText = size_t{64} << 20;  // as the interpreter's string limit

void repr_into(std::string& out, const Value& v, uint32_t level) {
  if (level > kMaxDepth) fail("maximum recursion depth exceeded while printing a value");
  if (out.size() > kMaxText) fail("a value prints longer than 64 MiB");
  switch (v.kind()) {
    case Value::Kind::undefined: return;  // prints as "" even inside a list
    case Value::Kind::none: out += "None"; return;
    case Value::Kind::boolean: out += v.as_bool() ? "True" : "False"; return;
    case Value::Kind::integer: out += std::to_string(v.as_int()); return;
    case Value::Kind::floating: out += python_float_repr(v.as_double()); return;
    case Value::Kind::string: repr_string(out, v.as_string()); return;
    case Value::Kind::list: {
      const auto& items = v.as_list();
      out += v.is_tuple() ? '(' : '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        repr_into(out, items[i], level + 1);
      }
      if (v.is_tuple() && items.size() == 1) out += ',';
      out += v.is_tuple() ? ')' : ']';
      return;
    }
    case Value::Kind::dict: {
      if (v.is_namespace()) out += "<Namespace ";
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.items()) {
        if (!first) out += ", ";
        first = false;
        repr_string(out, k);
        out += ": ";
        repr_into(out, e, level + 1);
      }
      out += '}';
      if (v.is_namespace()) out += '>';
      return;
    }
    case Value::Kind::function: out += "<function>"; return;
  }
}

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  auto escape = [&](char32_t cp) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
    out += buf;
  };
  for (char32_t cp : decode_utf8(s)) {
    switch (cp) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (cp < 0x20) {
      escape(cp);
    } else if (cp >= 0xDC80 && cp <= 0xDCFF) {
      if (ensure_ascii) escape(cp);
      else out += static_cast<char>(cp - 0xDC00);
    } else if (ensure_ascii && cp > 0x7E && cp != 0x7F) {
      if (cp >= 0x10000) {
        escape(0xD800 + ((cp - 0x10000) >> 10));
        escape(0xDC00 + ((cp - 0x10000) & 0x3FF));
      } else {
        escape(cp);
      }
    } else {
      tokenizer::append_utf8(out, cp);
    }
  }
  out += '"';
}

struct JsonWriter {
  bool ensure_ascii;
  const std::string* indent;
  std::string_view item_sep, key_sep;
  bool sort_keys;
  std::string out;

  void newline(size_t level) {
    out += '\n';
    for (size_t i = 0; i < level; ++i) out += *indent;
  }

  void write(const Value& v, size_t level) {
    if (level > kMaxDepth) fail("Circular reference detected");
    if (out.size() > kMaxText) fail("JSON longer than 64 MiB");
    switch (v.kind()) {
      case Value::Kind::none: out += "null"; return;
      case Value::Kind::boolean: out += v.as_bool() ? "true" : "false"; return;
      case Value::Kind::integer: out += std::to_string(v.as_int()); return;
      case Value::Kind::floating: {
        double d = v.as_double();
        if (std::isnan(d)) out += "NaN";
        else if (std::isinf(d)) out += d < 0 ? "-Infinity" : "Infinity";
        else out += python_float_repr(d);
        return;
      }
      case Value::Kind::string: json_string(out, v.as_string(), ensure_ascii); return;
      case Value::Kind::list: {
        const auto& items = v.as_list();
        if (items.empty()) {
          out += "[]";
          return;
        }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_sep;
          if (indent) newline(level + 1);
          write(items[i], level + 1);
        }
        if (indent) newline(level);
        out += ']';
        return;
      }
      case Value::Kind::dict: {
        if (v.is_namespace()) break;
        std::vector<const Value::Item*> items;
        for (const auto& item : v.items()) items.push_back(&item);
        if (items.empty()) {
          out += "{}";
          return;
        }
        if (sort_keys)
          std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
        out += '{';
        for (size_t i = 0; i < items.size(); ++i) {
          if (i) out += item_sep;
          if (indent) newline(level + 1);
          json_string(out, items[i]->first, ensure_ascii);
          out += key_sep;
          write(items[i]->second, level + 1);
        }
        if (indent) newline(level);
        out += '}';
        return;
      }
      default: break;
    }
    fail("Object of type " + v.type_name() + " is not JSON serializable");
  }
};

bool equal(const Value& a, const Value& b, uint32_t level) {
  using K = Value::Kind;
  if (level > kMaxDepth) fail("maximum recursion depth exceeded in comparison");
  if (a.is_number() && b.is_number()) {
    if (a.kind() == K::floating || b.kind() == K::floating) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  if (a.kind() == K::list && &a.as_list() == &b.as_list()) return true;  // Python: `x is y or x == y`
  if (a.kind() == K::dict && &a.items() == &b.items()) return true;
  switch (a.kind()) {
    case K::undefined:
    case K::none: return true;
    case K::string: return a.as_string() == b.as_string();
    case K::list: {
      if (a.is_tuple() != b.is_tuple()) return false;
      const auto &x = a.as_list(), &y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!equal(x[i], y[i], level + 1)) return false;
      return true;
    }
    case K::dict: {
      if (a.is_namespace() || b.is_namespace()) return &a.items() == &b.items();
      if (a.items().size() != b.items().size()) return false;
      for (const auto& [k, v] : a.items()) {
        const Value* other = b.find(k);
        if (!other || !equal(v, *other, level + 1)) return false;
      }
      return true;
    }
    case K::function: return false;
    default: return false;
  }
}

}  // namespace

std::string Value::str() const {
  std::string out;
  str_into(out, *this);
  return out;
}

std::string Value::repr() const {
  std::string out;
  repr_into(out, *this, 0);
  return out;
}

std::string Value::dump_json(bool ensure_ascii, const std::string* indent, std::string_view item_separator,
                             std::string_view key_separator, bool sort_keys) const {
  JsonWriter w{ensure_ascii, indent, item_separator, key_separator, sort_keys, {}};
  w.write(*this, 0);
  return std::move(w.out);
}

bool operator==(const Value& a, const Value& b) { return equal(a, b, 0); }

}  // namespace musespark::detail::jinja
