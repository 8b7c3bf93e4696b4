// musespark eval --model DIR --out DIR [--seed N] [--tasks N] [--kinds a,b] [--configs a,b]
//                [--threads N] [--dtype f32|bf16] [--window N] [--effort E] [--agents N] ...
//
// Accuracy, generated tokens and wall time of each reasoning configuration on
// held-out curriculum tasks (include/musespark/evaluate.hpp). While it works,
// one line per configuration on stderr (redrawn in place on a terminal); then
// the markdown table on stdout. Writes eval.md, eval.json and eval.png to --out.
//
// With --dask SCHEDULER_ADDRESS the same evaluation is spread over a Dask
// cluster: this process becomes `python3 -m musespark.distributed eval` with
// the same options (bindings/python/musespark/distributed.py, docs/distributed.md).
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "common.hpp"
#include "model_args.hpp"
#include "musespark/evaluate.hpp"
#include "musespark/request.hpp"

namespace musespark::cli {
namespace {

struct EvalArgs {
  ModelArgs model;
  std::string out;
  uint64_t seed = kEvalSeed;
  bool held_out_phrasings = false;
  int32_t tasks = 50;
  std::string kinds;
  std::string configs;
  std::string effort = "low";
  int32_t agents = 0;
  int32_t max_thinking_tokens = 0;
  int32_t max_answer_tokens = 0;
  int32_t window = EvalOptions{}.confidence_window;
  // Unset: each configuration's own (EvalOptions).
  std::optional<double> keep;
  std::optional<double> consensus_share;
  std::optional<int32_t> scatter_stop;
  std::optional<int32_t> warmup_agents;
  int32_t max_zooms = EvalOptions{}.max_zooms;
  bool quiet = false;
  bool traces = false;
  std::string dask;  // a scheduler's address: run on that cluster
};

// One line per configuration: on a terminal the current one is redrawn after
// every task; on a pipe it is printed once, when the configuration is done.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled), tty_(enabled && isatty(STDERR_FILENO)) {}

