#include "common/gguf.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <unordered_map>

#include "common/mapped_file.hpp"
#include "musespark/error.hpp"

namespace musespark::detail {

namespace {

constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxDims = 4;                         // ggml's GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 16;                       // deeper nesting is hostile, not a model
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, a 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims 0, type, offset
constexpr uint64_t kArrayHeaderBytes = 4 + 8;            // element type, count

constexpr std::array<GgmlTypeInfo, 32> kGgmlTypes{{
    {GgmlType::f32, "F32", 1, 4, true},
    {GgmlType::f16, "F16", 1, 2, true},
    {GgmlType::q4_0, "Q4_0", 32, 18, true},
    {GgmlType::q4_1, "Q4_1", 32, 20, true},
    {GgmlType::q5_0, "Q5_0", 32, 22, true},
    {GgmlType::q5_1, "Q5_1", 32, 24, true},
    {GgmlType::q8_0, "Q8_0", 32, 34, true},
    {GgmlType::q8_1, "Q8_1", 32, 36, true},
    {GgmlType::q2_k, "Q2_K", 256, 84, true},
    {GgmlType::q3_k, "Q3_K", 256, 110, true},
    {GgmlType::q4_k, "Q4_K", 256, 144, true},
    {GgmlType::q5_k, "Q5_K", 256, 176, true},
    {GgmlType::q6_k, "Q6_K", 256, 210, true},
    {GgmlType::q8_k, "Q8_K", 256, 292, true},
    {GgmlType::iq2_xxs, "IQ2_XXS", 256, 66, false},
    {GgmlType::iq2_xs, "IQ2_XS", 256, 74, false},
    {GgmlType::iq3_xxs, "IQ3_XXS", 256, 98, false},
    {GgmlType::iq1_s, "IQ1_S", 256, 50, false},
    {GgmlType::iq4_nl, "IQ4_NL", 32, 18, false},
    {GgmlType::iq3_s, "IQ3_S", 256, 110, false},
    {GgmlType::iq2_s, "IQ2_S", 256, 82, false},
    {GgmlType::iq4_xs, "IQ4_XS", 256, 136, false},
    {GgmlType::i8, "I8", 1, 1, false},
    {GgmlType::i16, "I16", 1, 2, false},
    {GgmlType::i32, "I32", 1, 4, false},
    {GgmlType::i64, "I64", 1, 8, false},
    {GgmlType::f64, "F64", 1, 8, false},
    {GgmlType::iq1_m, "IQ1_M", 256, 56, false},
    {GgmlType::bf16, "BF16", 1, 2, true},
    {GgmlType::tq1_0, "TQ1_0", 256, 54, false},
    {GgmlType::tq2_0, "TQ2_0", 256, 66, false},
    {GgmlType::mxfp4, "MXFP4", 32, 17, false},
}};

[[noreturn]] void bad(const std::string& file, const std::string& field, const std::string& message) {
  throw Error(ErrorKind::format, file, field, message);
}

uint8_t byte_at(const std::byte* p) { return static_cast<uint8_t>(*p); }
uint16_t le16(const std::byte* p) { return static_cast<uint16_t>(byte_at(p) | (byte_at(p + 1) << 8)); }
uint32_t le32(const std::byte* p) {
  return static_cast<uint32_t>(le16(p)) | (static_cast<uint32_t>(le16(p + 2)) << 16);
}
uint64_t le64(const std::byte* p) {
  return static_cast<uint64_t>(le32(p)) | (static_cast<uint64_t>(le32(p + 4)) << 32);
}
float half_at(const std::byte* p) { return fp16_to_f32(le16(p)); }

// Bytes of one value of a fixed-size type; 0 for string and array.
uint64_t scalar_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::u8:
    case GgufValueType::i8:
    case GgufValueType::bool_:
      return 1;
    case GgufValueType::u16:
    case GgufValueType::i16:
      return 2;
    case GgufValueType::u32:
    case GgufValueType::i32:
    case GgufValueType::f32:
      return 4;
    case GgufValueType::u64:
    case GgufValueType::i64:
    case GgufValueType::f64:
      return 8;
    case GgufValueType::string:
    case GgufValueType::array:
      return 0;
  }
  return 0;
}

bool known_value_type(uint32_t number) { return number <= static_cast<uint32_t>(GgufValueType::f64); }

bool is_integer(GgufValueType t) {
  switch (t) {
    case GgufValueType::u8:
    case GgufValueType::i8:
    case GgufValueType::u16:
    case GgufValueType::i16:
    case GgufValueType::u32:
    case GgufValueType::i32:
    case GgufValueType::u64:
    case GgufValueType::i64:
      return true;
    default:
      return false;
  }
}

bool is_signed(GgufValueType t) {
  return t == GgufValueType::i8 || t == GgufValueType::i16 || t == GgufValueType::i32 || t == GgufValueType::i64;
}

// The integer stored in `p` as type `t`, sign-extended if signed.
int64_t signed_at(GgufValueType t, const std::byte* p) {
  switch (t) {
    case GgufValueType::i8:
      return static_cast<int8_t>(byte_at(p));
    case GgufValueType::i16:
      return static_cast<int16_t>(le16(p));
    case GgufValueType::i32:
      return static_cast<int32_t>(le32(p));
    default:
      return static_cast<int64_t>(le64(p));
  }
}
uint64_t unsigned_at(GgufValueType t, const std::byte* p) {
  switch (t) {
    case GgufValueType::u8:
      return byte_at(p);
    case GgufValueType::u16:
      return le16(p);
    case GgufValueType::u32:
      return le32(p);
    default:
      return le64(p);
  }
}

// A readable spelling of an integer or float value, for "got ..." messages.
std::string describe(const GgufValue& v) {
  const std::string type(gguf_value_type_name(v.type()));
  if (is_integer(v.type())) {
    if (is_signed(v.type())) return fmt::format("{} {}", type, v.as_i64());
    return fmt::format("{} {}", type, v.as_u64());
  }
  return type;
}

}  // namespace

std::optional<GgmlTypeInfo> ggml_type_info(uint32_t number) noexcept {
  for (const auto& t : kGgmlTypes)
    if (static_cast<uint32_t>(t.type) == number) return t;
  return std::nullopt;
}

