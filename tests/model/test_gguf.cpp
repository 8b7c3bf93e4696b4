// GGUF reading and dequantization, against files written by an independent
// Python writer and numpy quantizer (tests/model/make_gguf.py), plus broken
// files that must each fail with an Error naming the file and the field.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <set>
#include <vector>

#include "common/gguf.hpp"
#include "musespark/error.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using musespark::Error;
using musespark::ErrorKind;
using namespace musespark::detail;
using nlohmann::json;

namespace {

// The files of make_gguf.py, written once per test process.
const fs::path& generated() {
  static const fs::path dir = [] {
    fs::path d = test_support::process_dir("gguf");
    test_support::run(std::string(MUSESPARK_PYTHON) + " " +
                      (test_support::source_dir() / "tests/model/make_gguf.py").string() + " " + d.string());
    return d;
  }();
  return dir;
}

const json& manifest() {
  static const json m = [] {
    std::ifstream in(generated() / "manifest.json");
    return json::parse(in);
  }();
  return m;
}

fs::path valid(const std::string& name) { return generated() / "valid" / name; }

std::vector<std::byte> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

// Equal bits, or both NaN (NaN payloads need not survive).
bool same_float(float a, float b) { return bits(a) == bits(b) || (std::isnan(a) && std::isnan(b)); }

template <class F>
Error expect_error(F&& f, ErrorKind kind) {
  try {
    f();
  } catch (const Error& e) {
    INFO("what(): " << e.what());
    CHECK(static_cast<int>(e.kind()) == static_cast<int>(kind));
    return e;
  }
  FAIL("no error thrown");
  return Error(ErrorKind::internal, "", "", "");
}

// Compares a value with its manifest entry, recursively for arrays.
void check_value(const GgufValue& v, int type, const json& expected) {
  INFO("key " << v.key());
  REQUIRE(static_cast<int>(v.type()) == type);
  switch (v.type()) {
    case GgufValueType::u8:
    case GgufValueType::u16:
    case GgufValueType::u32:
    case GgufValueType::u64:
      CHECK(v.as_u64() == expected.get<uint64_t>());
      break;
    case GgufValueType::i8:
    case GgufValueType::i16:
    case GgufValueType::i32:
    case GgufValueType::i64:
      CHECK(v.as_i64() == expected.get<int64_t>());
      break;
    case GgufValueType::f32:
      CHECK(bits(v.as_f32()) == bits(static_cast<float>(expected.get<double>())));
      break;
    case GgufValueType::f64:
      CHECK(std::bit_cast<uint64_t>(v.as_f64()) == std::bit_cast<uint64_t>(expected.get<double>()));
      break;
    case GgufValueType::bool_:
      CHECK(v.as_bool() == expected.get<bool>());
      break;
    case GgufValueType::string:
      CHECK(v.as_string() == expected.get<std::string>());
      break;
    case GgufValueType::array: {
      const json& items = expected.at("items");
      const int element_type = expected.at("element_type").get<int>();
      CHECK(static_cast<int>(v.element_type()) == element_type);
      REQUIRE(v.size() == items.size());
      for (size_t i = 0; i < items.size(); ++i) check_value(v.at(i), element_type, items[i]);
      break;
    }
  }
}

}  // namespace

