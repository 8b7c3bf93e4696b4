// Drawing: rectangles, clipping, text in the bitmap font, labels, agent
// colours, annotations, and PNG round trips of the result.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "musespark/image.hpp"
#include "support.hpp"
#include "vision/draw.hpp"
#include "vision/font.hpp"

using namespace musespark;
using namespace musespark::detail;

namespace {

constexpr Color kGray{40, 50, 60};
constexpr Color kRed{255, 0, 0};

Image canvas(int w, int h, Color fill = kGray) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h * 3);
  for (size_t i = 0; i < px.size(); i += 3) px[i] = fill[0], px[i + 1] = fill[1], px[i + 2] = fill[2];
  return Image::from_rgb(px, w, h);
}

Color at(const Image& image, int x, int y) {
  const uint8_t* p = image.pixels().data() + (static_cast<size_t>(y) * image.width() + x) * 3;
  return {p[0], p[1], p[2]};
}

// Every pixel is `inside` where want(x, y), and untouched (kGray) elsewhere.
void expect_exactly(const Image& image, Color inside, const std::function<bool(int, int)>& want) {
  int wrong = 0;
  for (int y = 0; y < image.height(); ++y)
    for (int x = 0; x < image.width(); ++x)
      if (at(image, x, y) != (want(x, y) ? inside : kGray)) ++wrong;
  CHECK(wrong == 0);
}

bool in_band(int x, int y, int x0, int y0, int x1, int y1, int t) {
  const bool inside = x >= x0 && x < x1 && y >= y0 && y < y1;
  const bool core = x >= x0 + t && x < x1 - t && y >= y0 + t && y < y1 - t;
  return inside && !core;
}

int count_not(const Image& image, Color background) {
  int n = 0;
  for (int y = 0; y < image.height(); ++y)
    for (int x = 0; x < image.width(); ++x) n += at(image, x, y) != background;
  return n;
}

}  // namespace

TEST_CASE("draw: rectangle outlines lie just inside the half-open box x0..x1, y0..y1") {
  for (int t : {1, 2, 3}) {
    CAPTURE(t);
    Image image = canvas(20, 15);
    draw_rect(image, 3, 2, 15, 11, kRed, t);
    expect_exactly(image, kRed, [&](int x, int y) { return in_band(x, y, 3, 2, 15, 11, t); });
  }
  Image filled = canvas(20, 15);  // narrower than 2 * thickness: filled
  draw_rect(filled, 5, 5, 9, 8, kRed, 3);
  expect_exactly(filled, kRed, [](int x, int y) { return x >= 5 && x < 9 && y >= 5 && y < 8; });
  Image zero = canvas(20, 15);  // thickness 0 counts as 1
  draw_rect(zero, 1, 1, 6, 6, kRed, 0);
  expect_exactly(zero, kRed, [](int x, int y) { return in_band(x, y, 1, 1, 6, 6, 1); });
  Image empty = canvas(20, 15);
  draw_rect(empty, 8, 3, 8, 10, kRed, 2);
  draw_rect(empty, 9, 3, 4, 10, kRed, 2);
  fill_rect(empty, 3, 7, 10, 7, kRed);
  CHECK(count_not(empty, kGray) == 0);
}

