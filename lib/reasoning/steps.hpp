// Reasoning steps (the paragraphs of an agent's thinking, mapped to the
// tokens that produced them), and the small UTF-8 text helpers the reasoning
// layer shares (answer extraction, workspace, steps).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "musespark/trace.hpp"

namespace musespark::detail {

// Splits `thinking` into steps: paragraphs separated by one or more blank
// lines (empty or whitespace-only, Unicode white space included). Each step's
// text is trimmed; empty paragraphs are skipped; indices count from 0.
//
// `token_end_offsets[i]` is the byte offset in `thinking` where generated
// token i's text ends (so token i covers [end[i-1], end[i]), token 0 starts
// at 0). A step's [first_token, end_token) are the tokens whose bytes overlap
// the step's trimmed text; a step beyond the last offset gets an empty range
// at the token count. With no offsets every range is [0, 0).
//
// Returns a new vector (owned by the caller). Pure; thread-safe.
// Error{invalid_argument, field "token_end_offsets"} when the offsets
// decrease.
std::vector<ReasoningStep> split_steps(std::string_view thinking, std::span<const size_t> token_end_offsets);

// --- UTF-8 text helpers (pure, thread-safe, no errors; invalid bytes are
// treated as single non-space characters and never split further). ---

// True for a Unicode White_Space code point (ASCII space and controls
// \t\n\v\f\r, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000).
bool is_unicode_space(char32_t cp) noexcept;

// Byte length of the white space starting at `pos` (0 if none there).
size_t space_length_at(std::string_view text, size_t pos) noexcept;

// `text` without leading and trailing Unicode white space (a view into it).
std::string_view trim_space(std::string_view text) noexcept;

// `text` trimmed, with every run of Unicode white space replaced by one
// ASCII space.
std::string collapse_space(std::string_view text);

// Replaces every occurrence of `from` (not empty) in `s` by `to`, left to
// right; replaced text is not searched again.
void replace_all(std::string& s, std::string_view from, std::string_view to);

// The largest byte count <= max_bytes at which `text` can be cut without
// splitting a UTF-8 sequence (a cut never lands on a continuation byte).
size_t utf8_floor(std::string_view text, size_t max_bytes) noexcept;

}  // namespace musespark::detail
