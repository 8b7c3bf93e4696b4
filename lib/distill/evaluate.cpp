// musespark eval: held-out curriculum tasks answered by the engine in each
// configuration, scored and totalled into an EvalReport.
#include "musespark/evaluate.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/atomic_file.hpp"
#include "distill/curriculum.hpp"
#include "distill/eval_report.hpp"
#include "musespark/engine.hpp"
#include "musespark/error.hpp"

namespace musespark {
namespace {

// Table order; see the header for what each one is.
struct ConfigSpec {
  const char* name;
  const char* description;
};
constexpr ConfigSpec kConfigs[] = {
    {"instant", "Instant: one agent, thinking off, greedy"},
    {"thinking", "Thinking: parallel agents, DeepConf early stop and consensus stop as the engine defaults"},
    {"contemplating", "Contemplating: two rounds, the second refining from a workspace of the first"},
    {"auto", "Auto: Instant, escalating to Thinking on low confidence, then to Contemplating (with its own agents "
             "and budgets) on disagreement"},
    {"thinking-nozoom", "Thinking with zoom-ins disabled (max_zooms = 0), on the visual kinds"},
    {"vote-8", "Thinking, 8 agents, plain voting: no early stop, no consensus stop"},
    {"deepconf-8", "Thinking, 8 agents, DeepConf early stop (warm-up agents first) and consensus stop, with "
                   "adaptive sampling and the scatter stop"},
};

std::string known_list(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::vector<std::string> parse_names(const std::string& comma_list, const std::vector<std::string>& known,
                                     const std::string& field, const char* what) {
  std::vector<std::string> out;
  size_t from = 0;
  while (from <= comma_list.size()) {
    size_t to = comma_list.find(',', from);
    if (to == std::string::npos) to = comma_list.size();
    std::string name = comma_list.substr(from, to - from);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    from = to + 1;
    if (name.empty()) continue;
    if (std::find(known.begin(), known.end(), name) == known.end())
      throw Error(ErrorKind::invalid_argument, "", field,
                  std::string("unknown ") + what + " '" + name + "' (known: " + known_list(known) + ")");
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(std::move(name));
  }
  return out;
}

// Checks a list given in EvalOptions (already split), the same way.
std::vector<std::string> checked_names(const std::vector<std::string>& names, const std::vector<std::string>& known,
                                       const std::string& field, const char* what) {
  std::string joined;
  for (const auto& n : names) {
    if (n.find(',') != std::string::npos)
      throw Error(ErrorKind::invalid_argument, "", field, std::string("one ") + what + " per entry, got '" + n + "'");
    joined += n + ",";
  }
  auto out = parse_names(joined, known, field, what);
  return out.empty() ? known : out;
}

void check_range(bool ok, const std::string& field, const std::string& message) {
  if (!ok) throw Error(ErrorKind::invalid_argument, "", field, message);
}

// How each configuration runs, resolved against the effort's budgets.
EvalConfig resolve(const ConfigSpec& spec, const EvalOptions& o, const std::vector<std::string>& kinds) {
  const EffortBudgets e = effort_budgets(o.effort);
  const std::string name = spec.name;
  EvalConfig c;
  c.name = name;
  c.description = spec.description;
  c.effort = o.effort;
  c.max_answer_tokens = o.max_answer_tokens > 0 ? o.max_answer_tokens : e.max_answer_tokens;
  c.confidence_window = o.confidence_window;
  // The stop settings: as set, else the configuration's own (deepconf-8's
  // kDeepConfStops, the others the engine's).
  const Request engine;
  const DeepConfStops own =
      name == "deepconf-8"
          ? kDeepConfStops
          : DeepConfStops{engine.warmup_agents, engine.keep_fraction, engine.consensus_share, engine.scatter_stop};
  c.keep_fraction = o.keep_fraction.value_or(own.keep_fraction);
  c.consensus_share = o.consensus_share.value_or(own.consensus_share);
  c.scatter_stop = o.scatter_stop.value_or(own.scatter_stop);
  c.warmup_agents = o.warmup_agents.value_or(own.warmup_agents);
  c.max_zooms = o.max_zooms;
  c.kinds = kinds;
  const int32_t thinking_tokens = o.max_thinking_tokens > 0 ? o.max_thinking_tokens : e.max_thinking_tokens;
  if (name == "instant") {
    c.mode = Mode::instant;
    c.agents = 1;
    c.max_zooms = 0;  // the engine zooms only while thinking
    return c;
  }
  c.early_stop = c.consensus_stop = true;
  c.max_thinking_tokens = thinking_tokens;
  if (name == "contemplating") {
    c.mode = Mode::contemplating;
    c.agents = o.agents > 0 ? o.agents : e.contemplate_agents;
    c.refine_agents = e.refine_agents;
    c.max_thinking_tokens = o.max_thinking_tokens > 0 ? o.max_thinking_tokens : e.contemplate_thinking_tokens;
  } else if (name == "auto") {
    c.mode = Mode::automatic;  // agents: Thinking's; escalated to Contemplating, that mode's own
    c.agents = o.agents > 0 ? o.agents : e.agents;
  } else {
    c.mode = Mode::thinking;
    c.agents = o.agents > 0 ? o.agents : e.agents;
    if (name == "thinking-nozoom") {
      c.max_zooms = 0;
      std::erase_if(c.kinds, [](const std::string& k) { return eval_group_of(k) == "text"; });
    } else if (name == "vote-8" || name == "deepconf-8") {
      c.agents = 8;
      c.early_stop = c.consensus_stop = name == "deepconf-8";
    }
  }
  return c;
}

Request make_request(const EvalConfig& c, const EvalOptions& o, const detail::Task& task, uint64_t seed) {
  Request r = Request::question(task.question, c.mode, c.effort);
  if (task.image) r.messages = {Message::with_images("user", {*task.image}, task.question)};
  // Agents: explicit for the fixed-size configurations, else the option (0:
  // the effort's), so that Auto's escalation to Contemplating keeps its own.
  r.budgets.agents = c.name == "vote-8" || c.name == "deepconf-8" ? c.agents : o.agents;
  r.budgets.max_thinking_tokens = o.max_thinking_tokens;
  r.budgets.max_answer_tokens = o.max_answer_tokens;
  r.seed = seed;
  r.early_stop = c.early_stop;
  r.consensus_stop = c.consensus_stop;
  r.warmup_first = c.warmup_first;
  r.warmup_agents = c.warmup_agents;
  r.keep_fraction = c.keep_fraction;
  r.consensus_share = c.consensus_share;
  r.scatter_stop = c.scatter_stop;
  r.confidence_window = c.confidence_window;
  r.max_zooms = c.max_zooms;
  return r;
}

// The held-out curriculum of one kind, so that task j of a kind is the same
// whichever other kinds are chosen.
detail::Curriculum held_out_curriculum(const EvalOptions& options, const std::string& kind) {
  detail::CurriculumOptions picked;
  picked.seed = options.seed;
  if (options.held_out_phrasings) picked.phrasings = detail::Phrasings::held_out;
  picked.kinds = {*detail::parse_task_kind(kind)};
  return detail::Curriculum(picked);
}

// A request seed per task, the same in every configuration and whatever else
// is chosen (the engine mixes it into each agent's seed).
uint64_t task_seed(const EvalOptions& options, const std::string& kind, uint64_t index) {
  const auto kind_number = static_cast<uint64_t>(
      std::find(eval_kind_names().begin(), eval_kind_names().end(), kind) - eval_kind_names().begin());
  return options.seed ^ (kind_number << 32 | index);
}

// A held-out task, with its kind's name and its request seed.
struct Held {
  std::string kind;
  detail::Task task;
  uint64_t seed;
};

// An evaluation as planned: the report before any task (model facts,
// configurations, notes) and the held-out tasks, kind by kind.
struct Plan {
  EvalReport report;
  std::vector<Held> held;
};

// engine.ask(request), and its wall time in `seconds`.
Result ask_timed(const Engine& engine, const Request& request, double& seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  Result result = engine.ask(request);
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

bool runs_on(const EvalConfig& c, const std::string& kind) {
  return std::find(c.kinds.begin(), c.kinds.end(), kind) != c.kinds.end();
}

}  // namespace

const std::vector<std::string>& eval_config_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& c : kConfigs) v.push_back(c.name);
    return v;
  }();
  return names;
}

