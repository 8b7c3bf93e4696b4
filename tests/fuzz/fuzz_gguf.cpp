// A GGUF file: header, metadata of every value type, tensor infos, data.
// Parsed from memory (GgufFile::parse runs the same checks as open); then
// every value is read back, every tensor's first and last byte touched, and
// small dequantizable tensors converted.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "common/gguf.hpp"
#include "musespark/error.hpp"

namespace {

using namespace musespark::detail;

// Reads `v` back with the accessors; `budget` caps the values visited in all.
size_t visit(const GgufValue& v, int& budget) {
  size_t n = 0;
  if (--budget < 0) return 0;
  try {
    switch (v.type()) {
      case GgufValueType::string:
        n += v.as_string().size();
        break;
      case GgufValueType::array: {
        n += static_cast<size_t>(v.size());
        if (v.element_type() == GgufValueType::string) n += v.as_string_array().size();
        // Elements one by one (a few: at() walks from the start each time).
        for (uint64_t i = 0; i < v.size() && budget > 0; ++i) n += visit(v.at(i), budget);
        break;
      }
      case GgufValueType::f32:
      case GgufValueType::f64:
        n += v.as_f32() > 0;
        break;
      case GgufValueType::bool_:
        n += v.as_bool();
        break;
      default:
        n += static_cast<size_t>(v.as_i64() & 1);
        break;  // may throw for a huge u64: fine
    }
  } catch (const musespark::Error&) {
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size copy: a read past the end is a heap overflow ASan reports.
  std::vector<std::byte> bytes(size);
  if (size) std::memcpy(bytes.data(), data, size);
  try {
    const GgufFile file = GgufFile::parse(bytes, "fuzz.gguf");
    size_t sum = 0;
    int budget = 4096;
    for (const GgufValue& v : file.metadata()) sum += visit(v, budget);
    try {
      sum += file.architecture().size();
    } catch (const musespark::Error&) {
    }
    std::vector<float> out;
    for (const GgufTensor& t : file.tensors()) {
      if (t.nbytes > 0) sum += static_cast<size_t>(t.data[0]) + static_cast<size_t>(t.data[t.nbytes - 1]);
      if (!ggml_type_info(t.type).dequantizable || t.numel() > (1 << 16)) continue;
      out.resize(static_cast<size_t>(t.numel()));
      dequantize(t, out);
      if (t.numel() > 0)
        dequantize_row(t, t.rows() - 1, std::span<float>(out).first(static_cast<size_t>(t.row_length())));
    }
    (void)sum;
  } catch (const musespark::Error&) {
  }
  return 0;
}
