#include "model/safetensors.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/json_file.hpp"
#include "common/mapped_file.hpp"
#include "musespark/error.hpp"

namespace musespark::detail {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

struct DTypeInfo {
  DType dtype;
  std::string_view name;
  size_t size;
};
constexpr std::array<DTypeInfo, 10> kDTypes{{
    {DType::f32, "F32", 4},
    {DType::f16, "F16", 2},
    {DType::bf16, "BF16", 2},
    {DType::i64, "I64", 8},
    {DType::i32, "I32", 4},
    {DType::i16, "I16", 2},
    {DType::i8, "I8", 1},
    {DType::u8, "U8", 1},
    {DType::bool_, "BOOL", 1},
    {DType::f64, "F64", 8},
}};

// Defined by the safetensors format but not by us: a clear "unsupported".
constexpr std::array<std::string_view, 9> kOtherSafetensorsDTypes{
    "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "U16", "U32", "U64"};

[[noreturn]] void bad(const std::string& file, const std::string& field, const std::string& message) {
  throw Error(ErrorKind::format, file, field, message);
}

uint64_t read_le64(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

// A JSON value that must be a non-negative integer that fits in int64.
std::optional<int64_t> non_negative_int(const nlohmann::json& v) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0) return std::nullopt;
    return i;
  }
  return std::nullopt;
}

std::string json_excerpt(const nlohmann::json& v) {
  std::string s = v.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

}  // namespace