  void on(const EvalProgress& p) {
    if (!enabled_) return;
    const bool done = p.done == p.total;
    const auto now = std::chrono::steady_clock::now();
    if (tty_ && !done && p.done > 0 && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const std::string line = render(p);
    if (tty_) std::fprintf(stderr, "\r\x1b[2K%s%s", line.c_str(), done ? "\n" : "");
    else if (done) std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }

 private:
  static std::string render(const EvalProgress& p) {
    std::string s = fmt::format("[{}/{}] {:<16} {:>4}/{:<4}", p.config_number, p.config_count, p.config, p.done, p.total);
    if (p.done == 0) return s;
    const double per_task = p.seconds / p.done;
    s += fmt::format("  accuracy {:5.1f}%  {:6.1f} tokens/task  {:6.2f} s/task", 100.0 * p.correct / p.done,
                     static_cast<double>(p.generated_tokens) / p.done, per_task);
    if (p.done < p.total) s += fmt::format("  ~{:.0f} s left", per_task * (p.total - p.done));
    else s += fmt::format("  {:.0f} s", p.seconds);
    return s;
  }

  bool enabled_, tty_;
  std::chrono::steady_clock::time_point last_{};
};

// --dask: replaces this process with Debian's Python running
// musespark.distributed's eval on the options, as JSON (EvalOptions' field
// names). The package is the one built beside this binary (<build>/python)
// unless PYTHONPATH already has one; $MUSESPARK_PYTHON overrides the interpreter.
void run_on_dask(const EvalArgs& a) {
  nlohmann::ordered_json o;
  o["model_dir"] = a.model.model_dir;
  o["threads"] = a.model.threads;
  o["dtype"] = a.model.dtype;
  o["max_context"] = a.model.max_context;
  o["out_dir"] = a.out;
  o["seed"] = a.seed;
  o["held_out_phrasings"] = a.held_out_phrasings;
  o["tasks_per_kind"] = a.tasks;
  o["kinds"] = a.kinds;      // comma-separated; "": all
  o["configs"] = a.configs;  // the same
  o["effort"] = a.effort;
  o["agents"] = a.agents;
  o["max_thinking_tokens"] = a.max_thinking_tokens;
  o["max_answer_tokens"] = a.max_answer_tokens;
  o["confidence_window"] = a.window;
  if (a.keep) o["keep_fraction"] = *a.keep;
  if (a.consensus_share) o["consensus_share"] = *a.consensus_share;
  if (a.scatter_stop) o["scatter_stop"] = *a.scatter_stop;
  if (a.warmup_agents) o["warmup_agents"] = *a.warmup_agents;
  o["max_zooms"] = a.max_zooms;
  o["write_traces"] = a.traces;
  o["quiet"] = a.quiet;

  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto package = exe.parent_path().parent_path() / "python";
  if (!ec && std::filesystem::exists(package / "musespark" / "distributed.py", ec)) {
    const char* old = std::getenv("PYTHONPATH");
    const std::string path = package.string() + (old && *old ? ":" + std::string(old) : "");
    setenv("PYTHONPATH", path.c_str(), 1);
  }
  const char* chosen = std::getenv("MUSESPARK_PYTHON");
  std::string python = chosen && *chosen ? chosen : "/usr/bin/python3";
  std::vector<std::string> args = {python, "-m", "musespark.distributed", "eval", "--dask", a.dask,
                                   "--options", o.dump()};
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  execv(python.c_str(), argv.data());
  throw Error(ErrorKind::io, python, "", fmt::format("cannot run it for --dask: {}", std::strerror(errno)));
}

void run(const EvalArgs& a) {
  if (!a.dask.empty()) return run_on_dask(a);
  EvalOptions o;
  o.model_dir = a.model.model_dir;
  o.model = a.model.options();
  o.out_dir = a.out;
  o.seed = a.seed;
  o.held_out_phrasings = a.held_out_phrasings;
  o.tasks_per_kind = a.tasks;
  o.kinds = parse_eval_kinds(a.kinds, "--kinds");
  o.configs = parse_eval_configs(a.configs, "--configs");
  o.effort = parse_effort(a.effort, "--effort");
  o.agents = a.agents;
  o.max_thinking_tokens = a.max_thinking_tokens;
  o.max_answer_tokens = a.max_answer_tokens;
  o.confidence_window = a.window;
  o.keep_fraction = a.keep;
  o.consensus_share = a.consensus_share;
  o.scatter_stop = a.scatter_stop;
  o.warmup_agents = a.warmup_agents;
  o.max_zooms = a.max_zooms;
  o.write_traces = a.traces;
  Progress progress(!a.quiet);
  o.on_progress = [&](const EvalProgress& p) { progress.on(p); };
  const EvalReport report = evaluate(o);
  std::printf("%s", report.markdown().c_str());
  if (!a.quiet)
    std::fprintf(stderr, "wrote %s/eval.md, eval.json and eval.png%s\n", a.out.c_str(), a.traces ? " and traces.jsonl" : "");
}

}  // namespace

void add_eval_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "accuracy, tokens and time of each reasoning mode on held-out curriculum tasks");
  args->model.add_to(*cmd);
  cmd->add_option("--out", args->out, "folder for eval.md, eval.json and eval.png")->required();
  cmd->add_option("--seed", args->seed, "seed of the held-out curriculum (training uses 1)");
  cmd->add_flag("--held-out-phrasings", args->held_out_phrasings,
                "ask the text kinds in phrasings the model was not trained on (same numbers)");
  cmd->add_option("--tasks", args->tasks, "tasks per kind")->check(CLI::Range(1, 100000));
  cmd->add_option("--kinds", args->kinds, "task kinds, comma-separated (default: all): " + [] {
    std::string s;
    for (const auto& k : eval_kind_names()) s += (s.empty() ? "" : ",") + k;
    return s;
  }());
  cmd->add_option("--configs", args->configs, "configurations, comma-separated (default: all): " + [] {
    std::string s;
    for (const auto& c : eval_config_names()) s += (s.empty() ? "" : ",") + c;
    return s;
  }());
  cmd->add_option("--effort", args->effort, "effort of the reasoning configurations")
      ->check(CLI::IsMember({"minimal", "low", "medium", "high", "xhigh"}));
  cmd->add_option("--agents", args->agents, "agents of thinking, contemplating (round 1) and auto (default: the effort's)")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--max-thinking-tokens", args->max_thinking_tokens, "per agent and round (default: the effort's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-answer-tokens", args->max_answer_tokens, "per agent (default: the effort's)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--window", args->window, "tokens per confidence group (early stop)")->check(CLI::Range(1, 4096));
  // Help names each default; deepconf-8's are kDeepConfStops.
  const Request engine;
  const DeepConfStops& dc = kDeepConfStops;
  cmd->add_option("--keep", args->keep,
                  fmt::format("early stop: share of warm-up confidence kept (threshold percentile; default {:g}, "
                              "deepconf-8 {:g})", engine.keep_fraction, dc.keep_fraction))
      ->check(CLI::Range(0.01, 1.0));
  cmd->add_option("--consensus-share", args->consensus_share,
                  fmt::format("consensus stop also once the warm-up agents agree this much (0: off; default off, "
                              "deepconf-8 {:g})", dc.consensus_share))
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--scatter-stop", args->scatter_stop,
                  fmt::format("consensus stop also once this many agents voted and no two agreed (0: off; else at "
                              "least 2; default off, deepconf-8 {})", dc.scatter_stop))
      ->check(CLI::Range(0, 64));
  cmd->add_option("--warmup-agents", args->warmup_agents,
                  fmt::format("early stop: warm-up agents (default: a quarter, at least 2; deepconf-8 {})",
                              dc.warmup_agents))
      ->check(CLI::Range(1, 64));
  cmd->add_option("--max-zooms", args->max_zooms, "zoom-ins per agent (thinking-nozoom: 0)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--traces", args->traces, "also write traces.jsonl: every task's reasoning trace, one per line");
  cmd->add_flag("--quiet", args->quiet, "no progress on stderr");
  cmd->add_option("--dask", args->dask,
                  "a Dask scheduler's address: answer the tasks on its workers (musespark.distributed; "
                  "docs/distributed.md)");
  cmd->callback([args, &exit_code] { exit_code = run_command([&] { run(*args); }); });
}

}  // namespace musespark::cli