TEST_CASE("draw: rectangles partly or wholly outside are clipped") {
  struct R {
    int x0, y0, x1, y1, t;
  };
  for (R r : {R{-5, -4, 10, 8, 2}, R{12, 9, 40, 30, 3}, R{-100, 3, 100, 7, 1}, R{-10, -10, -2, -2, 2},
              R{16, 12, 30, 30, 1}, R{INT_MIN, INT_MIN, INT_MAX, INT_MAX, 4}, R{2, 2, 14, 10, 1000000}}) {
    CAPTURE(r.x0);
    CAPTURE(r.y0);
    CAPTURE(r.x1);
    CAPTURE(r.t);
    Image image = canvas(16, 12);
    draw_rect(image, r.x0, r.y0, r.x1, r.y1, kRed, r.t);
    expect_exactly(image, kRed, [&](int x, int y) {
      const int64_t X = x, Y = y, t = r.t;  // 64-bit: the INT_MIN/INT_MAX box
      const bool inside = X >= r.x0 && X < r.x1 && Y >= r.y0 && Y < r.y1;
      const bool core = X >= r.x0 + t && X < int64_t{r.x1} - t && Y >= r.y0 + t && Y < int64_t{r.y1} - t;
      return inside && !core;
    });
  }
  Image image = canvas(16, 12);
  fill_rect(image, -3, -3, 2, 2, kRed);
  expect_exactly(image, kRed, [](int x, int y) { return x < 2 && y < 2; });
}

TEST_CASE("draw: lines step along the longer axis, rounding the other to the nearest pixel") {
  Image h = canvas(20, 10);
  draw_line(h, 3, 4, 12, 4, kRed, 1);
  expect_exactly(h, kRed, [](int x, int y) { return y == 4 && x >= 3 && x <= 12; });

  Image diagonal = canvas(12, 12);
  draw_line(diagonal, 1, 2, 8, 9, kRed, 1);
  expect_exactly(diagonal, kRed, [](int x, int y) { return x >= 1 && x <= 8 && y == x + 1; });

  // Shallow: one pixel per column, y = round(3 x / 10) with halves up; steep: the same, transposed.
  auto shallow = [](int x, int y) { return x >= 0 && x <= 10 && y == (6 * x + 10) / 20; };
  Image s = canvas(16, 8);
  draw_line(s, 0, 0, 10, 3, kRed, 1);
  expect_exactly(s, kRed, shallow);
  Image steep = canvas(8, 16);
  draw_line(steep, 0, 0, 3, 10, kRed, 1);
  expect_exactly(steep, kRed, [&](int x, int y) { return shallow(y, x); });

  // Either end first: the same pixels, for every direction.
  for (auto [x0, y0, x1, y1] : {std::array{2, 3, 17, 9}, {17, 2, 4, 11}, {5, 1, 9, 12}, {1, 11, 18, 10}}) {
    Image a = canvas(20, 14), b = canvas(20, 14);
    draw_line(a, x0, y0, x1, y1, kRed, 2);
    draw_line(b, x1, y1, x0, y0, kRed, 2);
    CHECK(std::equal(a.pixels().begin(), a.pixels().end(), b.pixels().begin(), b.pixels().end()));
  }

  Image dot = canvas(5, 5);
  draw_line(dot, 2, 3, 2, 3, kRed, 1);
  expect_exactly(dot, kRed, [](int x, int y) { return x == 2 && y == 3; });
}

TEST_CASE("draw: thick lines are squares centred on each pixel, clipped, and far ends cost nothing") {
  Image thick = canvas(20, 12);
  draw_line(thick, 4, 5, 14, 5, kRed, 3);
  expect_exactly(thick, kRed, [](int x, int y) { return x >= 3 && x <= 15 && y >= 4 && y <= 6; });
  Image even = canvas(20, 12);
  draw_line(even, 4, 5, 14, 5, kRed, 2);  // one pixel further right and down
  expect_exactly(even, kRed, [](int x, int y) { return x >= 4 && x <= 15 && y >= 5 && y <= 6; });

  // Ends a billion pixels away: only the visible row or column is painted.
  Image wide = canvas(30, 10);
  draw_line(wide, INT_MIN / 2, 7, INT_MAX / 2, 7, kRed, 1);
  draw_line(wide, 4, INT_MAX, 4, INT_MIN, kRed, 1);
  expect_exactly(wide, kRed, [](int x, int y) { return y == 7 || x == 4; });
  // A long diagonal through the image keeps its slope exactly where it is visible.
  Image far = canvas(10, 10);
  draw_line(far, -1000000, -1000000, 1000000, 1000000, kRed, 1);
  expect_exactly(far, kRed, [](int x, int y) { return x == y; });
  // Wholly outside: nothing.
  Image outside = canvas(10, 10);
  draw_line(outside, -50, -3, 50, -2, kRed, 2);
  draw_line(outside, INT_MIN, INT_MIN, INT_MIN + 5, INT_MAX, kRed, 4);
  CHECK(count_not(outside, kGray) == 0);
}