TEST_CASE("gguf: type numbers and block layouts follow ggml") {
  struct Row {
    uint32_t number;
    const char* name;
    uint32_t block_size, block_bytes;
    bool dequantizable;
  };
  const Row rows[] = {
      {0, "F32", 1, 4, true},        {1, "F16", 1, 2, true},          {2, "Q4_0", 32, 18, true},
      {3, "Q4_1", 32, 20, true},     {6, "Q5_0", 32, 22, true},       {7, "Q5_1", 32, 24, true},
      {8, "Q8_0", 32, 34, true},     {9, "Q8_1", 32, 36, true},       {10, "Q2_K", 256, 84, true},
      {11, "Q3_K", 256, 110, true},  {12, "Q4_K", 256, 144, true},    {13, "Q5_K", 256, 176, true},
      {14, "Q6_K", 256, 210, true},  {15, "Q8_K", 256, 292, true},    {16, "IQ2_XXS", 256, 66, false},
      {20, "IQ4_NL", 32, 18, false}, {23, "IQ4_XS", 256, 136, false}, {28, "F64", 1, 8, false},
      {30, "BF16", 1, 2, true},      {35, "TQ2_0", 256, 66, false},   {39, "MXFP4", 32, 17, false},
  };
  for (const Row& r : rows) {
    INFO(r.name);
    auto info = ggml_type_info(r.number);
    REQUIRE(info.has_value());
    CHECK(info->name == r.name);
    CHECK(info->block_size == r.block_size);
    CHECK(info->block_bytes == r.block_bytes);
    CHECK(info->dequantizable == r.dequantizable);
    CHECK(static_cast<uint32_t>(info->type) == r.number);
  }
  for (uint32_t removed : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 1000u}) CHECK_FALSE(ggml_type_info(removed));
}

TEST_CASE("gguf: metadata of every value type round-trips") {
  for (const auto& [name, entry] : manifest().items()) {
    INFO(name);
    const GgufFile f = GgufFile::open(valid(name));
    CHECK(f.version() == entry["version"].get<uint32_t>());
    CHECK(f.alignment() == entry["alignment"].get<uint32_t>());
    const json& metadata = entry["metadata"];
    REQUIRE(f.metadata().size() == metadata.size());
    for (size_t i = 0; i < metadata.size(); ++i) {
      const std::string key = metadata[i]["key"];
      CHECK(f.metadata()[i].key() == key);  // file order
      const GgufValue* v = f.find(key);
      REQUIRE(v != nullptr);
      check_value(*v, metadata[i]["type"].get<int>(), metadata[i]["value"]);
    }
  }
}

