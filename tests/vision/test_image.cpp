// Image: decoding (PNG, JPEG, every colour layout), limits, errors, crop,
// PNG round trips; preprocessing against torch (tests/tools/image_reference.py).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "musespark/error.hpp"
#include "musespark/image.hpp"
#include "support.hpp"
#include "vision/preprocess.hpp"

// A private copy of the PNG/JPEG writer to make fixtures (the library's copy
// is hidden inside libmusespark.so).
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

using namespace musespark;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> pattern(int width, int height, int channels, uint32_t seed = 1) {
  std::vector<uint8_t> px(static_cast<size_t>(width) * height * channels);
  std::mt19937 rng(seed);
  for (auto& v : px) v = static_cast<uint8_t>(rng());
  return px;
}

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}

std::vector<uint8_t> write_png(const std::vector<uint8_t>& px, int width, int height, int channels) {
  std::vector<uint8_t> out;
  REQUIRE(stbi_write_png_to_func(append_bytes, &out, width, height, channels, px.data(), width * channels));
  return out;
}

std::vector<uint8_t> write_jpeg(const std::vector<uint8_t>& rgb, int width, int height, int quality = 95) {
  std::vector<uint8_t> out;
  REQUIRE(stbi_write_jpg_to_func(append_bytes, &out, width, height, 3, rgb.data(), quality));
  return out;
}

std::span<const std::byte> as_bytes(const std::vector<uint8_t>& v) { return std::as_bytes(std::span(v)); }

std::vector<uint8_t> pixels_of(const Image& image) { return {image.pixels().begin(), image.pixels().end()}; }

void write_file(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::vector<uint8_t> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs `f`, which must throw musespark::Error of `kind`; returns it.
template <typename F>
Error expect_error(ErrorKind kind, F&& f) {
  try {
    f();
  } catch (const Error& e) {
    CHECK_MESSAGE(static_cast<int>(e.kind()) == static_cast<int>(kind), e.what());
    return e;
  }
  FAIL("no musespark::Error thrown");
  throw;  // unreachable
}

void put_be32(std::vector<uint8_t>& bytes, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) bytes[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}

}  // namespace

TEST_CASE("image: from_rgb keeps the pixels and checks its arguments") {
  auto px = pattern(5, 3, 3);
  Image image = Image::from_rgb(px, 5, 3);
  CHECK(image.width() == 5);
  CHECK(image.height() == 3);
  CHECK(pixels_of(image) == px);
  px[0] ^= 0xFF;  // the Image owns a copy
  CHECK(image.pixels()[0] != px[0]);

  auto e = expect_error(ErrorKind::invalid_argument, [&] { Image::from_rgb(px, 5, 4); });
  CHECK(std::string(e.what()).find("5x4") != std::string::npos);
  expect_error(ErrorKind::invalid_argument, [&] { Image::from_rgb(std::span(px).first(44), 5, 3); });
  expect_error(ErrorKind::invalid_argument, [&] { Image::from_rgb({}, 0, 3); });
  expect_error(ErrorKind::invalid_argument, [&] { Image::from_rgb(px, -5, -3); });
  // Over the limits: refused before the (wrong) span size is even looked at.
  expect_error(ErrorKind::unsupported, [&] { Image::from_rgb(px, 100000, 1); });
  expect_error(ErrorKind::unsupported, [&] { Image::from_rgb(px, 5, 3, ImageLimits{.max_pixels = 14}); });
}

TEST_CASE("image: copies are deep and a moved-from image is empty") {
  auto px = pattern(4, 4, 3);
  Image a = Image::from_rgb(px, 4, 4);
  Image b = a;
  b.data()[0] = static_cast<uint8_t>(a.pixels()[0] + 1);
  CHECK(a.pixels()[0] == px[0]);
  Image c = std::move(a);
  CHECK(c.width() == 4);
  CHECK(pixels_of(c) == px);
  CHECK(a.width() == 0);  // NOLINT(bugprone-use-after-move): documented state
  CHECK(a.pixels().empty());
}