size_t element_size(DType dtype) noexcept {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

std::string_view dtype_name(DType dtype) noexcept {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) noexcept {
  for (const auto& d : kDTypes)
    if (d.name == name) return d.dtype;
  return std::nullopt;
}

int64_t TensorView::numel() const noexcept {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile out;
  out.path_ = path.string();
  const std::string& file = out.path_;
  auto mapping = std::make_shared<MappedFile>(MappedFile::open(path));
  const size_t file_size = mapping->size();
  const std::byte* base = mapping->data();

  if (file_size < 8)
    bad(file, "", fmt::format("truncated: {} bytes, but the header length alone takes 8", file_size));
  const uint64_t header_len = read_le64(base);
  if (header_len > kMaxHeaderBytes)
    bad(file, "header length", fmt::format("{} bytes is absurd (the limit is {} bytes)", header_len, kMaxHeaderBytes));
  if (header_len > file_size - 8)
    bad(file, "header length",
        fmt::format("{} bytes runs past the end of the file ({} bytes): truncated or not safetensors", header_len,
                    file_size));

  const char* header_text = reinterpret_cast<const char*>(base + 8);
  const nlohmann::json header = detail::parse_json(std::string_view(header_text, header_len), file, "header");
  if (!header.is_object()) bad(file, "header", std::string("expected a JSON object, got ") + header.type_name());

  const std::byte* data_section = base + 8 + header_len;
  const uint64_t data_size = file_size - 8 - header_len;

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) bad(file, name, std::string("expected a map of strings, got ") + entry.type_name());
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          bad(file, "__metadata__." + key, std::string("expected a string, got ") + value.type_name());
        out.metadata_.emplace(key, value.get<std::string>());
      }
      continue;
    }
    if (!entry.is_object()) bad(file, name, std::string("expected a tensor entry (an object), got ") + entry.type_name());

    TensorView view;
    view.name = name;
    view.file = file;

    auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end()) bad(file, name + ".dtype", "missing");
    if (!dtype_it->is_string()) bad(file, name + ".dtype", std::string("expected a string, got ") + dtype_it->type_name());
    const std::string dtype_str = dtype_it->get<std::string>();
    if (auto dt = parse_dtype(dtype_str)) {
      view.dtype = *dt;
    } else if (std::find(kOtherSafetensorsDTypes.begin(), kOtherSafetensorsDTypes.end(), dtype_str) !=
               kOtherSafetensorsDTypes.end()) {
      throw Error(ErrorKind::unsupported, file, name + ".dtype",
                  fmt::format("dtype {} is not supported (supported: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)",
                              dtype_str));
    } else {
      bad(file, name + ".dtype", fmt::format("unknown dtype \"{}\"", dtype_str));
    }

    auto shape_it = entry.find("shape");
    if (shape_it == entry.end()) bad(file, name + ".shape", "missing");
    if (!shape_it->is_array()) bad(file, name + ".shape", std::string("expected an array, got ") + shape_it->type_name());
    for (const auto& d : *shape_it) {
      auto dim = non_negative_int(d);
      if (!dim) bad(file, name + ".shape", "dimensions must be non-negative integers, got " + json_excerpt(*shape_it));
      view.shape.push_back(*dim);
    }
    uint64_t numel = 1;
    if (std::find(view.shape.begin(), view.shape.end(), 0) != view.shape.end()) {
      numel = 0;
    } else {
      for (int64_t dim : view.shape) {
        if (numel > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(dim))
          bad(file, name + ".shape", "shape " + shape_string(view.shape) + " is too large");
        numel *= static_cast<uint64_t>(dim);
      }
    }

    auto offsets_it = entry.find("data_offsets");
    if (offsets_it == entry.end()) bad(file, name + ".data_offsets", "missing");
    if (!offsets_it->is_array() || offsets_it->size() != 2)
      bad(file, name + ".data_offsets", "expected [begin, end], got " + json_excerpt(*offsets_it));
    auto begin = non_negative_int((*offsets_it)[0]);
    auto end = non_negative_int((*offsets_it)[1]);
    if (!begin || !end)
      bad(file, name + ".data_offsets", "expected two non-negative integers, got " + json_excerpt(*offsets_it));
    if (*begin > *end)
      bad(file, name + ".data_offsets", fmt::format("begin {} is after end {}", *begin, *end));
    if (static_cast<uint64_t>(*end) > data_size)
      bad(file, name + ".data_offsets",
          fmt::format("end {} is beyond the data section ({} bytes): truncated file?", *end, data_size));
    const uint64_t nbytes = static_cast<uint64_t>(*end - *begin);
    const uint64_t esize = element_size(view.dtype);
    if (numel > std::numeric_limits<uint64_t>::max() / esize || numel * esize != nbytes)
      bad(file, name + ".data_offsets",
          fmt::format("{} bytes, but shape {} of {} needs {}", nbytes, shape_string(view.shape), dtype_str,
                      numel > std::numeric_limits<uint64_t>::max() / esize ? std::string("more")
                                                                           : std::to_string(numel * esize)));
    view.data = data_section + *begin;
    view.nbytes = static_cast<size_t>(nbytes);
    out.tensors_.push_back(std::move(view));
  }

  // No two tensors may share bytes (empty tensors take none).
  std::vector<const TensorView*> by_offset;
  for (const auto& t : out.tensors_)
    if (t.nbytes > 0) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorView* a, const TensorView* b) { return a->data < b->data; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorView* prev = by_offset[i - 1];
    const TensorView* cur = by_offset[i];
    if (cur->data < prev->data + prev->nbytes)
      bad(file, cur->name + ".data_offsets",
          fmt::format("overlaps tensor {} (bytes {}..{} of the data section)", prev->name,
                      prev->data - data_section, prev->data - data_section + static_cast<ptrdiff_t>(prev->nbytes)));
  }

  for (size_t i = 0; i < out.tensors_.size(); ++i) out.index_.emplace(out.tensors_[i].name, i);
  out.mapping_ = std::move(mapping);
  return out;
}

const TensorView* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