TEST_CASE("gguf: typed getters convert what fits and name the key otherwise") {
  const GgufFile f = GgufFile::open(valid("types.gguf"));
  CHECK(f.architecture() == "qwen3");
  CHECK(f.get_u32("qwen3.block_count") == 28);
  CHECK(f.get_u64("qwen3.block_count") == 28);        // u32 widened
  CHECK(f.get_u32("qwen3.context_length") == 40960);  // u64 that fits
  CHECK(f.get_i64("test.u8") == 255);
  CHECK(f.get_i32("test.i8") == -128);
  CHECK(f.get_i64("test.i64") == INT64_MIN);
  CHECK(f.get_u64("test.u64") == UINT64_MAX);
  CHECK(f.get_f32("test.f32") == 1e-6f);
  CHECK(std::signbit(f.get_f32("test.f32_negzero")));
  CHECK(f.get_f64("test.f64") == 3.141592653589793);
  CHECK(f.get_f64("test.f32") == static_cast<double>(1e-6f));
  CHECK(f.get_bool("test.true"));
  CHECK_FALSE(f.get_bool("test.false"));
  CHECK(f.get_string("general.name") == "tiny \u00e9t\u00e9 \U0001f600");
  CHECK(f.get_string("general.empty").empty());
  CHECK(f.get_string("general.with_nul") == std::string("a\0b", 3));
  CHECK(f.get_string_array("tokenizer.ggml.tokens") ==
        std::vector<std::string>{"<s>", "", "\u0120hello", "\u4e16\u754c", std::string("a\0b", 3)});
  CHECK(f.get_i32_array("tokenizer.ggml.token_type") == std::vector<int32_t>{3, 1, 1, 1, 1});
  CHECK(f.get_f32_array("tokenizer.ggml.scores") == std::vector<float>{0.f, -1.f, -2.5f, -3.f, -4.f});
  CHECK(f.get_i64_array("test.arr_i8") == std::vector<int64_t>{-128, 0, 127});
  CHECK(f.get_i64_array("test.arr_u8") == std::vector<int64_t>{0, 1, 255});
  CHECK(f.get_i64_array("test.arr_empty").empty());
  // float64 elements are rounded: -1e300 becomes -inf.
  CHECK(f.get_f32_array("test.arr_f64") == std::vector<float>{static_cast<float>(0.1), -INFINITY});
  const GgufValue& nested = f.require("test.nested");
  REQUIRE(nested.size() == 4);
  CHECK(nested.at(1).as_string_array() == std::vector<std::string>{"x", "yz"});
  CHECK(nested.at(2).at(0).as_i64_array() == std::vector<int64_t>{-1});
  CHECK(nested.at(2).at(1).size() == 0);
  CHECK(nested.at(3).as_f32_array().empty());
  CHECK(f.require("test.nested_empty").size() == 0);

  const std::string file = valid("types.gguf").string();
  struct Bad {
    std::function<void()> call;
    ErrorKind kind;
    std::string field, message;
  };
  const std::vector<Bad> cases = {
      {[&] { f.get_u32("qwen3.missing"); }, ErrorKind::format, "qwen3.missing", "missing"},
      {[&] { f.get_u32("general.name"); }, ErrorKind::format, "general.name",
       "expected an unsigned 32-bit integer, got string"},
      {[&] { f.get_u32("test.negative_i32"); }, ErrorKind::format, "test.negative_i32", "got int32 -5"},
      {[&] { f.get_u32("test.u64"); }, ErrorKind::format, "test.u64", "got uint64 18446744073709551615"},
      {[&] { f.get_u64("test.negative_i32"); }, ErrorKind::format, "test.negative_i32", "unsigned"},
      {[&] { f.get_i64("test.u64"); }, ErrorKind::format, "test.u64", "64-bit signed"},
      {[&] { f.get_i32("test.u32"); }, ErrorKind::format, "test.u32", "32-bit integer"},
      {[&] { f.get_i32("test.i64"); }, ErrorKind::format, "test.i64", "32-bit integer"},
      {[&] { f.get_f32("test.u8"); }, ErrorKind::format, "test.u8", "expected a float, got uint8 255"},
      {[&] { f.get_bool("test.u8"); }, ErrorKind::format, "test.u8", "expected a bool"},
      {[&] { f.get_string("test.true"); }, ErrorKind::format, "test.true", "expected a string, got bool"},
      {[&] { f.get_string_array("test.arr_u32"); }, ErrorKind::format, "test.arr_u32[0]", "expected a string"},
      {[&] { f.get_string_array("general.name"); }, ErrorKind::format, "general.name", "expected an array"},
      {[&] { f.get_i32_array("tokenizer.ggml.tokens"); }, ErrorKind::format, "tokenizer.ggml.tokens[0]",
       "expected a 32-bit integer, got string"},
      {[&] { f.get_i32_array("test.arr_u32"); }, ErrorKind::format, "test.arr_u32[2]", "32-bit integer"},
      {[&] { f.get_f32_array("test.arr_i32"); }, ErrorKind::format, "test.arr_i32[0]", "expected a float"},
      {[&] { f.require("test.arr_u8").at(3); }, ErrorKind::invalid_argument, "test.arr_u8", "index 3"},
      {[&] { f.require("test.u8").size(); }, ErrorKind::format, "test.u8", "expected an array"},
      {[&] { f.get_string_array("test.nested_empty"); }, ErrorKind::format, "test.nested_empty",
       "array of strings, got an array of array"},
  };
  for (const Bad& c : cases) {
    INFO(c.field);
    Error e = expect_error(c.call, c.kind);
    CHECK(e.file() == file);
    CHECK(e.field() == c.field);
    CHECK_MESSAGE(e.message().find(c.message) != std::string::npos, e.message());
  }
}

