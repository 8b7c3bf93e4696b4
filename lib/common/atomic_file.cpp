#include "common/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "musespark/error.hpp"

namespace musespark::detail {
namespace {

std::atomic<uint64_t> next_number{0};

std::string temporary_prefix(const std::filesystem::path& target) { return target.filename().string() + ".tmp-"; }

void sync_folder(const std::filesystem::path& folder) {
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: the rename has happened
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path target) : target_(std::move(target)) {
  temporary_ = target_.parent_path() /
               fmt::format("{}{}-{}", temporary_prefix(target_), ::getpid(), next_number.fetch_add(1));
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create a file beside it");
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(temporary_.c_str());
  }
}

void AtomicFile::fail(const std::string& what) {
  const std::string reason = errno ? std::strerror(errno) : "unknown error";
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(temporary_.c_str());
  }
  throw Error(ErrorKind::io, target_.string(), "", fmt::format("{} ({})", what, reason));
}

void AtomicFile::write(std::string_view bytes) { write(bytes.data(), bytes.size()); }

void AtomicFile::write(const void* data, size_t size) {
  if (fd_ < 0) throw Error(ErrorKind::internal, target_.string(), "", "written after commit");
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot write (disk full?)");
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (fd_ < 0) throw Error(ErrorKind::internal, target_.string(), "", "committed twice");
  if (::fsync(fd_) != 0) fail("cannot flush to the disk");
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(temporary_.c_str());
    throw Error(ErrorKind::io, target_.string(), "", fmt::format("cannot close ({})", std::strerror(errno)));
  }
  fd_ = -1;
  if (::rename(temporary_.c_str(), target_.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    ::unlink(temporary_.c_str());
    throw Error(ErrorKind::io, target_.string(), "", "cannot replace it (" + reason + ")");
  }
  sync_folder(target_.parent_path());
}

void write_file_atomically(const std::filesystem::path& file, std::string_view bytes) {
  AtomicFile out(file);
  out.write(bytes);
  out.commit();
}

int32_t remove_stale_temporaries(const std::filesystem::path& file) {
  const std::string prefix = temporary_prefix(file);
  const std::filesystem::path folder = file.parent_path().empty() ? "." : file.parent_path();
  std::error_code ec;
  int32_t removed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) == 0 && std::filesystem::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

}  // namespace musespark::detail
