// Options every model-running subcommand shares: --model, --threads, --dtype,
// --max-context.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <cstdlib>

#include <CLI/CLI.hpp>

#include "musespark/model.hpp"

namespace musespark::cli {

// The embedded default model: $MUSESPARK_MODEL if set; else the installed
// copy (<prefix>/share/musespark/models/musespark-mini beside <prefix>/bin);
// else the one in the source tree this binary was built from.
inline std::string default_model_dir() {
  if (const char* env = std::getenv("MUSESPARK_MODEL"); env && *env) return env;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto installed = exe.parent_path().parent_path() / "share/musespark/models/musespark-mini";
    if (std::filesystem::exists(installed / "config.json", ec)) return installed.string();
  }
  return MUSESPARK_DEFAULT_MODEL_DIR;
}

struct ModelArgs {
  std::string model_dir = default_model_dir();
  int threads = 0;
  std::string dtype = "f32";
  int64_t max_context = 0;

  void add_to(CLI::App& cmd) {
    cmd.add_option("--model", model_dir, "model folder (HF layout); default: the embedded musespark-mini")
        ->capture_default_str();
    cmd.add_option("--threads", threads, "intra-op threads (default: one per core)")->check(CLI::NonNegativeNumber);
    cmd.add_option("--dtype", dtype, "weights: f32, bf16, int8 or q4 (quantised at load; q4 keeps a GGUF's blocks)")
        ->check(CLI::IsMember({"f32", "bf16", "int8", "q4"}));
    cmd.add_option("--max-context", max_context, "longest sequence in tokens (default: min(model, 4096))")
        ->check(CLI::NonNegativeNumber);
  }
  ModelOptions options() const {
    ModelOptions o;
    o.dtype = parse_dtype(dtype);
    o.threads = threads;
    o.max_context = max_context;
    return o;
  }
};

}  // namespace musespark::cli
