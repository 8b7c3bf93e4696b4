// safetensors parsing, sharded weight stores, and wrapping as torch tensors.

#include "doctest_with_aten.hpp"

#include "model/weights_torch.hpp"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/mapped_file.hpp"
#include "model/safetensors.hpp"
#include "musespark/error.hpp"

namespace fs = std::filesystem;
using musespark::Error;
using musespark::ErrorKind;
using namespace musespark::detail;

namespace {

// A fresh, empty folder for one test.
fs::path temp_dir(const std::string& name) {
  fs::path root = fs::path(MUSESPARK_BINARY_DIR) / "test-tmp" / "safetensors" / name;
  fs::remove_all(root);
  fs::create_directories(root);
  return root;
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header text (padded to 8 bytes like the real writer) and data.
std::string safetensors_bytes(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header + data;
}

template <class T>
std::string raw(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

uint16_t to_bf16(float f) {  // truncation is exact for the values used here
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<uint16_t>(bits >> 16);
}

const std::vector<float> kA{1.f, -2.f, 3.5f, 0.25f, 100.f, -0.5f};  // [2,3]
const std::vector<float> kB{7.f, 8.f};                               // [2]

// A valid file with two F32 tensors "a" [2,3] and "b" [2] and metadata.
fs::path write_valid(const fs::path& dir, const std::string& file = "model.safetensors") {
  nlohmann::json h;
  h["__metadata__"] = {{"format", "pt"}};
  h["a"] = {{"dtype", "F32"}, {"shape", {2, 3}}, {"data_offsets", {0, 24}}};
  h["b"] = {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {24, 32}}};
  fs::path path = dir / file;
  write_bytes(path, safetensors_bytes(h.dump(), raw(kA) + raw(kB)));
  return path;
}

// Expects `f` to throw Error of `kind` whose what() contains each of `needles`.
template <class F>
void expect_error(F&& f, ErrorKind kind, const std::vector<std::string>& needles) {
  try {
    f();
    FAIL("no error thrown; expected one containing " << needles.front());
  } catch (const Error& e) {
    const std::string what = e.what();
    INFO("what(): " << what);
    CHECK(static_cast<int>(e.kind()) == static_cast<int>(kind));
    for (const auto& n : needles) CHECK_MESSAGE(what.find(n) != std::string::npos, "missing \"" << n << "\"");
  }
}

// A file whose header is `header_json` and data is `data`; returns its path.
fs::path write_with_header(const fs::path& dir, const std::string& name, const std::string& header_json,
                           const std::string& data = std::string(32, '\0')) {
  fs::path path = dir / name;
  write_bytes(path, safetensors_bytes(header_json, data));
  return path;
}

}  // namespace

TEST_CASE("safetensors: mapped_file: maps bytes, empty files, and names a missing file") {
  fs::path dir = temp_dir("mapped");
  write_bytes(dir / "x.bin", "hello");
  MappedFile m = MappedFile::open(dir / "x.bin");
  REQUIRE(m.size() == 5);
  CHECK(std::memcmp(m.data(), "hello", 5) == 0);
  MappedFile moved = std::move(m);
  CHECK(moved.size() == 5);
  CHECK(m.size() == 0);
  CHECK(m.data() == nullptr);

  write_bytes(dir / "empty.bin", "");
  MappedFile e = MappedFile::open(dir / "empty.bin");
  CHECK(e.size() == 0);

  expect_error([&] { MappedFile::open(dir / "nope.bin"); }, ErrorKind::io, {"nope.bin"});
  expect_error([&] { MappedFile::open(dir); }, ErrorKind::io, {"not a regular file"});
}

TEST_CASE("safetensors: a valid file") {
  fs::path dir = temp_dir("valid");
  fs::path path = write_valid(dir);
  SafetensorsFile f = SafetensorsFile::open(path);
  REQUIRE(f.tensors().size() == 2);
  CHECK(f.metadata().at("format") == "pt");
  const TensorView* a = f.find("a");
  REQUIRE(a != nullptr);
  CHECK((a->dtype == DType::f32));
  CHECK((a->shape == std::vector<int64_t>{2, 3}));
  CHECK(a->nbytes == 24);
  CHECK(a->numel() == 6);
  CHECK(a->file == path.string());
  CHECK(std::memcmp(a->data, kA.data(), 24) == 0);
  const TensorView* b = f.find("b");
  REQUIRE(b != nullptr);
  CHECK(std::memcmp(b->data, kB.data(), 8) == 0);
  CHECK(f.find("c") == nullptr);
  // Data must be 8-byte aligned: the header is padded.
  CHECK(reinterpret_cast<uintptr_t>(a->data) % 8 == 0);
}

TEST_CASE("safetensors: dtype table") {
  CHECK(element_size(DType::bf16) == 2);
  CHECK(element_size(DType::f64) == 8);
  CHECK(element_size(DType::bool_) == 1);
  CHECK(dtype_name(DType::bf16) == "BF16");
  CHECK(parse_dtype("I64") == DType::i64);
  CHECK(!parse_dtype("f32").has_value());  // case matters in the format
}

TEST_CASE("safetensors: empty and scalar tensors, empty header") {
  fs::path dir = temp_dir("edge");
  auto p = write_with_header(dir, "x.safetensors",
                             R"({"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},)"
                             R"("s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})",
                             raw(std::vector<int64_t>{42}));
  SafetensorsFile f = SafetensorsFile::open(p);
  CHECK(f.find("e")->numel() == 0);
  CHECK(f.find("s")->numel() == 1);
  int64_t v;
  std::memcpy(&v, f.find("s")->data, 8);
  CHECK(v == 42);

  auto empty = write_with_header(dir, "empty.safetensors", "{}", "");
  CHECK(SafetensorsFile::open(empty).tensors().empty());
}

