// Image: decoding (stb_image, see stb_impl.cpp), validation, crop, PNG
// encoding; and the vision encoder's preprocessing.
#include "musespark/image.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <system_error>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "common/atomic_file.hpp"
#include "musespark/error.hpp"
#include "vision/preprocess.hpp"
#include "vision/stb_alloc.hpp"

#include <stdlib.h>  // before the hidden region (see stb_impl.cpp)
#pragma GCC visibility push(hidden)
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#pragma GCC visibility pop

namespace musespark {
namespace {

enum class Format { png, jpeg };

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

Format sniff_format(std::span<const uint8_t> bytes, const std::string& name) {
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPngSignature, 8) == 0) return Format::png;
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return Format::jpeg;
  if (bytes.empty()) throw Error(ErrorKind::format, name, "", "empty data, not a PNG or JPEG image");
  throw Error(ErrorKind::format, name, "", "not a PNG or JPEG image (unrecognised signature)");
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// The size a PNG declares in its IHDR chunk, read by hand: stb_image's own
// header probe refuses very large images with a generic "too large" before we
// could name the limit, and this needs no decoder at all.
std::pair<int64_t, int64_t> png_dimensions(std::span<const uint8_t> bytes, const std::string& name) {
  // signature (8), IHDR length (4), "IHDR" (4), width (4), height (4)
  if (bytes.size() < 24) throw Error(ErrorKind::format, name, "", "truncated PNG (no complete IHDR header)");
  if (read_be32(bytes.data() + 8) != 13 || std::memcmp(bytes.data() + 12, "IHDR", 4) != 0)
    throw Error(ErrorKind::format, name, "", "corrupt PNG (the first chunk is not a 13-byte IHDR)");
  return {read_be32(bytes.data() + 16), read_be32(bytes.data() + 20)};
}

// Checks a PNG's chunk structure before stb_image sees it: every chunk
// (length, type, data, CRC) lies inside the data and an IEND chunk ends it.
// stb trusts an IDAT's declared length and grows its buffer to fit before it
// finds the data missing: a 60-byte file could make it allocate 2 GiB (found
// by fuzzing). Returns what is wrong, or an empty string.
std::string png_structure_problem(std::span<const uint8_t> p) {
  size_t i = 8;  // after the signature
  while (i + 12 <= p.size()) {
    const size_t length = read_be32(p.data() + i);
    if (length > 0x7fffffffu) return "corrupt PNG (a chunk length over 2^31 - 1)";
    if (length > p.size() - i - 12)
      return fmt::format("truncated PNG (a {}-byte chunk at byte {} runs past the end of the data)", length, i);
    if (std::memcmp(p.data() + i + 4, "IEND", 4) == 0) return "";
    i += 12 + length;
  }
  return "truncated PNG (the data ends before its IEND chunk)";
}

// Checks a JPEG's segment structure before stb_image sees it; returns what
// is wrong, or an empty string. Two things stb 2.27 does not do itself:
//  - notice truncation: it decodes a cut-off JPEG silently (the missing scan
//    data becomes grey), so the stream must reach its end-of-image marker;
//  - bound Huffman tables: a DHT table whose 16 code counts sum to more than
//    256 makes stbi__build_huffman write past its 257-entry array (found by
//    fuzzing under UBSan; later stb versions check it);
//  - insist that a scan's Huffman tables were defined: stb leaves the tables
//    uninitialised until a DHT fills them, and a scan that names one no DHT
//    defined decodes with garbage indices (found by fuzzing under UBSan).
// Walks the top-level segments: marker, length, payload; after a
// start-of-scan, the entropy-coded data up to the next real marker. An EOI
// inside an embedded thumbnail (APP1 payload) is skipped with its segment.
std::string jpeg_structure_problem(std::span<const uint8_t> p) {
  const std::string truncated = "truncated JPEG (the data ends before its end-of-image marker)";
  size_t i = 2;  // after SOI
  const size_t n = p.size();
  bool defined[2][4] = {};  // [class: 0 DC, 1 AC][table id] seen in a DHT so far
  while (i < n) {
    // Junk between segments is skipped, as stb and libjpeg do, so that we
    // see every segment stb will see.
    while (i < n && p[i] != 0xFF) ++i;
    while (i < n && p[i] == 0xFF) ++i;  // fill bytes
    if (i >= n) return truncated;
    const uint8_t marker = p[i++];
    if (marker == 0xD9) return "";                                       // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // TEM, RSTn: no payload
    if (i + 2 > n) return truncated;
    const size_t length = (size_t{p[i]} << 8) | p[i + 1];
    if (length < 2) return "corrupt JPEG (a segment length below 2)";
    if (i + length > n) return truncated;
    if (marker == 0xC4) {  // DHT: one or more tables of (class/id, 16 counts, symbols)
      size_t t = i + 2;
      const size_t end = i + length;
      while (t < end) {
        if (t + 17 > end) return "corrupt JPEG (a Huffman table is cut short)";
        size_t symbols = 0;
        for (int k = 1; k <= 16; ++k) symbols += p[t + k];
        if (symbols > 256) return "corrupt JPEG (a Huffman table declares more than 256 codes)";
        const int table_class = p[t] >> 4, table_id = p[t] & 15;
        if (table_class > 1 || table_id > 3)
          return fmt::format("corrupt JPEG (a Huffman table with class {} and id {}; JPEG allows classes 0-1, ids 0-3)",
                             table_class, table_id);
        defined[table_class][table_id] = true;
        t += 17 + symbols;
      }
    }
    if (marker == 0xDA) {  // SOS header: Ns, then (component, DC/AC table ids) each, then Ss, Se, Ah/Al
      const size_t components = length >= 3 ? p[i + 2] : 0;
      if (components == 0 || length != 6 + 2 * components)
        return "corrupt JPEG (a start-of-scan header whose length does not match its component count)";
      const uint8_t spectral_start = p[i + 3 + 2 * components], spectral_end = p[i + 4 + 2 * components];
      for (size_t c = 0; c < components; ++c) {
        const int dc = p[i + 4 + 2 * c] >> 4, ac = p[i + 4 + 2 * c] & 15;
        // A scan that starts at coefficient 0 decodes DC values; one that ends past it decodes AC values.
        if ((spectral_start == 0 && (dc > 3 || !defined[0][dc])) || (spectral_end > 0 && (ac > 3 || !defined[1][ac])))
          return fmt::format(
              "corrupt JPEG (a scan uses Huffman table DC {} / AC {}, which no earlier DHT segment defines)", dc, ac);
      }
    }
    i += length;
    if (marker == 0xDA) {  // SOS: skip entropy-coded data (FF00 is a stuffed FF; RSTn are inside)
      while (i + 1 < n && !(p[i] == 0xFF && p[i + 1] != 0x00 && !(p[i + 1] >= 0xD0 && p[i + 1] <= 0xD7))) ++i;
      if (i + 1 >= n) return truncated;
    }
  }
  return truncated;
}

void check_limits(int64_t width, int64_t height, const ImageLimits& limits, const std::string& name) {
  if (width > limits.max_width || height > limits.max_height)
    throw Error(ErrorKind::unsupported, name, "",
                fmt::format("image is {}x{} pixels, over the limit of {}x{} (ImageLimits max_width, max_height)",
                            width, height, limits.max_width, limits.max_height));
  if (width * height > limits.max_pixels)
    throw Error(ErrorKind::unsupported, name, "",
                fmt::format("image is {}x{} = {} pixels, over the limit of {} (ImageLimits max_pixels)", width,
                            height, width * height, limits.max_pixels));
}

struct StbFree {
  void operator()(stbi_uc* p) const noexcept { stbi_image_free(p); }
};

}  // namespace