TEST_CASE("gguf: tensor infos: names, types, shapes, offsets and bytes in the mapping") {
  for (const auto& [name, entry] : manifest().items()) {
    INFO(name);
    const GgufFile f = GgufFile::open(valid(name));
    CHECK(f.data_offset() == entry["data_offset"].get<uint64_t>());
    const json& tensors = entry["tensors"];
    REQUIRE(f.tensors().size() == tensors.size());
    const std::vector<std::byte> file_bytes = read_bytes(valid(name));
    for (size_t i = 0; i < tensors.size(); ++i) {
      const GgufTensor& t = f.tensors()[i];
      INFO(t.name);
      CHECK(t.name == tensors[i]["name"].get<std::string>());
      CHECK(static_cast<uint32_t>(t.type) == tensors[i]["type"].get<uint32_t>());
      CHECK(ggml_type_name(t.type) == tensors[i]["type_name"].get<std::string>());
      CHECK(t.shape == tensors[i]["shape"].get<std::vector<int64_t>>());
      CHECK(t.offset == tensors[i]["offset"].get<uint64_t>());
      CHECK(t.nbytes == tensors[i]["nbytes"].get<size_t>());
      CHECK(t.file == valid(name).string());
      CHECK(f.find_tensor(t.name) == &t);
      // The bytes are the file's, in place.
      const size_t at = static_cast<size_t>(f.data_offset() + t.offset);
      CHECK(std::memcmp(t.data, file_bytes.data() + at, t.nbytes) == 0);
    }
  }
  const GgufFile f = GgufFile::open(valid("types.gguf"));
  CHECK(f.find_tensor("nope") == nullptr);
  const GgufTensor& t3 = *f.find_tensor("q8_0_3d");
  CHECK(t3.numel() == 192);
  CHECK(t3.row_length() == 32);
  CHECK(t3.rows() == 6);
  const GgufTensor& scalar = *f.find_tensor("f32_scalar");
  CHECK(scalar.shape.empty());
  CHECK(scalar.numel() == 1);
  CHECK(f.find_tensor("f32_empty")->nbytes == 0);
}

TEST_CASE("gguf: dequantized values equal numpy's, bit for bit") {
  int compared = 0;
  for (const auto& [name, entry] : manifest().items()) {
    const GgufFile f = GgufFile::open(valid(name));
    for (const json& info : entry["tensors"]) {
      if (!info.contains("expected")) continue;
      const GgufTensor& t = *f.find_tensor(info["name"].get<std::string>());
      INFO(name << ": " << t.name << " (" << ggml_type_name(t.type) << ")");
      const fs::path expected_file = valid(info["expected"].get<std::string>());
      // (read_floats memcpy's into a null pointer for an empty file.)
      const std::vector<float> expected =
          fs::file_size(expected_file) ? test_support::read_floats(expected_file) : std::vector<float>{};
      REQUIRE(static_cast<int64_t>(expected.size()) == t.numel());
      std::vector<float> got(expected.size());
      dequantize(t, got);
      size_t mismatches = 0, first = 0;
      for (size_t i = 0; i < got.size(); ++i)
        if (!same_float(got[i], expected[i]) && mismatches++ == 0) first = i;
      CHECK_MESSAGE(mismatches == 0,
                    mismatches << " differ; first at " << first << ": " << got[first] << " vs " << expected[first]);
      // Row by row gives the same floats.
      std::vector<float> row(static_cast<size_t>(t.row_length()));
      for (int64_t r = 0; r < t.rows() && t.numel() > 0; ++r) {
        dequantize_row(t, r, row);
        CHECK(std::memcmp(row.data(), got.data() + r * t.row_length(), row.size() * sizeof(float)) == 0);
      }
      ++compared;
    }
  }
  CHECK(compared == 25);  // types.gguf: 15 types + 5 shapes; all_halves.gguf: 2; v2_align64.gguf: 3
}