TEST_CASE("image: PNG encode, decode, save and load give back the same pixels") {
  for (auto [w, h] : {std::pair{1, 1}, {3, 7}, {64, 33}}) {
    auto px = pattern(w, h, 3, static_cast<uint32_t>(w * 100 + h));
    Image image = Image::from_rgb(px, w, h);
    auto png = image.encode_png();
    REQUIRE(png.size() > 8);
    CHECK(std::memcmp(png.data(), "\x89PNG", 4) == 0);
    Image back = Image::decode(as_bytes(png));
    CHECK(back.width() == w);
    CHECK(back.height() == h);
    CHECK(pixels_of(back) == px);
  }
  auto dir = test_support::temp_dir("image_png_round_trip");
  auto px = pattern(9, 4, 3);
  Image::from_rgb(px, 9, 4).save_png(dir / "a.png");
  CHECK(pixels_of(Image::load(dir / "a.png")) == px);
  // Detected by content, not by name.
  fs::copy_file(dir / "a.png", dir / "really_a_png.jpg");
  CHECK(pixels_of(Image::load(dir / "really_a_png.jpg")) == px);
  expect_error(ErrorKind::io, [&] { Image::from_rgb(px, 9, 4).save_png(dir / "no_such_dir" / "a.png"); });
}

TEST_CASE("image: gray, gray+alpha and RGBA PNGs become RGB, alpha over white") {
  const int w = 6, h = 4;
  SUBCASE("gray") {
    auto g = pattern(w, h, 1);
    Image image = Image::decode(as_bytes(write_png(g, w, h, 1)));
    REQUIRE(image.pixels().size() == g.size() * 3);
    for (size_t i = 0; i < g.size(); ++i)
      for (int c = 0; c < 3; ++c) CHECK(image.pixels()[3 * i + c] == g[i]);
  }
  SUBCASE("gray+alpha") {
    auto ga = pattern(w, h, 2);
    ga[1] = 0, ga[3] = 255;  // one transparent, one opaque pixel for sure
    Image image = Image::decode(as_bytes(write_png(ga, w, h, 2)));
    CHECK(image.pixels()[0] == 255);
    CHECK(image.pixels()[3] == ga[2]);
    for (size_t i = 0; i < ga.size() / 2; ++i) {
      const int v = ga[2 * i], a = ga[2 * i + 1];
      const int want = static_cast<int>(std::lround((v * a + 255.0 * (255 - a)) / 255.0));
      for (int c = 0; c < 3; ++c) CHECK(image.pixels()[3 * i + c] == want);
    }
  }
  SUBCASE("RGBA") {
    auto rgba = pattern(w, h, 4);
    rgba[3] = 0, rgba[7] = 255, rgba[11] = 128;
    Image image = Image::decode(as_bytes(write_png(rgba, w, h, 4)));
    for (size_t i = 0; i < rgba.size() / 4; ++i)
      for (int c = 0; c < 3; ++c) {
        const double v = rgba[4 * i + c], a = rgba[4 * i + 3];
        CHECK(std::abs(image.pixels()[3 * i + c] - (v * a + 255.0 * (255 - a)) / 255.0) <= 0.5);
      }
    CHECK(image.pixels()[0] == 255);
    CHECK(image.pixels()[3] == rgba[4]);
  }
}

TEST_CASE("image: 16-bit, palette and tRNS PNGs match an independent encoder") {
  auto dir = test_support::temp_dir("image_png_kinds");
  for (std::string kind : {"gray16", "rgb16", "rgba16", "palette", "gray_trns"}) {
    CAPTURE(kind);
    auto png = dir / (kind + ".png"), rgb = dir / (kind + ".rgb");
    auto size = test_support::python_tool("image_reference.py png " + kind + " " + png.string() + " " + rgb.string());
    Image image = Image::load(png);
    CHECK(std::to_string(image.width()) + " " + std::to_string(image.height()) + "\n" == size);
    CHECK(pixels_of(image) == read_file(rgb));
  }
}

