// Reading safetensors files (one file, or a sharded set with an index).
//
// The format: an 8-byte little-endian header length N, N bytes of JSON
// (`{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
// ..., "__metadata__": {"k": "v"}}`), then the data section; offsets are
// relative to the start of the data section. Files are memory-mapped
// read-only and every header field is validated before any byte is used.
// No torch here: see model/weights_torch.hpp to wrap a TensorView.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace musespark::detail {

class MappedFile;
struct GgufTensor;

enum class DType { f32, f16, bf16, i64, i32, i16, i8, u8, bool_, f64 };

// Bytes per element (1 for bool_).
size_t element_size(DType dtype) noexcept;
// The safetensors spelling: "F32", "F16", "BF16", "I64", ..., "BOOL", "F64".
std::string_view dtype_name(DType dtype) noexcept;
// The inverse of dtype_name; std::nullopt for any other string.
std::optional<DType> parse_dtype(std::string_view name) noexcept;

// One tensor inside a mapped file. `data` points into the read-only mapping
// and is valid while the owning SafetensorsFile / WeightStore (or a copy of
// its keepalive()) exists. Never write through it.
struct TensorView {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // the file holding it, for error messages
  // A GGUF block-quantised matrix kept as stored (load_gguf_model with
  // keep_blocks): `data` is null and the rows are read from this tensor
  // (common/gguf.hpp's affine_row), valid while the store lives. For llama's
  // q and k, interleaved_head_dim is the head size whose two rotary halves
  // the file interleaves (HF row h*hd + s*hd/2 + j is GGUF row h*hd + 2j + s).
  const GgufTensor* gguf_blocks = nullptr;
  int64_t interleaved_head_dim = 0;

  int64_t numel() const noexcept;
};

// "[2,3]" — the spelling used in error messages.
std::string shape_string(const std::vector<int64_t>& shape);

// One mapped safetensors file. Move-only; const members are thread-safe.
class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws Error{io} if it cannot be read and
  // Error{format} naming the file and the tensor/field for: a file shorter
  // than 8 bytes, a header length beyond the file or over 100 MB, malformed
  // JSON, an entry without dtype/shape/data_offsets, negative dimensions,
  // offsets that are not [begin, end] with begin <= end inside the data
  // section, a byte size != product(shape) * element size, overlapping
  // tensors, or a `__metadata__` that is not a map of strings.
  // A dtype that safetensors defines but we do not support (F8_E4M3, U32,
  // ...) gives Error{unsupported}; an unknown dtype string gives Error{format}.
  static SafetensorsFile open(const std::filesystem::path& path);

  // In header order as given by the JSON parser (sorted by name).
  const std::vector<TensorView>& tensors() const noexcept { return tensors_; }
  // nullptr when absent. The pointer is valid while this object lives.
  const TensorView* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
  const std::string& path() const noexcept { return path_; }
  // Shared ownership of the mapping: holding it keeps every TensorView's
  // bytes valid even after this object is gone.
  std::shared_ptr<const void> keepalive() const noexcept { return mapping_; }

 private:
  std::string path_;
  std::shared_ptr<const MappedFile> mapping_;
  std::vector<TensorView> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All the weights of an HF-layout model folder: `model.safetensors`, or the
// shards listed by `model.safetensors.index.json`. Cheap to copy (shared
// state); const members are thread-safe.
class WeightStore {
 public:
  // Opens `model_dir/model.safetensors` if present, else the index
  // `model_dir/model.safetensors.index.json` (its `weight_map` maps tensor
  // names to shard files in the same folder; only those tensors are exposed).
  // Throws Error{io} naming the folder when neither file exists, or naming
  // the index and the tensor when a shard is missing; Error{format} naming
  // the index for a malformed weight_map or a tensor absent from its shard;
  // and whatever SafetensorsFile::open throws for a bad file.
  static WeightStore open(const std::filesystem::path& model_dir);

  // Tensors that come from another file format (a GGUF file's, under their
  // HF names): each view's bytes lie in memory that `owner` keeps alive.
  // `source` names the file in errors. Error{format} naming `source` and the
  // tensor for two views of one name.
  static WeightStore of_views(std::filesystem::path source, std::vector<TensorView> views,
                              std::shared_ptr<const void> owner);

  // nullptr when absent. Valid while this store (or a copy) lives.
  const TensorView* find(std::string_view name) const;
  // The tensor, checked against `expected_shape`. Throws Error{format}:
  // "missing tensor" (naming the model folder and the name), or
  // "shape [a,b], expected [c,d]" (naming the file holding it and the name).
  const TensorView& require(std::string_view name, const std::vector<int64_t>& expected_shape) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;
  const std::filesystem::path& directory() const noexcept { return directory_; }
  // Keeps all the mappings alive; give it to tensors wrapping TensorView bytes.
  std::shared_ptr<const void> keepalive() const noexcept { return files_; }

 private:
  using Files = std::vector<SafetensorsFile>;
  std::filesystem::path directory_;
  std::shared_ptr<const void> files_;  // the Files, or of_views' views and owner
  std::unordered_map<std::string, const TensorView*> by_name_;
};

}  // namespace musespark::detail