Image::Image(int32_t width, int32_t height, std::vector<uint8_t> pixels) noexcept
    : width_(width), height_(height), pixels_(std::move(pixels)) {}

Image::Image(Image&& other) noexcept
    : width_(std::exchange(other.width_, 0)),
      height_(std::exchange(other.height_, 0)),
      pixels_(std::move(other.pixels_)) {
  other.pixels_.clear();
}

Image& Image::operator=(Image&& other) noexcept {
  if (this != &other) {
    width_ = std::exchange(other.width_, 0);
    height_ = std::exchange(other.height_, 0);
    pixels_ = std::move(other.pixels_);
    other.pixels_.clear();
  }
  return *this;
}

Image Image::decode(std::span<const std::byte> encoded, const std::string& name, const ImageLimits& limits) {
  std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(encoded.data()), encoded.size());
  if (bytes.size() > limits.max_bytes)
    throw Error(ErrorKind::unsupported, name, "",
                fmt::format("encoded image is {} bytes, over the limit of {} (ImageLimits max_bytes)", bytes.size(),
                            limits.max_bytes));
  if (bytes.size() > static_cast<size_t>(INT_MAX))
    throw Error(ErrorKind::unsupported, name, "", "encoded image is 2 GiB or more");
  const Format format = sniff_format(bytes, name);
  const char* format_name = format == Format::png ? "PNG" : "JPEG";

  if (format == Format::jpeg) {  // before stbi_info, which already builds Huffman tables
    if (auto problem = jpeg_structure_problem(bytes); !problem.empty())
      throw Error(ErrorKind::format, name, "", problem);
  } else if (auto problem = png_structure_problem(bytes); !problem.empty()) {
    throw Error(ErrorKind::format, name, "", problem);
  }
  int64_t width = 0, height = 0;
  if (format == Format::png) {
    std::tie(width, height) = png_dimensions(bytes, name);
  } else {
    int w = 0, h = 0, channels = 0;
    if (!stbi_info_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &channels))
      throw Error(ErrorKind::format, name, "", fmt::format("corrupt JPEG header: {}", stbi_failure_reason()));
    width = w, height = h;
  }
  if (width <= 0 || height <= 0)
    throw Error(ErrorKind::format, name, "", fmt::format("corrupt {}: declares {}x{} pixels", format_name, width, height));
  check_limits(width, height, limits, name);

  // Always ask for RGBA: stb then expands gray, palette and tRNS keys for us,
  // and a single compositing loop handles every kind of transparency.
  // No buffer of a real image this size needs more than 16 bytes a pixel
  // (16-bit RGBA with its filter bytes, or a progressive JPEG's
  // coefficients) plus the compressed data: a larger request is stb
  // inflating a decompression bomb.
  detail::StbAllocationCap cap(static_cast<size_t>(width * height) * 16 + bytes.size() + (1u << 20));
  int w = 0, h = 0, channels_in_file = 0;
  std::unique_ptr<stbi_uc, StbFree> rgba(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &channels_in_file, 4));
  if (!rgba && cap.exceeded())
    throw Error(ErrorKind::format, name, "",
                fmt::format("corrupt {}: its compressed data expands past what {}x{} pixels need "
                            "(a decompression bomb?)", format_name, width, height));
  if (!rgba)
    throw Error(ErrorKind::format, name, "",
                fmt::format("cannot decode {}: {}", format_name, stbi_failure_reason()));
  if (w != width || h != height)
    throw Error(ErrorKind::format, name, "",
                fmt::format("corrupt {}: header says {}x{}, decoder found {}x{}", format_name, width, height, w, h));

  const size_t count = static_cast<size_t>(w) * static_cast<size_t>(h);
  std::vector<uint8_t> rgb(count * 3);
  const uint8_t* src = rgba.get();
  for (size_t i = 0; i < count; ++i, src += 4) {
    const uint32_t alpha = src[3];
    for (int c = 0; c < 3; ++c) {
      // Over white, rounded to nearest: (v*a + 255*(255-a)) / 255.
      rgb[3 * i + c] = alpha == 255 ? src[c]
                                    : static_cast<uint8_t>((src[c] * alpha + 255 * (255 - alpha) + 127) / 255);
    }
  }
  return Image(w, h, std::move(rgb));
}

