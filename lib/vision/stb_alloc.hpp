// The allocator stb_image uses (STBI_MALLOC and friends, see stb_impl.cpp),
// with a per-thread cap on any one allocation.
//
// stb grows its zlib output buffer for as long as the compressed data goes
// on, so a 100-byte PNG of 1x1 pixels can make it ask for gigabytes (a
// "decompression bomb"). Image::decode knows from the header how much a
// legitimate image of that size needs and sets the cap for the decode; an
// allocation above it fails, stb reports an error, and decode names the cause.
#pragma once

#include <cstddef>

namespace musespark::detail {

void* stb_malloc(size_t bytes);
void* stb_realloc(void* pointer, size_t bytes);
void stb_free(void* pointer);

// While alive, allocations by stb_image on this thread larger than `bytes`
// fail. Not nestable across threads: each thread has its own.
class StbAllocationCap {
 public:
  explicit StbAllocationCap(size_t bytes);
  ~StbAllocationCap();
  StbAllocationCap(const StbAllocationCap&) = delete;
  StbAllocationCap& operator=(const StbAllocationCap&) = delete;

  // Whether an allocation was refused for being over the cap.
  bool exceeded() const noexcept { return exceeded_; }
  // For the allocator: whether `bytes` may be allocated (if not, exceeded()).
  bool admit(size_t bytes) noexcept {
    if (bytes <= bytes_) return true;
    exceeded_ = true;
    return false;
  }

 private:
  size_t bytes_;
  bool exceeded_ = false;
  StbAllocationCap* previous_;
};

}  // namespace musespark::detail
