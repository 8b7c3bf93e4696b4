#include "vision/draw.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <utility>

#include "vision/font.hpp"

namespace musespark::detail {
namespace {

// Coordinates are widened to 64 bits before arithmetic so that boxes far
// outside the image (or scaled text) cannot overflow.
void fill_clipped(Image& image, int64_t x0, int64_t y0, int64_t x1, int64_t y1, Color color) {
  x0 = std::max<int64_t>(x0, 0), y0 = std::max<int64_t>(y0, 0);
  x1 = std::min<int64_t>(x1, image.width()), y1 = std::min<int64_t>(y1, image.height());
  if (x1 <= x0 || y1 <= y0) return;
  uint8_t* px = image.data();
  for (int64_t y = y0; y < y1; ++y) {
    uint8_t* p = px + (y * image.width() + x0) * 3;
    for (int64_t x = x0; x < x1; ++x, p += 3) p[0] = color[0], p[1] = color[1], p[2] = color[2];
  }
}

// Fills, row by row, a shape symmetric about the vertical centre line of
// [x0, x1) x [y0, y1): `half_width(v)` is its half width at the relative
// height v in [0, 1] of a row's centre. A pixel is painted when its centre is
// within the half width of the centre line.
template <class HalfWidth>
void fill_symmetric(Image& image, int x0, int y0, int x1, int y1, Color color, HalfWidth half_width) {
  if (x1 <= x0 || y1 <= y0) return;
  const double cx = (static_cast<double>(x0) + x1) / 2, height = static_cast<double>(y1) - y0;
  const int64_t first = std::max<int64_t>(y0, 0), last = std::min<int64_t>(y1, image.height());
  for (int64_t y = first; y < last; ++y) {
    const double w = half_width((static_cast<double>(y) + 0.5 - y0) / height);
    if (w < 0) continue;
    // Columns x with |x + 0.5 - cx| <= w.
    const auto from = static_cast<int64_t>(std::ceil(cx - w - 0.5)), to = static_cast<int64_t>(std::floor(cx + w - 0.5));
    fill_clipped(image, from, y, to + 1, y + 1, color);
  }
}

bool is_utf8_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

void fill_rect(Image& image, int x0, int y0, int x1, int y1, Color color) {
  fill_clipped(image, x0, y0, x1, y1, color);
}

void fill_ellipse(Image& image, int x0, int y0, int x1, int y1, Color color) {
  const double radius = (static_cast<double>(x1) - x0) / 2;
  fill_symmetric(image, x0, y0, x1, y1, color, [&](double v) {
    const double d = 2 * v - 1;  // -1 at the top edge, 1 at the bottom
    return 1 - d * d < 0 ? -1.0 : radius * std::sqrt(1 - d * d);
  });
}

void fill_triangle(Image& image, int x0, int y0, int x1, int y1, Color color) {
  const double half_base = (static_cast<double>(x1) - x0) / 2;
  fill_symmetric(image, x0, y0, x1, y1, color, [&](double v) { return half_base * v; });
}

void draw_rect(Image& image, int x0, int y0, int x1, int y1, Color color, int thickness) {
  if (x1 <= x0 || y1 <= y0) return;
  const int64_t t = std::max(thickness, 1);
  fill_clipped(image, x0, y0, x1, std::min<int64_t>(y0 + t, y1), color);      // top
  fill_clipped(image, x0, std::max<int64_t>(y1 - t, y0), x1, y1, color);      // bottom
  fill_clipped(image, x0, y0, std::min<int64_t>(x0 + t, x1), y1, color);      // left
  fill_clipped(image, std::max<int64_t>(x1 - t, x0), y0, x1, y1, color);      // right
}

void draw_line(Image& image, int x0, int y0, int x1, int y1, Color color, int thickness) {
  const int64_t t = std::max(thickness, 1), back = (t - 1) / 2;
  const bool x_major = std::abs(int64_t{x1} - x0) >= std::abs(int64_t{y1} - y0);
  // Walk the major axis upwards: (a, b) are (major, minor) coordinates.
  int64_t a0 = x_major ? x0 : y0, b0 = x_major ? y0 : x0, a1 = x_major ? x1 : y1, b1 = x_major ? y1 : x1;
  if (a1 < a0) std::swap(a0, a1), std::swap(b0, b1);
  const int64_t da = a1 - a0, db = b1 - b0;
  const int64_t extent = x_major ? image.width() : image.height();
  const int64_t first = std::max(a0, -t), last = std::min(a1, extent + t);
  for (int64_t a = first; a <= last; ++a) {
    // Nearest pixel, halves up: b0 + floor((2 k db + da) / (2 da)), k = a - a0 >= 0
    // (in 128 bits: k and db may each approach 2^32).
    const __int128 n = __int128{2} * (a - a0) * db + da, d = 2 * std::max<int64_t>(da, 1);
    const int64_t b = b0 + static_cast<int64_t>(n >= 0 ? n / d : -((-n + d - 1) / d));
    const int64_t x = x_major ? a : b, y = x_major ? b : a;
    fill_clipped(image, x - back, y - back, x - back + t, y - back + t, color);
  }
}

void draw_text(Image& image, int x, int y, std::string_view text, Color color, int scale) {
  const int64_t s = std::max(scale, 1);
  int64_t pen_x = x, pen_y = y;
  for (char c : text) {
    if (c == '\n') {
      pen_x = x, pen_y += font::kLineHeight * s;
      continue;
    }
    if (is_utf8_continuation(c)) continue;  // one box per multi-byte character
    if (const font::Glyph* g = font::glyph(c)) {
      for (int gy = 0; gy < font::kGlyphHeight; ++gy)
        for (int gx = 0; gx < font::kGlyphWidth; ++gx)
          if ((*g)[gy] >> (font::kGlyphWidth - 1 - gx) & 1)
            fill_clipped(image, pen_x + gx * s, pen_y + gy * s, pen_x + (gx + 1) * s, pen_y + (gy + 1) * s, color);
    } else {  // a hollow box over the capital-height cell
      const int64_t x1 = pen_x + font::kGlyphWidth * s, y1 = pen_y + (font::kGlyphHeight - 1) * s;
      fill_clipped(image, pen_x, pen_y, x1, pen_y + s, color);
      fill_clipped(image, pen_x, y1 - s, x1, y1, color);
      fill_clipped(image, pen_x, pen_y, pen_x + s, y1, color);
      fill_clipped(image, x1 - s, pen_y, x1, y1, color);
    }
    pen_x += font::kAdvance * s;
  }
}

Box text_box(int x, int y, std::string_view text, int scale) {
  const int s = std::max(scale, 1);
  int lines = 1, columns = 0, widest = 0;
  for (char c : text) {
    if (c == '\n') {
      ++lines, columns = 0;
    } else if (!is_utf8_continuation(c)) {
      widest = std::max(widest, ++columns);
    }
  }
  if (widest == 0) return Box{x, y, x, y};
  // The last column and row of spacing carry no ink.
  return Box{x, y, x + (widest * font::kAdvance - 1) * s, y + (lines * font::kLineHeight - 1) * s};
}

Color agent_color(int index) {
  // Distinct hues of similar weight, dark enough for white text or light
  // enough for black text (draw_label picks), and visible on photos.
  static constexpr Color kPalette[] = {
      {230, 25, 75},   {60, 180, 75},  {0, 130, 200},  {245, 130, 48}, {145, 30, 180}, {70, 240, 240},
      {240, 50, 230},  {210, 245, 60}, {255, 225, 25}, {0, 0, 128},  {170, 110, 40}, {128, 0, 0},
  };
  constexpr int n = sizeof(kPalette) / sizeof(kPalette[0]);
  return kPalette[((index % n) + n) % n];
}

Box draw_label(Image& image, int x, int y, std::string_view text, Color background, int scale) {
  const int s = std::max(scale, 1), pad = 2 * s;
  const Box inner = text_box(0, 0, text, s);
  const int w = inner.x1 + 2 * pad, h = inner.y1 + 2 * pad;
  // Keep the label inside the image when it fits: right/bottom edge first,
  // then left/top (so a label wider than the image starts at its left edge).
  x = std::max(std::min(x, image.width() - w), 0);
  y = std::max(std::min(y, image.height() - h), 0);
  const int luma = (299 * background[0] + 587 * background[1] + 114 * background[2]) / 1000;
  const Color ink = luma >= 150 ? Color{0, 0, 0} : Color{255, 255, 255};
  fill_rect(image, x, y, x + w, y + h, background);
  draw_text(image, x + pad, y + pad, text, ink, s);
  return Box{x, y, x + w, y + h};
}

int text_scale_for(const Image& image) { return 1 + std::min(image.width(), image.height()) / 400; }

void annotate(Image& image, std::span<const Annotation> annotations) {
  const int scale = text_scale_for(image);
  const int thickness = std::max(2, std::min(image.width(), image.height()) / 250);
  for (const Annotation& a : annotations) {
    const Color color = agent_color(a.agent);
    const Box& b = a.box;
    draw_rect(image, b.x0, b.y0, b.x1, b.y1, color, thickness);
    if (a.zoom) draw_rect(image, b.x0 + 2 * thickness, b.y0 + 2 * thickness, b.x1 - 2 * thickness,
                          b.y1 - 2 * thickness, color, thickness);
    if (a.label.empty()) continue;
    const int label_height = text_box(0, 0, a.label, scale).y1 + 4 * scale;
    const int label_y = b.y0 - label_height >= 0 ? b.y0 - label_height : b.y0;
    draw_label(image, b.x0, label_y, a.label, color, scale);
  }
}

}  // namespace musespark::detail