TEST_CASE("safetensors: header errors name the file and the field") {
  fs::path dir = temp_dir("errors");
  const std::string f32_6 = R"("dtype":"F32","shape":[2,3])";

  SUBCASE("file shorter than 8 bytes") {
    write_bytes(dir / "short.safetensors", "abc");
    expect_error([&] { SafetensorsFile::open(dir / "short.safetensors"); }, ErrorKind::format,
                 {"short.safetensors", "truncated"});
  }
  SUBCASE("empty file") {
    write_bytes(dir / "zero.safetensors", "");
    expect_error([&] { SafetensorsFile::open(dir / "zero.safetensors"); }, ErrorKind::format, {"zero.safetensors"});
  }
  SUBCASE("header length beyond the file") {
    write_bytes(dir / "long.safetensors", le64(1000) + "{}");
    expect_error([&] { SafetensorsFile::open(dir / "long.safetensors"); }, ErrorKind::format,
                 {"long.safetensors", "header length", "1000"});
  }
  SUBCASE("absurd header length") {
    write_bytes(dir / "huge.safetensors", le64(1ull << 40) + "{}");
    expect_error([&] { SafetensorsFile::open(dir / "huge.safetensors"); }, ErrorKind::format,
                 {"huge.safetensors", "header length", "absurd"});
  }
  SUBCASE("malformed JSON") {
    auto p = write_with_header(dir, "bad.safetensors", R"({"a": {"dtype": )");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"bad.safetensors", "malformed JSON"});
  }
  SUBCASE("header not an object") {
    auto p = write_with_header(dir, "arr.safetensors", "[1,2]");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"arr.safetensors", "header"});
  }
  SUBCASE("entry not an object") {
    auto p = write_with_header(dir, "x.safetensors", R"({"w": 3})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "w"});
  }
  SUBCASE("missing dtype") {
    auto p = write_with_header(dir, "x.safetensors", R"({"w":{"shape":[2],"data_offsets":[0,8]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "w.dtype", "missing"});
  }
  SUBCASE("missing shape") {
    auto p = write_with_header(dir, "x.safetensors", R"({"w":{"dtype":"F32","data_offsets":[0,8]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "w.shape", "missing"});
  }
  SUBCASE("missing data_offsets") {
    auto p = write_with_header(dir, "x.safetensors", R"({"w":{"dtype":"F32","shape":[2]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format,
                 {"x.safetensors", "w.data_offsets", "missing"});
  }
  SUBCASE("unknown dtype") {
    auto p = write_with_header(dir, "x.safetensors", R"({"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "w.dtype", "F33"});
  }
  SUBCASE("a safetensors dtype we do not support") {
    auto p = write_with_header(dir, "x.safetensors",
                               R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::unsupported, {"x.safetensors", "w.dtype", "F8_E4M3"});
  }
  SUBCASE("negative dimension") {
    auto p = write_with_header(dir, "x.safetensors", R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "w.shape", "non-negative"});
  }
  SUBCASE("shape not a list") {
    auto p = write_with_header(dir, "x.safetensors", R"({"w":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "w.shape"});
  }
  SUBCASE("absurdly large shape") {
    auto p = write_with_header(
        dir, "x.safetensors",
        R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "w.shape", "too large"});
  }
  SUBCASE("offsets not a pair") {
    auto p = write_with_header(dir, "x.safetensors", "{\"w\":{" + f32_6 + R"(,"data_offsets":[0]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "w.data_offsets"});
  }
  SUBCASE("negative offset") {
    auto p = write_with_header(dir, "x.safetensors", "{\"w\":{" + f32_6 + R"(,"data_offsets":[-8,16]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "w.data_offsets"});
  }
  SUBCASE("begin after end") {
    auto p = write_with_header(dir, "x.safetensors", "{\"w\":{" + f32_6 + R"(,"data_offsets":[24,0]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format,
                 {"x.safetensors", "w.data_offsets", "begin 24 is after end 0"});
  }
  SUBCASE("end beyond the data section") {
    auto p = write_with_header(dir, "x.safetensors", "{\"w\":{" + f32_6 + R"(,"data_offsets":[16,40]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format,
                 {"x.safetensors", "w.data_offsets", "beyond the data section"});
  }
  SUBCASE("size does not match the shape") {
    auto p = write_with_header(dir, "x.safetensors", "{\"w\":{" + f32_6 + R"(,"data_offsets":[0,20]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format,
                 {"x.safetensors", "w.data_offsets", "20 bytes", "[2,3]", "24"});
  }
  SUBCASE("overlapping tensors") {
    auto p = write_with_header(dir, "x.safetensors",
                               R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                               R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "b.data_offsets", "overlaps", "a"});
  }
  SUBCASE("metadata that is not a string map") {
    auto p = write_with_header(dir, "x.safetensors", R"({"__metadata__":{"format":1}})");
    expect_error([&] { SafetensorsFile::open(p); }, ErrorKind::format, {"x.safetensors", "__metadata__.format"});
  }
  SUBCASE("truncated file") {
    fs::path good = write_valid(dir, "good.safetensors");
    std::ifstream in(good, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_bytes(dir / "cut.safetensors", all.substr(0, all.size() - 4));
    expect_error([&] { SafetensorsFile::open(dir / "cut.safetensors"); }, ErrorKind::format,
                 {"cut.safetensors", "b.data_offsets", "truncated"});
    // Cut inside the header too.
    write_bytes(dir / "cut2.safetensors", all.substr(0, 20));
    expect_error([&] { SafetensorsFile::open(dir / "cut2.safetensors"); }, ErrorKind::format,
                 {"cut2.safetensors", "header length"});
  }
  SUBCASE("missing file") {
    expect_error([&] { SafetensorsFile::open(dir / "absent.safetensors"); }, ErrorKind::io, {"absent.safetensors"});
  }
}

TEST_CASE("safetensors: weight store: single file, require, names") {
  fs::path dir = temp_dir("store_single");
  write_valid(dir);
  WeightStore store = WeightStore::open(dir);
  CHECK((store.names() == std::vector<std::string>{"a", "b"}));
  CHECK((store.require("a", {2, 3}).nbytes == 24));
  CHECK(store.find("zzz") == nullptr);
  expect_error([&] { store.require("zzz", {1}); }, ErrorKind::format, {dir.string(), "zzz", "missing tensor"});
  expect_error([&] { store.require("a", {3, 2}); }, ErrorKind::format,
               {"model.safetensors", "a", "shape [2,3], expected [3,2]"});
  // The keepalive outlives the store; copies share the mappings.
  const TensorView* a = store.find("a");
  WeightStore copy = store;
  CHECK(copy.find("a") == a);
  auto keep = store.keepalive();
  CHECK(keep != nullptr);
}

TEST_CASE("safetensors: weight store: sharded with an index") {
  fs::path dir = temp_dir("store_sharded");
  write_valid(dir, "model-00001-of-00002.safetensors");  // a, b
  auto p2 = write_with_header(dir, "model-00002-of-00002.safetensors",
                              R"({"c":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", raw(std::vector<float>{5.f, 6.f}));
  nlohmann::json index;
  index["metadata"] = {{"total_size", 40}};
  index["weight_map"] = {{"a", "model-00001-of-00002.safetensors"},
                         {"b", "model-00001-of-00002.safetensors"},
                         {"c", "model-00002-of-00002.safetensors"}};
  write_bytes(dir / "model.safetensors.index.json", index.dump(2));

  SUBCASE("all shards present") {
    WeightStore store = WeightStore::open(dir);
    CHECK((store.names() == std::vector<std::string>{"a", "b", "c"}));
    const TensorView& c = store.require("c", {2});
    CHECK(c.file == p2.string());
    float v[2];
    std::memcpy(v, c.data, 8);
    CHECK(v[0] == 5.f);
    CHECK(v[1] == 6.f);
    expect_error([&] { store.require("c", {3}); }, ErrorKind::format,
                 {"model-00002-of-00002.safetensors", "c", "shape [2], expected [3]"});
  }
  SUBCASE("a missing shard") {
    fs::remove(p2);
    expect_error([&] { WeightStore::open(dir); }, ErrorKind::io,
                 {"model.safetensors.index.json", "model-00002-of-00002.safetensors", "c", "not found"});
  }
  SUBCASE("a tensor not in its shard") {
    index["weight_map"]["d"] = "model-00002-of-00002.safetensors";
    write_bytes(dir / "model.safetensors.index.json", index.dump());
    expect_error([&] { WeightStore::open(dir); }, ErrorKind::format,
                 {"model.safetensors.index.json", "weight_map.d", "model-00002-of-00002.safetensors"});
  }
  SUBCASE("weight_map missing or mistyped") {
    write_bytes(dir / "model.safetensors.index.json", R"({"metadata":{}})");
    expect_error([&] { WeightStore::open(dir); }, ErrorKind::format, {"model.safetensors.index.json", "weight_map"});
    write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{"a":3}})");
    expect_error([&] { WeightStore::open(dir); }, ErrorKind::format, {"model.safetensors.index.json", "weight_map.a"});
  }
  SUBCASE("a shard path outside the folder") {
    write_bytes(dir / "model.safetensors.index.json", R"({"weight_map":{"a":"../x.safetensors"}})");
    expect_error([&] { WeightStore::open(dir); }, ErrorKind::format, {"model.safetensors.index.json", "weight_map.a"});
  }
  SUBCASE("malformed index JSON") {
    write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\": ");
    expect_error([&] { WeightStore::open(dir); }, ErrorKind::format, {"model.safetensors.index.json", "malformed"});
  }
}