Image Image::load(const std::filesystem::path& file, const ImageLimits& limits) {
  const std::string name = file.string();
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (ec || !std::filesystem::exists(status))
    throw Error(ErrorKind::io, name, "", ec && ec != std::errc::no_such_file_or_directory
                                             ? "cannot access: " + ec.message()
                                             : "no such file");
  if (!std::filesystem::is_regular_file(status)) throw Error(ErrorKind::io, name, "", "not a regular file");
  const auto size = std::filesystem::file_size(file, ec);
  if (ec) throw Error(ErrorKind::io, name, "", "cannot read its size: " + ec.message());
  if (size > limits.max_bytes)
    throw Error(ErrorKind::unsupported, name, "",
                fmt::format("file is {} bytes, over the limit of {} (ImageLimits max_bytes)", size, limits.max_bytes));

  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorKind::io, name, "", std::string("cannot open: ") + std::strerror(errno));
  std::vector<std::byte> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<uintmax_t>(in.gcount()) != size)
    throw Error(ErrorKind::io, name, "",
                fmt::format("read {} of {} bytes (the file changed or is unreadable)", in.gcount(), size));
  return decode(bytes, name, limits);
}

Image Image::from_rgb(std::span<const uint8_t> rgb, int32_t width, int32_t height, const ImageLimits& limits) {
  if (width <= 0 || height <= 0)
    throw Error(ErrorKind::invalid_argument, "", "width, height",
                fmt::format("must be positive, got {}x{}", width, height));
  check_limits(width, height, limits, "");
  const size_t expected = static_cast<size_t>(width) * static_cast<size_t>(height) * 3;
  if (rgb.size() != expected)
    throw Error(ErrorKind::invalid_argument, "", "rgb",
                fmt::format("holds {} bytes, but a {}x{} RGB image needs width*height*3 = {}", rgb.size(), width,
                            height, expected));
  return Image(width, height, std::vector<uint8_t>(rgb.begin(), rgb.end()));
}

