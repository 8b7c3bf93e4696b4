// EvalReport: totals, the targets, the markdown table, the JSON
// document and the files of `musespark eval`.
#include "distill/eval_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/atomic_file.hpp"
#include "musespark/answer.hpp"
#include "musespark/error.hpp"
#include "musespark/version.hpp"

namespace musespark {
namespace detail {
namespace {

const EvalConfig* find_config(const EvalReport& report, const std::string& name) {
  for (const auto& c : report.configs)
    if (c.name == name) return &c;
  return nullptr;
}

std::vector<std::string> common_kinds(const EvalConfig& a, const EvalConfig& b) {
  std::vector<std::string> out;
  for (const auto& k : a.kinds)
    if (std::find(b.kinds.begin(), b.kinds.end(), k) != b.kinds.end()) out.push_back(k);
  return out;
}

// Totals of `config` on the tasks of `kinds` (nullopt-like: tasks == 0 when none).
EvalCell tally_kinds(const EvalReport& report, const std::string& config, const std::vector<std::string>& kinds,
                     const std::string& label) {
  return tally(report.tasks, config, label, [&](const EvalTaskResult& t) {
    return std::find(kinds.begin(), kinds.end(), t.kind) != kinds.end();
  });
}

std::string cell_text(const EvalCell& c) {
  return fmt::format("{}: {:.1f}% ({}/{}) at {:.1f} tokens/task", c.config, c.accuracy, c.correct, c.tasks,
                     c.mean_tokens);
}

// "a - b >= minimum points" on the tasks of `kinds` (all both ran when empty).
std::optional<EvalTarget> points_target(const EvalReport& report, const std::string& name, const std::string& a,
                                        const std::string& b, std::vector<std::string> kinds, double minimum,
                                        const std::string& what) {
  const EvalConfig* ca = find_config(report, a);
  const EvalConfig* cb = find_config(report, b);
  if (!ca || !cb) return std::nullopt;
  std::vector<std::string> both = common_kinds(*ca, *cb);
  if (!kinds.empty()) {
    std::erase_if(kinds, [&](const std::string& k) { return std::find(both.begin(), both.end(), k) == both.end(); });
    both = kinds;
  }
  const std::string label = both.size() == 1 ? both[0] : "common";
  const EvalCell x = tally_kinds(report, a, both, label), y = tally_kinds(report, b, both, label);
  if (x.tasks == 0 || y.tasks == 0) return std::nullopt;
  EvalTarget t;
  t.name = name;
  t.description = fmt::format("{} minus {} accuracy, {}", a, b, what);
  t.value = x.accuracy - y.accuracy;
  t.target = fmt::format(">= {:g} points", minimum);
  t.met = t.value >= minimum;
  t.detail = cell_text(x) + "; " + cell_text(y);
  return t;
}

}  // namespace

Score score_answer(std::string_view final_answer, std::string_view expected) {
  Score s;
  s.got = normalize_answer(final_answer);
  s.correct = !s.got.empty() && s.got == expected;
  return s;
}

EvalCell tally(std::span<const EvalTaskResult> tasks, const std::string& config, const std::string& group,
               const std::function<bool(const EvalTaskResult&)>& keep) {
  EvalCell c;
  c.config = config;
  c.group = group;
  double tokens = 0, seconds = 0;
  for (const auto& t : tasks) {
    if (t.config != config || !keep(t)) continue;
    ++c.tasks;
    c.correct += t.correct;
    c.escalated += t.escalations > 0;
    tokens += static_cast<double>(t.tokens);
    seconds += t.seconds;
  }
  if (c.tasks > 0) {
    c.accuracy = 100.0 * c.correct / c.tasks;
    c.mean_tokens = tokens / c.tasks;
    c.mean_seconds = seconds / c.tasks;
    c.escalation_share = static_cast<double>(c.escalated) / c.tasks;
  }
  return c;
}

std::vector<EvalTarget> check_targets(const EvalReport& report) {
  std::vector<EvalTarget> out;
  std::vector<std::string> text_kinds;
  for (const auto& k : eval_kind_names())
    if (eval_group_of(k) == "text") text_kinds.push_back(k);
  if (auto t = points_target(report, "thinking_vs_instant", "thinking", "instant", text_kinds, 15,
                             "on the text (multi-step) problems"))
    out.push_back(*t);
  if (auto t = points_target(report, "contemplating_vs_thinking", "contemplating", "thinking", {}, 0,
                             "on every kind both ran"))
    out.push_back(*t);
  if (auto t = points_target(report, "zoom", "thinking", "thinking-nozoom", {"small_digits"}, 20,
                             "on the small-digit images"))
    out.push_back(*t);

  const EvalConfig* vote = find_config(report, "vote-8");
  const EvalConfig* deepconf = find_config(report, "deepconf-8");
  if (vote && deepconf) {
    const auto kinds = common_kinds(*vote, *deepconf);
    const EvalCell v = tally_kinds(report, "vote-8", kinds, "common");
    const EvalCell d = tally_kinds(report, "deepconf-8", kinds, "common");
    if (v.tasks > 0 && d.tasks > 0) {
      EvalTarget t;
      t.name = "early_stop";
      t.description = "generated tokens deepconf-8 saves against vote-8 (percent), on every kind both ran";
      t.value = v.mean_tokens > 0 ? 100.0 * (1.0 - d.mean_tokens / v.mean_tokens) : 0;
      t.target = ">= 40% fewer tokens, accuracy at most 1 point lower";
      t.met = t.value >= 40 && d.accuracy >= v.accuracy - 1;
      t.detail = cell_text(d) + "; " + cell_text(v);
      out.push_back(std::move(t));
    }
  }
  return out;
}

}  // namespace detail

void EvalReport::summarize() {
  groups.clear();
  per_kind.clear();
  overall.clear();
  for (const auto& c : configs) {
    for (const auto& g : eval_group_names()) {
      EvalCell cell = detail::tally(tasks, c.name, g, [&](const EvalTaskResult& t) { return t.group == g; });
      if (cell.tasks > 0) groups.push_back(std::move(cell));
    }
    for (const auto& k : eval_kind_names()) {
      EvalCell cell = detail::tally(tasks, c.name, k, [&](const EvalTaskResult& t) { return t.kind == k; });
      if (cell.tasks > 0) per_kind.push_back(std::move(cell));
    }
    overall.push_back(detail::tally(tasks, c.name, "all", [](const EvalTaskResult&) { return true; }));
  }
  targets = detail::check_targets(*this);
  auto_calibration = calibrate_auto(tasks);
}

std::optional<AutoCalibration> calibrate_auto(const std::vector<EvalTaskResult>& tasks) {
  std::map<std::pair<std::string, uint64_t>, const EvalTaskResult*> thinking;
  for (const auto& t : tasks)
    if (t.config == "thinking") thinking[{t.kind, t.index}] = &t;
  struct Pair {
    double confidence;
    bool instant, thinking;
  };
  std::vector<Pair> pairs;
  for (const auto& t : tasks)
    if (t.config == "instant")
      if (auto it = thinking.find({t.kind, t.index}); it != thinking.end())
        pairs.push_back({t.confidence, t.correct, it->second->correct});
  if (pairs.empty()) return std::nullopt;
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.confidence < b.confidence; });

  AutoCalibration c;
  c.tasks = static_cast<int32_t>(pairs.size());
  for (const auto& p : pairs) {
    c.instant_correct += p.instant;
    c.thinking_correct += p.thinking;
  }
  // Escalating the k least confident tasks: Thinking's answers below, Instant's above.
  int32_t right = c.instant_correct, best = -1;
  for (size_t k = 0; k <= pairs.size(); ++k) {
    if (k > 0) right += static_cast<int32_t>(pairs[k - 1].thinking) - static_cast<int32_t>(pairs[k - 1].instant);
    // A threshold exists between k-1 and k only where their confidences differ.
    if (k > 0 && k < pairs.size() && pairs[k - 1].confidence == pairs[k].confidence) continue;
    if (right <= best) continue;
    best = right;
    c.rule_correct = right;
    c.escalated = static_cast<int32_t>(k);
    c.threshold = k == 0 ? pairs.front().confidence
                  : k == pairs.size() ? pairs.back().confidence + 1.0
                                      : (pairs[k - 1].confidence + pairs[k].confidence) / 2;
  }
  return c;
}

