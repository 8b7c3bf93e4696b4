// musespark — taking the final answer out of an agent's text, and putting it
// in a canonical form so that equal answers vote together.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace musespark {

// Replaceable: a request may bring its own functions (e.g. for multiple
// choice, or code). Both must be pure and thread-safe.
struct AnswerExtractor {
  // From the answer text (after </think>) to the answer; "" when none.
  std::function<std::string(std::string_view answer_text)> extract;
  // From an answer to its canonical form for voting.
  std::function<std::string(std::string_view answer)> normalize;

  // The standard pair: extract_answer and normalize_answer below.
  static AnswerExtractor standard();
};

// The last \boxed{...} (braces balanced); else the text after the last
// "Answer:" / "answer is" on its line; else the last non-empty line. Markdown
// emphasis and a trailing full stop are removed. "" for blank text.
std::string extract_answer(std::string_view answer_text);

// Canonical form: Unicode-aware trim and whitespace collapse, lower case
// (ASCII), surrounding $...$, \text{...}, quotes and trailing punctuation
// removed; numbers canonical ("1,234" -> "1234", "12.50" -> "12.5",
// "3.0" -> "3", "+7" -> "7", "-0" -> "0", "1/2" stays "1/2").
std::string normalize_answer(std::string_view answer);

}  // namespace musespark
