// musespark bench --model DIR [--prompt-tokens 128] [--gen-tokens 64] [--batch N] ...
//
// Prefill: one sequence of --prompt-tokens tokens. Decode: --batch sequences
// forked from that prompt (its KV shared), each decoding --gen-tokens tokens
// greedily, all in one batch per step. Reports tokens/s, the machine's read
// bandwidth and the fraction of the bandwidth limit decode reached: each
// decode step reads every weight once, for the whole batch.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bandwidth.hpp"
#include "commands.hpp"
#include "common.hpp"
#include "model_args.hpp"
#include "musespark/runtime.hpp"

namespace musespark::cli {
namespace {

struct BenchArgs {
  ModelArgs model;
  int prompt_tokens = 128;
  int gen_tokens = 64;
  int batch = 1;
  bool json = false;
};

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Greedy choice, timed with the decode steps: the largest value by eight
// independent running maxima (std::max_element's one compare chain took
// ~2 ms of a 45 ms batch-8 step over 8 x 152K logits), then its first index.
int32_t argmax(std::span<const float> v) {
  float m[8];
  std::fill(m, m + 8, -std::numeric_limits<float>::infinity());
  size_t i = 0;
  for (; i + 8 <= v.size(); i += 8)
    for (int j = 0; j < 8; ++j) m[j] = std::max(m[j], v[i + j]);
  for (; i < v.size(); ++i) m[0] = std::max(m[0], v[i]);
  const float best = *std::max_element(m, m + 8);
  return static_cast<int32_t>(std::find(v.begin(), v.end(), best) - v.begin());
}

void run(const BenchArgs& a) {
  // Before anything starts the tensor backend's OpenMP workers: once they
  // exist, a worker still spinning after a parallel region takes a core from
  // the measuring threads (the figure then swung between 42 and 68 GB/s here).
  const double bandwidth = measure_read_bandwidth(resolve_threads(a.model.threads));
  auto model = Model::load(a.model.model_dir, a.model.options());
  const ModelInfo& info = model->info();
  if (a.prompt_tokens + a.gen_tokens > info.max_context)
    throw Error(ErrorKind::invalid_argument, "", "--prompt-tokens",
                fmt::format("{} + {} generated tokens exceed the context of {}", a.prompt_tokens, a.gen_tokens,
                            info.max_context));
  Runtime runtime(model);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, static_cast<int32_t>(info.vocab_size - 1));
  std::vector<int32_t> prompt(a.prompt_tokens);
  for (auto& t : prompt) t = pick(rng);

  // Warm-up: fault in the mapped weights and let the allocator settle.
  {
    SequenceId w = runtime.create(16);
    runtime.prefill(w, std::span(prompt).first(std::min(8, a.prompt_tokens)));
    int32_t t = argmax(runtime.logits(w));
    runtime.decode(std::span(&w, 1), std::span(&t, 1));
    runtime.release(w);
  }

  SequenceId root = runtime.create(a.prompt_tokens);
  auto t0 = Clock::now();
  runtime.prefill(root, prompt);
  const double prefill_s = since(t0);

  // As a round of agents: forks made together, their KV in one allocation.
  std::vector<SequenceId> seqs = runtime.fork_many(root, a.batch, a.gen_tokens);
  std::vector<int32_t> next(a.batch);
  // Each agent starts from a different token so the batch is not degenerate.
  for (int i = 0; i < a.batch; ++i) next[i] = (argmax(runtime.logits(root)) + i) % info.vocab_size;
  t0 = Clock::now();
  for (int step = 0; step < a.gen_tokens; ++step) {
    runtime.decode(seqs, next);
    for (int i = 0; i < a.batch; ++i) next[i] = argmax(runtime.logits(seqs[i]));
  }
  const double decode_s = since(t0);

  const double prefill_tps = a.prompt_tokens / prefill_s;
  const double steps_per_s = a.gen_tokens / decode_s;
  const double decode_tps = steps_per_s * a.batch;
  const double limit_steps = bandwidth / static_cast<double>(info.bytes_per_token);
  const double fraction = steps_per_s / limit_steps;

  if (a.json) {
    nlohmann::json out = {{"model", info.directory.string()},
                          {"architecture", info.architecture},
                          {"dtype", dtype_name(info.dtype)},
                          {"threads", info.threads},
                          {"parameters", info.parameter_count},
                          {"bytes_per_token", info.bytes_per_token},
                          {"prompt_tokens", a.prompt_tokens},
                          {"gen_tokens", a.gen_tokens},
                          {"batch", a.batch},
                          {"prefill_tokens_per_second", prefill_tps},
                          {"decode_tokens_per_second", decode_tps},
                          {"decode_steps_per_second", steps_per_s},
                          {"read_bandwidth_gb_per_second", bandwidth / 1e9},
                          {"decode_limit_tokens_per_second", limit_steps * a.batch},
                          {"fraction_of_bandwidth_limit", fraction}};
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("model      %s (%s, %.1fM parameters, %s, %d threads)\n", info.directory.string().c_str(),
                info.architecture.c_str(), info.parameter_count / 1e6, dtype_name(info.dtype), info.threads);
    std::printf("prefill    %d tokens: %.1f tokens/s\n", a.prompt_tokens, prefill_tps);
    std::printf("decode     batch %d x %d tokens: %.2f tokens/s (%.2f steps/s)\n", a.batch, a.gen_tokens, decode_tps,
                steps_per_s);
    std::printf("bandwidth  %.1f GB/s read; %.1f MB of weights per step -> limit %.2f steps/s\n", bandwidth / 1e9,
                info.bytes_per_token / 1e6, limit_steps);
    std::printf("reached    %.1f%% of the bandwidth limit\n", 100 * fraction);
  }
}

}  // namespace

void add_bench_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<BenchArgs>();
  auto* cmd = app.add_subcommand("bench", "measure prefill and decode speed against the bandwidth limit");
  args->model.add_to(*cmd);
  cmd->add_option("--prompt-tokens", args->prompt_tokens)->check(CLI::PositiveNumber);
  cmd->add_option("--gen-tokens", args->gen_tokens)->check(CLI::PositiveNumber);
  cmd->add_option("--batch", args->batch, "sequences decoded together")->check(CLI::Range(1, 256));
  cmd->add_flag("--json", args->json);
  cmd->callback([args, &exit_code] { exit_code = run_command([&] { run(*args); }); });
}

}  // namespace musespark::cli
