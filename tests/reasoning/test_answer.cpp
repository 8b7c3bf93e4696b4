// Answer extraction and normalisation: the cases agents actually produce.
#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

#include "musespark/answer.hpp"

using namespace musespark;

TEST_CASE("answer: extraction") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"The answer is 42.", "42"},
      {"**Answer:** 1,234", "1,234"},
      {"So we get \\boxed{12.50}.", "12.50"},
      {"Let me compute.\nx = 7", "x = 7"},
      {"\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"},
      {"Answer: 3\nBut wait, let me recheck.\nAnswer: 5\nDone, that is all.", "5"},
      {"First \\boxed{1} then \\boxed{2}", "2"},
      {"Final answer: -17", "-17"},
      {"The final answer is $\\frac{3}{4}$.", "$\\frac{3}{4}$"},
      {"ANSWER: Blue", "Blue"},
      {"", ""},
      {"   \n\t\n", ""},
      {"Answer:\xC2\xA0" "42\xE3\x80\x80", "42"},  // no-break space, ideographic space
      {"**Final Answer:**\n\n**7**\n", "7"},
      {"The answer is: 9", "9"},
      {"\\boxed{\\{1,2\\}}", "\\{1,2\\}"},
      {"\\boxed{3} and then \\boxed{4", "3"},  // the last box never closes
      {"The answer isn't obvious.\n12", "12"},
      {"`x + 1`", "x + 1"},
      {"Answer: 5. Answer: 6.", "6"},
      {"Thus the answer is 3.14.", "3.14"},
      {"Wait...\nHmm...", "Hmm..."},
      {"answer\xEF\xBC\x9A\xE5\x9B\x9B", "\xE5\x9B\x9B"},  // full-width colon, 四
      {"It equals \\boxed{-3}\nAnswer: 3", "-3"},        // a box beats a marker
      {"The result:\n\n  **-2.5**  \n\n", "-2.5"},
      {"My answer is 17 apples", "17 apples"},
      {"\\boxed{ 8 }", "8"},
      {"Step 1: add.\nStep 2: divide.\nThe answer is $x = \\boxed{4}$", "4"},
  };
  for (const auto& [text, expected] : cases) {
    CAPTURE(text);
    CHECK(extract_answer(text) == expected);
  }
}

TEST_CASE("answer: normalisation") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"42", "42"},
      {"1,234", "1234"},
      {"12.50", "12.5"},
      {"3.0", "3"},
      {"0.500", "0.5"},
      {"-0", "0"},
      {"-0.00", "0"},
      {"+7", "7"},
      {"-5", "-5"},
      {"1/2", "1/2"},
      {"$\\frac{1}{2}$", "\\frac{1}{2}"},
      {"\\text{blue}", "blue"},
      {"Blue.", "blue"},
      {"  Hello\xC2\xA0\xC2\xA0World \xE3\x80\x80", "hello world"},
      {"\"yes\"", "yes"},
      {"\xE2\x80\x9Cyes\xE2\x80\x9D", "yes"},  // curly quotes
      {"007", "7"},
      {".5", "0.5"},
      {"\xE2\x88\x92" "3", "-3"},  // U+2212 minus sign
      {"-12,345.60", "-12345.6"},
      {"12,34", "12,34"},  // not thousands grouping: left alone
      {"$$x^2$$", "x^2"},
      {"\\dfrac{1}{2}", "\\frac{1}{2}"},
      {"\\boxed{5}", "5"},
      {"$5$ and $6$", "$5$ and $6$"},
      {"1{,}000", "1000"},
      {"**42**", "42"},
      {"", ""},
      {"x = 7", "x = 7"},
      {"10%", "10%"},
      {"\\textbf{Paris}!", "paris"},
      {"ABC", "abc"},
      {"\\(\\sqrt{2}\\)", "\\sqrt{2}"},
      {"$12.50$.", "12.5"},
      {"12\\text{ cm}", "12 cm"},
  };
  for (const auto& [answer, expected] : cases) {
    CAPTURE(answer);
    CHECK(normalize_answer(answer) == expected);
  }
}

TEST_CASE("answer: equal answers written differently normalise together") {
  auto key = [](std::string_view text) { return normalize_answer(extract_answer(text)); };
  CHECK(key("The answer is 42.") == "42");
  CHECK(key("\\boxed{42}") == key("**Answer:** 42.0"));
  CHECK(key("**Answer:** 1,234") == key("so it is\n1234"));
  CHECK(key("$\\boxed{\\dfrac{1}{2}}$") == key("Answer: \\frac{1}{2}"));
  CHECK(key("The answer is Blue.") == key("Final answer: **blue**"));
  CHECK(key("Answer: 41") != key("Answer: 42"));
}

TEST_CASE("answer: the standard extractor is the pair of functions") {
  AnswerExtractor x = AnswerExtractor::standard();
  REQUIRE(x.extract);
  REQUIRE(x.normalize);
  CHECK(x.extract("blah\n\\boxed{0.500}") == "0.500");
  CHECK(x.normalize("0.500") == "0.5");
  CHECK(x.normalize(x.extract("The answer is -0.")) == "0");
}