GgmlTypeInfo ggml_type_info(GgmlType type) noexcept {
  auto info = ggml_type_info(static_cast<uint32_t>(type));
  return info ? *info : GgmlTypeInfo{type, "?", 1, 0, false};
}

std::string_view ggml_type_name(GgmlType type) noexcept { return ggml_type_info(type).name; }

std::string_view gguf_value_type_name(GgufValueType type) noexcept {
  switch (type) {
    case GgufValueType::u8:
      return "uint8";
    case GgufValueType::i8:
      return "int8";
    case GgufValueType::u16:
      return "uint16";
    case GgufValueType::i16:
      return "int16";
    case GgufValueType::u32:
      return "uint32";
    case GgufValueType::i32:
      return "int32";
    case GgufValueType::f32:
      return "float32";
    case GgufValueType::bool_:
      return "bool";
    case GgufValueType::string:
      return "string";
    case GgufValueType::array:
      return "array";
    case GgufValueType::u64:
      return "uint64";
    case GgufValueType::i64:
      return "int64";
    case GgufValueType::f64:
      return "float64";
  }
  return "?";
}

float fp16_to_f32(uint16_t h) noexcept {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // infinity, or NaN keeping its payload
  } else if (exponent != 0) {
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal half: mantissa * 2^-24. Shift the leading 1 up to bit 10 to
    // make it a normal float.
    uint32_t shifts = 0;
    while (!(mantissa & 0x400u)) {
      mantissa <<= 1;
      ++shifts;
    }
    bits = sign | ((127 - 15 + 1 - shifts) << 23) | ((mantissa & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

float bf16_to_f32(uint16_t bits) noexcept { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

// ---------------------------------------------------------------------------
// GgufValue

void GgufValue::wrong_type(std::string_view expected) const {
  bad(*file_, key_, fmt::format("expected {}, got {}", expected, describe(*this)));
}

uint64_t GgufValue::as_u64() const {
  if (!is_integer(type_)) wrong_type("an unsigned integer");
  if (!is_signed(type_)) return unsigned_at(type_, bytes_.data());
  const int64_t v = signed_at(type_, bytes_.data());
  if (v < 0) wrong_type("an unsigned integer");
  return static_cast<uint64_t>(v);
}

int64_t GgufValue::as_i64() const {
  if (!is_integer(type_)) wrong_type("an integer");
  if (is_signed(type_)) return signed_at(type_, bytes_.data());
  const uint64_t v = unsigned_at(type_, bytes_.data());
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) wrong_type("a 64-bit signed integer");
  return static_cast<int64_t>(v);
}

uint32_t GgufValue::as_u32() const {
  if (!is_integer(type_)) wrong_type("an unsigned 32-bit integer");
  const bool fits = is_signed(type_) ? signed_at(type_, bytes_.data()) >= 0 &&
                                           signed_at(type_, bytes_.data()) <= std::numeric_limits<uint32_t>::max()
                                     : unsigned_at(type_, bytes_.data()) <= std::numeric_limits<uint32_t>::max();
  if (!fits) wrong_type("an unsigned 32-bit integer");
  return static_cast<uint32_t>(unsigned_at(type_, bytes_.data()));
}

int32_t GgufValue::as_i32() const {
  if (!is_integer(type_)) wrong_type("a 32-bit integer");
  if (!is_signed(type_)) {
    const uint64_t v = unsigned_at(type_, bytes_.data());
    if (v > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) wrong_type("a 32-bit integer");
    return static_cast<int32_t>(v);
  }
  const int64_t v = signed_at(type_, bytes_.data());
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
    wrong_type("a 32-bit integer");
  return static_cast<int32_t>(v);
}

double GgufValue::as_f64() const {
  if (type_ == GgufValueType::f64) return std::bit_cast<double>(le64(bytes_.data()));
  if (type_ == GgufValueType::f32) return std::bit_cast<float>(le32(bytes_.data()));
  wrong_type("a float");
}

float GgufValue::as_f32() const {
  if (type_ == GgufValueType::f32) return std::bit_cast<float>(le32(bytes_.data()));
  return static_cast<float>(as_f64());
}

bool GgufValue::as_bool() const {
  if (type_ != GgufValueType::bool_) wrong_type("a bool");
  return byte_at(bytes_.data()) != 0;
}

std::string_view GgufValue::as_string() const {
  if (type_ != GgufValueType::string) wrong_type("a string");
  return {reinterpret_cast<const char*>(bytes_.data()), bytes_.size()};
}

GgufValueType GgufValue::element_type() const {
  if (type_ != GgufValueType::array) wrong_type("an array");
  return element_type_;
}

uint64_t GgufValue::size() const {
  if (type_ != GgufValueType::array) wrong_type("an array");
  return count_;
}

namespace {
// The end of the encoded value of `type` at `p`. Only for bytes the parser
// has validated: nothing here is bounds-checked.
const std::byte* skip_value(GgufValueType type, const std::byte* p) {
  if (const uint64_t fixed = scalar_size(type)) return p + fixed;
  if (type == GgufValueType::string) return p + 8 + le64(p);
  const auto element = static_cast<GgufValueType>(le32(p));
  const uint64_t count = le64(p + 4);
  p += kArrayHeaderBytes;
  if (const uint64_t fixed = scalar_size(element)) return p + count * fixed;
  for (uint64_t i = 0; i < count; ++i) p = skip_value(element, p);
  return p;
}
}  // namespace

GgufValue GgufValue::at(uint64_t i) const {
  if (type_ != GgufValueType::array) wrong_type("an array");
  if (i >= count_)
    throw Error(ErrorKind::invalid_argument, *file_, key_,
                fmt::format("index {} is past the end ({} elements)", i, count_));
  GgufValue out;
  out.type_ = element_type_;
  out.key_ = fmt::format("{}[{}]", key_, i);
  out.file_ = file_;
  const std::byte* p = bytes_.data();
  if (const uint64_t fixed = scalar_size(element_type_)) {
    out.bytes_ = {p + i * fixed, static_cast<size_t>(fixed)};
    return out;
  }
  for (uint64_t k = 0; k < i; ++k) p = skip_value(element_type_, p);
  if (element_type_ == GgufValueType::string) {
    out.bytes_ = {p + 8, static_cast<size_t>(le64(p))};
  } else {
    out.element_type_ = static_cast<GgufValueType>(le32(p));
    out.count_ = le64(p + 4);
    const std::byte* begin = p + kArrayHeaderBytes;
    out.bytes_ = {begin, static_cast<size_t>(skip_value(GgufValueType::array, p) - begin)};
  }
  return out;
}

std::vector<int64_t> GgufValue::as_i64_array() const {
  const uint64_t n = size();
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) out.push_back(at(i).as_i64());
  return out;
}

std::vector<int32_t> GgufValue::as_i32_array() const {
  const uint64_t n = size();
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) out.push_back(at(i).as_i32());
  return out;
}

std::vector<float> GgufValue::as_f32_array() const {
  const uint64_t n = size();
  std::vector<float> out;
  out.reserve(static_cast<size_t>(n));
  for (uint64_t i = 0; i < n; ++i) out.push_back(at(i).as_f32());
  return out;
}

std::vector<std::string> GgufValue::as_string_array() const {
  const uint64_t n = size();
  if (element_type_ != GgufValueType::string) {
    if (n > 0) at(0).as_string();  // throws, naming key[0]
    bad(*file_, key_,
        fmt::format("expected an array of strings, got an array of {}", gguf_value_type_name(element_type_)));
  }
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(n));
  // One walk, not at(i) for each i (which would be quadratic).
  const std::byte* p = bytes_.data();
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t len = le64(p);
    out.emplace_back(reinterpret_cast<const char*>(p + 8), static_cast<size_t>(len));
    p += 8 + len;
  }
  return out;
}