TEST_CASE("image: JPEG decodes close to its source") {
  // A smooth picture, so that JPEG's loss is small.
  const int w = 40, h = 24;
  std::vector<uint8_t> px(w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      px[(y * w + x) * 3 + 0] = static_cast<uint8_t>(x * 6);
      px[(y * w + x) * 3 + 1] = static_cast<uint8_t>(y * 10);
      px[(y * w + x) * 3 + 2] = 128;
    }
  Image image = Image::decode(as_bytes(write_jpeg(px, w, h)), "photo.jpg");
  CHECK(image.width() == w);
  CHECK(image.height() == h);
  double total = 0;
  for (size_t i = 0; i < px.size(); ++i) total += std::abs(image.pixels()[i] - px[i]);
  CHECK(total / px.size() < 3.0);
}

TEST_CASE("image: missing, unreadable and non-image inputs") {
  auto dir = test_support::temp_dir("image_errors");
  auto e = expect_error(ErrorKind::io, [&] { Image::load(dir / "missing.png"); });
  CHECK(e.file() == (dir / "missing.png").string());
  CHECK(std::string(e.what()).find("no such file") != std::string::npos);
  expect_error(ErrorKind::io, [&] { Image::load(dir); });

  write_file(dir / "notes.png", {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  e = expect_error(ErrorKind::format, [&] { Image::load(dir / "notes.png"); });
  CHECK(e.file() == (dir / "notes.png").string());
  CHECK(std::string(e.what()).find("not a PNG or JPEG") != std::string::npos);
  e = expect_error(ErrorKind::format, [&] { Image::decode({}, "request.images[0]"); });
  CHECK(e.file() == "request.images[0]");
  // A GIF is a real image, but not one we accept.
  std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0, 0, 0, 0, ';'};
  expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(gif)); });
}

TEST_CASE("image: truncated and corrupt PNG and JPEG data is a format error") {
  auto px = pattern(32, 32, 3);
  auto png = Image::from_rgb(px, 32, 32).encode_png();
  auto jpeg = write_jpeg(px, 32, 32);
  for (size_t keep : {size_t{4}, size_t{20}, size_t{40}, png.size() / 2, png.size() - 13}) {
    CAPTURE(keep);
    std::vector<uint8_t> cut(png.begin(), png.begin() + keep);
    auto e = expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(cut), "cut.png"); });
    CHECK(e.file() == "cut.png");
  }
  for (size_t keep : {size_t{3}, size_t{50}, jpeg.size() / 2, jpeg.size() - 2}) {
    CAPTURE(keep);
    std::vector<uint8_t> cut(jpeg.begin(), jpeg.begin() + keep);
    expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(cut), "cut.jpg"); });
  }
  // A JPEG with trailing bytes after its end marker is still fine.
  auto padded = jpeg;
  padded.insert(padded.end(), 100, 0);
  CHECK(Image::decode(as_bytes(padded)).width() == 32);

  // A Huffman table declaring more than 256 codes: stb 2.27 would write past
  // its table (found by fuzzing under UBSan); refused before stb sees it.
  auto bad_dht = jpeg;
  size_t dht = 2;
  while (dht + 4 < bad_dht.size() && !(bad_dht[dht] == 0xFF && bad_dht[dht + 1] == 0xC4)) ++dht;
  REQUIRE(dht + 21 < bad_dht.size());
  bad_dht[dht + 5 + 15] = 250;  // the 16th code count of the first table
  auto dht_error = expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(bad_dht), "dht.jpg"); });
  CHECK(dht_error.message().find("Huffman") != std::string::npos);

  // A scan naming a Huffman table no DHT defined: stb would decode with its
  // uninitialised table (found by fuzzing under UBSan); refused by name.
  auto undefined_table = jpeg;
  size_t sos = 2;
  while (sos + 4 < undefined_table.size() && !(undefined_table[sos] == 0xFF && undefined_table[sos + 1] == 0xDA))
    ++sos;
  REQUIRE(sos + 7 < undefined_table.size());
  undefined_table[sos + 6] = 0x33;  // the first component's DC/AC selectors: table 3, never defined
  auto scan_error = expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(undefined_table), "scan.jpg"); });
  CHECK(scan_error.message().find("DC 3 / AC 3") != std::string::npos);
  CHECK(scan_error.file() == "scan.jpg");

  // The compressed data scrambled: stb's zlib decoder must notice.
  auto broken = png;
  for (size_t i = 45; i < 80 && i < broken.size(); ++i) broken[i] = static_cast<uint8_t>(0xA5 ^ i);
  auto e = expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(broken), "scrambled.png"); });
  CHECK(e.message().find("cannot decode PNG") != std::string::npos);
  // IHDR replaced by another chunk name.
  auto no_ihdr = png;
  std::memcpy(no_ihdr.data() + 12, "IHDX", 4);
  expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(no_ihdr)); });
  // Zero width.
  auto zero = png;
  put_be32(zero, 16, 0);
  expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(zero)); });
}