Image Image::crop(int32_t x0, int32_t y0, int32_t x1, int32_t y1) const {
  const int32_t cx0 = std::clamp(x0, 0, width_), cx1 = std::clamp(x1, 0, width_);
  const int32_t cy0 = std::clamp(y0, 0, height_), cy1 = std::clamp(y1, 0, height_);
  if (cx1 <= cx0 || cy1 <= cy0)
    throw Error(ErrorKind::invalid_argument, "", "crop",
                fmt::format("region [{},{})x[{},{}) is empty inside the {}x{} image", x0, x1, y0, y1, width_,
                            height_));
  const int32_t w = cx1 - cx0, h = cy1 - cy0;
  std::vector<uint8_t> out(static_cast<size_t>(w) * h * 3);
  for (int32_t y = 0; y < h; ++y) {
    const uint8_t* src = pixels_.data() + (static_cast<size_t>(cy0 + y) * width_ + cx0) * 3;
    std::memcpy(out.data() + static_cast<size_t>(y) * w * 3, src, static_cast<size_t>(w) * 3);
  }
  return Image(w, h, std::move(out));
}

std::vector<uint8_t> Image::encode_png() const {
  if (pixels_.empty()) throw Error(ErrorKind::invalid_argument, "", "image", "cannot encode an empty (moved-from) image");
  // stb_image_write sizes its buffers with int arithmetic.
  if ((static_cast<int64_t>(width_) * 3 + 1) * height_ > INT_MAX / 2)
    throw Error(ErrorKind::unsupported, "", "image", fmt::format("{}x{} is too large to encode as PNG", width_, height_));
  std::vector<uint8_t> out;
  auto append = [](void* context, void* data, int size) {
    auto* sink = static_cast<std::vector<uint8_t>*>(context);
    const auto* bytes = static_cast<const uint8_t*>(data);
    sink->insert(sink->end(), bytes, bytes + size);
  };
  if (!stbi_write_png_to_func(append, &out, width_, height_, 3, pixels_.data(), width_ * 3))
    throw Error(ErrorKind::internal, "", "image", "PNG encoding failed (out of memory?)");
  return out;
}

