// extract_answer / normalize_answer of include/musespark/answer.hpp.
#include "musespark/answer.hpp"

#include <array>
#include <optional>

#include "reasoning/steps.hpp"

namespace musespark {
namespace {

using detail::replace_all;
using detail::trim_space;

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}
bool is_ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// With `open` the index of a '{', the index of its matching '}' (LaTeX
// escapes \{ and \} do not count), or nullopt when it never closes.
std::optional<size_t> matching_brace(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;  // skip the escaped character
    } else if (s[i] == '{') {
      ++depth;
    } else if (s[i] == '}') {
      if (--depth == 0) return i;
    }
  }
  return std::nullopt;
}

// Trims white space, markdown emphasis/code marks at either end, and one
// trailing full stop (not an ellipsis), until nothing changes.
std::string_view clean(std::string_view s) {
  for (;;) {
    std::string_view before = s;
    s = trim_space(s);
    while (!s.empty() && (s.front() == '*' || s.front() == '`')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == '*' || s.back() == '`')) s.remove_suffix(1);
    if (s.size() >= 1 && s.back() == '.' && (s.size() == 1 || s[s.size() - 2] != '.')) s.remove_suffix(1);
    if (s == before) return s;
  }
}

// The content of the last \boxed{...} (or \fbox{...}) whose braces balance.
std::optional<std::string_view> last_boxed(std::string_view text) {
  std::optional<std::pair<size_t, std::string_view>> best;
  for (std::string_view marker : {std::string_view("\\boxed{"), std::string_view("\\fbox{")}) {
    size_t pos = text.size();
    while ((pos = text.rfind(marker, pos)) != std::string_view::npos) {
      size_t open = pos + marker.size() - 1;
      if (auto close = matching_brace(text, open)) {
        if (!best || pos > best->first) best.emplace(pos, text.substr(open + 1, *close - open - 1));
        break;
      }
      if (pos == 0) break;
      --pos;
    }
  }
  if (!best) return std::nullopt;
  return best->second;
}

std::string_view line_at(std::string_view text, size_t begin) {
  size_t nl = text.find('\n', begin);
  return text.substr(begin, (nl == std::string_view::npos ? text.size() : nl) - begin);
}

// The text after the last answer marker ("answer:", "answer is", which also
// covers "Final answer:" and "The answer is"), to the end of its line; when
// that is empty ("**Answer:**" alone on a line), the next non-empty line.
std::optional<std::string_view> after_answer_marker(std::string_view text) {
  const std::string lower = ascii_lower(text);
  std::optional<size_t> best_end;
  size_t best_pos = 0;
  for (std::string_view marker : {std::string_view("answer:"), std::string_view("answer is"),
                                  std::string_view("answer\xEF\xBC\x9A")}) {  // full-width colon
    size_t pos = lower.size();
    while ((pos = lower.rfind(marker, pos)) != std::string::npos) {
      size_t end = pos + marker.size();
      bool word_start = pos == 0 || !is_ascii_letter(lower[pos - 1]);
      // "answer is" must end a word ("the answer isn't" is no marker).
      bool word_end = marker != "answer is" || end >= lower.size() || !is_ascii_letter(lower[end]);
      if (word_start && word_end) {
        if (!best_end || pos > best_pos) {
          best_pos = pos;
          best_end = end;
        }
        break;
      }
      if (pos == 0) break;
      --pos;
    }
  }
  if (!best_end) return std::nullopt;

  std::string_view rest = line_at(text, *best_end);
  rest = clean(rest);
  while (!rest.empty() && rest.front() == ':') rest = clean(rest.substr(1));
  if (!rest.empty()) return rest;
  // Nothing on the marker's line: the next non-empty line.
  size_t pos = text.find('\n', *best_end);
  while (pos != std::string_view::npos) {
    std::string_view line = clean(line_at(text, pos + 1));
    if (!line.empty()) return line;
    pos = text.find('\n', pos + 1);
  }
  return std::nullopt;
}

std::string_view last_non_empty_line(std::string_view text) {
  std::string_view best;
  size_t pos = 0;
  for (;;) {
    std::string_view line = clean(line_at(text, pos));
    if (!line.empty()) best = line;
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return best;
    pos = nl + 1;
  }
}

// --- normalisation -------------------------------------------------------

// Removes one layer of a wrapper around the whole string; true if it did.
bool unwrap(std::string& s, std::string_view open, std::string_view close) {
  if (s.size() >= open.size() + close.size() && starts_with(s, open) && ends_with(s, close)) {
    s = std::string(trim_space(std::string_view(s).substr(open.size(), s.size() - open.size() - close.size())));
    return true;
  }
  return false;
}

// \cmd{X} as the whole string -> X; true if it did.
bool unwrap_whole_command(std::string& s, std::string_view command) {
  if (!starts_with(s, command) || s.size() <= command.size() || s[command.size()] != '{') return false;
  auto close = matching_brace(s, command.size());
  if (!close || *close != s.size() - 1) return false;
  return unwrap(s, std::string(command) + "{", "}");
}

