// Reading GGUF files (llama.cpp's single-file format) and dequantizing their
// tensors to float with a scalar reference implementation.
//
// The format (version 3; version 2 has the same little-endian layout):
//   "GGUF", u32 version, u64 tensor_count, u64 metadata_kv_count,
//   metadata_kv_count x (string key, u32 value type, value),
//   tensor_count x (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type,
//                   u64 offset),
//   padding to `general.alignment` (default 32), then the data section;
//   each tensor's offset is relative to the data section and aligned.
// A string is a u64 byte length and that many bytes (no terminator). An
// array is a u32 element type, a u64 count and the elements; arrays nest.
// dims[0] is the fastest-varying dimension: the row length.
//
// The file is memory-mapped read-only and everything is validated before
// open() returns: every read is bounds-checked, counts are checked against
// the bytes left before anything is allocated, and each tensor's byte range
// must lie inside the file. Metadata values are not copied: a GgufValue is a
// view of its bytes in the mapping, decoded when asked for.
// No torch here; this layer knows nothing of models.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace musespark::detail {

// Tensor element types, numbered as in ggml (gaps are types ggml removed).
enum class GgmlType : uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q8_1 = 9,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  q8_k = 15,
  iq2_xxs = 16,
  iq2_xs = 17,
  iq3_xxs = 18,
  iq1_s = 19,
  iq4_nl = 20,
  iq3_s = 21,
  iq2_s = 22,
  iq4_xs = 23,
  i8 = 24,
  i16 = 25,
  i32 = 26,
  i64 = 27,
  f64 = 28,
  iq1_m = 29,
  bf16 = 30,
  tq1_0 = 34,
  tq2_0 = 35,
  mxfp4 = 39,
};

// How a ggml type is stored: `block_size` elements take `block_bytes` bytes.
struct GgmlTypeInfo {
  GgmlType type;
  std::string_view name;  // ggml's spelling: "F32", "Q4_K", "IQ2_XXS", ...
  uint32_t block_size;
  uint32_t block_bytes;
  bool dequantizable;  // dequantize() supports it
};

// The type numbered `number`; std::nullopt for a number ggml does not define
// (or that this reader does not know).
std::optional<GgmlTypeInfo> ggml_type_info(uint32_t number) noexcept;
// The same for a GgmlType value (always found for the enumerators above).
GgmlTypeInfo ggml_type_info(GgmlType type) noexcept;
std::string_view ggml_type_name(GgmlType type) noexcept;

// Metadata value types, numbered as in the GGUF specification.
enum class GgufValueType : uint32_t {
  u8 = 0,
  i8 = 1,
  u16 = 2,
  i16 = 3,
  u32 = 4,
  i32 = 5,
  f32 = 6,
  bool_ = 7,
  string = 8,
  array = 9,
  u64 = 10,
  i64 = 11,
  f64 = 12,
};

// "uint8", "int8", ..., "float64", "bool", "string", "array": the spelling
// used in error messages.
std::string_view gguf_value_type_name(GgufValueType type) noexcept;

// One metadata value: a view of its bytes inside the file it came from, valid
// while that GgufFile (or a copy of it) lives. Cheap to copy.
//
// The typed accessors throw Error{format} naming the file and the key when
// the value has another type or is out of the asked-for range, e.g.
//     model.gguf: qwen3.block_count: expected an unsigned 32-bit integer, got string
// Integer accessors take any integer type whose value fits (a u64 of 28 is
// a fine u32); float accessors take float32 or float64; the rest must match.
class GgufValue {
 public:
  GgufValueType type() const noexcept { return type_; }
  // The metadata key, or "key[i]" for an element of an array.
  const std::string& key() const noexcept { return key_; }

  uint64_t as_u64() const;
  int64_t as_i64() const;
  uint32_t as_u32() const;
  int32_t as_i32() const;
  double as_f64() const;
  float as_f32() const;  // a float64 is rounded to float32
  bool as_bool() const;
  // A view into the mapping. GGUF strings are meant to be UTF-8; that is not checked.
  std::string_view as_string() const;