// ---------------------------------------------------------------------------
// GgufTensor

int64_t GgufTensor::numel() const noexcept {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t GgufTensor::row_length() const noexcept { return shape.empty() ? 1 : shape[0]; }

int64_t GgufTensor::rows() const noexcept {
  int64_t n = 1;
  for (size_t i = 1; i < shape.size(); ++i) n *= shape[i];
  return n;
}

// ---------------------------------------------------------------------------
// Parsing

struct GgufFile::State {
  std::shared_ptr<const std::string> path;
  std::shared_ptr<const void> owner;  // the mapping; null when parsing caller-owned bytes
  uint32_t version = 0;
  uint32_t alignment = kDefaultAlignment;
  uint64_t data_offset = 0;
  std::vector<GgufValue> metadata;
  std::unordered_map<std::string_view, size_t> metadata_index;  // keys point into the bytes
  std::vector<GgufTensor> tensors;
  std::unordered_map<std::string, size_t> tensor_index;
};

// Reads the file front to back; every read is checked against the end first.
struct GgufParser {
  std::span<const std::byte> bytes;
  std::shared_ptr<const std::string> file;
  size_t pos = 0;

  size_t left() const { return bytes.size() - pos; }
  const std::byte* here() const { return bytes.data() + pos; }

  void need(uint64_t n, const std::string& field, std::string_view what) const {
    if (n > left())
      bad(*file, field,
          fmt::format("truncated: {} needs {} bytes at offset {}, but the file ends at {}", what, n, pos,
                      bytes.size()));
  }
  uint32_t u32(const std::string& field, std::string_view what) {
    need(4, field, what);
    const uint32_t v = le32(here());
    pos += 4;
    return v;
  }
  uint64_t u64(const std::string& field, std::string_view what) {
    need(8, field, what);
    const uint64_t v = le64(here());
    pos += 8;
    return v;
  }
  std::string_view string(const std::string& field, std::string_view what) {
    const uint64_t len = u64(field, what);
    if (len > left())
      bad(*file, field,
          fmt::format("{} length {} at offset {} runs past the end of the file ({} bytes left)", what, len, pos - 8,
                      left()));
    std::string_view s(reinterpret_cast<const char*>(here()), static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    return s;
  }
  GgufValueType value_type(const std::string& field, std::string_view what) {
    const size_t at = pos;
    const uint32_t t = u32(field, what);
    if (!known_value_type(t)) bad(*file, field, fmt::format("unknown {} {} at offset {}", what, t, at));
    return static_cast<GgufValueType>(t);
  }

  // Validates one value of `type` at pos and returns its view; pos moves past it.
  GgufValue value(GgufValueType type, const std::string& key, int depth) {
    GgufValue v;
    v.type_ = type;
    v.key_ = key;
    v.file_ = file;
    if (const uint64_t size = scalar_size(type)) {
      need(size, key, std::string(gguf_value_type_name(type)) + " value");
      if (type == GgufValueType::bool_ && byte_at(here()) > 1)
        bad(*file, key, fmt::format("a bool must be 0 or 1, got {}", byte_at(here())));
      v.bytes_ = {here(), static_cast<size_t>(size)};
      pos += static_cast<size_t>(size);
      return v;
    }
    if (type == GgufValueType::string) {
      std::string_view s = string(key, "string");
      v.bytes_ = {reinterpret_cast<const std::byte*>(s.data()), s.size()};
      return v;
    }
    // An array.
    if (depth >= kMaxArrayDepth) bad(*file, key, fmt::format("arrays nested more than {} deep", kMaxArrayDepth));
    v.element_type_ = value_type(key, "array element type");
    v.count_ = u64(key, "array length");
    const size_t begin = pos;
    const uint64_t fixed = scalar_size(v.element_type_);
    // Each element takes at least this many bytes: a count that cannot fit
    // is refused before any walking (or allocating).
    const uint64_t min_element = fixed ? fixed : v.element_type_ == GgufValueType::string ? 8 : kArrayHeaderBytes;
    if (v.count_ > left() / min_element)
      bad(*file, key,
          fmt::format("array of {} {} cannot fit in the {} bytes left in the file", v.count_,
                      gguf_value_type_name(v.element_type_), left()));
    if (fixed) {
      if (v.element_type_ == GgufValueType::bool_)
        for (uint64_t i = 0; i < v.count_; ++i)
          if (byte_at(here() + i) > 1)
            bad(*file, fmt::format("{}[{}]", key, i),
                fmt::format("a bool must be 0 or 1, got {}", byte_at(here() + i)));
      pos += static_cast<size_t>(v.count_ * fixed);
    } else {
      for (uint64_t i = 0; i < v.count_; ++i) {
        if (v.element_type_ == GgufValueType::string && left() >= 8 && le64(here()) <= left() - 8) {
          pos += 8 + static_cast<size_t>(le64(here()));  // the common case, without naming the element
          continue;
        }
        const std::string element_key = fmt::format("{}[{}]", key, i);
        if (v.element_type_ == GgufValueType::string)
          string(element_key, "string");  // throws
        else
          value(GgufValueType::array, element_key, depth + 1);
      }
    }
    v.bytes_ = {bytes.data() + begin, pos - begin};
    return v;
  }
};

GgufFile GgufFile::open(const std::filesystem::path& path) {
  auto mapping = std::make_shared<const MappedFile>(MappedFile::open(path));
  const std::span<const std::byte> bytes = mapping->bytes();
  return load(bytes, path.string(), std::move(mapping));
}

GgufFile GgufFile::parse(std::span<const std::byte> bytes, const std::string& name) {
  return load(bytes, name, nullptr);
}

GgufFile GgufFile::load(std::span<const std::byte> bytes, const std::string& name, std::shared_ptr<const void> owner) {
  auto state = std::make_shared<State>();
  state->owner = std::move(owner);
  state->path = std::make_shared<const std::string>(name);
  const std::string& file = *state->path;
  GgufParser in{bytes, state->path};

  // Header.
  in.need(4, "magic", "the magic \"GGUF\"");
  if (std::memcmp(bytes.data(), "GGUF", 4) != 0)
    bad(file, "magic",
        fmt::format("expected \"GGUF\", got bytes {:02x} {:02x} {:02x} {:02x}: not a GGUF file", byte_at(&bytes[0]),
                    byte_at(&bytes[1]), byte_at(&bytes[2]), byte_at(&bytes[3])));
  in.pos = 4;
  state->version = in.u32("version", "the version");
  if (state->version == 0x02000000u || state->version == 0x03000000u)
    throw Error(
        ErrorKind::unsupported, file, "version",
        fmt::format("version {} read little-endian: a big-endian GGUF file, which is not supported", state->version));
  if (state->version != 2 && state->version != 3)
    throw Error(ErrorKind::unsupported, file, "version",
                fmt::format("GGUF version {} is not supported (only 2 and 3)", state->version));
  const uint64_t tensor_count = in.u64("tensor_count", "the tensor count");
  const uint64_t kv_count = in.u64("metadata_kv_count", "the metadata count");
  if (kv_count > in.left() / kMinKvBytes)
    bad(file, "metadata_kv_count",
        fmt::format("{} key-value pairs cannot fit in the {} bytes left in the file", kv_count, in.left()));
  if (tensor_count > in.left() / kMinTensorInfoBytes)
    bad(file, "tensor_count",
        fmt::format("{} tensor infos cannot fit in the {} bytes left in the file", tensor_count, in.left()));

  // Metadata.
  state->metadata.reserve(static_cast<size_t>(kv_count));
  for (uint64_t i = 0; i < kv_count; ++i) {
    const std::string key_field = fmt::format("metadata[{}].key", i);
    const std::string_view key_view = in.string(key_field, "key");
    if (key_view.empty()) bad(file, key_field, "empty key");
    const std::string key(key_view);
    if (state->metadata_index.count(key_view)) bad(file, key, "duplicate key");
    const GgufValueType type = in.value_type(key, "value type");
    state->metadata.push_back(in.value(type, key, 0));
    state->metadata_index.emplace(key_view, state->metadata.size() - 1);
  }
  if (auto it = state->metadata_index.find("general.alignment"); it != state->metadata_index.end()) {
    const GgufValue& v = state->metadata[it->second];
    if (v.type() != GgufValueType::u32)
      bad(file, v.key(), fmt::format("expected a uint32, got {}", gguf_value_type_name(v.type())));
    const uint32_t alignment = v.as_u32();
    if (!std::has_single_bit(alignment)) bad(file, v.key(), fmt::format("must be a power of two, got {}", alignment));
    state->alignment = alignment;
  }

  // Tensor infos.
  state->tensors.reserve(static_cast<size_t>(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensor t;
    t.file = file;
    t.name = std::string(in.string(fmt::format("tensor_infos[{}].name", i), "tensor name"));
    if (state->tensor_index.count(t.name)) bad(file, t.name, "duplicate tensor name");
    const uint32_t n_dims = in.u32(t.name + ".n_dims", "the number of dimensions");
    if (n_dims > kMaxDims) bad(file, t.name + ".n_dims", fmt::format("{} dimensions (at most {})", n_dims, kMaxDims));
    uint64_t numel = 1;  // of the non-zero dimensions
    bool overflow = false;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = in.u64(t.name + ".dims", "a dimension");
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        bad(file, t.name + ".dims", fmt::format("dimension {} is {}, beyond int64", d, dim));
      t.shape.push_back(static_cast<int64_t>(dim));
      if (dim == 0) continue;
      if (numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim) overflow = true;
      numel *= dim;
    }
    // Refused even when another dimension is 0: then numel() and rows()
    // cannot overflow whatever order they multiply in.
    const std::string shape = fmt::format("[{}]", fmt::join(t.shape, ","));
    if (overflow) bad(file, t.name + ".dims", fmt::format("shape {} has more than 2^63 elements", shape));
    const bool empty = std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end();
    const size_t type_at = in.pos;
    const uint32_t type_number = in.u32(t.name + ".type", "the ggml type");
    const std::optional<GgmlTypeInfo> info = ggml_type_info(type_number);
    if (!info) bad(file, t.name + ".type", fmt::format("unknown ggml type {} at offset {}", type_number, type_at));
    t.type = info->type;
    t.offset = in.u64(t.name + ".offset", "the data offset");

    const uint64_t row = t.shape.empty() ? 1 : static_cast<uint64_t>(t.shape[0]);
    if (row % info->block_size != 0)
      bad(file, t.name + ".dims",
          fmt::format("row length {} of {} is not a multiple of its block size {}", row, info->name, info->block_size));
    const uint64_t blocks = empty ? 0 : numel / info->block_size;
    if (blocks > std::numeric_limits<uint64_t>::max() / info->block_bytes)
      bad(file, t.name + ".dims", fmt::format("shape {} of {} needs more than 2^64 bytes", shape, info->name));
    t.nbytes = static_cast<size_t>(blocks * info->block_bytes);
    state->tensor_index.emplace(t.name, state->tensors.size());
    state->tensors.push_back(std::move(t));
  }

  // Data section: aligned after the tensor infos. With no tensor bytes the
  // file may end before it.
  const uint64_t alignment = state->alignment;
  state->data_offset = (static_cast<uint64_t>(in.pos) + alignment - 1) / alignment * alignment;
  const uint64_t size = bytes.size();
  for (GgufTensor& t : state->tensors) {
    if (t.offset % alignment != 0)
      bad(file, t.name + ".offset",
          fmt::format("offset {} is not a multiple of the alignment {}", t.offset, alignment));
    const bool inside = state->data_offset <= size && t.offset <= size - state->data_offset &&
                        t.nbytes <= size - state->data_offset - t.offset;
    if (!inside)
      bad(file, t.name + ".offset",
          fmt::format("{} bytes at offset {} of the data section (which starts at {}) run past the end of the "
                      "file ({} bytes): truncated?",
                      t.nbytes, t.offset, state->data_offset, size));
    t.data = bytes.data() + state->data_offset + t.offset;
  }

  // No two tensors may share bytes (empty ones take none).
  std::vector<const GgufTensor*> by_offset;
  for (const auto& t : state->tensors)
    if (t.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const GgufTensor* prev = by_offset[i - 1];
    const GgufTensor* cur = by_offset[i];
    if (cur->offset < prev->offset + prev->nbytes)
      bad(file, cur->name + ".offset",
          fmt::format("overlaps tensor {} (bytes {}..{} of the data section)", prev->name, prev->offset,
                      prev->offset + prev->nbytes));
  }

  GgufFile out;
  out.state_ = std::move(state);
  return out;
}

const std::string& GgufFile::path() const noexcept { return *state_->path; }
uint32_t GgufFile::version() const noexcept { return state_->version; }
uint32_t GgufFile::alignment() const noexcept { return state_->alignment; }
uint64_t GgufFile::data_offset() const noexcept { return state_->data_offset; }
const std::vector<GgufValue>& GgufFile::metadata() const noexcept { return state_->metadata; }
const std::vector<GgufTensor>& GgufFile::tensors() const noexcept { return state_->tensors; }

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = state_->metadata_index.find(key);
  return it == state_->metadata_index.end() ? nullptr : &state_->metadata[it->second];
}

const GgufValue& GgufFile::require(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) bad(path(), std::string(key), "missing");
  return *v;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  auto it = state_->tensor_index.find(std::string(name));
  return it == state_->tensor_index.end() ? nullptr : &state_->tensors[it->second];
}