// $X$ (or $$X$$) around the whole string, with no other $ inside.
bool unwrap_dollars(std::string& s) {
  for (std::string_view d : {std::string_view("$$"), std::string_view("$")}) {
    if (s.size() >= 2 * d.size() + 1 && starts_with(s, d) && ends_with(s, d) &&
        std::string_view(s).substr(d.size(), s.size() - 2 * d.size()).find('$') == std::string_view::npos)
      return unwrap(s, d, d);
  }
  return false;
}

// Replaces every \cmd{X} (braces balanced) by X.
bool unwrap_command(std::string& s, std::string_view command) {
  bool changed = false;
  size_t pos = 0;
  while ((pos = s.find(command, pos)) != std::string::npos) {
    size_t open = pos + command.size();
    if (open >= s.size() || s[open] != '{') {
      pos = open;
      continue;
    }
    auto close = matching_brace(s, open);
    if (!close) break;
    s = s.substr(0, pos) + s.substr(open + 1, *close - open - 1) + s.substr(*close + 1);
    changed = true;
  }
  return changed;
}

bool strip_trailing_punctuation(std::string& s) {
  static constexpr std::array<std::string_view, 12> kMarks = {
      ".", ",", ";", ":", "!", "?", "\xE3\x80\x82" /* 。 */, "\xEF\xBC\x8C" /* ， */,
      "\xEF\xBC\x9B" /* ； */, "\xEF\xBC\x9A" /* ： */, "\xEF\xBC\x81" /* ！ */, "\xEF\xBC\x9F" /* ？ */};
  for (std::string_view mark : kMarks) {
    if (s.size() > mark.size() && ends_with(s, mark)) {
      s.resize(s.size() - mark.size());
      return true;
    }
  }
  return false;
}

// Canonical decimal form of a plain number ("+1,234.50" -> "1234.5");
// nullopt when `s` is not one.
std::optional<std::string> canonical_number(std::string_view s) {
  bool negative = false;
  if (starts_with(s, "+")) {
    s.remove_prefix(1);
  } else if (starts_with(s, "-")) {
    negative = true;
    s.remove_prefix(1);
  } else if (starts_with(s, "\xE2\x88\x92")) {  // U+2212 minus sign
    negative = true;
    s.remove_prefix(3);
  }
  size_t dot = s.find('.');
  std::string_view integer = s.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (dot != std::string_view::npos && fraction.empty()) return std::nullopt;
  if (integer.empty() && fraction.empty()) return std::nullopt;
  for (char c : fraction)
    if (!is_digit(c)) return std::nullopt;

  std::string digits;
  if (integer.find(',') != std::string_view::npos) {
    // Thousands separators: 1-3 digits, then groups of exactly ",ddd".
    size_t first = integer.find(',');
    if (first == 0 || first > 3) return std::nullopt;
    for (size_t i = 0; i < integer.size(); ++i) {
      bool comma_here = i >= first && (i - first) % 4 == 0;
      if (comma_here ? integer[i] != ',' : !is_digit(integer[i])) return std::nullopt;
      if (!comma_here) digits += integer[i];
    }
    if ((integer.size() - first) % 4 != 0) return std::nullopt;
  } else {
    for (char c : integer)
      if (!is_digit(c)) return std::nullopt;
    digits = std::string(integer);
  }

  size_t lead = digits.find_first_not_of('0');
  digits = lead == std::string::npos ? "0" : digits.substr(lead);
  std::string frac(fraction);
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  std::string out = digits;
  if (!frac.empty()) out += "." + frac;
  if (negative && out != "0") out = "-" + out;
  return out;
}

}  // namespace

std::string extract_answer(std::string_view answer_text) {
  if (auto boxed = last_boxed(answer_text)) return std::string(clean(*boxed));
  if (auto after = after_answer_marker(answer_text)) return std::string(*after);
  return std::string(last_non_empty_line(answer_text));
}

std::string normalize_answer(std::string_view answer) {
  std::string s = detail::collapse_space(answer);
  for (bool changed = true; changed;) {
    changed = false;
    std::string before = s;
    s = std::string(clean(s));
    // Math delimiters, then LaTeX text wrappers, then quotes.
    changed |= unwrap_dollars(s) || unwrap(s, "\\(", "\\)") || unwrap(s, "\\[", "\\]");
    changed |= unwrap_whole_command(s, "\\boxed");
    for (std::string_view command : {"\\text", "\\textbf", "\\textit", "\\mathrm", "\\mathbf"})
      changed |= unwrap_command(s, command);
    changed |= unwrap(s, "\"", "\"") || unwrap(s, "'", "'") || unwrap(s, "\xE2\x80\x9C", "\xE2\x80\x9D") ||
               unwrap(s, "\xE2\x80\x98", "\xE2\x80\x99") || unwrap(s, "\xC2\xAB", "\xC2\xBB");
    changed |= strip_trailing_punctuation(s);
    s = detail::collapse_space(s);
    changed |= s != before;
  }
  s = ascii_lower(s);
  replace_all(s, "\\dfrac", "\\frac");
  replace_all(s, "\\tfrac", "\\frac");
  replace_all(s, "{,}", ",");
  if (auto number = canonical_number(s)) return *number;
  return s;
}

AnswerExtractor AnswerExtractor::standard() {
  return AnswerExtractor{[](std::string_view text) { return extract_answer(text); },
                         [](std::string_view answer) { return normalize_answer(answer); }};
}

}  // namespace musespark
