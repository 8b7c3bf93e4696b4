#include "distill/curriculum.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>

#include "distill/phrasing.hpp"
#include "common/rng.hpp"
#include "musespark/error.hpp"
#include "reasoning/vote.hpp"
#include "reasoning/workspace.hpp"
#include "vision/draw.hpp"

namespace musespark::detail {
namespace {

// Independent streams for what is drawn from one (seed, index).
constexpr uint64_t kTaskStream = 1;        // + the kind's number
constexpr uint64_t kStyleStream = 100;
constexpr uint64_t kWorkspaceStream = 200;  // + the kind's number
constexpr uint64_t kWordingStream = 300;    // + the kind's number

// --- Worked solutions ---------------------------------------------------------

// The teacher's solution: one line per step of thinking, and the answer.
struct Worked {
  std::vector<std::string> lines;
  std::string answer;
};

// A task with its teacher. work(nullptr) is the correct solution; work(&rng)
// a plausible flawed one, with one slip drawn from rng (a misread, a wrong
// step), which may still reach the right answer, or none ("") (callers
// check).
struct Problem {
  Task task;
  std::function<Worked(Rng* slip)> work;
};

int apply(int left, char op, int right) {
  switch (op) {
    case '+': return left + right;
    case '-': return left - right;
    default: return left * right;
  }
}

// One step of a calculation, each a binary operation on numbers written in
// the question or results of earlier steps ("from" >= 0: that step's result).
struct ChainStep {
  int left = 0;
  char op = '+';
  int right = 0;
  int left_from = -1, right_from = -1;
};

// --- Column arithmetic ----------------------------------------------------------
// How the teacher works one operation, so that each line is a one-digit fact
// a small model can learn (DESIGN.md "The default model"): a header "37+48",
// one line per column, least significant first, with the carry or borrow
// written out, then the result:
//   37+48        85-19          23*7        37*24
//   7+8=15       15-9=6         3*7=21      37*4 / 7*4=28 / 3*4+2=14 / =148
//   3+4+1=8      8-1-1=6        2*7+2=16    37*2 / 7*2=14 / 3*2+1=7 / =74
//   =85          =66            =161        148+740 / 8+0=8 / 4+4=8 / 1+7=8 / =888
// An operation on two one-digit numbers is one line ("4+7=11"). A product
// has a one-digit factor, or a two-digit multiplier that is not a multiple of
// ten (long multiplication: one partial product per digit, then their sum).

std::vector<int> digits_of(int n) {  // least significant first; 0 is {0}
  std::vector<int> d;
  do d.push_back(n % 10), n /= 10;
  while (n > 0);
  return d;
}

// A slipped column: the value written is one off.
int slipped(int v) { return v % 10 == 9 ? v - 1 : v + 1; }

// The column lines of a op b (after its header) and the result; `slip_column`
// >= 0 makes that column's value one off. a >= b for '-'; for '*', b < 10.
int column_lines(int a, char op, int b, int slip_column, std::vector<std::string>& lines) {
  const std::vector<int> da = digits_of(a), db = op == '*' ? std::vector<int>{b} : digits_of(b);
  const size_t n = op == '*' ? da.size() : std::max(da.size(), db.size());
  std::vector<int> out;  // the result's digits, least significant first; the last entry may be > 9
  int carry = 0;         // carry (+, *) or borrow (-) into this column
  for (size_t i = 0; i < n; ++i) {
    const int x = i < da.size() ? da[i] : 0, y = op == '*' ? b : i < db.size() ? db[i] : 0;
    const bool last = i + 1 == n;
    std::string line;
    int v = 0;
    bool borrow = false;  // '-': this column took ten from the next
    if (op == '+') {
      v = x + y + carry;
      line = carry ? fmt::format("{}+{}+1=", x, y) : fmt::format("{}+{}=", x, y);
    } else if (op == '-') {
      borrow = x - carry < y && !last;
      const int top = borrow ? x + 10 : x;
      v = top - y - carry;  // one digit
      line = carry ? fmt::format("{}-{}-1=", top, y) : fmt::format("{}-{}=", top, y);
    } else {
      v = x * y + carry;
      line = carry ? fmt::format("{}*{}+{}=", x, y, carry) : fmt::format("{}*{}=", x, y);
    }
    if (static_cast<int>(i) == slip_column) v = slipped(v);
    lines.push_back(line + std::to_string(v));
    out.push_back(last ? v : v % 10);
    carry = op == '-' ? (borrow ? 1 : 0) : v / 10;
  }
  int result = 0;  // most significant first; the last column's value counts whole, carry included
  for (size_t i = out.size(); i-- > 0;) result = result * 10 + out[i];
  return result;
}

// The lines of `left op right` (header, columns, "=result") and its result;
// `slip` (when set) makes one column one off. Nullopt for a subtraction
// below zero (a slipped chain can get there).
std::optional<int> worked_step(int left, char op, int right, Rng* slip, std::vector<std::string>& lines) {
  if (op == '-' && left < right) return std::nullopt;
  if (left < 10 && right < 10) {  // a one-digit fact
    int v = op == '+' ? left + right : op == '-' ? left - right : left * right;
    if (slip) v = slipped(v);
    lines.push_back(fmt::format("{}{}{}={}", left, op, right, v));
    return v;
  }
  lines.push_back(fmt::format("{}{}{}", left, op, right));
  if (op == '*' && std::min(left, right) >= 10) {  // long multiplication by `right`'s two digits
    const int units = right % 10, tens = right / 10;
    const int slipped_part = slip ? slip->between(0, 2) : -1;
    auto partial = [&](int digit, int part) {
      lines.push_back(fmt::format("{}*{}", left, digit));
      const auto cols = static_cast<int>(digits_of(left).size());
      const int v = column_lines(left, '*', digit, part == slipped_part ? slip->between(0, cols - 1) : -1, lines);
      lines.push_back(fmt::format("={}", v));
      return v;
    };
    const int low = partial(units, 0), high = partial(tens, 1) * 10;
    lines.push_back(fmt::format("{}+{}", low, high));
    const auto cols = static_cast<int>(digits_of(high).size());
    const int v = column_lines(low, '+', high, slipped_part == 2 ? slip->between(0, cols - 1) : -1, lines);
    lines.push_back(fmt::format("={}", v));
    return v;
  }
  // The multi-digit factor is worked in columns (a product's one-digit factor is its multiplier).
  const bool swap = op == '*' && left < 10;
  const int a = swap ? right : left, b = swap ? left : right;
  const auto cols = static_cast<int>(op == '*' ? digits_of(a).size() : std::max(digits_of(a).size(), digits_of(b).size()));
  const int v = column_lines(a, op, b, slip ? slip->between(0, cols - 1) : -1, lines);
  lines.push_back(fmt::format("={}", v));
  return v;
}

// The worked lines of `steps` and the results. A slip puts one column of one
// step one off, and later steps carry it on; empty when a slip leads below
// zero.
std::vector<int> run_chain(const std::vector<ChainStep>& steps, Rng* slip, std::vector<std::string>& lines) {
  const int slipped_step = slip ? slip->between(0, static_cast<int>(steps.size()) - 1) : -1;
  std::vector<int> results;
  for (size_t i = 0; i < steps.size(); ++i) {
    const ChainStep& s = steps[i];
    const int left = s.left_from >= 0 ? results[static_cast<size_t>(s.left_from)] : s.left;
    const int right = s.right_from >= 0 ? results[static_cast<size_t>(s.right_from)] : s.right;
    const auto result = worked_step(left, s.op, right, static_cast<int>(i) == slipped_step ? slip : nullptr, lines);
    if (!result) return {};
    results.push_back(*result);
  }
  return results;
}

// A chain whose last result is the answer (none after a slip below zero).
Worked chain_answer(const std::vector<ChainStep>& steps, Rng* slip) {
  Worked w;
  const std::vector<int> results = run_chain(steps, slip, w.lines);
  if (results.empty()) return Worked{};
  w.answer = std::to_string(results.back());
  return w;
}

// Steps that each apply an operation to the previous result (the first to
// `start`).
std::vector<ChainStep> running(int start, const std::vector<std::pair<char, int>>& ops) {
  std::vector<ChainStep> steps;
  for (auto [op, operand] : ops) {
    ChainStep s{start, op, operand};
    if (!steps.empty()) s.left_from = static_cast<int>(steps.size()) - 1;
    steps.push_back(s);
  }
  return steps;
}

Problem chain_problem(std::string question, std::vector<ChainStep> steps) {
  Problem p;
  p.task.question = std::move(question);
  p.work = [steps = std::move(steps)](Rng* slip) { return chain_answer(steps, slip); };
  return p;
}

// --- Text tasks -----------------------------------------------------------------
// The numbers of a task come from its Rng, the words from a Wording with an
// Rng of its own, so that the training and held-out phrasings of one (seed,
// index) ask the same numbers.

// Intermediate values stay in 0..kMaxValue (mostly two-digit operands).
constexpr int kMaxValue = 999;

// An operand up to `hi`: mostly 1..99, now and then up to 999.
int operand(Rng& rng, int lo, int hi) {
  return rng.between(lo, std::max(lo, std::min(hi, rng.chance(0.85) ? 99 : 999)));
}

// A multiplier for `value`: one digit, or now and then two (not a multiple of ten).
int multiplier(Rng& rng, int value) {
  const int most = kMaxValue / value;
  if (most >= 11 && rng.chance(0.15)) {
    int m = rng.between(11, std::min(99, most));
    if (m % 10 == 0) --m;
    return m;
  }
  return rng.between(2, std::min(9, most));
}

// "What is 37 + 48 - 19?" and its variants: 2-4 operands, left to right.
Problem arithmetic(Rng& rng, Wording& words) {
  const int operands = rng.chance(0.3) ? 2 : rng.between(3, 4);
  Expression e;
  e.start = rng.chance(0.85) ? rng.between(2, 99) : rng.between(100, 500);
  int value = e.start;
  for (int i = 1; i < operands; ++i) {
    std::vector<char> ops;  // + and - twice as likely as *
    if (value <= kMaxValue - 1) ops.insert(ops.end(), {'+', '+'});
    if (value >= 2) ops.insert(ops.end(), {'-', '-'});
    if (value * 2 <= kMaxValue) ops.push_back('*');
    const char op = rng.pick<char>(ops);
    const int x = op == '+' ? operand(rng, 1, kMaxValue - value) : op == '-' ? operand(rng, 1, value - 1) : multiplier(rng, value);
    e.ops.emplace_back(op, x);
    value = apply(value, op, x);
  }
  return chain_problem(arithmetic_question(words, e), running(e.start, e.ops));
}

struct Person {
  const char* name;
  bool she;
};
constexpr Person kPeople[] = {
    {"Ann", true},   {"Ben", false},  {"Cara", true},  {"Dan", false},  {"Eva", true},    {"Finn", false},
    {"Gia", true},   {"Hugo", false}, {"Ivy", true},   {"Jack", false}, {"Kim", true},    {"Leo", false},
    {"Maria", true}, {"Noah", false}, {"Olga", true},  {"Pedro", false}, {"Rosa", true},  {"Sam", false},
    {"Tara", true},  {"Omar", false}, {"Lena", true},  {"Yuki", true},  {"Ravi", false}, {"Zoe", true},
    {"Mia", true},   {"Tom", false},  {"Priya", true}, {"Ali", false},  {"Nina", true},   {"Luca", false}};
struct Item {
  const char* one;
  const char* many;
};
constexpr Item kItems[] = {{"pen", "pens"},         {"apple", "apples"},   {"sticker", "stickers"}, {"marble", "marbles"},
                           {"book", "books"},       {"card", "cards"},     {"shell", "shells"},     {"coin", "coins"},
                           {"egg", "eggs"},         {"toy", "toys"},       {"cookie", "cookies"},   {"candy", "candies"},
                           {"balloon", "balloons"}, {"stamp", "stamps"},   {"pencil", "pencils"},   {"orange", "oranges"},
                           {"button", "buttons"},   {"bead", "beads"},     {"crayon", "crayons"},   {"flower", "flowers"},
                           {"ticket", "tickets"},   {"peach", "peaches"},  {"cupcake", "cupcakes"}, {"lemon", "lemons"},
                           {"rock", "rocks"},       {"puzzle", "puzzles"}, {"bottle", "bottles"},   {"cherry", "cherries"}};
struct Container {
  const char* one;
  const char* many;
};
constexpr Container kContainers[] = {{"box", "boxes"}, {"bag", "bags"}, {"pack", "packs"}, {"jar", "jars"}, {"basket", "baskets"}};

std::string capitalized(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

// The words of one story: who, what, and how its sentences are put.
struct Story {
  Wording& w;
  std::string A, B, s, items, item;  // s: "she"/"he"
  double number_words = 0.1;         // numbers up to 20 as words, sometimes
  std::string n(int x) { return w.number(x, x <= 20 ? number_words : 0); }
  std::string count(int x) { return n(x) + " " + (x == 1 ? item : items); }
  std::string fill(std::string_view frame, int x = 0, int y = 0) {
    return fmt::format(fmt::runtime(frame), fmt::arg("A", A), fmt::arg("B", B), fmt::arg("s", s),
                       fmt::arg("S", capitalized(s)), fmt::arg("items", items), fmt::arg("x", n(x)),
                       fmt::arg("y", n(y)), fmt::arg("cx", count(x)));
  }
  // A verb phrase that adds x ("buys 5 more") or takes x away ("gives away 5").
  std::string event(char op, int x) {
    if (op == '+')
      return fill(w.pick({"buys {x} more", "finds {x} more", "gets {x} more", "is given {x} more", "wins {x} more",
                          "buys {x} more {items}", "gets another {x}"},
                         {"picks up {x} more", "collects {x} more", "receives {x} more"}),
                  x);
    return fill(w.pick({"gives away {x}", "gives away {cx}", "loses {x}", "gives {x} to {B}", "sells {x}", "uses {x}",
                        "loses {cx}"},
                       {"gives {x} of them away", "hands {x} to {B}", "gives {B} {x}"}),
                x);
  }
  // The events after the opening sentence, joined as a person would.
  std::string events(const std::vector<std::pair<char, int>>& ops) {
    std::vector<std::string> e;
    for (auto [op, x] : ops) e.push_back(event(op, x));
    const std::string S = capitalized(s);
    if (e.size() == 1) return fill(w.pick({"{S} ", "Then {s} ", "{A} "}, {"Later {s} ", "Next, {s} "})) + e[0] + ".";
    if (e.size() == 2)
      return fmt::format(fmt::runtime(w.pick({"{S} {0} and then {1}.", "{S} {0}, then {1}.", "{S} {0}. Then {s} {1}.",
                                              "{S} {0} and {1}."},
                                             {"First {s} {0}, and after that {s} {1}.", "{S} {0}. Later, {s} {1}."})),
                         e[0], e[1], fmt::arg("S", S), fmt::arg("s", s));
    return fmt::format(fmt::runtime(w.pick({"{S} {0}, {1}, and then {2}.", "{S} {0}. Then {s} {1}. After that, {s} {2}.",
                                            "{S} {0}, then {1}, then {2}."},
                                           {"First {s} {0}, next {s} {1}, and last {s} {2}."})),
                       e[0], e[1], e[2], fmt::arg("S", S), fmt::arg("s", s));
  }
  std::string how_many_now() {
    return fill(w.pick({"How many {items} does {s} have now?", "How many {items} does {A} have now?",
                        "How many {items} does {s} have?", "How many does {s} have now?",
                        "How many {items} does {A} have left?"},
                       {"How many {items} does {s} end up with?", "What is the number of {items} {s} has now?",
                        "Now how many {items} does {A} have?"}));
  }
};

// Word problems, 1-3 steps: a count or groups of a count, then things
// gained and lost; buying packs; two people's counts added.
Problem word_problem(Rng& rng, Wording& words) {
  const Person& a = rng.pick<Person>(kPeople);
  const Person* b = &rng.pick<Person>(kPeople);
  while (b == &a) b = &rng.pick<Person>(kPeople);
  const Item& item = rng.pick<Item>(kItems);
  Story st{words, a.name, b->name, a.she ? "she" : "he", item.many, item.one};
  // Gains and losses after `value`, keeping it in 1..kMaxValue.
  auto changes = [&rng](int value, int count) {
    std::vector<std::pair<char, int>> ops;
    for (int i = 0; i < count; ++i) {
      const bool gain = value < 2 || (value < kMaxValue && rng.chance(0.5));
      const int x = gain ? operand(rng, 1, kMaxValue - value) : rng.between(1, std::min(99, value - 1));
      ops.emplace_back(gain ? '+' : '-', x);
      value += gain ? x : -x;
    }
    return ops;
  };
  switch (rng.between(0, 4)) {
    case 0:
    case 1: {  // a count, then 1-3 changes
      const int have = operand(rng, 2, 300);
      const auto ops = changes(have, rng.between(1, 3));
      const std::string open = st.fill(words.pick({"{A} has {cx}.", "{A} had {cx}.", "{A} owns {cx}.", "{A} has got {cx}."},
                                                  {"At first, {A} has {cx}.", "{A} starts with {cx}."}),
                                       have);
      return chain_problem(words.typed(open + " " + st.events(ops) + " " + st.how_many_now()), running(have, ops));
    }
    case 2: {  // groups of a count, then 0-2 changes
      const Container& c = rng.pick<Container>(kContainers);
      const int groups = rng.between(2, 9), each = rng.between(2, std::min(25, kMaxValue / groups));
      std::vector<std::pair<char, int>> ops = {{'*', each}};
      for (auto op : changes(groups * each, rng.between(0, 2))) ops.push_back(op);
      const std::string open = fmt::format(
          fmt::runtime(words.pick({"{A} has {g} {cs} of {e} {items}.", "{A} has {g} {cs} with {e} {items} in each {c}.",
                                   "{A} has {g} {cs}. Each {c} has {e} {items}."},
                                  {"{A} has {g} {cs}, and each {c} holds {e} {items}."})),
          fmt::arg("A", st.A), fmt::arg("g", st.n(groups)), fmt::arg("cs", c.many), fmt::arg("c", c.one),
          fmt::arg("e", st.n(each)), fmt::arg("items", st.items));
      std::vector<std::pair<char, int>> after(ops.begin() + 1, ops.end());
      const std::string middle = after.empty() ? "" : " " + st.events(after);
      const std::string question =
          after.empty() ? st.fill(words.pick({"How many {items} does {s} have?", "How many {items} does {A} have in all?",
                                              "How many {items} are there in total?"},
                                             {"What is the total number of {items}?"}))
                        : st.how_many_now();
      return chain_problem(words.typed(open + middle + " " + question), running(groups, ops));
    }
    case 3: {  // a count, then packs bought
      const Container& c = rng.pick<Container>(kContainers);
      const int packs = rng.between(2, 9), each = rng.between(2, std::min(20, 500 / packs));
      const int have = operand(rng, 1, kMaxValue - packs * each);
      std::vector<ChainStep> steps = {{packs, '*', each}, {have, '+', 0, -1, 0}};
      const std::string text = fmt::format(
          fmt::runtime(words.pick({"{A} has {h}. {S} buys {p} {cs} of {e} {items}.",
                                   "{A} has {h}. Then {s} buys {p} {cs} with {e} {items} each."},
                                  {"{A} has {h}. {S} also buys {p} {cs}, each with {e} {items}."})),
          fmt::arg("A", st.A), fmt::arg("S", capitalized(st.s)), fmt::arg("s", st.s), fmt::arg("h", st.count(have)),
          fmt::arg("p", st.n(packs)), fmt::arg("cs", c.many), fmt::arg("e", st.n(each)), fmt::arg("items", st.items));
      return chain_problem(words.typed(text + " " + st.how_many_now()), std::move(steps));
    }
    default: {  // two people: one has more or fewer than the other; together?
      const bool more = rng.chance(0.6);
      const int have = operand(rng, more ? 2 : 12, more ? 300 : 400);
      const int diff = more ? operand(rng, 1, std::min(99, kMaxValue - 2 * have)) : rng.between(1, have - 1);
      std::vector<ChainStep> steps = {{have, more ? '+' : '-', diff}, {have, '+', 0, -1, 0}};
      const std::string relation =
          more ? st.fill(words.pick({"{B} has {x} more {items} than {A}.", "{B} has {x} more than {A}."},
                                    {"{B} has {x} {items} more than {A}."}),
                         diff)
               : st.fill(words.pick({"{B} has {x} fewer {items} than {A}.", "{B} has {x} fewer than {A}."},
                                    {"{B} has {x} {items} fewer than {A}."}),
                         diff);
      const std::string question = st.fill(words.pick({"How many {items} do they have together?", "How many {items} do they have in total?",
                                                       "How many {items} do they have altogether?"},
                                                      {"What is the total number of {items} the two of them have?"}));
      return chain_problem(words.typed(st.fill("{A} has {cx}.", have) + " " + relation + " " + question), std::move(steps));
    }
  }
}

// "Which is larger, 47 + 18 or 9 * 7?": the answer is the larger value.
Problem comparison(Rng& rng, Wording& words) {
  auto side = [&rng] {
    static constexpr char kOps[] = {'+', '-', '*'};
    const char op = rng.pick<char>(kOps);
    if (op == '+') {
      const int a = rng.between(1, 99);
      return ChainStep{a, op, rng.between(1, 99)};
    }
    if (op == '-') {
      const int a = rng.between(2, 99);
      return ChainStep{a, op, rng.between(1, a - 1)};
    }
    const int a = rng.between(2, 9);
    return ChainStep{a, op, rng.between(2, 30)};
  };
  auto value = [](const ChainStep& s) { return apply(s.left, s.op, s.right); };
  const ChainStep left = side();
  // Mostly close values, so that the comparison needs the arithmetic.
  const bool close = rng.chance(0.7);
  ChainStep right = side();
  for (int tries = 0; value(right) == value(left) || (close && tries < 50 && std::abs(value(right) - value(left)) > 20);
       ++tries)
    right = side();
  Problem p;
  auto expression = [](const ChainStep& s) { return Expression{s.left, {{s.op, s.right}}}; };
  p.task.question = comparison_question(words, expression(left), expression(right));
  p.work = [steps = std::vector<ChainStep>{left, right}](Rng* slip) {
    Worked w;
    const std::vector<int> v = run_chain(steps, slip, w.lines);
    if (v.empty() || v[0] == v[1]) return Worked{};  // a slip below zero or into a tie: no answer
    w.lines.push_back(fmt::format("{}{}{}", v[0], v[0] > v[1] ? '>' : '<', v[1]));
    w.answer = std::to_string(std::max(v[0], v[1]));
    return w;
  };
  return p;
}

struct UnitPair {
  const char* big;    // singular; the plural adds "s"
  const char* small;
  int factor;
  int big_max, small_min, small_max;
  const char* story;  // {person} {amount} {small unit}
};
// Grams are the exception to two-digit operands: 3 kg 450 g is 3450 g.
constexpr UnitPair kUnits[] = {
    {"hour", "minute", 60, 9, 1, 59, "{} waited {}. How many {}s is that?"},
    {"minute", "second", 60, 9, 1, 59, "{} ran for {}. How many {}s is that?"},
    {"metre", "centimetre", 100, 9, 1, 99, "{} has a rope of {}. How many {}s long is it?"},
    {"kilogram", "gram", 1000, 9, 100, 999, "{}'s bag weighs {}. How many {}s is that?"},
    {"week", "day", 7, 9, 1, 6, "{}'s trip lasted {}. How many {}s is that?"},
    {"day", "hour", 24, 7, 1, 23, "{}'s journey took {}. How many {}s is that?"},
    {"year", "month", 12, 9, 1, 11, "{}'s dog is {} old. How many {}s is that?"},
};

std::string count_of(int n, const char* unit) { return fmt::format("{} {}{}", n, unit, n == 1 ? "" : "s"); }

// "How many minutes are in 3 hours and 15 minutes?": 3*60=180, 180+15=195.
Problem units(Rng& rng, Wording& words) {
  const UnitPair& u = rng.pick<UnitPair>(kUnits);
  const int big = rng.between(1, u.big_max);
  const int small = rng.between(u.small_min, u.small_max);
  const std::string amount =
      count_of(big, u.big) + std::string(words.any({" and ", " and ", " "})) + count_of(small, u.small);
  const Person& who = rng.pick<Person>(kPeople);
  const std::string_view frame = words.pick({"How many {1}s are in {0}?", "How many {1}s are in {0}?", "How many {1}s is {0}?",
                                             "Convert {0} to {1}s.", "story"},
                                            {"{0} equals how many {1}s?", "Express {0} in {1}s.", "What is {0} in {1}s?"});
  std::string question = frame == "story" ? fmt::format(fmt::runtime(u.story), who.name, amount, u.small)
                                          : fmt::format(fmt::runtime(frame), amount, u.small);
  return chain_problem(words.typed(std::move(question)), running(big, {{'*', u.factor}, {'+', small}}));
}

// --- Pictures ---------------------------------------------------------------------

// The 3 x 3 grid in the engine's 0..1000 coordinates; cells are numbered in
// reading order (row by row, left to right).
constexpr int kGridEdges[] = {0, 333, 667, 1000};

std::string cell_region(int cell) {
  const int col = cell % 3, row = cell / 3;
  return fmt::format("({},{}),({},{})", kGridEdges[col], kGridEdges[row], kGridEdges[col + 1], kGridEdges[row + 1]);
}
std::string box_tag(int cell) { return "<box>" + cell_region(cell) + "</box>"; }
std::string zoom_tag(int cell) { return "<zoom>" + cell_region(cell) + "</zoom>"; }

// A labelled picture with nothing in it yet.
Scene empty_scene() {
  Scene s = Scene::unlabelled();
  s.cells.fill(kSceneEmpty);
  return s;
}

// The pixels [x0, x1) x [y0, y1) of `cell` in a size x size picture that lie
// strictly inside the cell (so inside the crop the engine makes of it).
Box cell_pixels(int cell, int size) {
  auto lo = [size](int edge) { return (edge * size + 999) / 1000; };
  auto hi = [size](int edge) { return edge * size / 1000; };
  const int col = cell % 3, row = cell / 3;
  return Box{lo(kGridEdges[col]), lo(kGridEdges[row]), hi(kGridEdges[col + 1]), hi(kGridEdges[row + 1])};
}

constexpr int kMargin = 2;  // pixels kept free along the cell edges

// A random position for a w x h thing inside `cell` (with the margin).
std::pair<int, int> place(Rng& rng, int cell, int size, int w, int h) {
  const Box c = cell_pixels(cell, size);
  return {rng.between(c.x0 + kMargin, c.x1 - kMargin - w), rng.between(c.y0 + kMargin, c.y1 - kMargin - h)};
}
// The side of the largest square that fits in every cell (with the margin).
int cell_side(int size) {
  int side = size;
  for (int cell : {0, 4, 8}) side = std::min(side, cell_pixels(cell, size).x1 - cell_pixels(cell, size).x0);
  return side - 2 * kMargin;
}

Image white_picture(int size) {
  std::vector<uint8_t> px(static_cast<size_t>(size) * size * 3, 255);
  return Image::from_rgb(px, size, size);
}

// `count` distinct cells, in reading order.
std::vector<int> distinct_cells(Rng& rng, int count) {
  std::vector<int> cells = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  rng.shuffle(cells);
  cells.resize(static_cast<size_t>(count));
  std::sort(cells.begin(), cells.end());
  return cells;
}

struct NamedColor {
  const char* name;
  Color base;
};
// Pure-ish hues, jittered per shape (jittered_color).
constexpr NamedColor kColors[] = {{"red", {230, 30, 30}}, {"green", {30, 170, 50}}, {"blue", {40, 60, 230}}};

Color jittered_color(Rng& rng, Color base, int amount) {
  Color c;
  for (size_t i = 0; i < 3; ++i) c[i] = static_cast<uint8_t>(std::clamp(base[i] + rng.between(-amount, amount), 0, 255));
  return c;
}
Color ink(Rng& rng) { return jittered_color(rng, {20, 20, 20}, 20); }

enum class Shape { square, circle, triangle };

// A shape of side `side` at a random place in `cell`.
void draw_shape(Image& image, Rng& rng, int cell, int side, Color color) {
  const auto [x, y] = place(rng, cell, image.width(), side, side);
  switch (static_cast<Shape>(rng.between(0, 2))) {
    case Shape::square: fill_rect(image, x, y, x + side, y + side, color); break;
    case Shape::circle: fill_ellipse(image, x, y, x + side, y + side, color); break;
    case Shape::triangle: fill_triangle(image, x, y, x + side, y + side, color); break;
  }
}

// --- Visual tasks -------------------------------------------------------------------

// 2-6 shapes in distinct cells; "How many red shapes are there?". The
// thinking boxes each shape of that colour, in reading order.
Problem count_color(Rng& rng) {
  const std::vector<int> cells = distinct_cells(rng, rng.between(2, 6));
  std::vector<int> colors;
  Image image = white_picture(kPictureSize);
  const int side = cell_side(kPictureSize);
  Scene scene = empty_scene();
  for (int cell : cells) {
    colors.push_back(rng.between(0, 2));
    draw_shape(image, rng, cell, rng.between(side * 55 / 100, side * 85 / 100), jittered_color(rng, kColors[colors.back()].base, 20));
    scene.cells[static_cast<size_t>(cell)] = static_cast<int8_t>(kSceneShape + colors.back());
  }
  // Mostly a colour that is there; sometimes any (the answer may be 0).
  const int target = rng.chance(0.8) ? colors[static_cast<size_t>(rng.between(0, static_cast<int>(cells.size()) - 1))]
                                     : rng.between(0, 2);
  Problem p;
  const std::string name = kColors[target].name;
  p.task.question = fmt::format("How many {} shapes are there?", name);
  p.task.image = std::move(image);
  p.task.scene = scene;
  p.work = [cells, colors, target, name](Rng* slip) {
    std::vector<bool> counted(cells.size());
    for (size_t i = 0; i < cells.size(); ++i) counted[i] = colors[i] == target;
    if (slip) {  // miss one, or take another colour for this one
      const int i = slip->between(0, static_cast<int>(cells.size()) - 1);
      counted[static_cast<size_t>(i)] = !counted[static_cast<size_t>(i)];
    }
    Worked w;
    for (size_t i = 0; i < cells.size(); ++i)
      if (counted[i]) w.lines.push_back(box_tag(cells[i]) + " " + name);
    const auto n = std::count(counted.begin(), counted.end(), true);
    w.lines.push_back(n == 0 ? "none" : std::to_string(n));
    w.answer = std::to_string(n);
    return w;
  };
  return p;
}

// 2-3 large digits in distinct cells; "What is the sum of the digits?".
Problem digit_sum(Rng& rng) {
  const std::vector<int> cells = distinct_cells(rng, rng.between(2, 3));
  constexpr int kScale = 3;  // 15 x 21 px digits: 7 x 10 px at the 64 x 64 view
  const Box glyph = text_box(0, 0, "0", kScale);
  std::vector<int> digits;
  Image image = white_picture(kPictureSize);
  Scene scene = empty_scene();
  for (int cell : cells) {
    digits.push_back(rng.between(1, 9));
    const auto [x, y] = place(rng, cell, kPictureSize, glyph.x1, glyph.y1);
    draw_text(image, x, y, std::to_string(digits.back()), ink(rng), kScale);
    scene.cells[static_cast<size_t>(cell)] = static_cast<int8_t>(kSceneDigit0 + digits.back());
  }
  Problem p;
  p.task.question = "What is the sum of the digits?";
  p.task.image = std::move(image);
  p.task.scene = scene;
  p.work = [cells, digits](Rng* slip) {
    std::vector<int> read = digits;
    if (slip && slip->chance(0.6)) {  // a misread digit
      int& d = read[static_cast<size_t>(slip->between(0, static_cast<int>(read.size()) - 1))];
      d = d == 9 ? 8 : d == 1 ? 2 : d + (slip->chance(0.5) ? 1 : -1);
      slip = nullptr;
    }
    Worked w;
    for (size_t i = 0; i < cells.size(); ++i) w.lines.push_back(box_tag(cells[i]) + " " + std::to_string(read[i]));
    std::vector<ChainStep> steps = {{read[0], '+', read[1]}};
    if (read.size() == 3) steps.push_back({0, '+', read[2], /*left_from=*/0});
    w.answer = std::to_string(run_chain(steps, slip, w.lines).back());
    return w;
  };
  return p;
}

// Two shapes of different colours and clearly different sizes; "Which shape
// is bigger, the red one or the blue one?"; the answer is a colour.
Problem compare_size(Rng& rng) {
  const std::vector<int> cells = distinct_cells(rng, 2);
  std::vector<int> colors = {0, 1, 2};
  rng.shuffle(colors);
  const int big = rng.between(0, 1);  // which of the two (in reading order) is big
  const int side = cell_side(kPictureSize);
  Image image = white_picture(kPictureSize);
  Scene scene = empty_scene();
  for (int i = 0; i < 2; ++i) {
    // Areas at least twice apart whatever the two shapes are.
    const int s = i == big ? rng.between(side * 85 / 100, side) : rng.between(side * 28 / 100, side * 40 / 100);
    draw_shape(image, rng, cells[static_cast<size_t>(i)], s, jittered_color(rng, kColors[colors[static_cast<size_t>(i)]].base, 20));
    scene.cells[static_cast<size_t>(cells[static_cast<size_t>(i)])] =
        static_cast<int8_t>((i == big ? kSceneBigShape : kSceneSmallShape) + colors[static_cast<size_t>(i)]);
  }
  Problem p;
  p.task.scene = scene;
  const bool big_named_first = rng.chance(0.5);
  const char* first = kColors[colors[static_cast<size_t>(big_named_first ? big : 1 - big)]].name;
  const char* second = kColors[colors[static_cast<size_t>(big_named_first ? 1 - big : big)]].name;
  p.task.question = fmt::format("Which shape is bigger, the {} one or the {} one?", first, second);
  p.task.image = std::move(image);
  p.work = [cells, colors, big](Rng* slip) {
    const int bigger = slip ? 1 - big : big;  // the slip: sizes swapped
    Worked w;
    for (int i = 0; i < 2; ++i)
      w.lines.push_back(fmt::format("{} {} {}", box_tag(cells[static_cast<size_t>(i)]),
                                    kColors[colors[static_cast<size_t>(i)]].name, i == bigger ? "big" : "small"));
    w.answer = kColors[colors[static_cast<size_t>(bigger)]].name;
    return w;
  };
  return p;
}

// A 2-digit number written small (10 x 14 px glyphs in a 256 x 256 picture)
// in one cell, with faint shapes elsewhere; the thinking zooms into the cell.
Problem small_digits(Rng& rng) {
  constexpr int kScale = 2;
  const int number = rng.between(10, 99);
  const std::string text = std::to_string(number);
  std::vector<int> cells = distinct_cells(rng, 1 + rng.between(0, 2));
  const int cell = cells[static_cast<size_t>(rng.between(0, static_cast<int>(cells.size()) - 1))];
  Image image = white_picture(kSmallDigitsPictureSize);
  const int side = cell_side(kSmallDigitsPictureSize);
  Scene scene = empty_scene();
  scene.cells[static_cast<size_t>(cell)] = kSceneSmallNumber;
  for (int other : cells) {
    if (other == cell) continue;
    scene.cells[static_cast<size_t>(other)] = kSceneFaintShape;
    Color faint = kColors[rng.between(0, 2)].base;  // a quarter of the colour on white
    for (uint8_t& c : faint) c = static_cast<uint8_t>(255 - (255 - c) / 4);
    draw_shape(image, rng, other, rng.between(side * 40 / 100, side * 80 / 100), faint);
  }
  const Box box = text_box(0, 0, text, kScale);
  const auto [x, y] = place(rng, cell, kSmallDigitsPictureSize, box.x1, box.y1);
  draw_text(image, x, y, text, ink(rng), kScale);
  Problem p;
  p.task.question = "What number is written in the image?";
  p.task.image = std::move(image);
  p.task.needs_zoom = true;
  p.task.scene = scene;
  p.task.zoom_region = cell_region(cell);
  p.task.zoom_scene.number = {static_cast<int8_t>(kSceneDigit0 + number / 10), static_cast<int8_t>(kSceneDigit0 + number % 10)};
  p.work = [cell, text](Rng* slip) {
    std::string read = text;
    if (slip) {  // one digit misread
      char& d = read[static_cast<size_t>(slip->between(0, 1))];
      const char lowest = &d == &read[0] ? '1' : '0';
      d = static_cast<char>(d == '9' ? '8' : d == lowest ? d + 1 : d + (slip->chance(0.5) ? 1 : -1));
    }
    return Worked{{zoom_tag(cell) + read}, read};
  };
  return p;
}

Problem make_problem(TaskKind kind, uint64_t seed, uint64_t index, Phrasings phrasings) {
  Rng rng(seed, index, kTaskStream + static_cast<uint64_t>(kind));
  Rng wording_rng(seed, index, kWordingStream + static_cast<uint64_t>(kind));
  Wording words(wording_rng, phrasings);
  Problem p;
  switch (kind) {
    case TaskKind::arithmetic: p = arithmetic(rng, words); break;
    case TaskKind::word_problem: p = word_problem(rng, words); break;
    case TaskKind::comparison: p = comparison(rng, words); break;
    case TaskKind::units: p = units(rng, words); break;
    case TaskKind::count_color: p = count_color(rng); break;
    case TaskKind::digit_sum: p = digit_sum(rng); break;
    case TaskKind::compare_size: p = compare_size(rng); break;
    case TaskKind::small_digits: p = small_digits(rng); break;
  }
  p.task.kind = kind;
  p.task.index = index;
  p.task.answer = p.work(nullptr).answer;
  return p;
}

std::string thinking_text(const Worked& w) {
  std::string out;
  for (const std::string& line : w.lines) out += line + "\n";
  return out;
}

// Earlier attempts as the engine's Contemplating round 1 would leave them:
// 1-3 distinct answers (some wrong, each from a flawed solution), 1-4 agents
// each with confidence-like vote weights, put into words by the engine's own
// distill_workspace. Now and then no attempt reached an answer.
std::string refine_workspace(const Problem& p, uint64_t seed) {
  Rng rng(seed, p.task.index, kWorkspaceStream + static_cast<uint64_t>(p.task.kind));
  if (rng.chance(0.05)) return distill_workspace({}, {});
  const int wanted = rng.between(1, 3);
  const bool with_correct = rng.chance(0.6);
  std::vector<Worked> attempts;
  if (with_correct) attempts.push_back(p.work(nullptr));
  for (int tries = 0; tries < 30 && static_cast<int>(attempts.size()) < wanted; ++tries) {
    Worked w = p.work(&rng);
    const bool seen = w.answer == p.task.answer || std::any_of(attempts.begin(), attempts.end(), [&](const Worked& a) {
                        return a.answer == w.answer;
                      });
    if (!seen && !w.answer.empty() && w.answer.front() != '-') attempts.push_back(std::move(w));
  }
  if (attempts.empty()) attempts.push_back(p.work(nullptr));
  std::vector<AgentTrace> agents;
  for (const Worked& attempt : attempts) {
    for (int votes = rng.between(1, 4); votes > 0; --votes) {
      AgentTrace a;
      a.id = static_cast<int32_t>(agents.size());
      a.thinking = thinking_text(attempt);
      a.answer_text = a.answer = a.normalized_answer = attempt.answer;
      a.vote_weight = rng.between(500, 1000) / 100.0;
      agents.push_back(std::move(a));
    }
  }
  return distill_workspace(agents, tally_agents(agents));
}

Sample teach_problem(const Problem& p, SampleStyle style, uint64_t seed) {
  Sample s;
  s.task = p.task;
  s.style = style;
  s.user_text = p.task.question;
  if (style == SampleStyle::instant) {
    s.completion = p.task.answer;
    return s;
  }
  s.completion = thinking_text(p.work(nullptr)) + "</think>\n\n" + p.task.answer;
  if (style == SampleStyle::refine)
    s.user_text = with_workspace(s.user_text, refine_workspace(p, seed));
  return s;
}

}  // namespace

const char* task_kind_name(TaskKind kind) {
  switch (kind) {
    case TaskKind::arithmetic: return "arithmetic";
    case TaskKind::word_problem: return "word_problem";
    case TaskKind::comparison: return "comparison";
    case TaskKind::units: return "units";
    case TaskKind::count_color: return "count_color";
    case TaskKind::digit_sum: return "digit_sum";
    case TaskKind::compare_size: return "compare_size";
    case TaskKind::small_digits: return "small_digits";
  }
  return "unknown";
}

std::optional<TaskKind> parse_task_kind(std::string_view name) {
  for (TaskKind kind : kAllTaskKinds)
    if (name == task_kind_name(kind)) return kind;
  return std::nullopt;
}

bool is_visual(TaskKind kind) {
  return kind == TaskKind::count_color || kind == TaskKind::digit_sum || kind == TaskKind::compare_size ||
         kind == TaskKind::small_digits;
}

Curriculum::Curriculum(CurriculumOptions options) : options_(std::move(options)) {
  auto check_fraction = [](double f, const char* field) {
    if (!(f >= 0 && f <= 1))
      throw Error(ErrorKind::invalid_argument, "", field, fmt::format("must be between 0 and 1, got {}", f));
  };
  check_fraction(options_.instant_fraction, "instant_fraction");
  check_fraction(options_.refine_fraction, "refine_fraction");
  if (options_.instant_fraction + options_.refine_fraction > 1)
    throw Error(ErrorKind::invalid_argument, "", "refine_fraction",
                fmt::format("instant_fraction + refine_fraction must be at most 1, got {} + {}",
                            options_.instant_fraction, options_.refine_fraction));
  kinds_ = options_.kinds;
  if (kinds_.empty()) kinds_.assign(std::begin(kAllTaskKinds), std::end(kAllTaskKinds));
}

Task Curriculum::task(uint64_t index) const {
  return make_problem(kinds_[index % kinds_.size()], options_.seed, index, options_.phrasings).task;
}

Sample Curriculum::sample(uint64_t index) const {
  Rng rng(options_.seed, index, kStyleStream);
  const double u = rng.unit();
  const SampleStyle style = u < options_.instant_fraction                              ? SampleStyle::instant
                            : u < options_.instant_fraction + options_.refine_fraction ? SampleStyle::refine
                                                                                       : SampleStyle::thinking;
  return teach_problem(make_problem(kinds_[index % kinds_.size()], options_.seed, index, options_.phrasings), style, options_.seed);
}

Sample Curriculum::teach(const Task& task, SampleStyle style) const {
  Problem p = make_problem(task.kind, options_.seed, task.index, options_.phrasings);
  if (p.task.question != task.question || p.task.answer != task.answer)
    throw Error(ErrorKind::invalid_argument, "", "task",
                fmt::format("not {} task {} of this curriculum (seed {}): its question or answer differs",
                            task_kind_name(task.kind), task.index, options_.seed));
  return teach_problem(p, style, options_.seed);
}

}  // namespace musespark::detail
