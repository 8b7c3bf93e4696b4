// How the curriculum's questions are worded: frames ("What is ...?",
// "Compute ...", "How much is ..."), operators as symbols or words, numbers
// as digits or words, and the irregular spacing, casing and punctuation of
// questions people type. Every choice is drawn from the task's Rng, so a task
// stays a pure function of (seed, index).
//
// Two disjoint sets of phrasings: `training` (what the default model is
// trained on) and `held_out` (frames and sentence forms it never sees,
// evaluated separately: `musespark eval --held-out-phrasings`). A held-out
// question asks the same kind of problem with the same cue words ("more",
// "gives away", "plus"), in sentences the model was not shown.
//
// Not thread-safe: a Wording borrows one Rng.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/rng.hpp"

namespace musespark::detail {

enum class Phrasings { training, held_out };
const char* phrasings_name(Phrasings set);                  // "training", "held_out"
std::optional<Phrasings> parse_phrasings(std::string_view name);

// 0..99 in words: "seven", "nineteen", "forty-two". Error{invalid_argument} outside.
std::string number_in_words(int n);

class Wording {
 public:
  Wording(Rng& rng, Phrasings set) : rng_(rng), set_(set) {}

  Rng& rng() { return rng_; }
  Phrasings set() const { return set_; }

  // One of `training` or of `held_out`, as the set says (uniformly).
  std::string_view pick(std::initializer_list<std::string_view> training,
                        std::initializer_list<std::string_view> held_out);
  // One of `choices` whichever the set (a part both sets share).
  std::string_view any(std::initializer_list<std::string_view> choices);
  // n as digits, or in words with probability `words` when 0 <= n <= 99.
  std::string number(int n, double words);
  // The question as a person might type it: now and then the first letter
  // lower case, a doubled space, the end mark dropped or doubled.
  std::string typed(std::string question);

 private:
  Rng& rng_;
  Phrasings set_;
};

// A left-to-right expression "37 + 48 - 19", "(12 + 5) * 3": `start`, then
// each (operator, operand); a product that follows a sum gets parentheses
// around what came before, so that the usual precedence agrees.
struct Expression {
  int start = 0;
  std::vector<std::pair<char, int>> ops;
};

// "What is 37 + 48 - 19?", "calculate 37+48-19", "How much is thirty-seven
// plus 48 minus 19?", "(12 + 5) x 3 = ?".
std::string arithmetic_question(Wording& w, const Expression& e);
// "Which is larger, 47 + 18 or 9 * 7?" and its variants.
std::string comparison_question(Wording& w, const Expression& left, const Expression& right);

}  // namespace musespark::detail