TEST_CASE("draw: filled ellipses and triangles cover the pixel centres inside the shape, clipped") {
  // Centres (x + 0.5, y + 0.5); the boxes are chosen so that no centre lies
  // exactly on an edge.
  auto in_ellipse = [](int x, int y, double x0, double y0, double x1, double y1) {
    const double u = (x + 0.5 - (x0 + x1) / 2) / ((x1 - x0) / 2), v = (y + 0.5 - (y0 + y1) / 2) / ((y1 - y0) / 2);
    return u * u + v * v <= 1;
  };
  Image circle = canvas(40, 30);
  fill_ellipse(circle, 10, 5, 30, 25, kRed);
  expect_exactly(circle, kRed, [&](int x, int y) { return in_ellipse(x, y, 10, 5, 30, 25); });
  CHECK(count_not(circle, kGray) == doctest::Approx(3.14159 * 100).epsilon(0.05));
  Image wide = canvas(40, 30);
  fill_ellipse(wide, 3, 4, 34, 15, kRed);
  expect_exactly(wide, kRed, [&](int x, int y) { return in_ellipse(x, y, 3, 4, 34, 15); });
  Image clipped = canvas(15, 15);
  fill_ellipse(clipped, -10, -10, 21, 21, kRed);
  expect_exactly(clipped, kRed, [&](int x, int y) { return in_ellipse(x, y, -10, -10, 21, 21); });

  // Apex at the middle of the top edge, base on the bottom edge.
  auto in_triangle = [](int x, int y, double x0, double y0, double x1, double y1) {
    const double v = (y + 0.5 - y0) / (y1 - y0);
    return y >= y0 && y < y1 && std::abs(x + 0.5 - (x0 + x1) / 2) <= v * (x1 - x0) / 2;
  };
  Image triangle = canvas(40, 30);
  fill_triangle(triangle, 5, 5, 26, 25, kRed);
  expect_exactly(triangle, kRed, [&](int x, int y) { return in_triangle(x, y, 5, 5, 26, 25); });
  CHECK(count_not(triangle, kGray) == doctest::Approx(21 * 20 / 2.0).epsilon(0.05));
  Image cut = canvas(20, 12);
  fill_triangle(cut, -7, -3, 14, 17, kRed);
  expect_exactly(cut, kRed, [&](int x, int y) { return in_triangle(x, y, -7, -3, 14, 17); });

  Image empty = canvas(10, 10);
  fill_ellipse(empty, 5, 2, 5, 8, kRed);
  fill_triangle(empty, 2, 6, 8, 6, kRed);
  fill_ellipse(empty, INT_MIN, INT_MIN, INT_MIN + 4, INT_MIN + 4, kRed);
  CHECK(count_not(empty, kGray) == 0);
}

TEST_CASE("draw: the font has a glyph for every printable ASCII character") {
  std::set<font::Glyph> letters;
  for (int c = 32; c < 127; ++c) {
    const font::Glyph* g = font::glyph(static_cast<char>(c));
    REQUIRE(g != nullptr);
    int ink = 0;
    for (uint8_t row : *g) {
      ink += __builtin_popcount(row);
      CHECK(row < 32);
    }
    CHECK((ink == 0) == (c == ' '));
    // Only descenders use the last row.
    const bool descends = std::string_view("gjpqy,;_").find(static_cast<char>(c)) != std::string_view::npos;
    CHECK_MESSAGE(((*g)[font::kGlyphHeight - 1] != 0) == descends, "char ", static_cast<char>(c));
    if (std::isalnum(c)) letters.insert(*g);
  }
  CHECK(letters.size() == 62);  // every letter and digit looks different
  CHECK(font::glyph('\n') == nullptr);
  CHECK(font::glyph('\x7f') == nullptr);
  CHECK(font::glyph(static_cast<char>(0xC3)) == nullptr);
}