TEST_CASE("gguf: affine block forms give the dequantized floats bit for bit") {
  std::set<std::string> types;
  for (const auto& [name, entry] : manifest().items()) {
    const GgufFile f = GgufFile::open(valid(name));
    for (const GgufTensor& t : f.tensors()) {
      const auto layout = affine_layout(t.type);
      if (!layout || t.numel() == 0) continue;
      INFO(name << ": " << t.name << " (" << ggml_type_name(t.type) << ")");
      const size_t n = static_cast<size_t>(t.row_length()), blocks = n / layout->block;
      std::vector<float> want(n), d(blocks), m(blocks);
      std::vector<uint8_t> codes(n);
      size_t mismatches = 0, too_big = 0;
      for (int64_t r = 0; r < t.rows(); ++r) {
        dequantize_row(t, r, want);
        affine_row(t, r, codes, d, m);
        for (size_t i = 0; i < n; ++i) {
          too_big += codes[i] >= (1u << layout->code_bits);
          // Bit for bit, but for the sign of a zero ((q - 8) * d is -0 for d < 0; d q + m is +0).
          const float got = std::fma(d[i / layout->block], float(codes[i]), m[i / layout->block]);
          mismatches += !same_float(got, want[i]) && !(got == 0 && want[i] == 0);
        }
      }
      CHECK(mismatches == 0);
      CHECK(too_big == 0);
      types.insert(std::string(ggml_type_name(t.type)));
    }
  }
  // Every type with an affine form was compared.
  CHECK(types == std::set<std::string>{"Q2_K", "Q3_K", "Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0",
                                       "Q8_1", "Q8_K"});
  CHECK_FALSE(affine_layout(GgmlType::f16));
  CHECK_FALSE(affine_layout(GgmlType::iq4_nl));
}

TEST_CASE("gguf: hand-made blocks: Q8_0 and Q4_K's packed 6-bit scales") {
  // Q8_0: d = 0.5 (fp16 0x3800), quants -2, 4, 0...
  std::vector<std::byte> q8(34, std::byte{0});
  q8[0] = std::byte{0x00};
  q8[1] = std::byte{0x38};
  q8[2] = std::byte{0xfe};
  q8[3] = std::byte{0x04};
  std::vector<float> out(32);
  dequantize_blocks(GgmlType::q8_0, q8, out);
  CHECK(out[0] == -1.f);
  CHECK(out[1] == 2.f);
  CHECK(out[2] == 0.f);

  // Q4_K: d = dmin = 1; every quant byte 0x21 (low nibble 1, high 2).
  // scales[1] = 0xc3: sub-block 1 scale 3, and 3 as the top bits of sub-block 5's scale;
  // scales[5] = 0x47: sub-block 1 min 7, and 1 as the top bits of sub-block 5's min;
  // scales[9] = 0x5a: sub-block 5's low nibbles: scale 0xa, min 5. So sub-block 5 has
  // scale 0xa | 3 << 4 = 58 and min 5 | 1 << 4 = 21.
  std::vector<std::byte> q4k(144, std::byte{0});
  q4k[0] = q4k[2] = std::byte{0x00};
  q4k[1] = q4k[3] = std::byte{0x3c};
  q4k[4 + 1] = std::byte{0xc3};
  q4k[4 + 5] = std::byte{0x47};
  q4k[4 + 9] = std::byte{0x5a};
  for (int i = 16; i < 144; ++i) q4k[i] = std::byte{0x21};
  std::vector<float> y(256);
  dequantize_blocks(GgmlType::q4_k, q4k, y);
  CHECK(y[0] == 0.f);           // sub-block 0: scale 0, min 0
  CHECK(y[32] == 3.f * 2 - 7);  // sub-block 1: the high nibbles of group 0
  CHECK(y[63] == -1.f);
  CHECK(y[160] == 58.f * 2 - 21);  // sub-block 5: the high nibbles of group 2
  CHECK(y[191] == 95.f);
  CHECK(y[192] == 0.f);  // sub-block 6: scale and min from zero bytes

  // fp16 edge cases.
  CHECK(fp16_to_f32(0x0001) == std::ldexp(1.f, -24));  // smallest subnormal
  CHECK(fp16_to_f32(0x03ff) == std::ldexp(1023.f, -24));
  CHECK(fp16_to_f32(0x7bff) == 65504.f);
  CHECK(std::isinf(fp16_to_f32(0xfc00)));
  CHECK(std::signbit(fp16_to_f32(0x8000)));
  CHECK(std::isnan(fp16_to_f32(0x7e00)));
  CHECK(bf16_to_f32(0x3f80) == 1.f);
}

