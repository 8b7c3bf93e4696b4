#include "musespark/render.hpp"

#include <vector>

#include <fmt/format.h>

#include "vision/draw.hpp"

namespace musespark {

Image render_visual_actions(const Image& image, const ReasoningTrace& trace, int32_t image_index) {
  std::vector<detail::Annotation> annotations;
  for (const auto& v : trace.visual_actions) {
    if (v.image != image_index) continue;
    detail::Annotation a;
    a.agent = v.agent;
    a.box = {v.box[0], v.box[1], v.box[2], v.box[3]};
    a.zoom = v.kind == "zoom";
    a.label = fmt::format("A{} {}", v.agent, v.kind);
    annotations.push_back(std::move(a));
  }
  Image out = image;
  detail::annotate(out, annotations);
  return out;
}

}  // namespace musespark
