#include "reasoning/steps.hpp"

#include <algorithm>

#include "musespark/error.hpp"

namespace musespark::detail {
namespace {

bool is_continuation(unsigned char b) { return (b & 0xC0) == 0x80; }

// Decodes the code point at `pos` if it is a well-formed sequence; `length`
// gets its byte count (1 for an invalid byte, which decodes to U+FFFD).
char32_t decode_at(std::string_view text, size_t pos, size_t& length) {
  auto lead = static_cast<unsigned char>(text[pos]);
  length = 1;
  if (lead < 0x80) return lead;
  size_t n = lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 && lead < 0xE0 ? 2 : 0;
  if (n == 0 || lead > 0xF4 || pos + n > text.size()) return 0xFFFD;
  char32_t cp = lead & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
  for (size_t i = 1; i < n; ++i) {
    auto b = static_cast<unsigned char>(text[pos + i]);
    if (!is_continuation(b)) return 0xFFFD;
    cp = (cp << 6) | (b & 0x3F);
  }
  length = n;
  return cp;
}

bool blank(std::string_view line) { return trim_space(line).empty(); }

}  // namespace

bool is_unicode_space(char32_t cp) noexcept {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

size_t space_length_at(std::string_view text, size_t pos) noexcept {
  if (pos >= text.size()) return 0;
  size_t length = 0;
  char32_t cp = decode_at(text, pos, length);
  return is_unicode_space(cp) ? length : 0;
}

std::string_view trim_space(std::string_view text) noexcept {
  size_t begin = 0;
  while (size_t n = space_length_at(text, begin)) begin += n;
  // Scan forward remembering where the last non-space character ends: white
  // space is multi-byte, so it cannot be recognised from the back.
  size_t end = begin;
  size_t pos = begin;
  while (pos < text.size()) {
    if (size_t n = space_length_at(text, pos)) {
      pos += n;
    } else {
      size_t length = 0;
      decode_at(text, pos, length);
      pos += length;
      end = pos;
    }
  }
  return text.substr(begin, end - begin);
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t pos = 0;
  while ((pos = s.find(from, pos)) != std::string::npos) {
    s.replace(pos, from.size(), to);
    pos += to.size();
  }
}

std::string collapse_space(std::string_view text) {
  text = trim_space(text);
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    if (space_length_at(text, pos) > 0) {
      while (size_t n = space_length_at(text, pos)) pos += n;
      out += ' ';
    } else {
      out += text[pos++];
    }
  }
  return out;
}

size_t utf8_floor(std::string_view text, size_t max_bytes) noexcept {
  if (max_bytes >= text.size()) return text.size();
  size_t cut = max_bytes;
  // A continuation byte cannot start a character; step back at most 3 bytes
  // (further back would mean invalid bytes, which count as characters).
  for (int i = 0; i < 3 && cut > 0 && is_continuation(static_cast<unsigned char>(text[cut])); ++i) --cut;
  if (is_continuation(static_cast<unsigned char>(text[cut]))) return max_bytes;
  return cut;
}

std::vector<ReasoningStep> split_steps(std::string_view thinking, std::span<const size_t> token_end_offsets) {
  for (size_t i = 1; i < token_end_offsets.size(); ++i)
    if (token_end_offsets[i] < token_end_offsets[i - 1])
      throw Error(ErrorKind::invalid_argument, "", "token_end_offsets",
                  "must be non-decreasing; offset " + std::to_string(i) + " goes back");

  const auto ends = token_end_offsets;
  const auto token_count = static_cast<int64_t>(ends.size());
  std::vector<ReasoningStep> steps;

  auto emit = [&](size_t begin, size_t end) {
    std::string_view para = trim_space(thinking.substr(begin, end - begin));
    if (para.empty()) return;
    const size_t b = static_cast<size_t>(para.data() - thinking.data());
    const size_t e = b + para.size();
    ReasoningStep step;
    step.index = static_cast<int32_t>(steps.size());
    step.text = std::string(para);
    // First token ending after b: it starts at or before b, so it overlaps.
    step.first_token = std::upper_bound(ends.begin(), ends.end(), b) - ends.begin();
    // Tokens up to and including the first one that ends at or after e.
    auto last = std::lower_bound(ends.begin(), ends.end(), e);
    step.end_token = last == ends.end() ? token_count : (last - ends.begin()) + 1;
    step.end_token = std::max(step.end_token, step.first_token);
    steps.push_back(std::move(step));
  };

  size_t para_begin = 0;   // start of the current paragraph's first line
  bool in_para = false;
  size_t pos = 0;
  while (pos <= thinking.size()) {
    size_t nl = thinking.find('\n', pos);
    size_t line_end = nl == std::string_view::npos ? thinking.size() : nl;
    std::string_view line = thinking.substr(pos, line_end - pos);
    if (blank(line)) {
      if (in_para) emit(para_begin, pos);
      in_para = false;
    } else if (!in_para) {
      in_para = true;
      para_begin = pos;
    }
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
  if (in_para) emit(para_begin, thinking.size());
  return steps;
}

}  // namespace musespark::detail