TEST_CASE("gguf: dequantize refuses other types by name and wrong sizes") {
  const GgufFile f = GgufFile::open(valid("types.gguf"));
  const GgufTensor& iq = *f.find_tensor("iq4_nl");
  CHECK(iq.type == GgmlType::iq4_nl);
  CHECK(iq.nbytes == 2 * 2 * 18);
  std::vector<float> out(static_cast<size_t>(iq.numel()));
  Error e = expect_error([&] { dequantize(iq, out); }, ErrorKind::unsupported);
  CHECK(e.file() == iq.file);
  CHECK(e.field() == "iq4_nl");
  CHECK(e.message().find("dequantizing IQ4_NL is not supported") != std::string::npos);
  CHECK(e.message().find("Q4_K") != std::string::npos);  // says what is

  const GgufTensor& q = *f.find_tensor("blk.0.q4_k.weight");
  std::vector<float> small(10);
  e = expect_error([&] { dequantize(q, small); }, ErrorKind::invalid_argument);
  CHECK(e.field() == q.name);
  e = expect_error([&] { dequantize_row(q, 3, std::span<float>(out.data(), 512)); }, ErrorKind::invalid_argument);
  CHECK(e.message().find("row 3 of 3") != std::string::npos);
  expect_error([&] { dequantize_row(q, 0, small); }, ErrorKind::invalid_argument);
  std::vector<float> block(256);
  expect_error([&] { dequantize_blocks(GgmlType::q4_k, q.bytes().first(100), block); }, ErrorKind::invalid_argument);
  expect_error([&] { dequantize_blocks(GgmlType::q4_k, q.bytes().first(144), small); }, ErrorKind::invalid_argument);
}

TEST_CASE("gguf: broken files each name the file and the field") {
  struct Case {
    const char* file;
    ErrorKind kind;
    const char* field;
    const char* message;
  };
  const ErrorKind F = ErrorKind::format, U = ErrorKind::unsupported;
  const Case cases[] = {
      {"wrong_magic.gguf", F, "magic", "not a GGUF file"},
      {"empty.gguf", F, "magic", "truncated"},
      {"three_bytes.gguf", F, "magic", "truncated"},
      {"version_1.gguf", U, "version", "GGUF version 1 is not supported"},
      {"version_99.gguf", U, "version", "GGUF version 99 is not supported"},
      {"big_endian.gguf", U, "version", "big-endian"},
      {"kv_count_huge.gguf", F, "metadata_kv_count", "4611686018427387904 key-value pairs cannot fit"},
      {"tensor_count_huge.gguf", F, "tensor_count", "cannot fit"},
      {"string_past_end.gguf", F, "general.name", "string length 1000000 at offset"},
      {"key_past_end.gguf", F, "metadata[0].key", "runs past the end of the file"},
      {"array_count_huge.gguf", F, "test.big", "array of 4611686018427387904 uint32 cannot fit"},
      {"string_array_count_huge.gguf", F, "tokenizer.ggml.tokens", "cannot fit"},
      {"string_in_array_past_end.gguf", F, "tokenizer.ggml.tokens[1]", "string length 500"},
      {"nested_too_deep.gguf", F, "test.deep[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]", "nested more than 16"},
      {"unknown_value_type.gguf", F, "test.odd", "unknown value type 13"},
      {"unknown_element_type.gguf", F, "test.odd", "unknown array element type 42"},
      {"bool_2.gguf", F, "test.flag", "a bool must be 0 or 1, got 2"},
      {"duplicate_key.gguf", F, "general.architecture", "duplicate key"},
      {"empty_key.gguf", F, "metadata[1].key", "empty key"},
      {"alignment_0.gguf", F, "general.alignment", "must be a power of two, got 0"},
      {"alignment_48.gguf", F, "general.alignment", "must be a power of two, got 48"},
      {"alignment_u64.gguf", F, "general.alignment", "expected a uint32, got uint64"},
      {"offset_past_end.gguf", F, "w.offset", "run past the end of the file"},
      {"offset_huge.gguf", F, "w.offset", "run past the end of the file"},
      {"offset_misaligned.gguf", F, "w.offset", "offset 4 is not a multiple of the alignment 32"},
      {"data_past_end.gguf", F, "w.offset", "128 bytes at offset 0"},
      {"truncated_data.gguf", F, "w.offset", "truncated?"},
      {"unknown_ggml_type.gguf", F, "w.type", "unknown ggml type 31"},
      {"ggml_type_huge.gguf", F, "w.type", "unknown ggml type 1000"},
      {"dims_overflow.gguf", F, "w.dims", "shape [4294967296,4294967296] has more than 2^63 elements"},
      {"dims_overflow_with_zero.gguf", F, "w.dims", "shape [0,4294967296,4294967296] has more than 2^63"},
      {"dim_beyond_int64.gguf", F, "w.dims", "beyond int64"},
      {"bytes_overflow.gguf", F, "w.dims", "needs more than 2^64 bytes"},
      {"too_many_dims.gguf", F, "w.n_dims", "5 dimensions (at most 4)"},
      {"row_not_multiple.gguf", F, "w.dims", "row length 100 of Q4_K is not a multiple of its block size 256"},
      {"row_not_multiple_q8_0.gguf", F, "w.dims", "row length 33 of Q8_0 is not a multiple of its block size 32"},
      {"duplicate_tensor.gguf", F, "w", "duplicate tensor name"},
      {"overlap.gguf", F, "b.offset", "overlaps tensor a"},
  };
  size_t checked = 0;
  for (const Case& c : cases) {
    const fs::path path = generated() / "broken" / c.file;
    INFO(std::string(c.file));
    REQUIRE(fs::exists(path));
    Error e = expect_error([&] { GgufFile::open(path); }, c.kind);
    CHECK(e.file() == path.string());
    CHECK(e.field() == c.field);
    CHECK_MESSAGE(e.message().find(c.message) != std::string::npos, e.message());
    ++checked;
  }
  // Every broken file the script writes is in the table.
  size_t written = 0;
  for (const auto& entry : fs::directory_iterator(generated() / "broken")) written += entry.is_regular_file();
  CHECK(written == checked);
}

