// Visual chain-of-thought tags in an agent's thinking:
// <box>(x1,y1),(x2,y2)</box> and <zoom>(x1,y1),(x2,y2)</zoom>, with
// coordinates from 0 to 1000 relative to the image.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

namespace musespark::detail {

struct VisualTag {
  enum class Kind { box, zoom };
  Kind kind = Kind::box;
  std::array<double, 4> relative{};  // x1, y1, x2, y2 as written
  size_t begin = 0, end = 0;         // byte range of the whole tag in the text
};

// The complete, well-formed tags that end after byte `from` of `text`
// (so that calling again with the previous end finds each tag once). A tag
// whose body is not "(x1,y1),(x2,y2)" with numbers in [0, 1000] is skipped.
// Whitespace around numbers and separators is allowed. Pure; thread-safe.
std::vector<VisualTag> find_visual_tags(std::string_view text, size_t from);

// The region in pixels of a width x height image: x0 = floor(x1/1000*w),
// x1 = ceil(x2/1000*w) (likewise y), corners ordered, clamped to the image,
// and at least one pixel wide and high.
std::array<int32_t, 4> to_pixels(const std::array<double, 4>& relative, int32_t width, int32_t height);

}  // namespace musespark::detail
