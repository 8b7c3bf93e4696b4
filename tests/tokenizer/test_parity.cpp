// Parity of our tokenizer with the reference (HF tokenizers' behaviour, as
// reimplemented by @lenml/tokenizers) on tests/tokenizer/corpus.json.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tokenizer_test_support.hpp"

namespace musespark::test {
namespace {

std::string expand(const nlohmann::json& c) {
  if (c.contains("text")) return c["text"].get<std::string>();
  std::string unit = c["repeat"]["text"].get<std::string>(), out;
  for (int i = 0; i < c["repeat"]["count"].get<int>(); ++i) out += unit;
  return out;
}

const nlohmann::json& corpus() {
  static const nlohmann::json json = nlohmann::json::parse(read_text(source_dir() / "tests/tokenizer/corpus.json"));
  return json["cases"];
}

const nlohmann::json& reference() {
  // MUSESPARK_TOKENIZER_FUZZ="<count> <seed>" asks for more random strings.
  const char* fuzz = std::getenv("MUSESPARK_TOKENIZER_FUZZ");
  static const nlohmann::json json = run_node_script(
      "reference_ids.mjs", std::string("tests/tokenizer/corpus.json ") + (fuzz ? fuzz : ""), "reference_ids.json");
  return json;
}

std::string show(const std::vector<int32_t>& ids, size_t from, size_t count = 8) {
  std::string s;
  for (size_t i = from; i < ids.size() && i < from + count; ++i) s += std::to_string(ids[i]) + " ";
  return s.empty() ? "(end)" : s;
}

void check_family(const std::string& family) {
  const Tokenizer& tokenizer = reference_tokenizer(family);
  const auto& cases = corpus();
  const auto& expected = reference().at(family);
  // The corpus cases, then seeded random strings the script made (with their text).
  REQUIRE(expected.size() > cases.size());
  CHECK(cases.size() >= 40);
  size_t passed = 0, roundtrips = 0, corpus_passed = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    std::string name = expected[i]["name"].get<std::string>();
    std::string text;
    if (i < cases.size()) {
      REQUIRE(cases[i]["name"].get<std::string>() == name);
      text = expand(cases[i]);
    } else {
      text = expected[i].at("text").get<std::string>();
    }
    auto want = expected[i]["ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> got = tokenizer.encode(text);
    if (got == want) {
      ++passed;
      if (i < cases.size()) ++corpus_passed;
    } else {
      size_t at = 0;
      while (at < got.size() && at < want.size() && got[at] == want[at]) ++at;
      FAIL_CHECK(family << " case \"" << name << "\": first difference at position " << at << " (ours "
                        << got.size() << " ids, reference " << want.size() << "); ours: " << show(got, at)
                        << "reference: " << show(want, at));
    }
    // decode(encode(x)) == normalize(x), where the reference round-trips too.
    if (expected[i]["roundtrip_ok"].get<bool>()) {
      ++roundtrips;
      CHECK_MESSAGE(tokenizer.decode(got) == expected[i]["expected_text"].get<std::string>(),
                    family << " case \"" << name << "\": decode(encode(x)) != normalized x");
    }
  }
  MESSAGE(family << ": " << corpus_passed << "/" << cases.size() << " corpus cases and "
                 << passed - corpus_passed << "/" << expected.size() - cases.size()
                 << " random strings match the reference; " << roundtrips << " round-trips checked");
  CHECK(passed == expected.size());
}

}  // namespace

TEST_CASE("tokenizer parity: qwen3 corpus ids equal the reference") { check_family("qwen3"); }
TEST_CASE("tokenizer parity: llama3 corpus ids equal the reference") { check_family("llama3"); }

TEST_CASE("tokenizer speed: 1 MB of English-like text encodes well under a second") {
  // Words drawn from syllables by a fixed generator: many distinct words, so
  // the per-word cache helps only as much as it does on real text.
  const char* syllables[] = {"the", "qu", "ick", "bro", "wn", "fox", "ju", "mps", "ov", "er", "la", "zy",
                             "dog", "rea", "son", "ing", "mod", "el", "thi", "nk", "st", "ep", "an", "sw"};
  const char* separators[] = {" ", " ", " ", " ", ", ", ". ", "\n", "'s ", " 42 ", " (", ") ", ": "};
  uint64_t state = 12345;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  std::string text;
  while (text.size() < (1u << 20)) {
    int n = 1 + static_cast<int>(next() % 4);
    for (int i = 0; i < n; ++i) text += syllables[next() % std::size(syllables)];
    text += separators[next() % std::size(separators)];
  }
  for (std::string family : {"qwen3", "llama3"}) {
    const Tokenizer& tokenizer = reference_tokenizer(family);
    auto start = std::chrono::steady_clock::now();
    auto ids = tokenizer.encode(text);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    MESSAGE(family << ": encoded " << text.size() / 1e6 << " MB into " << ids.size() << " tokens in " << seconds
                   << " s (" << text.size() / 1e6 / seconds << " MB/s)");
#ifndef MUSESPARK_SANITIZED  // instrumented code is several times slower
    CHECK(seconds < 1.0);
#endif
    CHECK(tokenizer.decode(ids) == text);
  }
}

}  // namespace musespark::test
