// A tiny bitmap font for annotating images: 5x8 glyphs for printable ASCII
// (32..126), drawn by hand for this project. Capitals and digits use rows
// 0-6; row 7 holds the descenders of g, j, p, q, y and the tails of , ; _.
#pragma once

#include <array>
#include <cstdint>

namespace musespark::detail::font {

inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 8;
inline constexpr int kAdvance = kGlyphWidth + 1;     // one column of spacing
inline constexpr int kLineHeight = kGlyphHeight + 1;  // one row of spacing

// One row per entry, top first; bit 4 is the leftmost column, bit 0 the rightmost.
using Glyph = std::array<uint8_t, kGlyphHeight>;

// The glyph of a printable ASCII character, or nullptr for any other byte
// (the caller draws a box for those). The returned pointer refers to static
// storage. Thread-safe.
const Glyph* glyph(char c);

}  // namespace musespark::detail::font
