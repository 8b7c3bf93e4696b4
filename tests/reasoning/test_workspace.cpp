// Contemplating's workspace: content, order, bounds and UTF-8 safety.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "musespark/error.hpp"
#include "musespark/image.hpp"
#include "reasoning/vote.hpp"
#include "reasoning/workspace.hpp"
#include "tokenizer/utf8.hpp"

using namespace musespark;
using namespace musespark::detail;

namespace {
AgentTrace agent(int32_t id, std::string answer, double weight, std::string thinking) {
  AgentTrace a;
  a.id = id;
  a.answer = answer;
  a.normalized_answer = answer;
  a.vote_weight = weight;
  a.thinking = std::move(thinking);
  return a;
}

std::vector<VoteEntry> votes_of(const std::vector<AgentTrace>& agents) { return tally_agents(agents); }

bool valid_utf8(const std::string& s) { return !tokenizer::find_invalid_utf8(s).has_value(); }
}  // namespace

TEST_CASE("workspace: answers in vote order with shares, counts and the strongest rationale") {
  std::vector<AgentTrace> agents = {
      agent(0, "42", 0.9, "I multiply six by seven.\n\nSo the result is 42."),
      agent(1, "42", 0.5, "Six sevens are forty-two."),
      agent(2, "41", 0.6, "Maybe 41."),
  };
  const std::string ws = distill_workspace(agents, votes_of(agents));
  CHECK(ws ==
        "Earlier attempts reached these answers:\n"
        "1. 42 (70% of the vote, 2 agents)\n"
        "   Reasoning: \"I multiply six by seven. So the result is 42.\"\n"
        "2. 41 (30% of the vote, 1 agent)\n"
        "   Reasoning: \"Maybe 41.\"\n");
  CHECK(distill_workspace(agents, votes_of(agents)) == ws);  // deterministic

  // The strongest voter's rationale, not the first one's.
  agents[1].vote_weight = 2.0;
  const std::string ws2 = distill_workspace(agents, votes_of(agents));
  CHECK(ws2.find("Six sevens are forty-two.") != std::string::npos);
  CHECK(ws2.find("I multiply") == std::string::npos);
}

TEST_CASE("workspace: excerpts are the end of the thinking, cut at a word") {
  std::vector<AgentTrace> agents = {agent(0, "7", 1, "alpha beta gamma delta epsilon zeta")};
  const std::string ws = distill_workspace(agents, votes_of(agents), 1200, 20);
  CHECK(ws.find("   Reasoning: \"...delta epsilon zeta\"\n") != std::string::npos);
}

TEST_CASE("workspace: Chinese excerpts are never cut inside a character") {
  std::string zh;
  for (int i = 0; i < 100; ++i) zh += "\xE6\x80\x9D\xE8\x80\x83";  // 思考, 3 bytes each
  std::vector<AgentTrace> agents = {agent(0, "\xE5\x9B\x9B", 1, zh), agent(1, "5", 0.5, zh + " end")};
  const auto votes = votes_of(agents);
  const std::string ws = distill_workspace(agents, votes, 1200, 20);
  CHECK(valid_utf8(ws));
  // 600 bytes, last 20 start mid-character: 18 bytes (6 characters) remain.
  CHECK(ws.find("\"..." + zh.substr(582) + "\"") != std::string::npos);
  for (size_t max = 0; max < 400; ++max) {
    for (size_t excerpt : {size_t(1), size_t(7), size_t(40), size_t(240)}) {
      const std::string w = distill_workspace(agents, votes, max, excerpt);
      CAPTURE(max);
      CAPTURE(excerpt);
      CHECK(w.size() <= max);
      CHECK(valid_utf8(w));
    }
  }
}

TEST_CASE("workspace: many long agents stay within the bound, whole entries first") {
  std::vector<AgentTrace> agents;
  std::string long_text;
  for (int i = 0; i < 600; ++i) long_text += "word" + std::to_string(i) + " ";
  for (int i = 0; i < 50; ++i)
    agents.push_back(agent(i, "answer" + std::to_string(i % 10), 1.0 + (i % 10) * 0.01, long_text));
  const auto votes = votes_of(agents);
  REQUIRE(votes.size() == 10);
  const std::string ws = distill_workspace(agents, votes);
  CHECK(ws.size() <= 1200);
  // Heaviest answers first: answer9 (weights 1.09 x 5) leads.
  const size_t first = ws.find("1. answer9 ");
  const size_t second = ws.find("2. answer8 ");
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  CHECK(first < second);
  CHECK(ws.find("5. ") == std::string::npos);  // at most 4 answers
  CHECK(ws.find("more answers with") != std::string::npos);
  CHECK(ws.back() == '\n');

  // A tight bound drops whole entries, never half of one.
  const std::string tight = distill_workspace(agents, votes, 600);
  CHECK(tight.size() <= 600);
  CHECK(tight.find("1. answer9 ") != std::string::npos);
  const size_t entries = tight.find("2. ") != std::string::npos ? 2 : 1;
  const size_t excerpts = [&] {
    size_t n = 0;
    for (size_t p = tight.find("Reasoning:"); p != std::string::npos; p = tight.find("Reasoning:", p + 1)) ++n;
    return n;
  }();
  CHECK(excerpts == entries);

  // Too small for a whole entry: the first one with a shorter excerpt.
  const std::string small = distill_workspace(agents, votes, 150);
  CHECK(small.size() <= 150);
  CHECK(small.find("1. answer9 (") != std::string::npos);
  CHECK(small.find("Reasoning: \"...") != std::string::npos);

  // Too small for the header and one answer line: nothing, not a bare header.
  CHECK(distill_workspace(agents, votes, 60).empty());
}

