#include "distill/curriculum.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <span>

#include "musespark/error.hpp"
#include "reasoning/vote.hpp"
#include "reasoning/workspace.hpp"
#include "vision/draw.hpp"

namespace musespark::detail {
namespace {

// --- Deterministic randomness -------------------------------------------------
// splitmix64, and bounded integers by rejection: the same numbers with every
// compiler and standard library (std::*_distribution are not specified
// bit-for-bit).

uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Independent streams for what is drawn from one (seed, index).
constexpr uint64_t kTaskStream = 1;        // + the kind's number
constexpr uint64_t kStyleStream = 100;
constexpr uint64_t kWorkspaceStream = 200;  // + the kind's number

class Rng {
 public:
  Rng(uint64_t seed, uint64_t index, uint64_t stream) : state_(mix(mix(mix(seed) ^ index) + stream)) {}

  uint64_t next() { return mix(state_ += 0x9E3779B97F4A7C15ull); }

  // Uniform in [lo, hi]; lo <= hi.
  int between(int lo, int hi) {
    const uint64_t span = static_cast<uint64_t>(static_cast<int64_t>(hi) - lo) + 1;
    const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % span;
    uint64_t x = next();
    while (x >= limit) x = next();
    return static_cast<int>(lo + static_cast<int64_t>(x % span));
  }
  // Uniform in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return unit() < p; }

  template <class T>
  const T& pick(std::span<const T> items) {
    return items[static_cast<size_t>(between(0, static_cast<int>(items.size()) - 1))];
  }
  template <class T>
  void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[static_cast<size_t>(between(0, static_cast<int>(i) - 1))]);
  }

 private:
  uint64_t state_;
};

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

// The lines "a+b=c" of `steps` and the results. A slip adds a small error to
// one step's result, and later steps carry it on.
std::vector<int> run_chain(const std::vector<ChainStep>& steps, Rng* slip, std::vector<std::string>& lines) {
  const int slipped = slip ? slip->between(0, static_cast<int>(steps.size()) - 1) : -1;
  static constexpr int kErrors[] = {-10, -2, -1, 1, 2, 10};
  std::vector<int> results;
  for (size_t i = 0; i < steps.size(); ++i) {
    const ChainStep& s = steps[i];
    const int left = s.left_from >= 0 ? results[static_cast<size_t>(s.left_from)] : s.left;
    const int right = s.right_from >= 0 ? results[static_cast<size_t>(s.right_from)] : s.right;
    int result = apply(left, s.op, right);
    if (static_cast<int>(i) == slipped) {
      const int error = slip->pick<int>(kErrors);
      result += result + error < 0 ? -error : error;
    }
    lines.push_back(fmt::format("{}{}{}={}", left, s.op, right, result));
    results.push_back(result);
  }
  return results;
}