const std::vector<std::string>& eval_kind_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (auto k : detail::kAllTaskKinds) v.push_back(detail::task_kind_name(k));
    return v;
  }();
  return names;
}

const std::vector<std::string>& eval_group_names() {
  static const std::vector<std::string> names = {"text", "visual", "small_digits"};
  return names;
}

std::string eval_group_of(const std::string& kind) {
  const auto k = detail::parse_task_kind(kind);
  if (!k) throw Error(ErrorKind::invalid_argument, "", "kind", "unknown task kind '" + kind + "'");
  if (*k == detail::TaskKind::small_digits) return "small_digits";
  return detail::is_visual(*k) ? "visual" : "text";
}

std::vector<std::string> parse_eval_configs(const std::string& comma_list, const std::string& field) {
  return parse_names(comma_list, eval_config_names(), field, "configuration");
}

std::vector<std::string> parse_eval_kinds(const std::string& comma_list, const std::string& field) {
  return parse_names(comma_list, eval_kind_names(), field, "task kind");
}

EvalReport evaluate(const EvalOptions& options) {
  EngineOptions engine_options;
  engine_options.model = options.model;
  const Engine engine = Engine::load(options.model_dir, engine_options);
  return evaluate(engine, options);
}

namespace {

// Checks the options and plans the evaluation of them on a model.
Plan plan_evaluation(const ModelInfo& info, const EvalOptions& options) {
  check_range(options.tasks_per_kind >= 1, "tasks_per_kind", "must be at least 1");
  check_range(options.agents >= 0 && options.agents <= 64, "agents", "must be in [0, 64] (0: the effort's)");
  check_range(options.max_thinking_tokens >= 0, "max_thinking_tokens", "must be >= 0 (0: the effort's)");
  check_range(options.max_answer_tokens >= 0, "max_answer_tokens", "must be >= 0 (0: the effort's)");
  // The stop settings, by the engine's own rules (an error names the field).
  Request stops;
  stops.confidence_window = options.confidence_window;
  stops.keep_fraction = options.keep_fraction.value_or(stops.keep_fraction);
  stops.consensus_share = options.consensus_share.value_or(stops.consensus_share);
  stops.scatter_stop = options.scatter_stop.value_or(stops.scatter_stop);
  stops.warmup_agents = options.warmup_agents.value_or(stops.warmup_agents);
  validate_stops(stops);
  check_range(options.max_zooms >= 0, "max_zooms", "must be >= 0");
  check_range(!options.write_traces || !options.out_dir.empty(), "write_traces", "needs out_dir");
  const std::vector<std::string> config_names =
      checked_names(options.configs, eval_config_names(), "configs", "configuration");
  std::vector<std::string> kinds = checked_names(options.kinds, eval_kind_names(), "kinds", "task kind");

  Plan plan;
  EvalReport& report = plan.report;
  report.model_dir = info.directory.string();
  report.architecture = info.architecture;
  report.parameters = info.parameter_count;
  report.vision = info.vision;
  report.dtype = info.dtype;
  report.threads = info.threads;
  report.seed = options.seed;
  report.held_out_phrasings = options.held_out_phrasings;
  report.tasks_per_kind = options.tasks_per_kind;
  if (!info.vision) {
    std::vector<std::string> visual;
    for (const auto& k : kinds)
      if (eval_group_of(k) != "text") visual.push_back(k);
    if (!visual.empty() && !options.kinds.empty())
      throw Error(ErrorKind::unsupported, (info.directory / "config.json").string(), "vision_config",
                  "the model has no vision, so it cannot answer the visual kinds " + known_list(visual));
    if (!visual.empty()) {
      std::erase_if(kinds, [](const std::string& k) { return eval_group_of(k) != "text"; });
      report.notes.push_back("The model has no vision: the visual kinds (" + known_list(visual) + ") were left out.");
    }
  }
  report.kinds = kinds;
  for (const auto& name : config_names) {
    const auto spec = std::find_if(std::begin(kConfigs), std::end(kConfigs), [&](auto& c) { return c.name == name; });
    EvalConfig c = resolve(*spec, options, kinds);
    if (c.kinds.empty())
      report.notes.push_back(c.name + " was not run: it has none of the chosen kinds (" + known_list(kinds) + ").");
    report.configs.push_back(std::move(c));
  }
  for (const auto& kind : kinds) {
    const detail::Curriculum curriculum = held_out_curriculum(options, kind);
    for (int32_t j = 0; j < options.tasks_per_kind; ++j) {
      const auto index = static_cast<uint64_t>(j);
      plan.held.push_back({kind, curriculum.task(index), task_seed(options, kind, index)});
    }
  }
  return plan;
}

}  // namespace