namespace {

using Json = nlohmann::ordered_json;

Json number(double value) { return std::isfinite(value) ? Json(value) : Json(nullptr); }

// A float as the double of the same shortest spelling (0.7, not 0.699999988).
Json number(float value) {
  return std::isfinite(value) ? Json(std::strtod(fmt::format("{}", value).c_str(), nullptr)) : Json(nullptr);
}

bool is_auto(const EvalReport& r, const std::string& config) {
  for (const auto& c : r.configs)
    if (c.name == config) return c.mode == Mode::automatic;
  return false;
}

Json cell_json(const EvalReport& r, const EvalCell& c) {
  Json j{{"group", c.group},
         {"tasks", c.tasks},
         {"correct", c.correct},
         {"accuracy", number(c.accuracy)},
         {"mean_tokens", number(c.mean_tokens)},
         {"mean_seconds", number(c.mean_seconds)}};
  if (is_auto(r, c.config)) {
    j["escalated"] = c.escalated;
    j["escalation_share"] = number(c.escalation_share);
  }
  return j;
}

Json settings_json(const EvalConfig& c) {
  return Json{{"mode", mode_name(c.mode)},
              {"effort", effort_name(c.effort)},
              {"agents", c.agents},
              {"refine_agents", c.refine_agents},
              {"max_thinking_tokens", c.max_thinking_tokens},
              {"max_answer_tokens", c.max_answer_tokens},
              {"early_stop", c.early_stop},
              {"consensus_stop", c.consensus_stop},
              {"warmup_first", c.warmup_first},
              {"warmup_agents", c.warmup_agents},
              {"keep_fraction", number(c.keep_fraction)},
              {"consensus_share", number(c.consensus_share)},
              {"scatter_stop", c.scatter_stop},
              {"confidence_window", c.confidence_window},
              {"max_zooms", c.max_zooms},
              {"temperature", number(c.temperature)},
              {"top_p", number(c.top_p)}};
}

std::string format_parameters(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1'000) return fmt::format("{:.1f}k", n / 1e3);
  return std::to_string(n);
}

std::string format_duration(double seconds) {
  if (seconds < 60) return fmt::format("{:.1f} s", seconds);
  const int64_t s = std::llround(seconds);
  if (s < 3600) return fmt::format("{} min {} s", s / 60, s % 60);
  return fmt::format("{} h {} min", s / 3600, s % 3600 / 60);
}

std::string join(const std::vector<std::string>& items, const char* separator = ", ") {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : separator) + s;
  return out;
}

}  // namespace