  // Arrays. element_type() and size() throw unless type() is array.
  GgufValueType element_type() const;
  uint64_t size() const;
  // Element i (< size()), decoded by walking the array: O(i) for arrays of
  // strings or arrays, O(1) otherwise.
  GgufValue at(uint64_t i) const;
  // Every element, converted as the scalar accessors do (so an array of int8
  // is a fine int64 array); throw naming "key[i]" for an element that is not.
  std::vector<int64_t> as_i64_array() const;
  std::vector<int32_t> as_i32_array() const;
  std::vector<float> as_f32_array() const;
  std::vector<std::string> as_string_array() const;

 private:
  friend struct GgufParser;
  [[noreturn]] void wrong_type(std::string_view expected) const;

  GgufValueType type_ = GgufValueType::u8;
  GgufValueType element_type_ = GgufValueType::u8;  // arrays only
  uint64_t count_ = 0;                              // arrays only
  // The encoded value: a scalar's bytes, a string's characters, or an
  // array's elements (after its type and count).
  std::span<const std::byte> bytes_;
  std::string key_;
  std::shared_ptr<const std::string> file_;  // for error messages
};

// One tensor of a GgufFile. `data` points into the read-only mapping and is
// valid while the owning GgufFile (or a copy of it) lives. Never write through it.
struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::f32;
  // As GGUF lists it: shape[0] is the row length (fastest-varying). This is
  // the reverse of the PyTorch / safetensors order. 0 to 4 dimensions.
  std::vector<int64_t> shape;
  uint64_t offset = 0;  // from the start of the data section
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // the file holding it, for error messages

  int64_t numel() const noexcept;
  // shape[0] (1 for a 0-d tensor) and the number of such rows.
  int64_t row_length() const noexcept;
  int64_t rows() const noexcept;
  std::span<const std::byte> bytes() const noexcept { return {data, nbytes}; }
};

// One parsed GGUF file. Cheap to copy (shared, immutable state); const members
// are thread-safe.
class GgufFile {
 public:
  // Maps and validates `path`. Throws Error{io} if it cannot be read, and
  // Error{format} naming the file and the field for: a wrong magic, a
  // truncated header, key, value or tensor info, a count or length that
  // cannot fit in the bytes left, an unknown value type, a bool other than
  // 0/1, arrays nested more than 16 deep, a duplicate key or tensor name,
  // `general.alignment` that is not a uint32 power of two, more than 4
  // dimensions, dimensions whose product overflows int64, a row length that
  // is not a multiple of the type's block size, an offset that is not
  // aligned, a tensor whose bytes run past the end of the file, or two
  // tensors that overlap. An unknown ggml type number gives Error{format}
  // naming the tensor and the number; a version other than 2 or 3 gives
  // Error{unsupported} naming the number.
  static GgufFile open(const std::filesystem::path& path);
  // The same checks on bytes already in memory; `name` stands for the file in
  // error messages. Nothing is copied: `bytes` must outlive the result and
  // every view of it.
  static GgufFile parse(std::span<const std::byte> bytes, const std::string& name);

  const std::string& path() const noexcept;
  uint32_t version() const noexcept;
  uint32_t alignment() const noexcept;
  // Offset of the data section from the start of the file.
  uint64_t data_offset() const noexcept;

