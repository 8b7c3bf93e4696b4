// Thinking split into paragraphs, mapped to token ranges.
#include <doctest/doctest.h>

#include "musespark/error.hpp"
#include "reasoning/steps.hpp"

using namespace musespark;
using namespace musespark::detail;

TEST_CASE("steps: paragraphs and their token ranges") {
  // Bytes: "First step." 0-10, \n\n 11-12, "Second\nstill second." 13-32,
  // "\n \n\t\n" 33-37, "Third." 38-43.
  const std::string thinking = "First step.\n\nSecond\nstill second.\n \n\t\nThird.";
  REQUIRE(thinking.size() == 44);
  // Tokens: [0,6) "First ", [6,12) "step.\n", [12,19) "\nSecond",
  // [19,33) "\nstill second.", [33,38) blank lines, [38,44) "Third."
  const std::vector<size_t> ends = {6, 12, 19, 33, 38, 44};
  auto steps = split_steps(thinking, ends);
  REQUIRE(steps.size() == 3);
  CHECK(steps[0].index == 0);
  CHECK(steps[0].text == "First step.");
  CHECK(steps[0].first_token == 0);
  CHECK(steps[0].end_token == 2);
  CHECK(steps[1].index == 1);
  CHECK(steps[1].text == "Second\nstill second.");
  CHECK(steps[1].first_token == 2);
  CHECK(steps[1].end_token == 4);
  CHECK(steps[2].index == 2);
  CHECK(steps[2].text == "Third.");
  CHECK(steps[2].first_token == 5);
  CHECK(steps[2].end_token == 6);
}

TEST_CASE("steps: a token spanning two paragraphs belongs to both") {
  // "ab\n\ncd": one token "b\n\nc" covers [1,5).
  const std::vector<size_t> ends = {1, 5, 6};
  auto steps = split_steps("ab\n\ncd", ends);
  REQUIRE(steps.size() == 2);
  CHECK(steps[0].first_token == 0);
  CHECK(steps[0].end_token == 2);
  CHECK(steps[1].first_token == 1);
  CHECK(steps[1].end_token == 3);
}

TEST_CASE("steps: blank lines, trimming and Unicode white space") {
  auto steps = split_steps("\n\n  lead\r\n\r\n\xE3\x80\x80\nmid  \n\n\n", {});
  REQUIRE(steps.size() == 2);
  CHECK(steps[0].text == "lead");
  CHECK(steps[1].text == "mid");
  CHECK(steps[1].first_token == 0);
  CHECK(steps[1].end_token == 0);
  CHECK(split_steps("", {}).empty());
  CHECK(split_steps(" \n\t\n", {}).empty());
  auto one = split_steps("single line", {});
  REQUIRE(one.size() == 1);
  CHECK(one[0].text == "single line");
}

TEST_CASE("steps: text beyond the last token offset gets an empty range") {
  const std::vector<size_t> ends = {5};
  auto steps = split_steps("abc\n\ndef", ends);
  REQUIRE(steps.size() == 2);
  CHECK(steps[0].first_token == 0);
  CHECK(steps[0].end_token == 1);
  CHECK(steps[1].first_token == 1);
  CHECK(steps[1].end_token == 1);
}

TEST_CASE("steps: decreasing offsets are an error") {
  const std::vector<size_t> ends = {3, 2};
  CHECK_THROWS_AS(split_steps("abc", ends), Error);
}

TEST_CASE("steps: text helpers") {
  CHECK(trim_space("\xC2\xA0 x y\xE3\x80\x80\n") == "x y");
  CHECK(collapse_space(" a \t\n b\xE2\x80\x83" "c ") == "a b c");
  const std::string zh = "\xE6\x80\x9D\xE8\x80\x83";  // 思考
  CHECK(utf8_floor(zh, 4) == 3);
  CHECK(utf8_floor(zh, 3) == 3);
  CHECK(utf8_floor(zh, 2) == 0);
  CHECK(utf8_floor(zh, 10) == 6);
  CHECK(is_unicode_space(0x3000));
  CHECK_FALSE(is_unicode_space(U'x'));
}
