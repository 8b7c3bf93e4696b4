// musespark — drawing a reasoning trace's visual chain-of-thought.
#pragma once

#include <cstdint>

#include "musespark/image.hpp"
#include "musespark/trace.hpp"

namespace musespark {

// A copy of `image` (the request's image number `image_index`) with every
// agent's boxes and zooms drawn on it: one colour per agent, each labelled
// with the agent and the action ("A2 zoom"); zooms have a double outline.
// Actions on other images are left out. Thread-safe; the result is the
// caller's.
Image render_visual_actions(const Image& image, const ReasoningTrace& trace, int32_t image_index = 0);

}  // namespace musespark