TEST_CASE("gguf: truncated at every byte is an error naming the file, never a crash") {
  for (const char* name : {"types.gguf", "v2_align64.gguf", "no_tensors.gguf"}) {
    const std::vector<std::byte> whole = read_bytes(valid(name));
    INFO(name);
    CHECK_NOTHROW(GgufFile::parse(whole, name));
    size_t errors = 0;
    for (size_t n = 0; n < whole.size(); ++n) {
      // An exact-size copy, so that a sanitizer sees any read past the end.
      const std::vector<std::byte> prefix(whole.begin(), whole.begin() + static_cast<ptrdiff_t>(n));
      try {
        GgufFile::parse(prefix, "cut.gguf");
        FAIL("a prefix of " << n << " bytes parsed");
      } catch (const Error& e) {
        errors += e.kind() == ErrorKind::format && e.file() == "cut.gguf" && !e.field().empty();
      }
    }
    CHECK(errors == whole.size());
  }
}

TEST_CASE("gguf: open and parse agree, and a copy keeps the mapping alive") {
  const std::vector<std::byte> bytes = read_bytes(valid("v2_align64.gguf"));
  const GgufFile parsed = GgufFile::parse(bytes, "in-memory");
  CHECK(parsed.path() == "in-memory");
  CHECK(parsed.alignment() == 64);
  CHECK(parsed.version() == 2);
  std::vector<float> a(256 * 2), b(256 * 2);
  dequantize(*parsed.find_tensor("c"), a);

  std::optional<GgufFile> copy;
  {
    const GgufFile opened = GgufFile::open(valid("v2_align64.gguf"));
    copy = opened;
  }
  CHECK(copy->path() == valid("v2_align64.gguf").string());
  dequantize(*copy->find_tensor("c"), b);
  CHECK(a == b);
  for (const auto& t : copy->tensors()) CHECK(t.offset % 64 == 0);

  Error e = expect_error([] { GgufFile::open(generated() / "nowhere.gguf"); }, ErrorKind::io);
  CHECK(e.file() == (generated() / "nowhere.gguf").string());
}
