// Rendering a trace's visual actions on its image.
#include <doctest/doctest.h>

#include "musespark/render.hpp"
#include "vision/draw.hpp"

using namespace musespark;

namespace {
Image grey(int w, int h) { return Image::from_rgb(std::vector<uint8_t>(size_t(w) * h * 3, 128), w, h); }
const uint8_t* px(const Image& im, int x, int y) { return im.pixels().data() + (size_t(y) * im.width() + x) * 3; }
bool is(const uint8_t* p, detail::Color c) { return p[0] == c[0] && p[1] == c[1] && p[2] == c[2]; }
}  // namespace

TEST_CASE("render: each agent's boxes and zooms are drawn in its colour, other images' are not") {
  ReasoningTrace t;
  VisualAction box;
  box.agent = 0;
  box.kind = "box";
  box.box = {10, 40, 60, 90};
  VisualAction zoom;
  zoom.agent = 3;
  zoom.kind = "zoom";
  zoom.box = {100, 100, 180, 150};
  VisualAction elsewhere = zoom;
  elsewhere.image = 1;
  elsewhere.box = {150, 10, 190, 30};
  t.visual_actions = {box, zoom, elsewhere};

  const Image in = grey(200, 160);
  const Image out = render_visual_actions(in, t);
  CHECK(out.width() == 200);
  CHECK(out.height() == 160);
  // The outlines lie on the boxes' edges, in each agent's colour.
  CHECK(is(px(out, 10, 60), detail::agent_color(0)));
  CHECK(is(px(out, 59, 60), detail::agent_color(0)));
  CHECK(is(px(out, 100, 120), detail::agent_color(3)));
  // Inside the boxes and far from them, the picture is untouched.
  CHECK(is(px(out, 35, 70), {128, 128, 128}));
  CHECK(is(px(out, 140, 130), {128, 128, 128}));
  // The action on image 1 is not drawn on image 0.
  CHECK(is(px(out, 189, 20), {128, 128, 128}));
  // The input is not changed.
  CHECK(is(px(in, 10, 60), {128, 128, 128}));
}