// ---------------------------------------------------------------------------
// Dequantization: one function per type, each a block at a time, in the
// order and with the float operations of ggml's dequantize_row_*. Every
// product of an fp16 scale and a small integer is exact in float, so the only
// rounding is where ggml rounds (and a fused multiply-add gives the same bits).

namespace {

constexpr size_t kQK = 256;  // elements in a K-quant super-block

void dequantize_q4_0(const std::byte* b, float* y) {
  const float d = half_at(b);
  const std::byte* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((byte_at(qs + j) & 0xf) - 8) * d;
    y[j + 16] = static_cast<float>((byte_at(qs + j) >> 4) - 8) * d;
  }
}

void dequantize_q4_1(const std::byte* b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  const std::byte* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(byte_at(qs + j) & 0xf) * d + m;
    y[j + 16] = static_cast<float>(byte_at(qs + j) >> 4) * d + m;
  }
}

// Q5: bit j of the 32-bit qh is the fifth bit of element j.
void dequantize_q5_0(const std::byte* b, float* y) {
  const float d = half_at(b);
  const uint32_t qh = le32(b + 2);
  const std::byte* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (byte_at(qs + j) & 0xf) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (byte_at(qs + j) >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

void dequantize_q5_1(const std::byte* b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  const uint32_t qh = le32(b + 4);
  const std::byte* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int lo = (byte_at(qs + j) & 0xf) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (byte_at(qs + j) >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo) * d + m;
    y[j + 16] = static_cast<float>(hi) * d + m;
  }
}

void dequantize_q8_0(const std::byte* b, float* y) {
  const float d = half_at(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(byte_at(b + 2 + j))) * d;
}

void dequantize_q8_1(const std::byte* b, float* y) {  // d, then s = d * sum(qs) (unused here)
  const float d = half_at(b);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(byte_at(b + 4 + j))) * d;
}

// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
void dequantize_q2_k(const std::byte* b, float* y) {
  const std::byte* scales = b;
  const float d = half_at(b + 80), dmin = half_at(b + 82);
  int is = 0;
  for (int n = 0; n < 2; ++n) {
    const std::byte* q = b + 16 + 32 * n;
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; ++half) {
        const uint8_t sc = byte_at(scales + is++);
        const float dl = d * static_cast<float>(sc & 0xf);
        const float ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((byte_at(q + 16 * half + l) >> shift) & 3) - ml;
      }
    }
  }
}

// Q3_K: hmask[32], qs[64], scales[12], d. Sixteen 6-bit scales: the low
// nibbles are bytes 0..7 (low nibbles for scales 0..7, high for 8..15), the
// top two bits are in bytes 8..11 (scale i: byte 8 + i % 4, bits 2 * (i / 4)).
void dequantize_q3_k(const std::byte* b, float* y) {
  const std::byte* hmask = b;
  const std::byte* raw = b + 96;
  const float d = half_at(b + 108);
  int scales[16];
  for (int i = 0; i < 16; ++i) {
    const int low = i < 8 ? byte_at(raw + i) & 0xf : byte_at(raw + i - 8) >> 4;
    const int high = (byte_at(raw + 8 + i % 4) >> (2 * (i / 4))) & 3;
    scales[i] = (low | (high << 4)) - 32;
  }
  int is = 0;
  unsigned m = 1;  // the hmask bit of this group of 32; advances across both halves
  for (int n = 0; n < 2; ++n) {
    const std::byte* q = b + 32 + 32 * n;
    for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
      for (int half = 0; half < 2; ++half) {
        const float dl = d * static_cast<float>(scales[is++]);
        for (int l = 0; l < 16; ++l) {
          const int k = 16 * half + l;
          const int value = ((byte_at(q + k) >> shift) & 3) - ((byte_at(hmask + k) & m) ? 0 : 4);
          *y++ = dl * static_cast<float>(value);
        }
      }
    }
  }
}