TEST_CASE("safetensors: weight store: a folder without weights") {
  fs::path dir = temp_dir("store_empty");
  expect_error([&] { WeightStore::open(dir); }, ErrorKind::io,
               {dir.string(), "model.safetensors", "model.safetensors.index.json"});
  expect_error([&] { WeightStore::open(dir / "nope"); }, ErrorKind::io, {"nope"});
}

TEST_CASE("safetensors: to_tensor: f32/bf16/f16 values, zero-copy when the dtype matches") {
  fs::path dir = temp_dir("to_tensor");
  const std::vector<float> values{1.f, -2.f, 0.5f, 3.f};
  std::vector<uint16_t> bf16;
  for (float v : values) bf16.push_back(to_bf16(v));
  at::Tensor half = at::tensor(values).to(at::kHalf);
  std::vector<uint16_t> f16(4);
  std::memcpy(f16.data(), half.data_ptr(), 8);
  auto p = write_with_header(dir, "model.safetensors",
                             R"({"f":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                             R"("b":{"dtype":"BF16","shape":[2,2],"data_offsets":[16,24]},)"
                             R"("h":{"dtype":"F16","shape":[4],"data_offsets":[24,32]}})",
                             raw(values) + raw(bf16) + raw(f16));
  const at::Tensor expected = at::tensor(values).view({2, 2});

  at::Tensor f_same, b_same, f_to_bf16;
  {
    WeightStore store = WeightStore::open(dir);
    const TensorView& f = store.require("f", {2, 2});
    const TensorView& b = store.require("b", {2, 2});
    const TensorView& h = store.require("h", {4});

    f_same = to_tensor(f, at::kFloat, store.keepalive());
    CHECK(f_same.data_ptr() == static_cast<const void*>(f.data));  // zero-copy
    CHECK((f_same.scalar_type() == at::kFloat));
    CHECK((f_same.sizes().vec() == std::vector<int64_t>{2, 2}));

    b_same = to_tensor(b, at::kBFloat16, store.keepalive());
    CHECK(b_same.data_ptr() == static_cast<const void*>(b.data));
    CHECK(at::equal(b_same.to(at::kFloat), expected));

    at::Tensor b_f32 = to_tensor(b, at::kFloat, store.keepalive());
    CHECK(b_f32.data_ptr() != static_cast<const void*>(b.data));  // converted into fresh memory
    CHECK(at::equal(b_f32, expected));

    at::Tensor h_f32 = to_tensor(h, at::kFloat, store.keepalive());
    CHECK(at::equal(h_f32, expected.view({4})));

    f_to_bf16 = to_tensor(f, at::kBFloat16, store.keepalive());
    CHECK((f_to_bf16.scalar_type() == at::kBFloat16));
  }
  // The store is gone; the zero-copy tensors keep the mapping alive.
  CHECK(at::equal(f_same, expected));
  CHECK(at::equal(b_same.to(at::kFloat), expected));
  CHECK(at::equal(f_to_bf16.to(at::kFloat), expected));
}