std::string EvalReport::markdown() const {
  std::string md = "# musespark eval\n\n";
  md += fmt::format("Model `{}` ({}, {} parameters{}, {}, {} thread{}); held-out curriculum seed {}{}, {} "
                    "task{} per kind; {} tasks in {}.\n\n",
                    model_dir, architecture, format_parameters(parameters), vision ? ", vision" : "", dtype_name(dtype),
                    threads, threads == 1 ? "" : "s", seed,
                    held_out_phrasings ? " in the held-out phrasings" : "", tasks_per_kind, tasks_per_kind == 1 ? "" : "s",
                    tasks.size(), format_duration(this->seconds));
  md += "| config | group | tasks | correct | accuracy | tokens/task | s/task | escalated |\n";
  md += "|---|---|--:|--:|--:|--:|--:|--:|\n";
  for (const auto& c : groups)
    md += fmt::format("| {} | {} | {} | {} | {:.1f}% | {:.1f} | {:.3f} | {} |\n", c.config, c.group, c.tasks,
                      c.correct, c.accuracy, c.mean_tokens, c.mean_seconds,
                      is_auto(*this, c.config) ? fmt::format("{:.0f}%", 100 * c.escalation_share) : "");
  if (!targets.empty()) {
    md += "\n## Targets (issue 6)\n\n| target | value | wanted | met | numbers |\n|---|--:|---|---|---|\n";
    for (const auto& t : targets)
      md += fmt::format("| {} | {:+.1f}{} | {} | {} | {} |\n", t.description, t.value,
                        t.name == "early_stop" ? "%" : " points", t.target, t.met ? "yes" : "no", t.detail);
  }
  if (auto_calibration) {
    const AutoCalibration& a = *auto_calibration;
    md += fmt::format(
        "\n## Auto's threshold\n\nFitted on these tasks: escalate from Instant below a mean token confidence of "
        "**{:.3f}**. Instant where at least that, Thinking below: {} of {} right ({} escalated), against Instant "
        "alone {} and Thinking alone {}.\n",
        a.threshold, a.rule_correct, a.tasks, a.escalated, a.instant_correct, a.thinking_correct);
  }
  // "on", "on, share 0.6", "on, share 0.6, scatter 5".
  auto consensus_setting = [](const EvalConfig& c) {
    if (!c.consensus_stop) return std::string("off");
    std::string s = "on";
    if (c.consensus_share > 0) s += fmt::format(", share {:g}", c.consensus_share);
    if (c.scatter_stop > 0) s += fmt::format(", scatter {}", c.scatter_stop);
    return s;
  };
  md += "\n## Settings\n\n| config | mode | agents | thinking tokens | answer tokens | early stop | consensus stop | "
        "window | keep | warm-ups | zooms | kinds |\n|---|---|--:|--:|--:|---|---|--:|--:|---|--:|---|\n";
  for (const auto& c : configs) {
    const std::string agents = c.refine_agents > 0 ? fmt::format("{} + {}", c.agents, c.refine_agents)
                                                   : std::to_string(c.agents);
    const std::string warmups = !c.early_stop ? "" : fmt::format("{}{}", c.warmup_agents > 0 ? std::to_string(c.warmup_agents) : "auto",
                                                                 c.warmup_first ? ", first" : ", together");
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {:g} | {} | {} | {} |\n", c.name, mode_name(c.mode),
                      agents, c.max_thinking_tokens, c.max_answer_tokens, c.early_stop ? "on" : "off",
                      consensus_setting(c),
                      c.confidence_window, c.keep_fraction, warmups, c.max_zooms,
                      c.kinds.size() == kinds.size() ? std::string("all") : join(c.kinds));
  }
  if (!notes.empty()) {
    md += "\n";
    for (const auto& n : notes) md += "- " + n + "\n";
  }
  return md;
}