TEST_CASE("image: a decompression bomb is refused from its header") {
  // A valid 1x1 PNG whose IHDR is rewritten to claim 100000 x 100000 pixels
  // (30 GB decoded); the file stays ~70 bytes.
  auto png = Image::from_rgb(std::vector<uint8_t>{1, 2, 3}, 1, 1).encode_png();
  put_be32(png, 16, 100000);
  put_be32(png, 20, 100000);
  auto e = expect_error(ErrorKind::unsupported, [&] { Image::decode(as_bytes(png), "bomb.png"); });
  CHECK(e.file() == "bomb.png");
  CHECK(e.message().find("100000x100000") != std::string::npos);
  CHECK(e.message().find("max_width") != std::string::npos);
  // Within width/height limits but over max_pixels.
  put_be32(png, 16, 8000);
  put_be32(png, 20, 8000);
  e = expect_error(ErrorKind::unsupported, [&] { Image::decode(as_bytes(png)); });
  CHECK(e.message().find("max_pixels") != std::string::npos);
  // Custom, tighter limits apply to real images too.
  auto small = Image::from_rgb(pattern(20, 10, 3), 20, 10).encode_png();
  expect_error(ErrorKind::unsupported, [&] { Image::decode(as_bytes(small), "x", ImageLimits{.max_width = 19}); });
  expect_error(ErrorKind::unsupported, [&] { Image::decode(as_bytes(small), "x", ImageLimits{.max_height = 9}); });
  CHECK(Image::decode(as_bytes(small), "x", ImageLimits{.max_width = 20, .max_height = 10, .max_pixels = 200})
            .width() == 20);

  // The same for JPEG: the frame header (SOF0) rewritten to 60000 x 60000.
  auto jpeg = write_jpeg(pattern(16, 16, 3), 16, 16);
  size_t sof = 2;
  while (sof + 4 < jpeg.size() && !(jpeg[sof] == 0xFF && jpeg[sof + 1] == 0xC0)) ++sof;
  REQUIRE(sof + 9 < jpeg.size());
  jpeg[sof + 5] = 0xEA, jpeg[sof + 6] = 0x60;  // height
  jpeg[sof + 7] = 0xEA, jpeg[sof + 8] = 0x60;  // width
  e = expect_error(ErrorKind::unsupported, [&] { Image::decode(as_bytes(jpeg), "bomb.jpg"); });
  CHECK(e.message().find("60000x60000") != std::string::npos);
}

namespace {

uint32_t crc32_of(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

void append_chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  const size_t at = png.size();
  png.resize(at + 8);
  put_be32(png, at, static_cast<uint32_t>(data.size()));
  std::memcpy(png.data() + at + 4, type, 4);
  png.insert(png.end(), data.begin(), data.end());
  const uint32_t crc = crc32_of(png.data() + at + 4, data.size() + 4);
  png.resize(png.size() + 4);
  put_be32(png, png.size() - 4, crc);
}

// An 8-bit RGB PNG of width x height whose IDAT holds `raw` (filter bytes
// and all) compressed with stb's zlib writer.
std::vector<uint8_t> png_with_raw_data(uint32_t width, uint32_t height, std::vector<uint8_t> raw) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr(13, 0);
  put_be32(ihdr, 0, width);
  put_be32(ihdr, 4, height);
  ihdr[8] = 8, ihdr[9] = 2;  // 8-bit RGB
  append_chunk(png, "IHDR", ihdr);
  int length = 0;
  unsigned char* z = stbi_zlib_compress(raw.data(), static_cast<int>(raw.size()), &length, 8);
  REQUIRE(z != nullptr);
  append_chunk(png, "IDAT", std::vector<uint8_t>(z, z + length));
  STBIW_FREE(z);
  append_chunk(png, "IEND", {});
  return png;
}

}  // namespace

