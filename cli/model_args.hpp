// Options every model-running subcommand shares: --model, --threads, --dtype,
// --max-context.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "musespark/model.hpp"

namespace musespark::cli {

struct ModelArgs {
  std::string model_dir;
  int threads = 0;
  std::string dtype = "f32";
  int64_t max_context = 0;

  void add_to(CLI::App& cmd) {
    cmd.add_option("--model", model_dir, "model folder (HF layout)")->required();
    cmd.add_option("--threads", threads, "intra-op threads (default: one per core)")->check(CLI::NonNegativeNumber);
    cmd.add_option("--dtype", dtype, "weights: f32, bf16 or int8 (quantised at load)")
        ->check(CLI::IsMember({"f32", "bf16", "int8"}));
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