TEST_CASE("workspace: no answer") {
  std::vector<AgentTrace> agents = {agent(0, "", 0, "I could not finish")};
  CHECK(distill_workspace(agents, {}) == "No earlier attempt reached an answer.\n");
  CHECK(distill_workspace(agents, {}, 10).size() == 10);
  CHECK(distill_workspace({}, {}, 0).empty());
}

TEST_CASE("workspace: the model's vision markers an agent wrote are removed, not passed on as text") {
  // A small model may sample its image placeholder in a thought; as prompt
  // text it would read as an image and the refine round would be refused.
  std::vector<AgentTrace> agents = {
      agent(0, "12<|image_pad|>", 1, "<box>(0,0),(333,333)</box> 9<|image_pad|><|image_pad|> 9+3=12"),
      agent(1, "7", 0.5, "<|vision_start|>looks like 7<|vision_end|>"),
  };
  const std::vector<std::string> markers = {"<|image_pad|>", "<|vision_start|>", "<|vision_end|>", ""};
  const std::string ws = distill_workspace(agents, votes_of(agents), 1200, 240, markers);
  CHECK(ws ==
        "Earlier attempts reached these answers:\n"
        "1. 12 (67% of the vote, 1 agent)\n"
        "   Reasoning: \"<box>(0,0),(333,333)</box> 9 9+3=12\"\n"
        "2. 7 (33% of the vote, 1 agent)\n"
        "   Reasoning: \"looks like 7\"\n");
  // Without markers nothing is removed.
  CHECK(distill_workspace(agents, votes_of(agents)).find("<|image_pad|>") != std::string::npos);
}

TEST_CASE("workspace: the refine round's conversation keeps images first and the question last") {
  const std::string closing = with_workspace("", "");  // the instruction alone
  const std::vector<uint8_t> rgb = {1, 2, 3};
  const Image pixel = Image::from_rgb(rgb, 1, 1);

  std::vector<Message> chat = {Message::text("system", "Be brief."),
                               Message::with_images("user", {pixel}, "What is shown?"),
                               Message::text("assistant", "A dot."),
                               Message::with_images("user", {pixel, pixel}, "How many dots?")};
  const std::vector<Message> out = with_workspace(chat, "W\n");
  REQUIRE(out.size() == 4);
  // Only the last user message changes: its images stay before the text.
  CHECK(out[0].joined_text() == "Be brief.");
  CHECK(out[1].joined_text() == "What is shown?");
  CHECK(out[2].joined_text() == "A dot.");
  REQUIRE(out[3].parts.size() == 3);
  CHECK(out[3].parts[0].kind == Part::Kind::image);
  CHECK(out[3].parts[1].kind == Part::Kind::image);
  CHECK(out[3].parts[0].image == chat[3].parts[0].image);  // shared, not copied
  REQUIRE(out[3].parts[2].kind == Part::Kind::text);
  CHECK(out[3].parts[2].text == "W\n" + closing + "How many dots?");
  CHECK(chat[3].parts[2].text == "How many dots?");  // the caller's messages are untouched

  // Text before an image: the last text part is the question.
  std::vector<Message> mixed = {{"user", {Part::of_text("Look:"), Part::of_image(pixel), Part::of_text("Which?")}}};
  const std::vector<Message> m = with_workspace(mixed, "W\n");
  REQUIRE(m[0].parts.size() == 3);
  CHECK(m[0].parts[0].text == "Look:");
  CHECK(m[0].parts[1].kind == Part::Kind::image);
  CHECK(m[0].parts[2].text == "W\n" + closing + "Which?");

  // An image alone: the workspace follows it.
  std::vector<Message> image_only = {{"user", {Part::of_image(pixel)}}};
  const std::vector<Message> i = with_workspace(image_only, "W\n");
  REQUIRE(i[0].parts.size() == 2);
  CHECK(i[0].parts[0].kind == Part::Kind::image);
  CHECK(i[0].parts[1].text == "W\n" + closing);

  CHECK_THROWS_AS(with_workspace(std::vector<Message>{Message::text("system", "x")}, "W\n"), Error);
}