TEST_CASE("draw: text ink stays inside its box and follows the glyphs") {
  for (int scale : {1, 2, 3}) {
    CAPTURE(scale);
    Image image = canvas(120, 60);
    const std::string text = "Agent 3: gy?\nzoom (x1,y1)";
    draw_text(image, 4, 5, text, kRed, scale);
    const Box box = text_box(4, 5, text, scale);
    CHECK(box.x1 - box.x0 == (12 * font::kAdvance - 1) * scale);
    CHECK(box.y1 - box.y0 == (2 * font::kLineHeight - 1) * scale);
    int ink = 0, outside = 0;
    for (int y = 0; y < image.height(); ++y)
      for (int x = 0; x < image.width(); ++x)
        if (at(image, x, y) != kGray) {
          ++ink;
          CHECK(at(image, x, y) == kRed);
          outside += !(x >= box.x0 && x < box.x1 && y >= box.y0 && y < box.y1);
        }
    CHECK(ink > 100 * scale * scale);
    CHECK(outside == 0);
  }
  // One character, pixel for pixel: 'T' at scale 2.
  Image t = canvas(12, 16);
  draw_text(t, 0, 0, "T", kRed, 2);
  const font::Glyph& g = *font::glyph('T');
  expect_exactly(t, kRed, [&](int x, int y) { return x < 10 && (g[y / 2] >> (4 - x / 2) & 1); });
  CHECK(text_box(3, 4, "", 2).empty());
}

TEST_CASE("draw: unknown characters are boxes, one per UTF-8 character") {
  Image a = canvas(30, 10), b = canvas(30, 10);
  draw_text(a, 0, 0, "\x01" "A", kRed, 1);
  draw_text(b, 0, 0, "\xC3\xA9" "A", kRed, 1);  // "é" is two bytes, one box
  CHECK(std::equal(a.pixels().begin(), a.pixels().end(), b.pixels().begin()));
  // The box: outline of the 5x7 capital cell.
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 5; ++x) {
      const bool edge = y < 7 && (x == 0 || x == 4 || y == 0 || y == 6);
      CHECK((at(a, x, y) == kRed) == edge);
    }
  CHECK(text_box(0, 0, "\xC3\xA9" "A", 1) == Box{0, 0, 11, 8});
}

TEST_CASE("draw: text is clipped at every edge without writing out of bounds") {
  // Draw on a big canvas, and at the same offset on a small one: the small
  // one must equal the big one's window.
  const std::string text = "Clipped text 0123\nsecond line";
  for (auto [x, y] : {std::pair{-7, -3}, {20, 10}, {-200, 5}, {5, -100}, {INT_MIN / 2, INT_MAX / 2}, {33, 2}}) {
    CAPTURE(x);
    CAPTURE(y);
    Image small = canvas(40, 16);
    draw_text(small, x, y, text, kRed, 2);
    if (std::abs(int64_t{x}) > 1000 || std::abs(int64_t{y}) > 1000) {
      CHECK(count_not(small, kGray) == 0);
      continue;
    }
    const int ox = 300, oy = 150;
    Image big = canvas(40 + 2 * ox, 16 + 2 * oy);
    draw_text(big, x + ox, y + oy, text, kRed, 2);
    int mismatched = 0;
    for (int j = 0; j < 16; ++j)
      for (int i = 0; i < 40; ++i) mismatched += at(small, i, j) != at(big, i + ox, j + oy);
    CHECK(mismatched == 0);
  }
}

