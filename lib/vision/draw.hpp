// Drawing on images: rectangles, lines, ellipses, triangles, text in the built-in bitmap font (font.hpp),
// labels, one colour per agent, and the annotation of a reasoning trace's
// visual actions (boxes and zooms).
//
// Coordinates are pixels of the image, x to the right and y down; a rectangle
// [x0, x1) x [y0, y1) covers columns x0..x1-1 and rows y0..y1-1, as in
// Image::crop. Anything may lie partly or wholly outside the image: drawing is
// clipped to it and never writes out of bounds. An Image being drawn on must
// not be used by another thread at the same time; otherwise these functions
// are thread-safe (no global state).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "musespark/image.hpp"

namespace musespark::detail {

using Color = std::array<uint8_t, 3>;  // R, G, B

struct Box {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // [x0, x1) x [y0, y1)
  bool empty() const { return x1 <= x0 || y1 <= y0; }
  bool operator==(const Box&) const = default;
};

// Paints every pixel of [x0, x1) x [y0, y1) (clipped). Empty: nothing.
void fill_rect(Image& image, int x0, int y0, int x1, int y1, Color color);

// Paints the pixels whose centres lie inside the ellipse inscribed in
// [x0, x1) x [y0, y1) (a circle in a square box). Clipped; empty box: nothing.
void fill_ellipse(Image& image, int x0, int y0, int x1, int y1, Color color);

// Paints the pixels whose centres lie inside the triangle inscribed in
// [x0, x1) x [y0, y1) with its apex at the middle of the top edge and its base
// along the bottom edge. Clipped; empty box: nothing.
void fill_triangle(Image& image, int x0, int y0, int x1, int y1, Color color);

// The outline of [x0, x1) x [y0, y1): a band `thickness` pixels wide just
// inside its edges (so the outline never grows the box; a box narrower than
// 2 * thickness is filled). thickness < 1 counts as 1. Clipped; an empty box
// draws nothing.
void draw_rect(Image& image, int x0, int y0, int x1, int y1, Color color, int thickness);

// A straight line from (x0, y0) to (x1, y1), both ends included: one pixel
// per step along the longer axis, the other coordinate rounded to the nearest
// pixel (halves rounded up), each pixel drawn as a thickness x thickness
// square centred on it (thickness < 1 counts as 1; even sizes reach one pixel
// further right and down). The same pixels whichever end is given first, and
// whatever part lies outside the image (only the part near the image is
// walked, so far-away ends cost nothing).
void draw_line(Image& image, int x0, int y0, int x1, int y1, Color color, int thickness = 1);

// Writes ASCII `text` with its top-left corner at (x, y), each font pixel
// drawn as a scale x scale block (scale < 1 counts as 1); '\n' starts a new
// line at x. Characters without a glyph are drawn as a hollow box (one box per
// UTF-8 character, not per byte). Only ink pixels are written; the background
// is left alone. Clipped at the image edges.
void draw_text(Image& image, int x, int y, std::string_view text, Color color, int scale);

// The rectangle draw_text(x, y, text, _, scale) may touch (ink can only fall
// inside it). Empty for empty text.
Box text_box(int x, int y, std::string_view text, int scale);

// A distinct, saturated colour per agent index, readable as a box colour on
// photos and as a label background: 12 colours, then they repeat. Any index
// is accepted (negative ones too).
Color agent_color(int index);

// Text on a filled background of `background` with a padding of 2 * scale
// pixels; the text is black or white, whichever contrasts more. The label's
// top-left corner is (x, y), moved (if it fits) so that the whole label lies
// inside the image. Returns the label's rectangle (before clipping).
Box draw_label(Image& image, int x, int y, std::string_view text, Color background, int scale = 1);

// A text scale that reads comfortably at the image's size (1 up to ~400 px,
// then one more per 400 px of the shorter side).
int text_scale_for(const Image& image);

// One visual action to draw: the agent that took it, its region in image
// pixels, and a short label (e.g. "A2 zoom"). Zooms are drawn with a double
// outline, boxes with a single one.
struct Annotation {
  int agent = 0;
  Box box;
  std::string label;
  bool zoom = false;
};

// Draws each annotation in its agent's colour, with its label above the
// region's top-left corner (inside the region when there is no room above).
// Line thickness and text scale follow the image's size.
void annotate(Image& image, std::span<const Annotation> annotations);

}  // namespace musespark::detail