  // Metadata in file order.
  const std::vector<GgufValue>& metadata() const noexcept;
  // nullptr when absent. Valid while this object (or a copy) lives.
  const GgufValue* find(std::string_view key) const;
  // The value of `key`; throws Error{format} "missing" naming the file and the key.
  const GgufValue& require(std::string_view key) const;
  uint32_t get_u32(std::string_view key) const { return require(key).as_u32(); }
  uint64_t get_u64(std::string_view key) const { return require(key).as_u64(); }
  int32_t get_i32(std::string_view key) const { return require(key).as_i32(); }
  int64_t get_i64(std::string_view key) const { return require(key).as_i64(); }
  float get_f32(std::string_view key) const { return require(key).as_f32(); }
  double get_f64(std::string_view key) const { return require(key).as_f64(); }
  bool get_bool(std::string_view key) const { return require(key).as_bool(); }
  std::string get_string(std::string_view key) const { return std::string(require(key).as_string()); }
  std::vector<std::string> get_string_array(std::string_view key) const { return require(key).as_string_array(); }
  std::vector<int32_t> get_i32_array(std::string_view key) const { return require(key).as_i32_array(); }
  std::vector<int64_t> get_i64_array(std::string_view key) const { return require(key).as_i64_array(); }
  std::vector<float> get_f32_array(std::string_view key) const { return require(key).as_f32_array(); }
  // `general.architecture` ("llama", "qwen3", ...); throws as get_string does.
  std::string architecture() const { return get_string("general.architecture"); }

  // Tensors in file order.
  const std::vector<GgufTensor>& tensors() const noexcept;
  // nullptr when absent. Valid while this object (or a copy) lives.
  const GgufTensor* find_tensor(std::string_view name) const;

 private:
  struct State;
  // Parses `bytes`, which `owner` (if any) keeps alive.
  static GgufFile load(std::span<const std::byte> bytes, const std::string& name, std::shared_ptr<const void> owner);
  std::shared_ptr<const State> state_;
};

// Converts a whole tensor to float, in GGUF element order (row by row).
// `out.size()` must be tensor.numel(), else Error{invalid_argument}. A type
// that is not dequantizable gives Error{unsupported} naming the file, the
// tensor and the type. Supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K — with ggml's arithmetic, so
// the floats are bit-identical to ggml's reference dequantize_row_*.
// Thread-safe (reads the tensor, writes only `out`).
void dequantize(const GgufTensor& tensor, std::span<float> out);
// Row `row` (< tensor.rows()) only; `out.size()` must be tensor.row_length().
void dequantize_row(const GgufTensor& tensor, int64_t row, std::span<float> out);
// The building block: `out.size()` elements (a multiple of the block size) of
// `type` from `blocks`, which must hold exactly out.size() / block_size blocks.
// Throws Error{invalid_argument} on a size mismatch, Error{unsupported} for a
// type that is not dequantizable.
void dequantize_blocks(GgmlType type, std::span<const std::byte> blocks, std::span<float> out);

// The affine form of a block-quantised type, for kernels that multiply the
// codes themselves (kernels/packed_linear.hpp's q4 and q8b): every `block`
// consecutive elements share a scale d and an offset m, and element i is
// fmaf(d, code_i, m) with code_i an unsigned integer below 2^code_bits —
// bit-identical to dequantize()'s float. Q4_0, Q4_1, Q4_K (4-bit codes,
// blocks of 32); Q5_0, Q5_1, Q5_K, Q8_0, Q8_1, Q8_K (blocks of 32), Q6_K,
// Q3_K, Q2_K (blocks of 16), with up to 8-bit codes (signed values are
// stored as value + 2^(bits-1), the offset folded into m). std::nullopt for
// every other type.
struct AffineLayout {
  uint32_t block;
  uint32_t code_bits;
};
std::optional<AffineLayout> affine_layout(GgmlType type) noexcept;
// Row `row` of `tensor` in affine form: row_length() codes and
// row_length() / block pairs (d, m). Throws as dequantize_row does, and
// Error{unsupported} naming the tensor for a type without an affine form.
void affine_row(const GgufTensor& tensor, int64_t row, std::span<uint8_t> codes, std::span<float> d,
                std::span<float> m);

// IEEE half and bfloat16 bits to float, exactly (subnormals, infinities, NaN).
float fp16_to_f32(uint16_t bits) noexcept;
float bf16_to_f32(uint16_t bits) noexcept;

}  // namespace musespark::detail
