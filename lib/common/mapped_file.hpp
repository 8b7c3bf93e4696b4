// A whole file mapped read-only into memory.
#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

namespace musespark::detail {

// RAII, move-only, read-only (PROT_READ) mapping of an entire file. The bytes
// stay valid until the object is destroyed; writing to them crashes.
// An empty file is fine: data() is nullptr and size() is 0.
// Thread-safety: const member functions may be called from any thread.
class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path`. Throws Error{io} naming the file if it cannot be opened,
  // stat'ed or mapped (or is not a regular file).
  static MappedFile open(const std::filesystem::path& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::byte* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  const std::string& path() const noexcept { return path_; }

 private:
  void release() noexcept;

  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace musespark::detail
