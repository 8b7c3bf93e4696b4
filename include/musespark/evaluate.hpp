// musespark — measuring a model: accuracy, generated tokens and wall time of
// each reasoning mode on held-out tasks of the curriculum (the default
// model's training tasks, with answers a program can check).
//
//   musespark::EvalOptions o;
//   o.model_dir = "models/musespark-tiny";
//   o.tasks_per_kind = 50;
//   o.out_dir = "eval-out";            // eval.md, eval.json, eval.png
//   musespark::EvalReport report = musespark::evaluate(o);
//   std::cout << report.markdown();
//
// The held-out set is the curriculum with its own seed (kEvalSeed, not the
// training seed 1): task j of a kind is the same task whatever other kinds or
// configurations are chosen, and every configuration answers the same tasks
// with the same per-task request seed, so rows compare like with like.
//
// A task is correct when normalize_answer(the trace's final answer) equals the
// task's expected answer (which is canonical already).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "musespark/image.hpp"
#include "musespark/model.hpp"
#include "musespark/trace.hpp"

namespace musespark {

class Engine;

// The seed of the held-out set: any seed other than the training seed (1).
inline constexpr uint64_t kEvalSeed = 1000003;

// Configurations, in table order; the names are stable (eval.json, --configs):
//   instant          Mode::instant
//   thinking         Mode::thinking (effort low: 4 agents), early stop and consensus stop on
//   contemplating    Mode::contemplating (effort low)
//   auto             Mode::automatic (effort low): escalates from Instant
//   thinking-nozoom  as thinking with max_zooms = 0; visual tasks only
//   vote-8           Thinking, 8 agents, plain voting (no early stop, no consensus stop)
//   deepconf-8       Thinking, 8 agents, DeepConf early stop (warm-ups first) and consensus stop
const std::vector<std::string>& eval_config_names();
// Task kinds, in table order (the curriculum's names): arithmetic,
// word_problem, comparison, units, count_color, digit_sum, compare_size,
// small_digits.
const std::vector<std::string>& eval_kind_names();
// Groups of kinds, the rows of each configuration: "text" (arithmetic,
// word_problem, comparison, units), "visual" (count_color, digit_sum,
// compare_size), "small_digits" (needs a zoom-in).
const std::vector<std::string>& eval_group_names();
// The group of a kind name. Error{invalid_argument} for an unknown kind.
std::string eval_group_of(const std::string& kind);

// Splits a comma-separated list of configuration (or kind) names, checks each
// and drops repeats, keeping the given order. An empty list means all.
// Error{invalid_argument} naming `field` and the unknown name, with the known ones.
std::vector<std::string> parse_eval_configs(const std::string& comma_list, const std::string& field = "configs");
std::vector<std::string> parse_eval_kinds(const std::string& comma_list, const std::string& field = "kinds");

// Reported after every task (on the thread that called evaluate()).
struct EvalProgress {
  std::string config;        // the configuration being run
  int32_t config_number = 0; // 1-based, of config_count
  int32_t config_count = 0;
  int32_t done = 0;          // tasks of this configuration finished, of `total`
  int32_t total = 0;
  int32_t correct = 0;       // of `done`
  int64_t generated_tokens = 0;  // of `done`, all agents and rounds
  double seconds = 0;            // wall time of `done`
};

// deepconf-8's stop settings unless EvalOptions sets them: 3 warm-up agents,
// keep 1 (stop an agent only below every warm-up's lowest group), consensus
// share 0.6 and scatter stop 5. Chosen by replaying vote-8's traces of the
// default model on validation seeds 2000003, 2000005 and 2000007 (41-44%
// fewer tokens at -0.8 to +1.0 points); not tuned on the held-out seed.
struct DeepConfStops {
  int32_t warmup_agents = 3;
  double keep_fraction = 1.0;
  double consensus_share = 0.6;
  int32_t scatter_stop = 5;
};
inline constexpr DeepConfStops kDeepConfStops{};

// One task of an evaluation, by name: a configuration and the task `index`
// of `kind` in the held-out curriculum. evaluate_task() answers it from the
// options alone, so it can be answered in another process or on another
// machine (musespark eval --dask).
struct EvalTaskRef {
  std::string config;
  std::string kind;
  uint64_t index = 0;
};

// A task answered: its reasoning trace (ReasoningTrace::to_json) and the wall
// time of its request.
struct EvalAnswer {
  std::string trace_json;
  double seconds = 0;
};

struct EvalOptions {
  std::filesystem::path model_dir;  // evaluate(options) loads it
  ModelOptions model;               // dtype, threads (0: one per core), context
  uint64_t seed = kEvalSeed;        // of the held-out curriculum
  // Ask the text kinds in the held-out phrasings: question frames and
  // sentence forms the default model was never trained on (same numbers as
  // the training phrasings of this seed). The visual kinds are unchanged.
  bool held_out_phrasings = false;
  int32_t tasks_per_kind = 50;      // >= 1
  std::vector<std::string> kinds;   // empty: every kind (text kinds only for a model without vision)
  std::vector<std::string> configs; // empty: every configuration