std::string EvalReport::to_json(int indent) const {
  Json j;
  j["schema_version"] = kSchemaVersion;
  j["musespark_version"] = MUSESPARK_VERSION_STRING;
  j["model"] = Json{{"directory", model_dir},   {"architecture", architecture}, {"parameters", parameters},
                    {"vision", vision},         {"dtype", dtype_name(dtype)},   {"threads", threads}};
  j["seed"] = seed;
  j["phrasings"] = held_out_phrasings ? "held_out" : "training";
  j["tasks_per_kind"] = tasks_per_kind;
  j["kinds"] = kinds;
  Json groups_of = Json::object();
  for (const auto& g : eval_group_names()) {
    Json members = Json::array();
    for (const auto& k : eval_kind_names())
      if (eval_group_of(k) == g) members.push_back(k);
    groups_of[g] = std::move(members);
  }
  j["group_kinds"] = std::move(groups_of);
  j["seconds"] = number(this->seconds);
  j["notes"] = notes;

  Json cs = Json::array();
  for (const auto& c : configs) {
    Json cj{{"name", c.name}, {"description", c.description}, {"settings", settings_json(c)}, {"kinds", c.kinds}};
    Json gs = Json::array(), ks = Json::array();
    for (const auto& cell : groups)
      if (cell.config == c.name) gs.push_back(cell_json(*this, cell));
    for (const auto& cell : per_kind)
      if (cell.config == c.name) ks.push_back(cell_json(*this, cell));
    cj["groups"] = std::move(gs);
    cj["per_kind"] = std::move(ks);
    for (const auto& cell : overall)
      if (cell.config == c.name) cj["overall"] = cell_json(*this, cell);
    cs.push_back(std::move(cj));
  }
  j["configs"] = std::move(cs);

  Json ts = Json::array();
  for (const auto& t : targets)
    ts.push_back(Json{{"name", t.name},
                      {"description", t.description},
                      {"value", number(t.value)},
                      {"target", t.target},
                      {"met", t.met},
                      {"detail", t.detail}});
  j["targets"] = std::move(ts);
  if (auto_calibration) {
    const AutoCalibration& a = *auto_calibration;
    j["auto_calibration"] = Json{{"threshold", number(a.threshold)},
                                 {"tasks", a.tasks},
                                 {"instant_correct", a.instant_correct},
                                 {"thinking_correct", a.thinking_correct},
                                 {"rule_correct", a.rule_correct},
                                 {"escalated", a.escalated}};
  }

  Json tasks_json = Json::array();
  for (const auto& t : tasks)
    tasks_json.push_back(Json{{"config", t.config},
                              {"kind", t.kind},
                              {"group", t.group},
                              {"index", t.index},
                              {"seed", t.seed},
                              {"question", t.question},
                              {"expected", t.expected},
                              {"got", t.got},
                              {"correct", t.correct},
                              {"tokens", t.tokens},
                              {"seconds", number(t.seconds)},
                              {"agents", t.agents},
                              {"zooms", t.zooms},
                              {"mode_used", mode_name(t.mode_used)},
                              {"escalations", t.escalations},
                              {"confidence", number(t.confidence)}});
  j["tasks"] = std::move(tasks_json);
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

Image EvalReport::plot() const { return detail::draw_eval_plot(*this); }

void EvalReport::write(const std::filesystem::path& directory) const {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec || !std::filesystem::is_directory(directory))
    throw Error(ErrorKind::io, directory.string(), "", "cannot create the output folder" +
                                                           (ec ? ": " + ec.message() : std::string()));
  detail::write_file_atomically(directory / "eval.md", markdown());
  detail::write_file_atomically(directory / "eval.json", to_json(2) + "\n");
  plot().save_png(directory / "eval.png");
}

}  // namespace musespark
