// The curriculum of the default model: determinism, answers checked against
// an independent reading of the question or of the picture's pixels, the
// teacher's step format, the engine's formats (visual tags, zoom crops,
// Contemplating's workspace) and the styles.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "distill/curriculum.hpp"
#include "reasoning/workspace.hpp"
#include "musespark/answer.hpp"
#include "musespark/error.hpp"
#include "reasoning/visual.hpp"
#include "support.hpp"
#include "vision/draw.hpp"

using namespace musespark;
using namespace musespark::detail;

namespace {

constexpr std::string_view kClosing = "\nCheck these attempts, reason again on your own, and give your final answer.";
constexpr std::string_view kThinkEnd = "</think>\n\n";

Curriculum curriculum(uint64_t seed, std::vector<TaskKind> kinds = {}, double instant = 0.2, double refine = 0.1) {
  CurriculumOptions o;
  o.seed = seed;
  o.kinds = std::move(kinds);
  o.instant_fraction = instant;
  o.refine_fraction = refine;
  return Curriculum(o);
}

// Samples 0..count-1 of a one-kind curriculum, all in the thinking style.
std::vector<Sample> thinking_samples(uint64_t seed, TaskKind kind, uint64_t count) {
  const Curriculum c = curriculum(seed, {kind}, 0, 0);
  std::vector<Sample> out;
  for (uint64_t i = 0; i < count; ++i) out.push_back(c.sample(i));
  return out;
}

// The thinking of a thinking/refine completion (before "</think>\n\n") and its answer text.
std::pair<std::string, std::string> split_completion(const std::string& completion) {
  const size_t at = completion.find(kThinkEnd);
  REQUIRE(at != std::string::npos);
  return {completion.substr(0, at), completion.substr(at + kThinkEnd.size())};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  if (start < text.size()) lines.push_back(text.substr(start));
  return lines;
}

std::vector<int> numbers_in(const std::string& text) {
  static const std::regex kNumber(R"(\d+)");
  std::vector<int> out;
  for (std::sregex_iterator it(text.begin(), text.end(), kNumber), end; it != end; ++it)
    out.push_back(std::stoi(it->str()));
  return out;
}

// A question in plain symbols: lower case, number words as digits, operator
// words and signs as + - *, so that the regexes below read every phrasing.
std::string plain(std::string q) {
  for (char& c : q) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  q = std::regex_replace(q, std::regex("  +"), " ");
  q = std::regex_replace(q, std::regex("which one"), "which");  // not the number
  static const char* kOnes[] = {"zero",    "one",     "two",       "three",    "four",     "five",   "six",
                                "seven",   "eight",   "nine",      "ten",      "eleven",   "twelve", "thirteen",
                                "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
  static const char* kTens[] = {"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"};
  std::vector<std::pair<std::string, int>> words;
  for (int t = 0; t < 8; ++t)
    for (int u = 1; u <= 9; ++u) words.push_back({std::string(kTens[t]) + "-" + kOnes[u], 20 + 10 * t + u});
  for (int t = 0; t < 8; ++t) words.push_back({kTens[t], 20 + 10 * t});
  for (int n = 19; n >= 0; --n) words.push_back({kOnes[n], n});
  for (const auto& [word, n] : words)
    q = std::regex_replace(q, std::regex("\\b" + word + "\\b"), std::to_string(n));
  q = std::regex_replace(q, std::regex(" plus "), " + ");
  q = std::regex_replace(q, std::regex(" minus "), " - ");
  q = std::regex_replace(q, std::regex(" (times|multiplied by) "), " * ");
  q = std::regex_replace(q, std::regex("\u00d7"), "*");
  q = std::regex_replace(q, std::regex(R"(([\d)]) ?x ?([\d(]))"), "$1*$2");
  return q;
}

// --- An independent evaluator for "What is 12 + (3 - 1) * 4?" ---
struct Parser {
  std::string_view s;
  size_t i = 0;
  void space() { while (i < s.size() && s[i] == ' ') ++i; }
  int primary() {
    space();
    if (s[i] == '(') {
      ++i;
      int v = sum();
      space();
      REQUIRE(s[i] == ')');
      ++i;
      return v;
    }
    size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    REQUIRE(i > start);
    return std::stoi(std::string(s.substr(start, i - start)));
  }
  int product() {
    int v = primary();
    for (space(); i < s.size() && s[i] == '*'; space()) ++i, v *= primary();
    return v;
  }
  int sum() {
    int v = product();
    for (space(); i < s.size() && (s[i] == '+' || s[i] == '-'); space()) {
      const char op = s[i++];
      const int r = product();
      v = op == '+' ? v + r : v - r;
    }
    return v;
  }
};
int evaluate(std::string_view expression) {
  Parser p{expression};
  const int v = p.sum();
  CHECK(p.i == expression.size());
  return v;
}

// --- Pixels ---
using Rgb = std::array<int, 3>;
Rgb pixel(const Image& image, int x, int y) {
  const uint8_t* p = image.pixels().data() + (static_cast<size_t>(y) * image.width() + x) * 3;
  return {p[0], p[1], p[2]};
}
// The colour name of a saturated pixel, or "" (white, ink, faint shapes).
std::string color_name(Rgb c) {
  if (c[0] > 150 && c[1] < 100 && c[2] < 100) return "red";
  if (c[1] > 120 && c[0] < 100 && c[2] < 110) return "green";
  if (c[2] > 150 && c[0] < 100 && c[1] < 120) return "blue";
  return "";
}
bool is_ink(Rgb c) { return c[0] < 110 && c[1] < 110 && c[2] < 110; }

template <class Pred>
int count_where(const Image& image, Pred pred) {
  int n = 0;
  for (int y = 0; y < image.height(); ++y)
    for (int x = 0; x < image.width(); ++x) n += pred(pixel(image, x, y));
  return n;
}

// What the engine crops for a tag's region.
Image crop_of(const Image& image, const std::array<double, 4>& relative) {
  const auto r = to_pixels(relative, image.width(), image.height());
  return image.crop(r[0], r[1], r[2], r[3]);
}

// The grid cell (0..8, reading order) a region is exactly, or -1.
int grid_cell(const std::array<double, 4>& r) {
  static constexpr double kEdges[] = {0, 333, 667, 1000};
  for (int col = 0; col < 3; ++col)
    for (int row = 0; row < 3; ++row)
      if (r == std::array<double, 4>{kEdges[col], kEdges[row], kEdges[col + 1], kEdges[row + 1]}) return row * 3 + col;
  return -1;
}
std::array<double, 4> cell_region(int cell) {
  static constexpr double kEdges[] = {0, 333, 667, 1000};
  return {kEdges[cell % 3], kEdges[cell / 3], kEdges[cell % 3 + 1], kEdges[cell / 3 + 1]};
}

// The ink of `image` cut to its bounding box, as a mask (row strings of '#' and '.').
std::vector<std::string> ink_mask(const Image& image) {
  int x0 = image.width(), y0 = image.height(), x1 = -1, y1 = -1;
  for (int y = 0; y < image.height(); ++y)
    for (int x = 0; x < image.width(); ++x)
      if (is_ink(pixel(image, x, y))) x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
  std::vector<std::string> mask;
  for (int y = y0; y <= y1; ++y) {
    std::string row;
    for (int x = x0; x <= x1; ++x) row += is_ink(pixel(image, x, y)) ? '#' : '.';
    mask.push_back(row);
  }
  return mask;
}
// Reads text drawn in the bitmap font at `scale` by matching it against
// every candidate rendered the same way.
std::string read_text(const Image& image, int scale, const std::vector<std::string>& candidates) {
  const std::vector<std::string> seen = ink_mask(image);
  for (const std::string& c : candidates) {
    std::vector<uint8_t> white(static_cast<size_t>(60 * scale * 10 * scale * 3), 255);
    Image canvas = Image::from_rgb(white, 60 * scale, 10 * scale);
    draw_text(canvas, 0, 0, c, {0, 0, 0}, scale);
    if (ink_mask(canvas) == seen) return c;
  }
  return "?";
}
std::vector<std::string> numbers_from(int lo, int hi) {
  std::vector<std::string> out;
  for (int n = lo; n <= hi; ++n) out.push_back(std::to_string(n));
  return out;
}

}  // namespace

TEST_CASE("curriculum: kind names round-trip; four kinds are visual") {
  std::set<std::string> names;
  for (TaskKind kind : kAllTaskKinds) {
    names.insert(task_kind_name(kind));
    CHECK(parse_task_kind(task_kind_name(kind)) == kind);
  }
  CHECK(names.size() == 8);
  CHECK(!parse_task_kind("Arithmetic").has_value());
  CHECK(!parse_task_kind("").has_value());
  CHECK(std::count_if(std::begin(kAllTaskKinds), std::end(kAllTaskKinds), is_visual) == 4);
  CHECK(is_visual(TaskKind::small_digits));
  CHECK(!is_visual(TaskKind::units));
}

TEST_CASE("curriculum: the same seed and index give the same sample, pixels included; other seeds differ") {
  const Curriculum a = curriculum(11), b = curriculum(11), other = curriculum(12);
  int differ = 0;
  for (uint64_t i = 0; i < 48; ++i) {
    CAPTURE(i);
    const Sample x = a.sample(i), y = b.sample(i);
    CHECK(x.task.kind == y.task.kind);
    CHECK(x.task.question == y.task.question);
    CHECK(x.task.answer == y.task.answer);
    CHECK(x.style == y.style);
    CHECK(x.user_text == y.user_text);
    CHECK(x.completion == y.completion);
    REQUIRE(x.task.image.has_value() == y.task.image.has_value());
    if (x.task.image) CHECK(std::ranges::equal(x.task.image->pixels(), y.task.image->pixels()));
    // task(i) is sample(i)'s task.
    const Task t = a.task(i);
    CHECK(t.question == x.task.question);
    CHECK(t.answer == x.task.answer);
    CHECK(t.index == i);
    const Sample z = other.sample(i);
    differ += z.task.question != x.task.question ||
              (z.task.image && !std::ranges::equal(z.task.image->pixels(), x.task.image->pixels()));
  }
  CHECK(differ >= 44);
}

TEST_CASE("curriculum: kinds cycle through the options; images exactly for visual kinds") {
  const Curriculum all = curriculum(3);
  for (uint64_t i = 0; i < 32; ++i) {
    const Task t = all.task(i);
    CHECK(t.kind == kAllTaskKinds[i % 8]);
    CHECK(t.image.has_value() == is_visual(t.kind));
    CHECK(t.needs_zoom == (t.kind == TaskKind::small_digits));
    if (t.image) {
      const int size = t.kind == TaskKind::small_digits ? kSmallDigitsPictureSize : kPictureSize;
      CHECK(t.image->width() == size);
      CHECK(t.image->height() == size);
    }
  }
  const Curriculum two = curriculum(3, {TaskKind::units, TaskKind::small_digits});
  for (uint64_t i = 0; i < 6; ++i) CHECK(two.task(i).kind == (i % 2 ? TaskKind::small_digits : TaskKind::units));
  // A task depends on (seed, index, kind), not on the other kinds in the list.
  CHECK(two.task(5).question == curriculum(3, {TaskKind::small_digits}).task(5).question);
  CHECK(std::ranges::equal(two.task(5).image->pixels(), curriculum(3, {TaskKind::small_digits}).task(5).image->pixels()));
}

TEST_CASE("curriculum: answers are canonical and the extractor finds them in every completion") {
  const Curriculum c = curriculum(5, {}, 0.3, 0.3);
  std::map<SampleStyle, int> styles;
  for (uint64_t i = 0; i < 480; ++i) {
    const Sample s = c.sample(i);
    CAPTURE(i);
    CAPTURE(s.completion);
    ++styles[s.style];
    CHECK(!s.task.answer.empty());
    CHECK(normalize_answer(s.task.answer) == s.task.answer);
    CHECK(s.completion.find("<think>") == std::string::npos);  // the template opens the thought
    if (s.style == SampleStyle::instant) {
      CHECK(s.completion == s.task.answer);
      CHECK(s.user_text == s.task.question);
      continue;
    }
    const auto [thinking, answer_text] = split_completion(s.completion);
    CHECK(thinking.find("</think>") == std::string::npos);
    CHECK(!thinking.empty());
    CHECK(thinking.back() == '\n');
    CHECK(extract_answer(answer_text) == s.task.answer);
    CHECK(normalize_answer(extract_answer(answer_text)) == s.task.answer);
    // Short and regular: the model is tiny and byte-level.
    CHECK(thinking.size() <= 600);
    if (s.style == SampleStyle::thinking) CHECK(s.user_text == s.task.question);
  }
  CHECK(styles.size() == 3);
}

TEST_CASE("curriculum: arithmetic, comparison and units answers agree with an independent reading") {
  for (const Phrasings set : {Phrasings::training, Phrasings::held_out}) {
    CAPTURE(std::string(phrasings_name(set)));
    CurriculumOptions o;
    o.seed = 8;
    o.kinds = {TaskKind::arithmetic, TaskKind::comparison, TaskKind::units};
    o.instant_fraction = o.refine_fraction = 0;
    o.phrasings = set;
    const Curriculum c(o);
    static const std::regex kExpression(R"([0-9(][0-9+\-*() ]*[+\-*][0-9+\-*() ]*[0-9)])");
    static const std::regex kSide(R"(\d+ ?[+\-*] ?\d+)");
    static const std::regex kAmount(R"((\d+) (hour|minute|metre|kilogram|week|day|year)s?(?: and | )(\d+) ([a-z]+?)s?\b)");
    const std::map<std::string, int> factor = {{"hour", 60}, {"minute", 60}, {"metre", 100}, {"kilogram", 1000},
                                               {"week", 7},  {"day", 24},    {"year", 12}};
    std::set<int> operand_counts;
    for (uint64_t i = 0; i < 300; ++i) {
      const Task t = c.task(i);
      CAPTURE(t.question);
      const std::string q = plain(t.question);
      CAPTURE(q);
      std::smatch m;
      switch (t.kind) {
        case TaskKind::arithmetic: {
          REQUIRE(std::regex_search(q, m, kExpression));
          CHECK(std::to_string(evaluate(m[0].str())) == t.answer);
          operand_counts.insert(static_cast<int>(numbers_in(m[0].str()).size()));
          break;
        }
        case TaskKind::comparison: {
          std::vector<int> sides;
          for (std::sregex_iterator it(q.begin(), q.end(), kSide), end; it != end; ++it) sides.push_back(evaluate(it->str()));
          REQUIRE(sides.size() == 2);
          CHECK(sides[0] != sides[1]);
          CHECK(std::to_string(std::max(sides[0], sides[1])) == t.answer);
          break;
        }
        default: {
          REQUIRE(std::regex_search(q, m, kAmount));
          CHECK(q.find(m[4].str() + "s") != std::string::npos);  // asks for the small unit
          CHECK(std::to_string(std::stoi(m[1]) * factor.at(m[2]) + std::stoi(m[3])) == t.answer);
        }
      }
    }
    CHECK(operand_counts == std::set<int>{2, 3, 4});
  }
}

// Checks one thinking of column arithmetic: every line a true one-digit fact,
// every operation's "=result" right, its operands from the question or
// earlier results. Returns the top-level operations' results in order.
static std::vector<int> check_worked(const std::vector<std::string>& lines, std::set<int> known, std::set<int>& used) {
  static const std::regex kHeader(R"((\d+)([+\-*])(\d+))");
  static const std::regex kFact(R"((\d+)([+\-*])(\d+)(?:([+\-])(\d+))?=(\d+))");
  static const std::regex kResult(R"(=(\d+))");
  struct Open {
    int left, right;
    char op;
  };
  std::vector<Open> open;  // headers whose "=result" is still to come (long multiplication nests them)
  std::vector<int> results;
  for (const std::string& line : lines) {
    CAPTURE(line);
    std::smatch m;
    if (std::regex_match(line, m, kHeader)) {
      const int l = std::stoi(m[1]), r = std::stoi(m[3]);
      if (open.empty()) {
        CHECK(known.count(l) == 1);  // from the question or an earlier step
        CHECK(known.count(r) == 1);
        used.insert(l), used.insert(r);
        CHECK((l >= 10 || r >= 10));  // two one-digit numbers are a fact line instead
      }
      open.push_back({l, r, m[2].str()[0]});
    } else if (std::regex_match(line, m, kResult)) {
      REQUIRE(!open.empty());
      Open o = open.back();
      open.pop_back();
      const int v = std::stoi(m[1]);
      CHECK(v == (o.op == '+' ? o.left + o.right : o.op == '-' ? o.left - o.right : o.left * o.right));
      // The sum of a long multiplication's partial products is its result too.
      if (o.op == '+' && !open.empty() && open.back().op == '*' && std::min(open.back().left, open.back().right) >= 10) {
        o = open.back();
        open.pop_back();
        CHECK(v == o.left * o.right);
      }
      if (open.empty()) results.push_back(v), known.insert(v);
    } else {
      REQUIRE(std::regex_match(line, m, kFact));
      const int a = std::stoi(m[1]), b = std::stoi(m[3]), v = std::stoi(m[6]);
      const char op = m[2].str()[0];
      int want = op == '+' ? a + b : op == '-' ? a - b : a * b;
      if (m[4].matched) want += m[4] == "+" ? std::stoi(m[5]) : -std::stoi(m[5]);
      CHECK(v == want);
      CHECK(b <= 9);
      CHECK(a <= (op == '-' ? 19 : 9));
      if (open.empty()) {  // a fact line on its own is a whole one-digit operation
        CHECK(known.count(a) == 1);
        CHECK(known.count(b) == 1);
        used.insert(a), used.insert(b);
        results.push_back(v), known.insert(v);
      }
    }
  }
  CHECK(open.empty());
  return results;
}

TEST_CASE("curriculum: every step of a text trace is true column arithmetic on the question's numbers") {
  const Curriculum c = curriculum(9, {TaskKind::arithmetic, TaskKind::word_problem, TaskKind::comparison, TaskKind::units},
                                  0, 0);
  static const std::regex kCompare(R"((\d+)([<>])(\d+))");
  std::set<size_t> step_counts;
  for (uint64_t i = 0; i < 400; ++i) {
    const Sample s = c.sample(i);
    CAPTURE(s.task.question);
    CAPTURE(s.completion);
    const std::vector<int> given = numbers_in(plain(s.task.question));
    std::set<int> known(given.begin(), given.end()), used;
    if (s.task.kind == TaskKind::units) known.insert({60, 100, 1000, 7, 24, 12});  // the conversion factors
    auto lines = lines_of(split_completion(s.completion).first);
    REQUIRE(!lines.empty());
    std::smatch m;
    if (s.task.kind == TaskKind::comparison) {
      REQUIRE(std::regex_match(lines.back(), m, kCompare));
      lines.pop_back();
    }
    const std::vector<int> results = check_worked(lines, known, used);
    REQUIRE(!results.empty());
    for (int r : results) CHECK((r >= 0 && r <= (s.task.question.find("gram") == std::string::npos ? 999 : 9999)));
    if (s.task.kind == TaskKind::comparison) {
      REQUIRE(results.size() == 2);
      const int l = std::stoi(m[1]), r = std::stoi(m[3]);
      CHECK(l == results[0]);
      CHECK(r == results[1]);
      CHECK((m[2] == ">" ? l > r : l < r));
      CHECK(s.task.answer == std::to_string(std::max(l, r)));
    } else {
      CHECK(std::to_string(results.back()) == s.task.answer);
    }
    if (s.task.kind != TaskKind::units)  // every number of the question is used (units have the factor besides)
      for (int n : given) CHECK(used.count(n) == 1);
    if (s.task.kind == TaskKind::arithmetic || s.task.kind == TaskKind::word_problem) step_counts.insert(results.size());
  }
  CHECK(step_counts == std::set<size_t>{1, 2, 3});
}

TEST_CASE("curriculum: column arithmetic carries, borrows and multiplies digit by digit") {
  // Questions whose numbers force each case, found by searching the curriculum.
  const Curriculum c = curriculum(11, {TaskKind::arithmetic}, 0, 0);
  std::set<std::string> seen;
  for (uint64_t i = 0; i < 3000 && seen.size() < 5; ++i) {
    const std::string thinking = split_completion(c.sample(i).completion).first;
    if (thinking.find("+1=") != std::string::npos) seen.insert("carry");
    if (std::regex_search(thinking, std::regex(R"(\n1\d-\d(-1)?=)"))) seen.insert("borrow");
    if (std::regex_search(thinking, std::regex(R"(\n\d\*\d\+\d=)"))) seen.insert("product carry");
    if (std::regex_search(thinking, std::regex(R"(\d\d\*\d\d\n\d+\*\d\n)"))) seen.insert("long multiplication");
    if (std::regex_search(thinking, std::regex(R"(\n\d-\d-1=)"))) seen.insert("borrow taken");
  }
  CHECK(seen == std::set<std::string>{"borrow", "borrow taken", "carry", "long multiplication", "product carry"});
  // And one worked exactly: a known question's trace, line by line.
  for (uint64_t i = 0; i < 3000; ++i) {
    const Sample s = c.sample(i);
    if (s.task.answer != "66" || plain(s.task.question).find("85 - 19") == std::string::npos) continue;
    CHECK(split_completion(s.completion).first.find("85-19\n15-9=6\n8-1-1=6\n=66\n") != std::string::npos);
  }
}

TEST_CASE("curriculum: phrasings vary, and the held-out ones never appear in training") {
  // The frames that only the held-out set has: none of them in 2,000 training questions.
  static const char* kHeldOut[] = {"Tell me what", "I need the value of", "Give me the result of", "What do you get for",
                                   "Quick question", "Help me compute", "Which of ", "Tell me which", "Is ",
                                   "equals how many", "Express ", "in minutes?", "starts with", "At first",
                                   "end up with", "What is the number of", "Now how many", "each box holds",
                                   "also buys", "picks up", "collects", "receives", "of them away", "hands ",
                                   "the two of them", "Later", "Next,", "First "};
  std::map<Phrasings, std::set<std::string>> firsts;
  std::map<Phrasings, int> held_out_hits;
  for (const Phrasings set : {Phrasings::training, Phrasings::held_out}) {
    CurriculumOptions o;
    o.seed = 12;
    o.kinds = {TaskKind::arithmetic, TaskKind::word_problem, TaskKind::comparison, TaskKind::units};
    o.phrasings = set;
    const Curriculum c(o);
    for (uint64_t i = 0; i < 2000; ++i) {
      const Task t = c.task(i);
      CAPTURE(t.question);
      firsts[set].insert(t.question.substr(0, t.question.find(' ')));
      bool hit = false;
      for (const char* h : kHeldOut) hit = hit || t.question.find(h) != std::string::npos;
      if (set == Phrasings::training)
        for (const char* h : kHeldOut) CHECK(t.question.find(h) == std::string::npos);
      held_out_hits[set] += hit;
    }
  }
  CHECK(held_out_hits[Phrasings::held_out] >= 1500);  // most held-out questions use a held-out phrase
  CHECK(firsts[Phrasings::training].size() >= 40);    // "What", "Compute", names, numbers, ...
  // Same numbers, other words: task i of both sets asks for the same answer.
  CurriculumOptions o;
  o.seed = 12;
  o.kinds = {TaskKind::arithmetic, TaskKind::word_problem};
  const Curriculum training(o);
  o.phrasings = Phrasings::held_out;
  const Curriculum held_out(o);
  int differ = 0;
  for (uint64_t i = 0; i < 100; ++i) {
    CHECK(training.task(i).answer == held_out.task(i).answer);
    differ += training.task(i).question != held_out.task(i).question;
  }
  CHECK(differ >= 95);
  CHECK(number_in_words(42) == "forty-two");
  CHECK(number_in_words(13) == "thirteen");
  CHECK(number_in_words(70) == "seventy");
  CHECK_THROWS_AS(number_in_words(100), Error);
}

TEST_CASE("curriculum: count_color boxes exactly the cells with shapes of the asked colour") {
  static const std::regex kQuestion(R"(How many (red|green|blue) shapes are there\?)");
  std::set<std::string> answers;
  for (const Sample& s : thinking_samples(21, TaskKind::count_color, 60)) {
    CAPTURE(s.completion);
    std::smatch m;
    REQUIRE(std::regex_match(s.task.question, m, kQuestion));
    const std::string color = m[1];
    const Image& image = *s.task.image;
    const auto [thinking, answer] = split_completion(s.completion);
    // The cells holding that colour, from the pixels (a shape has >= 100 px).
    std::set<int> expected, boxed, occupied;
    for (int cell = 0; cell < 9; ++cell) {
      const Image crop = crop_of(image, cell_region(cell));
      if (count_where(crop, [&](Rgb p) { return color_name(p) == color; }) >= 100) expected.insert(cell);
      if (count_where(crop, [&](Rgb p) { return !color_name(p).empty(); }) >= 100) occupied.insert(cell);
    }
    CHECK(occupied.size() >= 2);
    CHECK(occupied.size() <= 6);
    int previous = -1;
    for (const VisualTag& tag : find_visual_tags(thinking, 0)) {
      CHECK(tag.kind == VisualTag::Kind::box);
      const int cell = grid_cell(tag.relative);
      CHECK(cell > previous);  // reading order
      previous = cell;
      boxed.insert(cell);
      CHECK(thinking.substr(tag.end, color.size() + 2) == " " + color + "\n");
    }
    CHECK(boxed == expected);
    CHECK(s.task.answer == std::to_string(expected.size()));
    CHECK(lines_of(thinking).back() == (expected.empty() ? "none" : s.task.answer));
    answers.insert(s.task.answer);
  }
  CHECK(answers.count("0") == 1);  // sometimes none
  CHECK(answers.size() >= 4);
}

TEST_CASE("curriculum: digit_sum boxes each digit, reads it right, and adds them up") {
  for (const Sample& s : thinking_samples(22, TaskKind::digit_sum, 40)) {
    CAPTURE(s.completion);
    const Image& image = *s.task.image;
    const auto [thinking, answer] = split_completion(s.completion);
    const auto tags = find_visual_tags(thinking, 0);
    REQUIRE(tags.size() >= 2);
    REQUIRE(tags.size() <= 3);
    std::set<int> boxed;
    int sum = 0;
    for (const VisualTag& tag : tags) {
      const int cell = grid_cell(tag.relative);
      REQUIRE(cell >= 0);
      boxed.insert(cell);
      const Image crop = crop_of(image, tag.relative);
      const std::string digit = read_text(crop, 3, numbers_from(0, 9));
      // The line says what the pixels show.
      CHECK(thinking.substr(tag.end, 3) == " " + digit + "\n");
      sum += std::stoi(digit);
      // Large enough to read at the vision input size: >= 8 px tall there.
      CHECK(ink_mask(crop).size() * kVisionInputSize / kPictureSize >= 8);
    }
    for (int cell = 0; cell < 9; ++cell)  // no ink outside the boxed cells
      if (!boxed.count(cell)) CHECK(count_where(crop_of(image, cell_region(cell)), is_ink) == 0);
    CHECK(s.task.answer == std::to_string(sum));
  }
}

TEST_CASE("curriculum: compare_size names the picture's colours and the bigger one wins") {
  static const std::regex kQuestion(R"(Which shape is bigger, the (red|green|blue) one or the (red|green|blue) one\?)");
  std::set<std::string> answers;
  for (const Sample& s : thinking_samples(23, TaskKind::compare_size, 40)) {
    CAPTURE(s.completion);
    std::smatch m;
    REQUIRE(std::regex_match(s.task.question, m, kQuestion));
    CHECK(m[1] != m[2]);
    const Image& image = *s.task.image;
    const int first = count_where(image, [&](Rgb p) { return color_name(p) == m[1].str(); });
    const int second = count_where(image, [&](Rgb p) { return color_name(p) == m[2].str(); });
    CHECK(std::min(first, second) >= 30);  // both colours are in the picture
    CHECK(std::max(first, second) >= 2 * std::min(first, second));  // clearly different sizes
    CHECK(s.task.answer == (first > second ? m[1].str() : m[2].str()));
    answers.insert(s.task.answer);
    const auto [thinking, answer] = split_completion(s.completion);
    const auto tags = find_visual_tags(thinking, 0);
    REQUIRE(tags.size() == 2);
    for (const VisualTag& tag : tags) {
      const std::string rest = lines_of(thinking.substr(tag.end)).front();  // " red big"
      const std::string color = rest.substr(1, rest.find(' ', 1) - 1);
      const Image crop = crop_of(image, tag.relative);
      CHECK(grid_cell(tag.relative) >= 0);
      CHECK(count_where(crop, [&](Rgb p) { return color_name(p) == color; }) >= 30);
      CHECK(rest == " " + color + (color == s.task.answer ? " big" : " small"));
    }
  }
  CHECK(answers.size() == 3);
}

TEST_CASE("curriculum: small_digits zooms into the cell that holds all the number's ink") {
  std::set<int> cells;
  for (const Sample& s : thinking_samples(24, TaskKind::small_digits, 40)) {
    CAPTURE(s.completion);
    CHECK(s.task.needs_zoom);
    const Image& image = *s.task.image;
    REQUIRE(image.width() == kSmallDigitsPictureSize);
    const auto [thinking, answer] = split_completion(s.completion);
    const auto tags = find_visual_tags(thinking, 0);
    REQUIRE(tags.size() == 1);
    CHECK(tags[0].kind == VisualTag::Kind::zoom);
    CHECK(tags[0].begin == 0);
    CHECK(thinking.substr(tags[0].end) == s.task.answer + "\n");
    const int cell = grid_cell(tags[0].relative);
    REQUIRE(cell >= 0);
    cells.insert(cell);
    // Exactly what the engine crops holds every ink pixel of the picture...
    const Image crop = crop_of(image, tags[0].relative);
    const int ink = count_where(image, is_ink);
    CHECK(ink > 20);
    CHECK(count_where(crop, is_ink) == ink);
    // ...and shows the answer's digits.
    CHECK(read_text(crop, 2, numbers_from(10, 99)) == s.task.answer);
    // Tiny at the 64 x 64 view (< 5 px tall), readable once the crop is resized to 64 x 64 (>= 10 px).
    const auto rows = static_cast<int>(ink_mask(image).size());
    CHECK(rows * kVisionInputSize / kSmallDigitsPictureSize < 5);
    CHECK(rows * kVisionInputSize / crop.height() >= 10);
  }
  CHECK(cells.size() >= 7);
}

TEST_CASE("curriculum: each picture's scene labels say what its pixels show, cell by cell") {
  const std::vector<std::string> kNames = {"red", "green", "blue"};
  auto colour_in = [&](const Image& crop) {  // the colour index with the most pixels in `crop`, or -1
    int best = -1, most = 30;
    for (int c = 0; c < 3; ++c) {
      const int n = count_where(crop, [&](Rgb p) { return color_name(p) == kNames[c]; });
      if (n > most) best = c, most = n;
    }
    return best;
  };
  for (TaskKind kind : kAllTaskKinds) {
    CAPTURE(task_kind_name(kind));
    for (const Sample& s : thinking_samples(25, kind, 20)) {
      const Scene& scene = s.task.scene;
      if (!is_visual(kind)) {  // no picture, no labels
        CHECK(std::all_of(scene.cells.begin(), scene.cells.end(), [](int8_t c) { return c == kSceneIgnore; }));
        continue;
      }
      const Image& image = *s.task.image;
      CHECK(scene.number == std::array<int8_t, 2>{kSceneIgnore, kSceneIgnore});  // unreadable at the full view
      for (int cell = 0; cell < 9; ++cell) {
        CAPTURE(cell);
        const Image crop = crop_of(image, cell_region(cell));
        const int label = scene.cells[static_cast<size_t>(cell)];
        const int colour = colour_in(crop);
        const int ink = count_where(crop, is_ink);
        switch (kind) {
          case TaskKind::count_color:
            CHECK(label == (colour < 0 ? kSceneEmpty : kSceneShape + colour));
            break;
          case TaskKind::compare_size:
            if (colour < 0) CHECK(label == kSceneEmpty);
            else CHECK((label == kSceneBigShape + colour || label == kSceneSmallShape + colour));
            break;
          case TaskKind::digit_sum:
            CHECK(label == (ink == 0 ? int(kSceneEmpty) : kSceneDigit0 + std::stoi(read_text(crop, 3, numbers_from(0, 9)))));
            break;
          case TaskKind::small_digits:
            if (ink > 0) CHECK(label == kSceneSmallNumber);
            else CHECK((label == kSceneEmpty || label == kSceneFaintShape));
            break;
          default: break;
        }
      }
      if (kind == TaskKind::compare_size) {  // the answer's shape is the big one
        int big = 0;
        for (int8_t c : scene.cells) big += c >= kSceneBigShape && c < kSceneSmallShape && kNames[c - kSceneBigShape] == s.task.answer;
        CHECK(big == 1);
      }
      if (kind == TaskKind::small_digits) {  // the zoom's region, and the number's digits on its crop
        CHECK(s.completion.rfind("<zoom>" + s.task.zoom_region + "</zoom>", 0) == 0);
        CHECK(s.task.zoom_scene.number[0] == kSceneDigit0 + (s.task.answer[0] - '0'));
        CHECK(s.task.zoom_scene.number[1] == kSceneDigit0 + (s.task.answer[1] - '0'));
        CHECK(s.task.zoom_scene.cells[4] == kSceneIgnore);
      } else {
        CHECK(s.task.zoom_region.empty());
      }
    }
  }
}

TEST_CASE("curriculum: refine samples carry an engine workspace of earlier answers, the closing sentence, then the question") {
  // The engine's round-2 text, with_workspace (shared with the curriculum),
  // is workspace + this sentence + "\n\n" + question.
  REQUIRE(with_workspace("Q", "W") == "W" + std::string(kClosing) + "\n\nQ");

  const Curriculum c = curriculum(31, {}, 0, 1);
  static const std::regex kEntry(R"((\d)\. (.+) \((\d+)% of the vote, (\d+) agents?\))");
  static const std::regex kReasoning(R"re(   Reasoning: "(.+)")re");
  int with_wrong = 0, without_correct = 0, no_answer = 0;
  for (uint64_t i = 0; i < 160; ++i) {
    const Sample s = c.sample(i);
    CAPTURE(s.user_text);
    REQUIRE(s.style == SampleStyle::refine);
    const std::string tail = std::string(kClosing) + "\n\n" + s.task.question;
    REQUIRE(s.user_text.ends_with(tail));
    const std::string workspace = s.user_text.substr(0, s.user_text.size() - tail.size());
    // The completion reasons from scratch to the right answer.
    CHECK(extract_answer(split_completion(s.completion).second) == s.task.answer);
    if (workspace == "No earlier attempt reached an answer.\n") {
      ++no_answer;
      continue;
    }
    const auto lines = lines_of(workspace);
    REQUIRE(lines.front() == "Earlier attempts reached these answers:");
    CHECK(workspace.back() == '\n');
    std::set<std::string> answers;
    int percent = 0;
    for (size_t k = 1; k < lines.size(); k += 2) {
      std::smatch m;
      REQUIRE(std::regex_match(lines[k], m, kEntry));
      CHECK(m[1] == std::to_string(answers.size() + 1));
      CHECK(answers.insert(m[2]).second);
      percent += std::stoi(m[3]);
      CHECK(std::stoi(m[4]) >= 1);
      REQUIRE(k + 1 < lines.size());
      REQUIRE(std::regex_match(lines[k + 1], m, kReasoning));
    }
    CHECK(!answers.empty());
    CHECK(answers.size() <= 3);
    CHECK(percent >= 98);
    CHECK(percent <= 102);
    with_wrong += answers.size() > answers.count(s.task.answer);
    without_correct += answers.count(s.task.answer) == 0;
  }
  CHECK(with_wrong >= 60);
  CHECK(without_correct >= 20);
  CHECK(no_answer >= 1);
}

TEST_CASE("curriculum: styles are drawn in the option fractions; teach gives any style") {
  const Curriculum c = curriculum(41);
  std::map<SampleStyle, int> n;
  for (uint64_t i = 0; i < 2000; ++i) ++n[c.sample(i).style];
  CHECK(n[SampleStyle::instant] == doctest::Approx(400).epsilon(0.15));
  CHECK(n[SampleStyle::refine] == doctest::Approx(200).epsilon(0.2));
  for (uint64_t i = 0; i < 50; ++i) CHECK(curriculum(41, {}, 1, 0).sample(i).style == SampleStyle::instant);

  const Task t = c.task(6);  // compare_size
  const Sample instant = c.teach(t, SampleStyle::instant), thinking = c.teach(t, SampleStyle::thinking),
               refine = c.teach(t, SampleStyle::refine);
  CHECK(instant.completion == t.answer);
  CHECK(thinking.completion.ends_with("</think>\n\n" + t.answer));
  CHECK(refine.completion == thinking.completion);
  CHECK(refine.user_text.ends_with("\n\n" + t.question));
  CHECK(refine.user_text == c.teach(t, SampleStyle::refine).user_text);
  CHECK(c.sample(6).completion == c.teach(t, c.sample(6).style).completion);

  Task forged = t;
  forged.question = "Which shape is bigger?";
  CHECK_THROWS_AS(c.teach(forged, SampleStyle::thinking), Error);
  CHECK_THROWS_AS(curriculum(41).teach(curriculum(42).task(0), SampleStyle::thinking), Error);
  CHECK_THROWS_AS(curriculum(1, {}, 0.7, 0.4), Error);
  CHECK_THROWS_AS(curriculum(1, {}, -0.1, 0), Error);
  CHECK_THROWS_AS(curriculum(1, {}, 0, std::nan("")), Error);
}
