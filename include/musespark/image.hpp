// musespark — images given to a request.
//
// An Image is an 8-bit RGB picture held in memory: row-major, tightly packed
// (pixel (x, y) starts at byte 3 * (y * width + x)), channels in R, G, B order.
// It is a plain value type: copying copies the pixels, and an Image owns its
// pixels outright (nothing refers to the file or buffer it came from).
//
// Where images come from:
//   Image::load(path)          a PNG or JPEG file, recognised by its content
//   Image::decode(bytes)       the encoded bytes of a PNG or JPEG
//   Image::from_rgb(px, w, h)  raw RGB pixels
// Every other colour layout is converted to RGB on the way in: grayscale is
// replicated to the three channels, palette images are expanded, and an alpha
// channel (gray+alpha, RGBA, or a PNG tRNS transparency key) is composited
// over a WHITE background, because the vision encoder sees no alpha and most
// transparent images (diagrams, screenshots, logos) are drawn for a light
// page. 16-bit PNGs are reduced to 8 bits (the high byte of each sample).
//
// Untrusted input is the normal case. Sizes are checked against ImageLimits
// before any pixel memory is allocated: the width and height are read from
// the PNG/JPEG header first, so a tiny file declaring a huge picture (a
// "decompression bomb") is refused without decoding it.
//
// Errors are musespark::Error naming the file (or the `name` given to decode)
// and what is wrong:
//   io                a file is missing or unreadable, or cannot be written
//   format            not a PNG or JPEG, truncated or corrupt (with the decoder's reason)
//   unsupported       well-formed, but over an ImageLimits limit (bytes, width, height, pixels)
//   invalid_argument  a bad argument (from_rgb sizes, an empty crop)
//
// Thread-safety: all functions may be called concurrently from any thread.
// A given Image is like a std::vector: const members may be used from many
// threads at once, but not while another thread modifies it (data(),
// assignment).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace musespark {

// Limits applied to untrusted images. The defaults admit any ordinary photo
// or screenshot (up to 8192 x 8192 and 40 megapixels, 64 MiB encoded).
struct ImageLimits {
  int32_t max_width = 8192;
  int32_t max_height = 8192;
  int64_t max_pixels = 40'000'000;  // width * height
  size_t max_bytes = 64 << 20;      // size of the encoded data (file) accepted by load/decode
};

class Image {
 public:
  // Reads and decodes a PNG or JPEG file; the format is detected from the
  // content, not the extension. The file size is checked against
  // limits.max_bytes before it is read.
  // Errors: io (missing, not a regular file, unreadable), unsupported (too
  // many bytes, or dimensions over the limits), format (not PNG/JPEG,
  // truncated, corrupt). The error names the file.
  static Image load(const std::filesystem::path& file, const ImageLimits& limits = {});

  // Decodes PNG or JPEG bytes (detected from the content). `name` is only
  // used in error messages (e.g. "request.images[2]"). The bytes are not
  // retained. Errors as for load(), naming `name`.
  static Image decode(std::span<const std::byte> encoded, const std::string& name = "image",
                      const ImageLimits& limits = {});

  // Copies raw pixels: `rgb` must hold exactly width * height * 3 bytes in the
  // layout described at the top of this file.
  // Errors: invalid_argument if width or height is not positive or the span
  // size is wrong; unsupported if the size is over the limits.
  static Image from_rgb(std::span<const uint8_t> rgb, int32_t width, int32_t height,
                        const ImageLimits& limits = {});

  // Both are at least 1 for any Image made by the functions above. A
  // moved-from Image is 0 x 0 with no pixels; only assign to it or destroy it.
  int32_t width() const noexcept { return width_; }
  int32_t height() const noexcept { return height_; }

  // The width * height * 3 bytes. The span is valid until this Image is
  // modified, assigned or destroyed.
  std::span<const uint8_t> pixels() const noexcept { return pixels_; }

  // Mutable access to the same bytes (for drawing annotations). The size and
  // layout cannot change through it.
  uint8_t* data() noexcept { return pixels_.data(); }

  // A new Image holding the pixels in columns [x0, x1) and rows [y0, y1).
  // The rectangle is first clamped to the image, so coordinates may lie
  // outside it (a zoom region that spills over the edge keeps the part that
  // is inside). Errors: invalid_argument if nothing is left after clamping
  // (x1 <= x0 or y1 <= y0 once clamped), naming the rectangle and image size.
  Image crop(int32_t x0, int32_t y0, int32_t x1, int32_t y1) const;

  // Writes this image as an 8-bit RGB PNG file, replacing any existing file
  // atomically (a reader, or a process killed meanwhile, sees the old file or
  // the new one whole).
  // Errors: io naming the file if it cannot be written completely.
  void save_png(const std::filesystem::path& file) const;

  // The PNG encoding of this image (8-bit RGB), as a new byte vector owned by
  // the caller. decode() of it gives back exactly these pixels.
  std::vector<uint8_t> encode_png() const;

  Image(const Image&) = default;
  Image& operator=(const Image&) = default;
  Image(Image&& other) noexcept;
  Image& operator=(Image&& other) noexcept;
  ~Image() = default;

 private:
  Image(int32_t width, int32_t height, std::vector<uint8_t> pixels) noexcept;

  int32_t width_ = 0;
  int32_t height_ = 0;
  std::vector<uint8_t> pixels_;
};

}  // namespace musespark
