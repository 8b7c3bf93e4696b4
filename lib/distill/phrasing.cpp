#include "distill/phrasing.hpp"

#include <fmt/format.h>

#include <vector>

#include "musespark/error.hpp"

namespace musespark::detail {
namespace {

std::string_view uniform(Rng& rng, std::initializer_list<std::string_view> choices) {
  return *(choices.begin() + rng.between(0, static_cast<int>(choices.size()) - 1));
}

// How an expression's operators are written in one question.
enum class OperatorStyle { spaced, compact, words };

std::string operator_text(Wording& w, char op, OperatorStyle style) {
  if (style == OperatorStyle::words) {
    if (op == '+') return " plus ";
    if (op == '-') return " minus ";
    return std::string(" ") + std::string(w.any({"times", "times", "multiplied by"})) + " ";
  }
  std::string symbol(1, op);
  if (op == '*') symbol = std::string(w.any({"*", "*", "x", "\u00d7"}));
  return style == OperatorStyle::spaced ? " " + symbol + " " : symbol;
}

std::string expression_text(Wording& w, const Expression& e, OperatorStyle style) {
  const double words = style == OperatorStyle::words ? 0.25 : 0.0;
  std::string text = w.number(e.start, words);
  bool sum_on_top = false;  // the text so far ends in + or - at its top level
  for (const auto& [op, operand] : e.ops) {
    if (op == '*' && sum_on_top) text = "(" + text + ")";
    text += operator_text(w, op, style) + w.number(operand, words);
    sum_on_top = op != '*';
  }
  return text;
}

OperatorStyle draw_style(Rng& rng) {
  const double u = rng.unit();
  return u < 0.45 ? OperatorStyle::spaced : u < 0.7 ? OperatorStyle::compact : OperatorStyle::words;
}

}  // namespace

const char* phrasings_name(Phrasings set) { return set == Phrasings::training ? "training" : "held_out"; }

std::optional<Phrasings> parse_phrasings(std::string_view name) {
  if (name == "training") return Phrasings::training;
  if (name == "held_out") return Phrasings::held_out;
  return std::nullopt;
}

std::string number_in_words(int n) {
  static constexpr const char* kOnes[] = {"zero",    "one",     "two",       "three",    "four",
                                          "five",    "six",     "seven",     "eight",    "nine",
                                          "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                          "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
  static constexpr const char* kTens[] = {"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
  if (n < 0 || n > 99)
    throw Error(ErrorKind::invalid_argument, "", "n", fmt::format("number_in_words takes 0..99, got {}", n));
  if (n < 20) return kOnes[n];
  return n % 10 == 0 ? kTens[n / 10] : fmt::format("{}-{}", kTens[n / 10], kOnes[n % 10]);
}

std::string_view Wording::pick(std::initializer_list<std::string_view> training,
                               std::initializer_list<std::string_view> held_out) {
  return uniform(rng_, set_ == Phrasings::training ? training : held_out);
}

std::string_view Wording::any(std::initializer_list<std::string_view> choices) { return uniform(rng_, choices); }

std::string Wording::number(int n, double words) {
  if (n >= 0 && n <= 99 && words > 0 && rng_.chance(words)) return number_in_words(n);
  return std::to_string(n);
}

std::string Wording::typed(std::string q) {
  if (q.empty()) return q;
  if (rng_.chance(0.15) && q[0] >= 'A' && q[0] <= 'Z') q[0] = static_cast<char>(q[0] - 'A' + 'a');
  if (rng_.chance(0.1)) {
    std::vector<size_t> spaces;
    for (size_t i = 0; i < q.size(); ++i)
      if (q[i] == ' ') spaces.push_back(i);
    if (!spaces.empty()) q.insert(spaces[static_cast<size_t>(rng_.between(0, static_cast<int>(spaces.size()) - 1))], " ");
  }
  const char last = q.back();
  if (last == '?' || last == '.') {
    const double u = rng_.unit();
    if (u < 0.08) q.pop_back();
    else if (u < 0.12) q.push_back(last);
  }
  return q;
}

std::string arithmetic_question(Wording& w, const Expression& e) {
  const std::string text = expression_text(w, e, draw_style(w.rng()));
  const std::string_view frame =
      w.pick({"What is {}?", "What is {}?", "What's {}?", "what is {}", "Compute {}.", "Calculate {}.",
              "How much is {}?", "Evaluate {}.", "Find {}.", "Work out {}.", "{} = ?", "{}=", "{}?",
              "Please compute {}.", "Can you calculate {}?", "Solve {}.", "What does {} equal?", "Calculate: {}",
              "Q: {} = ?", "What is the value of {}?"},
             {"Tell me what {} is.", "I need the value of {}.", "Give me the result of {}.", "What do you get for {}?",
              "Quick question, what's {}?", "Help me compute {}, please."});
  return w.typed(fmt::format(fmt::runtime(frame), text));
}

std::string comparison_question(Wording& w, const Expression& left, const Expression& right) {
  const OperatorStyle style = draw_style(w.rng());
  const std::string a = expression_text(w, left, style), b = expression_text(w, right, style);
  const std::string_view frame =
      w.pick({"Which is larger, {0} or {1}?", "Which is larger, {0} or {1}?", "Which is bigger, {0} or {1}?",
              "Which is greater: {0} or {1}?", "What is larger, {0} or {1}?", "Which is more, {0} or {1}?",
              "{0} or {1}, which is larger?", "Which one is bigger: {0} or {1}?", "which is larger {0} or {1}"},
             {"Which of {0} and {1} is larger?", "Tell me which is bigger, {0} or {1}.", "Is {0} or {1} greater?"});
  return w.typed(fmt::format(fmt::runtime(frame), a, b));
}

}  // namespace musespark::detail