// A chain whose last result is the answer.
Worked chain_answer(const std::vector<ChainStep>& steps, Rng* slip) {
  Worked w;
  w.answer = std::to_string(run_chain(steps, slip, w.lines).back());
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

// Intermediate values stay in 0..kMaxValue so that each step is learnable.
constexpr int kMaxValue = 199;

// "What is 37 + 48 - 19?": 3-4 operands, left to right, with parentheses
// where a product follows a sum so that the usual precedence agrees.
Problem arithmetic(Rng& rng) {
  const int operands = rng.between(3, 4);
  int value = rng.between(2, 99);
  std::string expression = std::to_string(value);
  bool sum_on_top = false;  // the expression so far ends in + or - at its top level
  const int start = value;
  std::vector<std::pair<char, int>> ops_done;
  for (int i = 1; i < operands; ++i) {
    std::vector<char> ops;  // + and - twice as likely as *
    if (value <= kMaxValue - 1) ops.insert(ops.end(), {'+', '+'});
    if (value >= 2) ops.insert(ops.end(), {'-', '-'});
    if (value * 2 <= kMaxValue) ops.push_back('*');
    const char op = rng.pick<char>(ops);
    const int operand = op == '+'   ? rng.between(1, std::min(99, kMaxValue - value))
                        : op == '-' ? rng.between(1, std::min(99, value - 1))
                                    : rng.between(2, std::min(9, kMaxValue / value));
    if (op == '*' && sum_on_top) expression = "(" + expression + ")";
    expression += fmt::format(" {} {}", op, operand);
    sum_on_top = op != '*';
    ops_done.emplace_back(op, operand);
    value = apply(value, op, operand);
  }
  return chain_problem("What is " + expression + "?", running(start, ops_done));
}

struct Person {
  const char* name;
  const char* pronoun;  // lower case
};
constexpr Person kPeople[] = {{"Ann", "she"},  {"Ben", "he"},  {"Cara", "she"}, {"Dan", "he"},
                              {"Eva", "she"},  {"Finn", "he"}, {"Gia", "she"},  {"Hugo", "he"},
                              {"Ivy", "she"},  {"Jack", "he"}, {"Kim", "she"},  {"Leo", "he"}};
constexpr const char* kItems[] = {"pens",  "apples", "stickers", "marbles", "books",
                                  "cards", "shells", "coins",    "eggs",    "toys"};

std::string capitalized(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

// A handful of templates, 2-3 steps each; the thinking is the same symbolic
// steps as arithmetic's.
Problem word_problem(Rng& rng) {
  const Person& a = rng.pick<Person>(kPeople);
  const Person* b = &rng.pick<Person>(kPeople);
  while (b == &a) b = &rng.pick<Person>(kPeople);
  const std::string A = a.name, B = b->name, s = a.pronoun, S = capitalized(a.pronoun), items = rng.pick<const char*>(kItems);
  const std::string how_many = fmt::format("How many {} does {} have now?", items, s);
  // "apple" for 1, else "apples" (every item's plural adds an s).
  auto noun = [&items](int n) { return n == 1 ? items.substr(0, items.size() - 1) : items; };
  auto n_items = [&noun](int n) { return fmt::format("{} {}", n, noun(n)); };
  switch (rng.between(0, 7)) {
    case 0: {
      const int boxes = rng.between(2, 9), each = rng.between(2, std::min(20, kMaxValue / boxes));
      const int away = rng.between(1, boxes * each - 1);
      return chain_problem(fmt::format("{} has {} boxes of {} {}. {} gives away {}. {}", A, boxes, each, items, S,
                                       n_items(away), how_many),
                           running(boxes, {{'*', each}, {'-', away}}));
    }
    case 1: {
      const int have = rng.between(2, 99), buys = rng.between(1, std::min(99, kMaxValue - have));
      const int away = rng.between(1, have + buys - 1);
      return chain_problem(fmt::format("{} has {} {}. {} buys {} more and then gives away {}. {}", A, have, items, S,
                                       buys, away, how_many),
                           running(have, {{'+', buys}, {'-', away}}));
    }
    case 2: {
      const int packs = rng.between(2, 9), each = rng.between(2, std::min(20, 150 / packs));
      const int have = rng.between(1, std::min(99, kMaxValue - packs * each));
      std::vector<ChainStep> steps = {{packs, '*', each}, {have, '+', 0, -1, 0}};
      return chain_problem(fmt::format("{} has {}. {} buys {} packs of {} {}. {}", A, n_items(have), S, packs, each,
                                       items, how_many),
                           std::move(steps));
    }
    case 3: {
      const int have = rng.between(2, 99), gives = rng.between(1, have - 1);
      const int finds = rng.between(1, std::min(99, kMaxValue - (have - gives)));
      return chain_problem(fmt::format("{} has {} {}. {} gives {} to {} and then finds {} more. {}", A, have, items, S,
                                       gives, B, finds, how_many),
                           running(have, {{'-', gives}, {'+', finds}}));
    }
    case 4: {
      const int boxes = rng.between(2, 9), each = rng.between(2, std::min(20, kMaxValue / boxes));
      const int away = rng.between(1, boxes * each - 1), buys = rng.between(1, std::min(99, kMaxValue - (boxes * each - away)));
      return chain_problem(fmt::format("{} has {} boxes of {} {}. {} gives away {} and then buys {} more. {}", A, boxes,
                                       each, items, S, n_items(away), buys, how_many),
                           running(boxes, {{'*', each}, {'-', away}, {'+', buys}}));
    }
    case 5: {
      const int have = rng.between(2, 90), more = rng.between(1, std::min(99, kMaxValue - 2 * have));
      std::vector<ChainStep> steps = {{have, '+', more}, {have, '+', 0, -1, 0}};
      return chain_problem(fmt::format("{} has {}. {} has {} more {} than {}. How many {} do they have together?", A,
                                       n_items(have), B, more, noun(more), A, items),
                           std::move(steps));
    }
    case 6: {
      const int have = rng.between(2, 99), buys = rng.between(1, std::min(99, kMaxValue - have));
      const int away = rng.between(1, have + buys - 1), again = rng.between(1, std::min(99, kMaxValue - (have + buys - away)));
      return chain_problem(fmt::format("{} has {} {}. {} buys {} more, gives away {}, and then buys {} more. {}", A, have,
                                       items, S, buys, away, again, how_many),
                           running(have, {{'+', buys}, {'-', away}, {'+', again}}));
    }
    default: {
      const int bags = rng.between(2, 9), each = rng.between(2, std::min(20, kMaxValue / bags));
      const int taken = rng.between(1, bags * each - 1);
      return chain_problem(fmt::format("There are {} {} in each of {} bags. {} takes out {}. How many {} are left in the "
                                       "bags?",
                                       each, items, bags, A, n_items(taken), items),
                           running(bags, {{'*', each}, {'-', taken}}));
    }
  }
}

// "Which is larger, 47 + 18 or 9 * 7?": the answer is the larger value.
Problem comparison(Rng& rng) {
  auto side = [&rng] {
    static constexpr char kOps[] = {'+', '-', '*'};
    const char op = rng.pick<char>(kOps);
    if (op == '+') {
      const int a = rng.between(1, 99);
      return ChainStep{a, op, rng.between(1, std::min(99, kMaxValue - a))};
    }
    if (op == '-') {
      const int a = rng.between(2, 99);
      return ChainStep{a, op, rng.between(1, a - 1)};
    }
    const int a = rng.between(2, 9);
    return ChainStep{a, op, rng.between(2, std::min(20, kMaxValue / a))};
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
  auto text = [](const ChainStep& s) { return fmt::format("{} {} {}", s.left, s.op, s.right); };
  p.task.question = fmt::format("Which is larger, {} or {}?", text(left), text(right));
  p.work = [steps = std::vector<ChainStep>{left, right}](Rng* slip) {
    Worked w;
    const std::vector<int> v = run_chain(steps, slip, w.lines);
    if (v[0] == v[1]) return Worked{};  // a slip into a tie: no answer
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
// Grams are the exception to kMaxValue: 3 kg 450 g is 3450 g, a pattern
// rather than a sum to learn.
constexpr UnitPair kUnits[] = {
    {"hour", "minute", 60, 3, 1, 59, "{} waited {}. How many {}s is that?"},
    {"minute", "second", 60, 3, 1, 59, "{} ran for {}. How many {}s is that?"},
    {"metre", "centimetre", 100, 1, 1, 99, "{} has a rope of {}. How many {}s long is it?"},
    {"kilogram", "gram", 1000, 9, 100, 999, "{}'s bag weighs {}. How many {}s is that?"},
    {"week", "day", 7, 9, 1, 6, "{}'s trip lasted {}. How many {}s is that?"},
    {"day", "hour", 24, 7, 1, 23, "{}'s journey took {}. How many {}s is that?"},
    {"year", "month", 12, 9, 1, 11, "{}'s dog is {} old. How many {}s is that?"},
};

std::string count_of(int n, const char* unit) { return fmt::format("{} {}{}", n, unit, n == 1 ? "" : "s"); }

// "How many minutes are in 3 hours and 15 minutes?": 3*60=180, 180+15=195.
Problem units(Rng& rng) {
  const UnitPair& u = rng.pick<UnitPair>(kUnits);
  const int big = rng.between(1, u.big_max);
  const int room = u.factor >= 1000 ? u.small_max : std::min(u.small_max, kMaxValue - big * u.factor);
  const int small = rng.between(u.small_min, std::max(u.small_min, room));
  const std::string amount = count_of(big, u.big) + " and " + count_of(small, u.small);
  const Person& who = rng.pick<Person>(kPeople);
  std::string question = rng.chance(0.5) ? fmt::format("How many {}s are in {}?", u.small, amount)
                                         : fmt::format(fmt::runtime(u.story), who.name, amount, u.small);
  return chain_problem(std::move(question), running(big, {{'*', u.factor}, {'+', small}}));
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

Problem make_problem(TaskKind kind, uint64_t seed, uint64_t index) {
  Rng rng(seed, index, kTaskStream + static_cast<uint64_t>(kind));
  Problem p;
  switch (kind) {
    case TaskKind::arithmetic: p = arithmetic(rng); break;
    case TaskKind::word_problem: p = word_problem(rng); break;
    case TaskKind::comparison: p = comparison(rng); break;
    case TaskKind::units: p = units(rng); break;
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
  return make_problem(kinds_[index % kinds_.size()], options_.seed, index).task;
}

Sample Curriculum::sample(uint64_t index) const {
  Rng rng(options_.seed, index, kStyleStream);
  const double u = rng.unit();
  const SampleStyle style = u < options_.instant_fraction                              ? SampleStyle::instant
                            : u < options_.instant_fraction + options_.refine_fraction ? SampleStyle::refine
                                                                                       : SampleStyle::thinking;
  return teach_problem(make_problem(kinds_[index % kinds_.size()], options_.seed, index), style, options_.seed);
}

Sample Curriculum::teach(const Task& task, SampleStyle style) const {
  Problem p = make_problem(task.kind, options_.seed, task.index);
  if (p.task.question != task.question || p.task.answer != task.answer)
    throw Error(ErrorKind::invalid_argument, "", "task",
                fmt::format("not {} task {} of this curriculum (seed {}): its question or answer differs",
                            task_kind_name(task.kind), task.index, options_.seed));
  return teach_problem(p, style, options_.seed);
}

}  // namespace musespark::detail