// Q4_K / Q5_K: eight (scale, min) pairs of 6 bits in 12 bytes. Pairs 0..3 are
// the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); pairs 4..7 take
// their low nibbles from bytes 8..11 (scale low, min high nibble) and their
// top two bits from the top of bytes 0..3 (scales) and 4..7 (mins).
void scale_min_k4(int j, const std::byte* q, int& scale, int& min) {
  if (j < 4) {
    scale = byte_at(q + j) & 63;
    min = byte_at(q + j + 4) & 63;
  } else {
    scale = (byte_at(q + j + 4) & 0xf) | ((byte_at(q + j - 4) >> 6) << 4);
    min = (byte_at(q + j + 4) >> 4) | ((byte_at(q + j) >> 6) << 4);
  }
}

// Q4_K: d, dmin, scales[12], qs[128]. Groups of 64: 32 low nibbles then 32 high.
void dequantize_q4_k(const std::byte* b, float* y) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const std::byte* scales = b + 4;
  for (int j = 0; j < 4; ++j) {
    const std::byte* q = b + 16 + 32 * j;
    int sc, mn;
    scale_min_k4(2 * j, scales, sc, mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    scale_min_k4(2 * j + 1, scales, sc, mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(byte_at(q + l) & 0xf) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(byte_at(q + l) >> 4) - m2;
  }
}

// Q5_K: d, dmin, scales[12], qh[32], qs[128]. Group j's fifth bits are bits
// 2j (low nibbles) and 2j+1 (high nibbles) of qh[l].
void dequantize_q5_k(const std::byte* b, float* y) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const std::byte* scales = b + 4;
  const std::byte* qh = b + 16;
  for (int j = 0; j < 4; ++j) {
    const std::byte* q = b + 48 + 32 * j;
    int sc, mn;
    scale_min_k4(2 * j, scales, sc, mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    scale_min_k4(2 * j + 1, scales, sc, mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    const unsigned u1 = 1u << (2 * j), u2 = 2u << (2 * j);
    for (int l = 0; l < 32; ++l)
      *y++ = d1 * static_cast<float>((byte_at(q + l) & 0xf) + ((byte_at(qh + l) & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l)
      *y++ = d2 * static_cast<float>((byte_at(q + l) >> 4) + ((byte_at(qh + l) & u2) ? 16 : 0)) - m2;
  }
}

// Q6_K: ql[128], qh[64], scales[16] (int8), d. Each half of 128 elements
// takes 64 ql bytes, 32 qh bytes and 8 scales; element l + 32k of a half
// has its low nibble from ql[l + 32 (k & 1)] (k < 2: low, else high nibble)
// and its top two bits from qh[l] bits 2k.
void dequantize_q6_k(const std::byte* b, float* y) {
  const float d = half_at(b + 208);
  for (int n = 0; n < 2; ++n) {
    const std::byte* ql = b + 64 * n;
    const std::byte* qh = b + 128 + 32 * n;
    const std::byte* sc = b + 192 + 8 * n;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int h = byte_at(qh + l);
      const int q1 = ((byte_at(ql + l) & 0xf) | ((h & 3) << 4)) - 32;
      const int q2 = ((byte_at(ql + l + 32) & 0xf) | (((h >> 2) & 3) << 4)) - 32;
      const int q3 = ((byte_at(ql + l) >> 4) | (((h >> 4) & 3) << 4)) - 32;
      const int q4 = ((byte_at(ql + l + 32) >> 4) | (((h >> 6) & 3) << 4)) - 32;
      auto scale = [&](int k) { return d * static_cast<float>(static_cast<int8_t>(byte_at(sc + is + k))); };
      y[l] = scale(0) * static_cast<float>(q1);
      y[l + 32] = scale(2) * static_cast<float>(q2);
      y[l + 64] = scale(4) * static_cast<float>(q3);
      y[l + 96] = scale(6) * static_cast<float>(q4);
    }
    y += 128;
  }
}

// Q8_K: float32 d, qs[256] (int8), bsums[16] (int16, unused here).
void dequantize_q8_k(const std::byte* b, float* y) {
  const float d = std::bit_cast<float>(le32(b));
  for (size_t j = 0; j < kQK; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(byte_at(b + 4 + j)));
}

// Affine forms (see affine_layout): each writes one ggml block as codes
// q[] and (d, m) per affine block, in dequantize_*'s order of float operations
// for d and m, so fmaf(d, q, m) is its float exactly.
void affine_q4_0(const std::byte* b, uint8_t* q, float* d, float* m) {
  d[0] = half_at(b);
  m[0] = -8.0f * d[0];
  for (int j = 0; j < 16; ++j) {
    q[j] = byte_at(b + 2 + j) & 0xf;
    q[j + 16] = byte_at(b + 2 + j) >> 4;
  }
}

void affine_q4_1(const std::byte* b, uint8_t* q, float* d, float* m) {
  d[0] = half_at(b);
  m[0] = half_at(b + 2);
  for (int j = 0; j < 16; ++j) {
    q[j] = byte_at(b + 4 + j) & 0xf;
    q[j + 16] = byte_at(b + 4 + j) >> 4;
  }
}

void q5_codes(const std::byte* qs, uint32_t qh, uint8_t* q) {
  for (int j = 0; j < 16; ++j) {
    q[j] = static_cast<uint8_t>((byte_at(qs + j) & 0xf) | (((qh >> j) & 1u) << 4));
    q[j + 16] = static_cast<uint8_t>((byte_at(qs + j) >> 4) | (((qh >> (j + 16)) & 1u) << 4));
  }
}

void affine_q5_0(const std::byte* b, uint8_t* q, float* d, float* m) {
  d[0] = half_at(b);
  m[0] = -16.0f * d[0];
  q5_codes(b + 6, le32(b + 2), q);
}

void affine_q5_1(const std::byte* b, uint8_t* q, float* d, float* m) {
  d[0] = half_at(b);
  m[0] = half_at(b + 2);
  q5_codes(b + 8, le32(b + 4), q);
}

// Signed 8-bit values as value + 128 with m = -128 d.
void affine_signed8(float scale, const std::byte* qs, int count, uint8_t* q, float* d, float* m) {
  d[0] = scale;
  m[0] = -128.0f * scale;
  for (int j = 0; j < count; ++j) q[j] = static_cast<uint8_t>(byte_at(qs + j) ^ 0x80);
}

void affine_q8_0(const std::byte* b, uint8_t* q, float* d, float* m) { affine_signed8(half_at(b), b + 2, 32, q, d, m); }
void affine_q8_1(const std::byte* b, uint8_t* q, float* d, float* m) { affine_signed8(half_at(b), b + 4, 32, q, d, m); }
void affine_q8_k(const std::byte* b, uint8_t* q, float* d, float* m) {
  const float scale = std::bit_cast<float>(le32(b));
  for (int j = 0; j < 8; ++j) affine_signed8(scale, b + 4 + 32 * j, 32, q + 32 * j, d + j, m + j);
}

// Q4_K / Q5_K: sub-block j's d * scale and -(dmin * min).
void k4_affine(const std::byte* b, int j, float* d, float* m) {
  int sc, mn;
  scale_min_k4(j, b + 4, sc, mn);
  d[j] = half_at(b) * static_cast<float>(sc);
  m[j] = -(half_at(b + 2) * static_cast<float>(mn));
}

void affine_q4_k(const std::byte* b, uint8_t* q, float* d, float* m) {
  for (int j = 0; j < 8; ++j) {
    k4_affine(b, j, d, m);
    const std::byte* qs = b + 16 + 32 * (j / 2);
    for (int l = 0; l < 32; ++l) q[32 * j + l] = (j % 2) ? byte_at(qs + l) >> 4 : byte_at(qs + l) & 0xf;
  }
}

void affine_q5_k(const std::byte* b, uint8_t* q, float* d, float* m) {
  const std::byte* qh = b + 16;
  for (int j = 0; j < 8; ++j) {
    k4_affine(b, j, d, m);
    const std::byte* qs = b + 48 + 32 * (j / 2);
    for (int l = 0; l < 32; ++l) {
      const int low = (j % 2) ? byte_at(qs + l) >> 4 : byte_at(qs + l) & 0xf;
      q[32 * j + l] = static_cast<uint8_t>(low + ((byte_at(qh + l) >> j) & 1) * 16);
    }
  }
}

// Q6_K: the raw 6-bit q (value + 32), m = -32 d per 16.
void affine_q6_k(const std::byte* b, uint8_t* q, float* d, float* m) {
  const float dd = half_at(b + 208);
  for (int n = 0; n < 2; ++n) {
    const std::byte* ql = b + 64 * n;
    const std::byte* qh = b + 128 + 32 * n;
    const std::byte* sc = b + 192 + 8 * n;
    for (int s = 0; s < 8; ++s) {
      d[8 * n + s] = dd * static_cast<float>(static_cast<int8_t>(byte_at(sc + s)));
      m[8 * n + s] = -32.0f * d[8 * n + s];
    }
    // Sub-block s = is + 2k covers elements 16 s .. of this half: l + 32 k with l / 16 = is.
    uint8_t* y = q + 128 * n;
    for (int l = 0; l < 32; ++l) {
      const int h = byte_at(qh + l);
      y[l] = static_cast<uint8_t>((byte_at(ql + l) & 0xf) | ((h & 3) << 4));
      y[l + 32] = static_cast<uint8_t>((byte_at(ql + l + 32) & 0xf) | (((h >> 2) & 3) << 4));
      y[l + 64] = static_cast<uint8_t>((byte_at(ql + l) >> 4) | (((h >> 4) & 3) << 4));
      y[l + 96] = static_cast<uint8_t>((byte_at(ql + l + 32) >> 4) | (((h >> 6) & 3) << 4));
    }
  }
}

void affine_q2_k(const std::byte* b, uint8_t* q, float* d, float* m) {
  const float dd = half_at(b + 80), dmin = half_at(b + 82);
  int is = 0;
  for (int n = 0; n < 2; ++n) {
    const std::byte* qs = b + 16 + 32 * n;
    for (int shift = 0; shift < 8; shift += 2)
      for (int half = 0; half < 2; ++half, ++is) {
        const uint8_t sc = byte_at(b + is);
        d[is] = dd * static_cast<float>(sc & 0xf);
        m[is] = -(dmin * static_cast<float>(sc >> 4));
        for (int l = 0; l < 16; ++l) q[16 * is + l] = (byte_at(qs + 16 * half + l) >> shift) & 3;
      }
  }
}

// Q3_K: value = code - 4 with code = 2 low bits + 4 * the hmask bit.
void affine_q3_k(const std::byte* b, uint8_t* q, float* d, float* m) {
  const std::byte* hmask = b;
  const std::byte* raw = b + 96;
  const float dd = half_at(b + 108);
  int is = 0;
  unsigned bit = 1;
  for (int n = 0; n < 2; ++n) {
    const std::byte* qs = b + 32 + 32 * n;
    for (int shift = 0; shift < 8; shift += 2, bit <<= 1)
      for (int half = 0; half < 2; ++half, ++is) {
        const int low = is < 8 ? byte_at(raw + is) & 0xf : byte_at(raw + is - 8) >> 4;
        const int high = (byte_at(raw + 8 + is % 4) >> (2 * (is / 4))) & 3;
        d[is] = dd * static_cast<float>((low | (high << 4)) - 32);
        m[is] = -4.0f * d[is];
        for (int l = 0; l < 16; ++l) {
          const int k = 16 * half + l;
          q[16 * is + l] = static_cast<uint8_t>(((byte_at(qs + k) >> shift) & 3) + ((byte_at(hmask + k) & bit) ? 4 : 0));
        }
      }
  }
}

using AffineFn = void (*)(const std::byte*, uint8_t*, float*, float*);

struct AffineType {
  GgmlType type;
  AffineLayout layout;
  AffineFn fn;
};

constexpr AffineType kAffineTypes[] = {
    {GgmlType::q4_0, {32, 4}, affine_q4_0}, {GgmlType::q4_1, {32, 4}, affine_q4_1},
    {GgmlType::q4_k, {32, 4}, affine_q4_k}, {GgmlType::q5_0, {32, 5}, affine_q5_0},
    {GgmlType::q5_1, {32, 5}, affine_q5_1}, {GgmlType::q5_k, {32, 5}, affine_q5_k},
    {GgmlType::q8_0, {32, 8}, affine_q8_0}, {GgmlType::q8_1, {32, 8}, affine_q8_1},
    {GgmlType::q8_k, {32, 8}, affine_q8_k}, {GgmlType::q6_k, {16, 6}, affine_q6_k},
    {GgmlType::q3_k, {16, 3}, affine_q3_k}, {GgmlType::q2_k, {16, 2}, affine_q2_k},
};

using BlockFn = void (*)(const std::byte*, float*);

BlockFn block_function(GgmlType type) {
  switch (type) {
    case GgmlType::q4_0:
      return dequantize_q4_0;
    case GgmlType::q4_1:
      return dequantize_q4_1;
    case GgmlType::q5_0:
      return dequantize_q5_0;
    case GgmlType::q5_1:
      return dequantize_q5_1;
    case GgmlType::q8_0:
      return dequantize_q8_0;
    case GgmlType::q8_1:
      return dequantize_q8_1;
    case GgmlType::q2_k:
      return dequantize_q2_k;
    case GgmlType::q3_k:
      return dequantize_q3_k;
    case GgmlType::q4_k:
      return dequantize_q4_k;
    case GgmlType::q5_k:
      return dequantize_q5_k;
    case GgmlType::q6_k:
      return dequantize_q6_k;
    case GgmlType::q8_k:
      return dequantize_q8_k;
    default:
      return nullptr;
  }
}

std::string supported_types() {
  std::string out;
  for (const auto& t : kGgmlTypes)
    if (t.dequantizable) out += (out.empty() ? "" : ", ") + std::string(t.name);
  return out;
}

[[noreturn]] void not_dequantizable(const std::string& file, const std::string& field, GgmlType type) {
  throw Error(ErrorKind::unsupported, file, field,
              fmt::format("dequantizing {} is not supported (supported: {})", ggml_type_name(type), supported_types()));
}

}  // namespace

void dequantize_blocks(GgmlType type, std::span<const std::byte> blocks, std::span<float> out) {
  const GgmlTypeInfo info = ggml_type_info(type);
  if (!info.dequantizable) not_dequantizable("", "", type);
  if (out.size() % info.block_size != 0)
    throw Error(
        ErrorKind::invalid_argument, "", "",
        fmt::format("{} floats are not a whole number of {} blocks of {}", out.size(), info.name, info.block_size));
  const size_t n_blocks = out.size() / info.block_size;
  if (blocks.size() != n_blocks * info.block_bytes)
    throw Error(ErrorKind::invalid_argument, "", "",
                fmt::format("{} bytes of {}, but {} floats need {}", blocks.size(), info.name, out.size(),
                            n_blocks * info.block_bytes));
  const std::byte* src = blocks.data();
  float* y = out.data();
  switch (type) {
    case GgmlType::f32:
      for (size_t i = 0; i < out.size(); ++i) y[i] = std::bit_cast<float>(le32(src + 4 * i));
      return;
    case GgmlType::f16:
      for (size_t i = 0; i < out.size(); ++i) y[i] = fp16_to_f32(le16(src + 2 * i));
      return;
    case GgmlType::bf16:
      for (size_t i = 0; i < out.size(); ++i) y[i] = bf16_to_f32(le16(src + 2 * i));
      return;
    default:
      break;
  }
  const BlockFn fn = block_function(type);
  for (size_t i = 0; i < n_blocks; ++i) fn(src + i * info.block_bytes, y + i * info.block_size);
}

std::optional<AffineLayout> affine_layout(GgmlType type) noexcept {
  for (const AffineType& t : kAffineTypes)
    if (t.type == type) return t.layout;
  return std::nullopt;
}

void affine_row(const GgufTensor& tensor, int64_t row, std::span<uint8_t> codes, std::span<float> d,
                std::span<float> m) {
  const AffineType* type = nullptr;
  for (const AffineType& t : kAffineTypes)
    if (t.type == tensor.type) type = &t;
  if (!type)
    throw Error(ErrorKind::unsupported, tensor.file, tensor.name,
                fmt::format("{} has no affine block form", ggml_type_name(tensor.type)));
  const int64_t rows = tensor.rows(), length = tensor.row_length();
  if (row < 0 || row >= rows)
    throw Error(ErrorKind::invalid_argument, tensor.file, tensor.name, fmt::format("row {} of {}", row, rows));
  const size_t block = type->layout.block;
  if (static_cast<int64_t>(codes.size()) != length || d.size() * block != codes.size() || m.size() != d.size())
    throw Error(ErrorKind::invalid_argument, tensor.file, tensor.name,
                fmt::format("room for {} codes and {} blocks, a row has {} elements", codes.size(), d.size(), length));
  const GgmlTypeInfo info = ggml_type_info(tensor.type);
  const size_t row_bytes = tensor.nbytes / static_cast<size_t>(rows);
  const std::byte* src = tensor.data + static_cast<size_t>(row) * row_bytes;
  const size_t per_ggml = info.block_size / block;  // affine blocks per ggml block
  for (size_t i = 0; i < codes.size() / info.block_size; ++i)
    type->fn(src + i * info.block_bytes, codes.data() + i * info.block_size, d.data() + i * per_ggml,
             m.data() + i * per_ggml);
}

void dequantize(const GgufTensor& tensor, std::span<float> out) {
  if (!ggml_type_info(tensor.type).dequantizable) not_dequantizable(tensor.file, tensor.name, tensor.type);
  if (static_cast<int64_t>(out.size()) != tensor.numel())
    throw Error(ErrorKind::invalid_argument, tensor.file, tensor.name,
                fmt::format("output holds {} floats, the tensor has {}", out.size(), tensor.numel()));
  dequantize_blocks(tensor.type, tensor.bytes(), out);
}

void dequantize_row(const GgufTensor& tensor, int64_t row, std::span<float> out) {
  if (!ggml_type_info(tensor.type).dequantizable) not_dequantizable(tensor.file, tensor.name, tensor.type);
  const int64_t rows = tensor.rows(), length = tensor.row_length();
  if (row < 0 || row >= rows)
    throw Error(ErrorKind::invalid_argument, tensor.file, tensor.name, fmt::format("row {} of {}", row, rows));
  if (static_cast<int64_t>(out.size()) != length)
    throw Error(ErrorKind::invalid_argument, tensor.file, tensor.name,
                fmt::format("output holds {} floats, a row has {}", out.size(), length));
  const size_t row_bytes = tensor.nbytes / static_cast<size_t>(rows);
  dequantize_blocks(tensor.type, tensor.bytes().subspan(static_cast<size_t>(row) * row_bytes, row_bytes), out);
}

}  // namespace musespark::detail
