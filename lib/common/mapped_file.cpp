#include "common/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "musespark/error.hpp"

namespace musespark::detail {

namespace {
[[noreturn]] void fail(const std::string& path, const char* what, int err) {
  throw Error(ErrorKind::io, path, "", std::string(what) + ": " + std::strerror(err));
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

MappedFile MappedFile::open(const std::filesystem::path& path) {
  MappedFile out;
  out.path_ = path.string();
  Fd file;
  file.fd = ::open(out.path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (file.fd < 0) fail(out.path_, "cannot open file", errno);
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) fail(out.path_, "cannot stat file", errno);
  if (!S_ISREG(st.st_mode)) throw Error(ErrorKind::io, out.path_, "", "not a regular file");
  out.size_ = static_cast<size_t>(st.st_size);
  if (out.size_ == 0) return out;  // mmap of length 0 is an error; nothing to map.
  void* p = ::mmap(nullptr, out.size_, PROT_READ, MAP_PRIVATE, file.fd, 0);
  if (p == MAP_FAILED) {
    out.size_ = 0;
    fail(out.path_, "cannot map file", errno);
  }
  out.data_ = static_cast<const std::byte*>(p);
  return out;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      path_(std::move(other.path_)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    path_ = std::move(other.path_);
  }
  return *this;
}

MappedFile::~MappedFile() { release(); }

void MappedFile::release() noexcept {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace musespark::detail