TEST_CASE("safetensors: to_tensor: misaligned data is copied, not wrapped") {
  fs::path dir = temp_dir("misaligned");
  // "u" takes 1 byte, so "f" starts at an odd offset.
  const std::vector<float> values{1.5f, -4.f};
  auto p = write_with_header(dir, "x.safetensors",
                             R"({"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})",
                             std::string(1, '\7') + raw(values));
  SafetensorsFile file = SafetensorsFile::open(p);
  const TensorView* f = file.find("f");
  REQUIRE(f != nullptr);
  at::Tensor t = to_tensor(*f, at::kFloat, file.keepalive());
  CHECK(t.data_ptr() != static_cast<const void*>(f->data));
  CHECK(at::equal(t, at::tensor(values)));
  at::Tensor u = to_tensor(*file.find("u"), at::kFloat, file.keepalive());
  CHECK(u.item<float>() == 7.f);
}

TEST_CASE("safetensors: weight store: reads what the Python tools write (tests/tools/safetensors_io.py)") {
  fs::path dir = temp_dir("python_written");
  const std::string script =
      "import sys, torch; sys.path.insert(0, '" MUSESPARK_SOURCE_DIR "/tests/tools'); import safetensors_io as st; "
      "t = {'a': torch.arange(6, dtype=torch.float32).view(2, 3) - 2.5, 'b': torch.arange(4).bfloat16() * 0.5, "
      "'c': torch.tensor([1.5, -2.0]).half(), 'd': torch.arange(3)}; "
      "specs = [st.TensorSpec(k, st.TORCH_TO_NAME[v.dtype], tuple(v.shape)) for k, v in t.items()]; "
      "st.write_model(sys.argv[1], specs, lambda s: t[s.name], n_shards=2)";
  const std::string command = std::string(MUSESPARK_PYTHON) + " -c \"" + script + "\" " + dir.string();
  REQUIRE(std::system(command.c_str()) == 0);

  WeightStore store = WeightStore::open(dir);
  CHECK((store.names() == std::vector<std::string>{"a", "b", "c", "d"}));
  at::Tensor a = to_tensor(store.require("a", {2, 3}), at::kFloat, store.keepalive());
  CHECK(at::equal(a, at::arange(6, at::kFloat).view({2, 3}) - 2.5));
  at::Tensor b = to_tensor(store.require("b", {4}), at::kFloat, store.keepalive());
  CHECK(at::equal(b, at::arange(4, at::kFloat) * 0.5));
  at::Tensor c = to_tensor(store.require("c", {2}), at::kFloat, store.keepalive());
  CHECK(at::equal(c, at::tensor(std::vector<float>{1.5f, -2.f})));
  const TensorView& d = store.require("d", {3});
  CHECK((d.dtype == DType::i64));
  at::Tensor d64 = to_tensor(d, at::kLong, store.keepalive());
  CHECK(d64.data_ptr() == static_cast<const void*>(d.data));
  CHECK(at::equal(d64, at::arange(3, at::kLong)));
}