std::vector<EvalTaskRef> eval_tasks(const Engine& engine, const EvalOptions& options) {
  const Plan plan = plan_evaluation(engine.model_info(), options);
  std::vector<EvalTaskRef> tasks;
  for (const EvalConfig& c : plan.report.configs)
    for (const auto& h : plan.held)
      if (runs_on(c, h.kind)) tasks.push_back({c.name, h.kind, h.task.index});
  return tasks;
}

EvalAnswer evaluate_task(const Engine& engine, const EvalOptions& options, const EvalTaskRef& task) {
  const auto spec =
      std::find_if(std::begin(kConfigs), std::end(kConfigs), [&](auto& c) { return c.name == task.config; });
  if (spec == std::end(kConfigs))
    throw Error(ErrorKind::invalid_argument, "", "config",
                "unknown configuration '" + task.config + "' (known: " + known_list(eval_config_names()) + ")");
  if (std::find(eval_kind_names().begin(), eval_kind_names().end(), task.kind) == eval_kind_names().end())
    throw Error(ErrorKind::invalid_argument, "", "kind",
                "unknown task kind '" + task.kind + "' (known: " + known_list(eval_kind_names()) + ")");
  const EvalConfig c = resolve(*spec, options, {task.kind});
  const detail::Task held = held_out_curriculum(options, task.kind).task(task.index);
  double seconds = 0;
  const Result result = ask_timed(engine, make_request(c, options, held, task_seed(options, task.kind, task.index)),
                                  seconds);
  return {result.trace.to_json(), seconds};
}