WeightStore WeightStore::open(const std::filesystem::path& model_dir) {
  namespace fs = std::filesystem;
  WeightStore out;
  out.directory_ = model_dir;
  const fs::path single = model_dir / "model.safetensors";
  const fs::path index_path = model_dir / "model.safetensors.index.json";
  auto files = std::make_shared<Files>();

  std::error_code ec;
  if (fs::is_regular_file(single, ec)) {
    files->push_back(SafetensorsFile::open(single));
    for (const auto& t : files->front().tensors()) out.by_name_.emplace(t.name, &t);
    out.files_ = std::move(files);
    return out;
  }
  if (!fs::is_regular_file(index_path, ec)) {
    if (!fs::is_directory(model_dir, ec))
      throw Error(ErrorKind::io, model_dir.string(), "", "model folder does not exist or is not a folder");
    throw Error(ErrorKind::io, model_dir.string(), "",
                "no weights: looked for model.safetensors and model.safetensors.index.json");
  }

  const std::string index_file = index_path.string();
  const nlohmann::json index = read_json_file(index_path);
  if (!index.is_object()) bad(index_file, "", std::string("expected a JSON object, got ") + index.type_name());
  auto map_it = index.find("weight_map");
  if (map_it == index.end()) bad(index_file, "weight_map", "missing");
  if (!map_it->is_object()) bad(index_file, "weight_map", std::string("expected an object, got ") + map_it->type_name());
  if (map_it->empty()) bad(index_file, "weight_map", "is empty");

  // Shard name -> position in *files, opened in first-mention order.
  std::map<std::string, size_t> shard_pos;
  std::vector<std::pair<std::string, std::string>> entries;  // tensor, shard
  for (const auto& [tensor, shard] : map_it->items()) {
    const std::string field = "weight_map." + tensor;
    if (!shard.is_string()) bad(index_file, field, std::string("expected a shard file name, got ") + shard.type_name());
    std::string shard_name = shard.get<std::string>();
    fs::path rel(shard_name);
    // Shards live beside the index; refuse paths that point elsewhere.
    if (shard_name.empty() || rel.is_absolute() || rel.has_parent_path() || shard_name == "." || shard_name == "..")
      bad(index_file, field, "shard must be a file name in the model folder, got \"" + shard_name + "\"");
    if (!shard_pos.count(shard_name)) {
      const fs::path shard_path = model_dir / rel;
      if (!fs::is_regular_file(shard_path, ec))
        throw Error(ErrorKind::io, index_file, field, "shard " + shard_name + " not found (" + shard_path.string() + ")");
      shard_pos.emplace(shard_name, files->size());
      files->push_back(SafetensorsFile::open(shard_path));
    }
    entries.emplace_back(tensor, std::move(shard_name));
  }
  // *files is complete: pointers into it are now stable.
  for (const auto& [tensor, shard_name] : entries) {
    const SafetensorsFile& shard = (*files)[shard_pos.at(shard_name)];
    const TensorView* view = shard.find(tensor);
    if (!view)
      bad(index_file, "weight_map." + tensor, "tensor is not in its shard " + shard_name);
    out.by_name_.emplace(tensor, view);
  }
  out.files_ = std::move(files);
  return out;
}

WeightStore WeightStore::of_views(std::filesystem::path source, std::vector<TensorView> views,
                                  std::shared_ptr<const void> owner) {
  struct Held {
    std::vector<TensorView> views;
    std::shared_ptr<const void> owner;
  };
  auto held = std::make_shared<Held>(Held{std::move(views), std::move(owner)});
  WeightStore out;
  out.directory_ = std::move(source);
  for (const TensorView& v : held->views)
    if (!out.by_name_.emplace(v.name, &v).second) bad(out.directory_.string(), v.name, "two tensors of this name");
  out.files_ = std::move(held);
  return out;
}

const TensorView* WeightStore::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorView& WeightStore::require(std::string_view name, const std::vector<int64_t>& expected_shape) const {
  const TensorView* view = find(name);
  if (!view) bad(directory_.string(), std::string(name), "missing tensor");
  if (view->shape != expected_shape)
    bad(view->file, std::string(name),
        fmt::format("shape {}, expected {}", shape_string(view->shape), shape_string(expected_shape)));
  return *view;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [name, view] : by_name_) out.push_back(name);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace musespark::detail