  // Reasoning settings shared by the configurations.
  Effort effort = Effort::low;
  int32_t agents = 0;               // thinking, thinking-nozoom, contemplating (round 1), auto; 0: the effort's
  int32_t max_thinking_tokens = 0;  // per agent and round; 0: the effort's
  int32_t max_answer_tokens = 0;    // 0: the effort's
  // DeepConf groups (tokens per sliding window). The engine's default of 32
  // is longer than most of the default model's traces (20-80 tokens), which
  // would leave nothing to judge; 8 gives several groups per trace.
  int32_t confidence_window = 8;
  // The other stop settings (Request's fields of the same names). Set, every
  // configuration that stops early uses it. Unset, each configuration its
  // own: deepconf-8 runs DeepConf with adaptive sampling as chosen on three
  // validation seeds (docs/reasoning.md) — kDeepConfStops — and thinking,
  // contemplating and auto the engine's defaults (keep 0.9, a quarter of the
  // agents as warm-ups, at least 2; consensus share and scatter stop off).
  std::optional<double> keep_fraction;     // early-stop threshold percentile
  std::optional<double> consensus_share;   // with consensus stop (0: off)
  std::optional<int32_t> scatter_stop;     // with consensus stop (0: off; else >= 2)
  std::optional<int32_t> warmup_agents;    // 0: a quarter of the agents, at least 2
  int32_t max_zooms = 2;            // every configuration but thinking-nozoom (which has 0)

  std::filesystem::path out_dir;    // eval.md, eval.json and eval.png are written here; empty: nothing
  // Also write out_dir/traces.jsonl: one line per task, {"config", "kind",
  // "index", "correct", "trace"} with the task's whole reasoning trace (as
  // ReasoningTrace::to_json), to see why a task was missed. Needs out_dir.
  bool write_traces = false;
  // Called after each task; may be empty. Must not throw.
  std::function<void(const EvalProgress&)> on_progress;
  // Set: evaluate() asks it for each task's answer instead of asking its
  // engine (which then gives only its model facts); it is called for the
  // tasks of eval_tasks(), in that order, and should answer as
  // evaluate_task() does on the same model and options — elsewhere, such as
  // on a cluster. What it throws ends the evaluation. Empty: the engine
  // answers the tasks, one after another.
  std::function<EvalAnswer(const EvalTaskRef&)> answer;
};

// How a configuration was run, as resolved (every setting that shapes it).
struct EvalConfig {
  std::string name;
  std::string description;
  Mode mode = Mode::instant;
  Effort effort = Effort::low;
  int32_t agents = 1;               // Thinking agents, or Contemplating's / Auto's first round as resolved
  int32_t refine_agents = 0;        // Contemplating's (and Auto's) second round
  int32_t max_thinking_tokens = 0;
  int32_t max_answer_tokens = 0;
  bool early_stop = false;
  bool consensus_stop = false;
  bool warmup_first = true;
  int32_t warmup_agents = 0;        // 0: the engine's default
  double keep_fraction = 0.9;
  double consensus_share = 0;
  int32_t scatter_stop = 0;
  int32_t confidence_window = 8;
  int32_t max_zooms = 0;
  float temperature = 0;            // the agents' sampling as the engine resolved it (the first task's trace;
  float top_p = 1;                  // Auto: that of Thinking, its Instant step is greedy)
  std::vector<std::string> kinds;   // the kinds it ran on
};

// One task answered in one configuration.
struct EvalTaskResult {
  std::string config;
  std::string kind;
  std::string group;
  uint64_t index = 0;        // the task's index in the held-out curriculum of its kind ({seed, kinds = {kind}})
  uint64_t seed = 0;         // the request's seed (the same in every configuration)
  std::string question;
  std::string expected;      // canonical
  std::string got;           // normalize_answer(the trace's final answer); "" when no agent answered
  bool correct = false;
  int64_t tokens = 0;        // generated tokens, all agents and rounds (trace usage)
  double seconds = 0;        // wall time of the request
  int32_t agents = 0;        // agents that ran
  int32_t zooms = 0;         // zoom-ins applied
  Mode mode_used = Mode::instant;
  int32_t escalations = 0;
  // The first agent's mean token confidence: in Instant (and Auto) the
  // number Auto compares with its escalation threshold. 0: no agent.
  double confidence = 0;
};

// Auto's escalation threshold fitted to one report's instant and thinking
// results on the same tasks: the threshold T that, answering with Instant
// where Instant's confidence is at least T and with Thinking elsewhere, gets
// the most tasks right (ties: the lowest T, which escalates least).
// T is the midpoint between two neighbouring Instant confidences; below the
// lowest it is the lowest (never escalate), above the highest, the highest
// plus 1 (always escalate). Auto's further escalation to Contemplating is
// not modelled. A model's config.json can carry it
// ("musespark": {"auto_confidence_threshold": T}).
struct AutoCalibration {
  double threshold = 0;
  int32_t tasks = 0;             // tasks both configurations answered
  int32_t instant_correct = 0;
  int32_t thinking_correct = 0;
  int32_t rule_correct = 0;      // with the threshold
  int32_t escalated = 0;         // tasks below it
};

// Totals over the tasks of one configuration in one group (or kind, or all).
struct EvalCell {
  std::string config;
  std::string group;         // a group name, a kind name, or "all"
  int32_t tasks = 0;
  int32_t correct = 0;
  double accuracy = 0;       // percent of tasks
  double mean_tokens = 0;    // generated tokens per task
  double mean_seconds = 0;   // wall seconds per task
  int32_t escalated = 0;     // tasks whose trace escalated at least once
  double escalation_share = 0;  // escalated / tasks
};

// A target of issue 6, checked on this report (present when the report has
// the configurations and tasks it needs).
struct EvalTarget {
  std::string name;          // "thinking_vs_instant", "contemplating_vs_thinking", "zoom", "early_stop"
  std::string description;   // what is compared, and on which tasks
  double value = 0;          // points, or percent of tokens saved
  std::string target;        // e.g. ">= 15 points"
  bool met = false;
  std::string detail;        // the numbers behind it
};

struct EvalReport {
  static constexpr int kSchemaVersion = 1;

