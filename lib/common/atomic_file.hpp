// Writing files so that a reader, or a process killed at any moment, sees the
// old file or the new one whole, never a torn one.
//
// The bytes go to a temporary file beside the target ("NAME.tmp-PID-N", same
// folder so the rename cannot cross file systems), are flushed to the disk
// (fsync), and the temporary is renamed over the target, which POSIX makes
// atomic; the folder is synced so the rename itself survives a crash.
// Errors are Error{io} naming the target file and what failed.
//
// Not thread-safe: one AtomicFile belongs to one thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace musespark::detail {

class AtomicFile {
 public:
  // Creates the temporary file. Throws Error{io} when the folder is missing
  // or not writable.
  explicit AtomicFile(std::filesystem::path target);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  // Without commit(), the temporary file is removed and the target untouched.
  ~AtomicFile();

  void write(std::string_view bytes);
  void write(const void* data, size_t size);
  // Syncs and renames over the target; after it the object holds nothing.
  void commit();

  const std::filesystem::path& target() const noexcept { return target_; }

 private:
  [[noreturn]] void fail(const std::string& what);

  std::filesystem::path target_, temporary_;
  int fd_ = -1;
};

// The whole of `bytes` as `file`, atomically (AtomicFile).
void write_file_atomically(const std::filesystem::path& file, std::string_view bytes);

// Removes temporary files that a killed writer left beside `file`
// ("NAME.tmp-*"); returns how many.
int32_t remove_stale_temporaries(const std::filesystem::path& file);

}  // namespace musespark::detail