TEST_CASE("draw: agent colours are distinct and repeat after the palette") {
  std::vector<Color> colors;
  for (int i = 0; i < 12; ++i) colors.push_back(agent_color(i));
  for (size_t i = 0; i < colors.size(); ++i)
    for (size_t j = i + 1; j < colors.size(); ++j) {
      const int d = std::abs(colors[i][0] - colors[j][0]) + std::abs(colors[i][1] - colors[j][1]) +
                    std::abs(colors[i][2] - colors[j][2]);
      CHECK_MESSAGE(d >= 90, "agents ", i, " and ", j);
    }
  CHECK(agent_color(12) == agent_color(0));
  CHECK(agent_color(-1) == agent_color(11));
}

TEST_CASE("draw: a label is text on a filled background, kept inside the image") {
  Image image = canvas(100, 40);
  const Color yellow = agent_color(8), blue = agent_color(2);
  Box box = draw_label(image, 10, 5, "A1 box", yellow, 1);
  CHECK(box == Box{10, 5, 10 + 6 * 6 - 1 + 4, 5 + 8 + 4});
  int bg = 0, ink = 0;
  for (int y = box.y0; y < box.y1; ++y)
    for (int x = box.x0; x < box.x1; ++x) {
      const Color c = at(image, x, y);
      bg += c == yellow;
      ink += c == Color{0, 0, 0};  // dark text on a light background
    }
  CHECK(bg + ink == (box.x1 - box.x0) * (box.y1 - box.y0));
  CHECK(ink > 20);
  CHECK(count_not(image, kGray) == (box.x1 - box.x0) * (box.y1 - box.y0));

  Box corner = draw_label(image, 95, 38, "A2", blue, 2);  // pushed back inside
  CHECK(corner.x1 == 100);
  CHECK(corner.y1 == 40);
  CHECK(at(image, 99, 39) == blue);
  bool white_text = false;
  for (int y = corner.y0; y < corner.y1; ++y)
    for (int x = corner.x0; x < corner.x1; ++x) white_text |= at(image, x, y) == Color{255, 255, 255};
  CHECK(white_text);

  Image tiny = canvas(8, 6);  // wider than the image: starts at its left edge, clipped
  Box wide = draw_label(tiny, 3, 3, "too long a label", blue, 1);
  CHECK(wide.x0 == 0);
  CHECK(wide.y0 == 0);
}

TEST_CASE("draw: annotated images survive a PNG round trip") {
  Image image = canvas(320, 200);
  for (int y = 0; y < image.height(); ++y)  // a gradient, so the image is not flat
    for (int x = 0; x < image.width(); ++x) {
      uint8_t* p = image.data() + (y * image.width() + x) * 3;
      p[0] = static_cast<uint8_t>(x * 255 / 319), p[1] = static_cast<uint8_t>(y * 255 / 199), p[2] = 90;
    }
  const Annotation actions[] = {
      {0, {20, 40, 150, 160}, "A1 box", false},
      {1, {100, 20, 300, 120}, "A2 zoom", true},
      {2, {250, 150, 400, 260}, "A3 box (clipped)", false},
  };
  const Image before = image;
  annotate(image, actions);
  CHECK(at(image, 20, 100) == agent_color(0));  // left edge of the first box
  CHECK(at(image, 299, 60) == agent_color(1));  // right edge of the zoom
  CHECK(at(image, 295, 60) == agent_color(1));  // its inner outline (thickness 2, gap 4)
  CHECK(at(image, 297, 60) == at(before, 297, 60));  // the gap between them
  CHECK(at(image, 60, 100) == at(before, 60, 100));  // inside a box: untouched
  auto png = image.encode_png();
  Image back = Image::decode(std::as_bytes(std::span(png)), "annotated.png");
  CHECK(std::equal(back.pixels().begin(), back.pixels().end(), image.pixels().begin(), image.pixels().end()));
  image.save_png(test_support::temp_dir("draw_annotate") / "annotated.png");
}