  // What was measured.
  std::string model_dir;
  std::string architecture;
  int64_t parameters = 0;
  bool vision = false;
  DType dtype = DType::f32;
  int threads = 1;
  uint64_t seed = kEvalSeed;
  bool held_out_phrasings = false;
  int32_t tasks_per_kind = 0;
  std::vector<std::string> kinds;
  std::vector<EvalConfig> configs;
  std::vector<std::string> notes;    // e.g. kinds left out, and why

  // The results: every task, then the totals made from them by summarize().
  std::vector<EvalTaskResult> tasks;
  std::vector<EvalCell> groups;      // per (config, group), table order; groups without tasks left out
  std::vector<EvalCell> per_kind;    // per (config, kind)
  std::vector<EvalCell> overall;     // per config, group "all"
  std::vector<EvalTarget> targets;
  // When instant and thinking both ran (on the same tasks): Auto's fitted threshold.
  std::optional<AutoCalibration> auto_calibration;
  double seconds = 0;                // wall time of the whole evaluation

  // Recomputes groups, per_kind, overall and targets from `tasks` and `configs`.
  void summarize();

  // A markdown document: one table row per (config, group), then the targets and the settings.
  std::string markdown() const;
  // Everything above as one JSON document (schema_version = kSchemaVersion). indent < 0: one line.
  std::string to_json(int indent = 2) const;
  // Accuracy (%) against mean generated tokens per task: one labelled point per (config, group).
  Image plot() const;
  // Writes eval.md, eval.json and eval.png into `directory` (created if needed).
  // Error{io} naming the file that cannot be written.
  void write(const std::filesystem::path& directory) const;
};

// The calibration of AutoCalibration from the instant and thinking results
// (matched by kind and index; tasks of other configurations are ignored).
// nullopt when no task has both. Pure.
std::optional<AutoCalibration> calibrate_auto(const std::vector<EvalTaskResult>& tasks);

// Loads options.model_dir and runs every chosen configuration on
// tasks_per_kind tasks of each chosen kind; writes the report to
// options.out_dir when set. Errors: the engine's load error for a model folder
// that cannot be loaded; Error{invalid_argument} naming the option for unknown
// configuration or kind names and out-of-range numbers; Error{unsupported}
// when visual kinds are asked of a model without vision; Error{io} when the
// output cannot be written.
EvalReport evaluate(const EvalOptions& options);

// The same on an engine already loaded (options.model_dir and options.model
// are not used). Runs the tasks one after another on the calling thread.
EvalReport evaluate(const Engine& engine, const EvalOptions& options);

// The tasks evaluate(engine, options) answers, in its order: configuration by
// configuration, then kind by kind, then by index. Checks the options as
// evaluate() does (the same errors) and writes nothing.
std::vector<EvalTaskRef> eval_tasks(const Engine& engine, const EvalOptions& options);

// Answers one task on `engine` with the request evaluate() makes for it (the
// same question, image, seed and settings), so that evaluate() with
// options.answer calling this on the same model, anywhere, reports what it
// reports without. options.out_dir, write_traces and the callbacks are not
// used. Error{invalid_argument} for an unknown configuration or kind.
EvalAnswer evaluate_task(const Engine& engine, const EvalOptions& options, const EvalTaskRef& task);

}  // namespace musespark