TEST_CASE("image: chunks past the end and data that inflates too far are refused before they are allocated") {
  // The reference: a well-formed 2x1 PNG built by hand decodes.
  auto ok = png_with_raw_data(2, 1, {0, 10, 20, 30, 40, 50, 60});
  CHECK(pixels_of(Image::decode(as_bytes(ok))) == std::vector<uint8_t>{10, 20, 30, 40, 50, 60});

  // An IDAT declaring 2 GiB - 1 in a 60-byte file: stb would grow its buffer
  // to 2 GiB before finding the data missing (found by fuzzing).
  auto liar = ok;
  const size_t idat = 8 + 25;  // signature, IHDR chunk
  REQUIRE(std::memcmp(liar.data() + idat + 4, "IDAT", 4) == 0);
  put_be32(liar, idat, 0x7ffffff0u);
  auto e = expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(liar), "liar.png"); });
  CHECK(e.file() == "liar.png");
  CHECK(e.message().find("runs past the end") != std::string::npos);
  // No IEND.
  std::vector<uint8_t> no_end(ok.begin(), ok.end() - 12);
  e = expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(no_end), "no-end.png"); });
  CHECK(e.message().find("IEND") != std::string::npos);

  // A 1x1 PNG whose compressed data inflates to 8 MB: a few kilobytes that
  // stb would expand in full. Refused once it passes what 1x1 needs.
  auto bomb = png_with_raw_data(1, 1, std::vector<uint8_t>(8u << 20, 0));
  CHECK(bomb.size() < 128 * 1024);
  e = expect_error(ErrorKind::format, [&] { Image::decode(as_bytes(bomb), "inflate-bomb.png"); });
  CHECK(e.file() == "inflate-bomb.png");
  CHECK(e.message().find("expands past what 1x1 pixels need") != std::string::npos);
  // The cap is per decode: a large real image still decodes right after.
  auto big = Image::from_rgb(pattern(512, 512, 3), 512, 512).encode_png();
  CHECK(Image::decode(as_bytes(big)).width() == 512);
}

TEST_CASE("image: max_bytes limits encoded data and files") {
  auto png = Image::from_rgb(pattern(8, 8, 3), 8, 8).encode_png();
  auto e = expect_error(ErrorKind::unsupported,
                        [&] { Image::decode(as_bytes(png), "big", ImageLimits{.max_bytes = png.size() - 1}); });
  CHECK(e.message().find("max_bytes") != std::string::npos);
  CHECK(Image::decode(as_bytes(png), "ok", ImageLimits{.max_bytes = png.size()}).width() == 8);
  auto dir = test_support::temp_dir("image_max_bytes");
  write_file(dir / "a.png", png);
  e = expect_error(ErrorKind::unsupported, [&] { Image::load(dir / "a.png", ImageLimits{.max_bytes = 10}); });
  CHECK(e.file() == (dir / "a.png").string());
}

TEST_CASE("image: crop takes the half-open box x0..x1, y0..y1, clamped to the image") {
  const int w = 10, h = 6;
  auto px = pattern(w, h, 3);
  Image image = Image::from_rgb(px, w, h);
  auto expect_region = [&](const Image& c, int x0, int y0, int x1, int y1) {
    REQUIRE(c.width() == x1 - x0);
    REQUIRE(c.height() == y1 - y0);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x)
        for (int k = 0; k < 3; ++k)
          REQUIRE(c.pixels()[((y - y0) * c.width() + (x - x0)) * 3 + k] == px[(y * w + x) * 3 + k]);
  };
  expect_region(image.crop(2, 1, 7, 5), 2, 1, 7, 5);
  expect_region(image.crop(0, 0, w, h), 0, 0, w, h);
  expect_region(image.crop(9, 5, 10, 6), 9, 5, 10, 6);
  expect_region(image.crop(-5, -3, 4, 100), 0, 0, 4, h);
  expect_region(image.crop(INT32_MIN, INT32_MIN, INT32_MAX, INT32_MAX), 0, 0, w, h);
  expect_error(ErrorKind::invalid_argument, [&] { image.crop(3, 2, 3, 5); });
  expect_error(ErrorKind::invalid_argument, [&] { image.crop(5, 2, 3, 5); });
  auto e = expect_error(ErrorKind::invalid_argument, [&] { image.crop(10, 0, 20, 6); });
  CHECK(e.message().find("10x6") != std::string::npos);
  expect_error(ErrorKind::invalid_argument, [&] { image.crop(-9, -9, 0, 0); });
}