void Image::save_png(const std::filesystem::path& file) const {
  const auto png = encode_png();
  detail::AtomicFile out(file);  // a reader sees the old file or the new one
  out.write(png.data(), png.size());
  out.commit();
}

namespace detail {
namespace {

// One axis of torch's bilinear resize (align_corners=False): output index o
// samples source coordinate ratio * (o + 0.5) - 0.5, clamped at 0, between
// pixels i0 and i1 (= i0 at the last pixel) with weights w0 + w1 = 1.
// The arithmetic is torch's own (ATen/native/UpSample.h,
// compute_source_index_and_lambda): the ratio is a float, the source
// coordinate a double (CPU acc_type), the weights floats; equal sizes copy.
// Matching it bit for bit keeps us within float rounding of the reference.
struct Tap {
  int32_t i0, i1;
  float w0, w1;
};

std::vector<Tap> linear_taps(int32_t input_size, int32_t output_size) {
  std::vector<Tap> taps(output_size);
  const float ratio = static_cast<float>(input_size) / static_cast<float>(output_size);
  for (int32_t o = 0; o < output_size; ++o) {
    if (input_size == output_size) {
      taps[o] = Tap{o, o, 1.f, 0.f};
      continue;
    }
    const double source = std::max(static_cast<double>(ratio) * (o + 0.5) - 0.5, 0.0);
    const int32_t i0 = std::min(static_cast<int32_t>(source), input_size - 1);
    const float w1 = static_cast<float>(source - i0);
    taps[o] = Tap{i0, i0 < input_size - 1 ? i0 + 1 : i0, 1.f - w1, w1};
  }
  return taps;
}

}  // namespace

std::vector<float> preprocess(const Image& image, const PreprocessConfig& config) {
  const int32_t size = config.image_size;
  if (size < 1 || size > 16384)
    throw Error(ErrorKind::invalid_argument, "", "image_size", fmt::format("must be in [1, 16384], got {}", size));
  for (int c = 0; c < 3; ++c)
    if (!(config.std[c] > 0.f) || !std::isfinite(config.std[c]) || !std::isfinite(config.mean[c]))
      throw Error(ErrorKind::invalid_argument, "", fmt::format("std[{}]", c),
                  fmt::format("mean must be finite and std positive and finite, got mean {} std {}", config.mean[c],
                              config.std[c]));
  const int32_t width = image.width(), height = image.height();
  if (width < 1 || height < 1)
    throw Error(ErrorKind::invalid_argument, "", "image", "cannot preprocess an empty (moved-from) image");

  float unit[256];  // v / 255, rounded as torch's float division
  for (int v = 0; v < 256; ++v) unit[v] = static_cast<float>(v) / 255.f;
  const auto rows = linear_taps(height, size);
  const auto cols = linear_taps(width, size);
  const uint8_t* px = image.pixels().data();
  const size_t plane = static_cast<size_t>(size) * size;
  std::vector<float> out(3 * plane);
  for (int32_t oy = 0; oy < size; ++oy) {
    const Tap& ty = rows[oy];
    const uint8_t* row0 = px + static_cast<size_t>(ty.i0) * width * 3;
    const uint8_t* row1 = px + static_cast<size_t>(ty.i1) * width * 3;
    for (int32_t ox = 0; ox < size; ++ox) {
      const Tap& tx = cols[ox];
      for (int c = 0; c < 3; ++c) {
        const float top = tx.w0 * unit[row0[tx.i0 * 3 + c]] + tx.w1 * unit[row0[tx.i1 * 3 + c]];
        const float bottom = tx.w0 * unit[row1[tx.i0 * 3 + c]] + tx.w1 * unit[row1[tx.i1 * 3 + c]];
        const float value = ty.w0 * top + ty.w1 * bottom;
        out[c * plane + static_cast<size_t>(oy) * size + ox] = (value - config.mean[c]) / config.std[c];
      }
    }
  }
  return out;
}

}  // namespace detail
}  // namespace musespark