EvalReport evaluate(const Engine& engine, const EvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  Plan plan = plan_evaluation(engine.model_info(), options);
  EvalReport& report = plan.report;
  if (!options.out_dir.empty()) report.write(options.out_dir);  // fail early, not after the run
  // Every trace so far, rewritten whole (atomically) with the report after
  // each configuration: a killed run leaves the two files of the same moment.
  std::string traces;
  const std::filesystem::path traces_path = options.out_dir / "traces.jsonl";
  if (options.write_traces) detail::write_file_atomically(traces_path, traces);

  const std::vector<Held>& held = plan.held;

  for (size_t ci = 0; ci < report.configs.size(); ++ci) {
    const EvalConfig& c = report.configs[ci];
    EvalProgress progress;
    progress.config = c.name;
    progress.config_number = static_cast<int32_t>(ci + 1);
    progress.config_count = static_cast<int32_t>(report.configs.size());
    for (const auto& h : held) progress.total += runs_on(c, h.kind);
    if (options.on_progress) options.on_progress(progress);
    for (const auto& h : held) {
      if (!runs_on(c, h.kind)) continue;
      // Asked here, or answered elsewhere (options.answer) as evaluate_task() asks it.
      std::optional<Result> asked;
      ReasoningTrace answered;
      double seconds = 0;
      if (options.answer) {
        const EvalTaskRef ref{c.name, h.kind, h.task.index};
        const EvalAnswer a = options.answer(ref);
        answered = ReasoningTrace::from_json(
            a.trace_json, "the answer of " + ref.config + "/" + ref.kind + "/" + std::to_string(ref.index));
        seconds = a.seconds;
      } else {
        asked.emplace(ask_timed(engine, make_request(c, options, h.task, h.seed), seconds));
      }
      const ReasoningTrace& trace = asked ? asked->trace : answered;
      if (progress.done == 0) {
        report.configs[ci].temperature = trace.request.temperature;
        report.configs[ci].top_p = trace.request.top_p;
      }

      EvalTaskResult t;
      t.config = c.name;
      t.kind = h.kind;
      t.group = eval_group_of(h.kind);
      t.index = h.task.index;
      t.seed = h.seed;
      t.question = h.task.question;
      t.expected = h.task.answer;
      const detail::Score score = detail::score_answer(trace.final_answer, h.task.answer);
      t.got = score.got;
      t.correct = score.correct;
      t.tokens = trace.usage.generated_tokens;
      t.seconds = seconds;
      t.agents = static_cast<int32_t>(trace.agents.size());
      t.zooms = static_cast<int32_t>(std::count_if(trace.visual_actions.begin(), trace.visual_actions.end(),
                                                   [](const VisualAction& v) { return v.kind == "zoom" && v.applied; }));
      t.mode_used = trace.mode_used;
      t.escalations = static_cast<int32_t>(trace.escalations.size());
      t.confidence = trace.agents.empty() ? 0.0 : trace.agents.front().confidence.mean;
      if (options.write_traces) {
        const nlohmann::ordered_json line = {{"config", t.config},
                                             {"kind", t.kind},
                                             {"index", t.index},
                                             {"correct", t.correct},
                                             {"trace", nlohmann::ordered_json::parse(trace.to_json())}};
        traces += line.dump() + '\n';
      }
      report.tasks.push_back(std::move(t));

      ++progress.done;
      progress.correct += report.tasks.back().correct;
      progress.generated_tokens += report.tasks.back().tokens;
      progress.seconds += seconds;
      if (options.on_progress) options.on_progress(progress);
    }
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report.summarize();
    // After each configuration, so that an interrupted run keeps what it finished.
    if (!options.out_dir.empty()) {
      if (options.write_traces) detail::write_file_atomically(traces_path, traces);
      report.write(options.out_dir);
    }
  }
  report.summarize();
  return report;
}

}  // namespace musespark
