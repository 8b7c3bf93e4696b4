// PNG and JPEG bytes, under limits small enough that a decompression bomb is
// refused before it is decoded.
#include <cstddef>
#include <span>

#include "musespark/error.hpp"
#include "musespark/image.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  musespark::ImageLimits limits;
  limits.max_width = 1024;
  limits.max_height = 1024;
  limits.max_pixels = 1 << 18;
  try {
    auto image = musespark::Image::decode(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz", limits);
    (void)image;
  } catch (const musespark::Error&) {
  }
  return 0;
}
