// `musespark tokenize --model DIR --file F`: one JSON array of ids, or an error.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include "tokenizer_test_support.hpp"

namespace musespark::test {
namespace {

struct Run {
  int exit_code;
  std::string out, err;
};

Run run_cli(const std::string& args) {
  auto bin = std::filesystem::path(MUSESPARK_BINARY_DIR) / "bin" / "musespark";
  if (!std::filesystem::exists(bin)) FAIL("the musespark command is not built: " << bin.string());
  auto out = scratch_dir() / "cli.stdout", err = scratch_dir() / "cli.stderr";
  std::string command = "'" + bin.string() + "' " + args + " > '" + out.string() + "' 2> '" + err.string() + "'";
  int rc = std::system(command.c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_text(out), read_text(err)};
}

}  // namespace

TEST_CASE("tokenizer cli: tokenize prints the ids of a file's raw bytes") {
  auto dir = reference_model_dir("qwen3");
  std::string text = "<|im_start|>user\nGrüße, 世界! 🙂\n\n  indented<|im_end|>";
  auto file = scratch_dir() / "cli-input.txt";
  std::ofstream(file, std::ios::binary) << text;
  Run r = run_cli("tokenize --model '" + dir.string() + "' --file '" + file.string() + "'");
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  REQUIRE(!r.out.empty());
  CHECK(r.out.back() == '\n');
  CHECK(r.out.find('\n') == r.out.size() - 1);  // one line
  auto ids = nlohmann::json::parse(r.out).get<std::vector<int32_t>>();
  CHECK(ids == reference_tokenizer("qwen3").encode(text));
}

TEST_CASE("tokenizer cli: errors print `error: ...` and exit 1") {
  auto dir = reference_model_dir("llama3");
  Run missing = run_cli("tokenize --model '" + dir.string() + "' --file /nonexistent/file.txt");
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.rfind("error: ", 0) == 0);
  CHECK(missing.err.find("/nonexistent/file.txt") != std::string::npos);

  auto bad = scratch_dir() / "cli-bad-utf8.txt";
  std::ofstream(bad, std::ios::binary) << "ok \xFF\xFE";
  Run invalid = run_cli("tokenize --model '" + dir.string() + "' --file '" + bad.string() + "'");
  CHECK(invalid.exit_code == 1);
  CHECK(invalid.err.find("UTF-8") != std::string::npos);
  CHECK(invalid.out.empty());

  Run no_model = run_cli("tokenize --model '" + scratch_dir().string() + "/none' --file '" + bad.string() + "'");
  CHECK(no_model.exit_code == 1);
  CHECK(no_model.err.find("tokenizer.json") != std::string::npos);
}

}  // namespace musespark::test