TEST_CASE("image: preprocess matches torch bilinear interpolate and normalise") {
  auto dir = test_support::temp_dir("image_preprocess");
  struct Case {
    int w, h, size;
  };
  const Case cases[] = {
      {1, 1, 1},    {1, 1, 5},    {2, 2, 1},    {7, 5, 3},     {5, 7, 16},   {13, 13, 13},  {33, 17, 24},
      {17, 33, 24}, {64, 48, 32}, {3, 50, 11},  {100, 1, 9},   {31, 29, 64}, {224, 160, 224},
  };
  const detail::PreprocessConfig clip{0, {0.48145466f, 0.4578275f, 0.40821073f}, {0.26862954f, 0.26130258f, 0.27577711f}};
  double worst = 0;
  for (const Case& c : cases) {
    CAPTURE(c.w);
    CAPTURE(c.h);
    CAPTURE(c.size);
    auto px = pattern(c.w, c.h, 3, static_cast<uint32_t>(c.w * 1000 + c.h * 10 + c.size));
    auto rgb_file = dir / "in.rgb", out_file = dir / "out.f32";
    write_file(rgb_file, px);
    auto config = clip;
    config.image_size = c.size;
    auto ours = detail::preprocess(Image::from_rgb(px, c.w, c.h), config);
    test_support::python_tool(
        "image_reference.py preprocess " + rgb_file.string() + " " + std::to_string(c.w) + " " + std::to_string(c.h) +
        " " + std::to_string(c.size) + " " + out_file.string() +
        " --mean 0.48145466,0.4578275,0.40821073 --std 0.26862954,0.26130258,0.27577711");
    auto theirs = test_support::read_floats(out_file);
    REQUIRE(ours.size() == static_cast<size_t>(3 * c.size * c.size));
    REQUIRE(theirs.size() == ours.size());
    double diff = 0;
    for (size_t i = 0; i < ours.size(); ++i) diff = std::max(diff, std::abs(double(ours[i]) - theirs[i]));
    CHECK(diff < 1e-5);
    worst = std::max(worst, diff);
  }
  MESSAGE("preprocess vs torch: max abs difference over all cases = " << worst);
}

TEST_CASE("image: preprocess layout and argument checks") {
  // 2x1 image, red then blue, resized to 2x2 (width stays, height doubles):
  // channel planes R, G, B in CHW order, identity normalisation.
  Image image = Image::from_rgb(std::vector<uint8_t>{255, 0, 0, 0, 0, 255}, 2, 1);
  auto out = detail::preprocess(image, {2, {0, 0, 0}, {1, 1, 1}});
  CHECK(out == std::vector<float>{1, 0, 1, 0, /*G*/ 0, 0, 0, 0, /*B*/ 0, 1, 0, 1});
  expect_error(ErrorKind::invalid_argument, [&] { detail::preprocess(image, {0, {0, 0, 0}, {1, 1, 1}}); });
  expect_error(ErrorKind::invalid_argument, [&] { detail::preprocess(image, {20000, {0, 0, 0}, {1, 1, 1}}); });
  auto e = expect_error(ErrorKind::invalid_argument, [&] { detail::preprocess(image, {4, {0, 0, 0}, {1, 0, 1}}); });
  CHECK(e.field() == "std[1]");
  expect_error(ErrorKind::invalid_argument, [&] { detail::preprocess(image, {4, {NAN, 0, 0}, {1, 1, 1}}); });
}
