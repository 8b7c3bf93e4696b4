// musespark eval: scoring, totals, targets, the plot's geometry (pure
// functions on made-up results), and whole runs on tiny random models.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "distill/eval_report.hpp"
#include "distill/tokenizer_files.hpp"
#include "musespark/answer.hpp"
#include "musespark/engine.hpp"
#include "musespark/error.hpp"
#include "musespark/evaluate.hpp"
#include "support.hpp"

using namespace musespark;
using namespace test_support;

namespace {

EvalTaskResult result(const std::string& config, const std::string& kind, bool correct, int64_t tokens,
                      double seconds = 1, int32_t escalations = 0) {
  EvalTaskResult t;
  t.config = config;
  t.kind = kind;
  t.group = eval_group_of(kind);
  t.expected = "7";
  t.got = correct ? "7" : "8";
  t.correct = correct;
  t.tokens = tokens;
  t.seconds = seconds;
  t.escalations = escalations;
  return t;
}

EvalConfig config(const std::string& name, Mode mode, std::vector<std::string> kinds) {
  EvalConfig c;
  c.name = name;
  c.mode = mode;
  c.kinds = std::move(kinds);
  return c;
}

const std::vector<std::string> kText = {"arithmetic", "word_problem", "comparison", "units"};

// The default model's tokenizer files, written once into a shared folder
// (each process writes its own copy and renames it into place).
std::string default_tokenizer() {
  const auto dir = std::filesystem::path(MUSESPARK_BINARY_DIR) / "test-models" / "default-tokenizer";
  if (!std::filesystem::exists(dir / "tokenizer_config.json")) {
    const auto mine = dir.string() + ".tmp-" + std::to_string(::getpid());
    detail::write_tokenizer_files(mine);
    std::error_code ec;
    std::filesystem::rename(mine, dir, ec);
    if (ec) std::filesystem::remove_all(mine);  // another process was first
  }
  return dir.string();
}

// As the default model: its byte-level tokenizer, and a vision input of
// 64 x 64 pixels in 8 x 8 patches (64 image tokens).
std::filesystem::path vision_model() {
  return tiny_model("eval-vision", "--arch qwen3 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --head-dim 16 "
                                   "--intermediate 64 --tie --seed 61 --vision --vision-image-size 64 "
                                   "--vision-patch 8 --vision-hidden 32 --tokenizer-from " + default_tokenizer());
}

const Engine& seer() {
  static Engine engine = Engine::load(vision_model());
  return engine;
}

// Short budgets: a random model never stops by itself.
EvalOptions quick_options(std::vector<std::string> configs, std::vector<std::string> kinds, int tasks) {
  EvalOptions o;
  o.configs = std::move(configs);
  o.kinds = std::move(kinds);
  o.tasks_per_kind = tasks;
  o.max_thinking_tokens = 8;
  o.max_answer_tokens = 4;
  return o;
}

// An instant and a thinking result for task `index` of "arithmetic".
void add_pair(std::vector<EvalTaskResult>& tasks, uint64_t index, double instant_confidence, bool instant_right,
              bool thinking_right) {
  EvalTaskResult i = result("instant", "arithmetic", instant_right, 3);
  i.index = index;
  i.confidence = instant_confidence;
  EvalTaskResult t = result("thinking", "arithmetic", thinking_right, 100);
  t.index = index;
  t.confidence = 1;  // not used
  tasks.push_back(i);
  tasks.push_back(t);
}

}  // namespace

TEST_CASE("eval: Auto's threshold is fitted where Instant stops being the better answer") {
  std::vector<EvalTaskResult> tasks;
  // Unsure Instant is wrong where Thinking is right; sure Instant is right.
  add_pair(tasks, 0, 6.0, false, true);
  add_pair(tasks, 1, 7.0, false, true);
  add_pair(tasks, 2, 8.0, false, false);
  add_pair(tasks, 3, 10.0, true, false);
  add_pair(tasks, 4, 12.0, true, true);
  auto c = calibrate_auto(tasks);
  REQUIRE(c);
  CHECK(c->tasks == 5);
  CHECK(c->instant_correct == 2);
  CHECK(c->thinking_correct == 3);
  CHECK(c->rule_correct == 4);
  CHECK(c->escalated == 2);           // the lowest threshold with 4 right: between 7 and 8
  CHECK(c->threshold == doctest::Approx(7.5));

  // Thinking always better: escalate everything (above the highest confidence).
  std::vector<EvalTaskResult> doubt;
  add_pair(doubt, 0, 6.0, false, true);
  add_pair(doubt, 1, 9.0, false, true);
  c = calibrate_auto(doubt);
  REQUIRE(c);
  CHECK(c->escalated == 2);
  CHECK(c->threshold == doctest::Approx(10.0));

  // Instant never worse: never escalate (the lowest confidence).
  std::vector<EvalTaskResult> calm;
  add_pair(calm, 0, 6.0, true, true);
  add_pair(calm, 1, 9.0, false, false);
  c = calibrate_auto(calm);
  REQUIRE(c);
  CHECK(c->escalated == 0);
  CHECK(c->threshold == doctest::Approx(6.0));

  // Equal confidences are never split; tasks of one configuration alone give nothing.
  std::vector<EvalTaskResult> tied;
  add_pair(tied, 0, 8.0, false, true);
  add_pair(tied, 1, 8.0, true, false);
  add_pair(tied, 2, 8.0, false, true);
  c = calibrate_auto(tied);
  REQUIRE(c);
  CHECK(c->escalated == 3);
  CHECK(c->threshold == doctest::Approx(9.0));
  tied.erase(std::remove_if(tied.begin(), tied.end(), [](const EvalTaskResult& t) { return t.config == "thinking"; }),
             tied.end());
  CHECK_FALSE(calibrate_auto(tied));
}

namespace {

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int count_lines_starting(const std::string& text, const std::string& prefix) {
  int n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) n += line.rfind(prefix, 0) == 0;
  return n;
}

detail::Color pixel(const Image& image, int x, int y) {
  const uint8_t* p = image.pixels().data() + (static_cast<size_t>(y) * image.width() + x) * 3;
  return {p[0], p[1], p[2]};
}

}  // namespace

TEST_CASE("eval: a task is correct when its normalised final answer equals the canonical answer") {
  CHECK(detail::score_answer("1,234", "1234").correct);
  CHECK(detail::score_answer("1,234", "1234").got == "1234");
  CHECK(detail::score_answer("  **66.**", "66").correct);
  CHECK(detail::score_answer("Red", "red").correct);
  CHECK_FALSE(detail::score_answer("65", "66").correct);
  CHECK_FALSE(detail::score_answer("", "").correct);  // no answer is never right
  CHECK(detail::score_answer("12.50", "12.5").got == normalize_answer("12.50"));
}

TEST_CASE("eval: names, groups and comma lists of configurations and kinds") {
  CHECK(eval_config_names() == std::vector<std::string>{"instant", "thinking", "contemplating", "auto",
                                                        "thinking-nozoom", "vote-8", "deepconf-8"});
  CHECK(eval_kind_names().size() == 8);
  CHECK(eval_group_of("units") == "text");
  CHECK(eval_group_of("digit_sum") == "visual");
  CHECK(eval_group_of("small_digits") == "small_digits");
  CHECK_THROWS_AS(eval_group_of("poetry"), Error);

  CHECK(parse_eval_configs(" thinking,vote-8 ,thinking,") == std::vector<std::string>{"thinking", "vote-8"});
  CHECK(parse_eval_configs("").empty());
  CHECK(parse_eval_kinds("small_digits,units") == std::vector<std::string>{"small_digits", "units"});
  try {
    parse_eval_configs("thinking,thinkng", "--configs");
    FAIL("an unknown configuration was accepted");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::invalid_argument);
    CHECK(e.field() == "--configs");
    CHECK(e.message().find("'thinkng'") != std::string::npos);
    CHECK(e.message().find("deepconf-8") != std::string::npos);  // the known names are listed
  }
  CHECK_THROWS_WITH_AS(parse_eval_kinds("units,poems", "--kinds"), doctest::Contains("--kinds: unknown task kind 'poems'"),
                       Error);
}

TEST_CASE("eval: totals per configuration and group, per kind and overall, in table order") {
  EvalReport r;
  r.configs = {config("instant", Mode::instant, {"arithmetic", "units", "small_digits"}),
               config("auto", Mode::automatic, {"arithmetic", "units", "small_digits"})};
  r.tasks = {result("instant", "arithmetic", true, 10, 0.5), result("instant", "units", false, 20, 1.5),
             result("instant", "small_digits", true, 6, 1.0), result("auto", "arithmetic", true, 100, 2, 1),
             result("auto", "units", true, 50, 1, 0),        result("auto", "small_digits", false, 300, 3, 2)};
  r.summarize();

  REQUIRE(r.groups.size() == 4);  // no visual tasks: no visual rows
  CHECK(r.groups[0].config == "instant");
  CHECK(r.groups[0].group == "text");
  CHECK(r.groups[0].tasks == 2);
  CHECK(r.groups[0].correct == 1);
  CHECK(r.groups[0].accuracy == doctest::Approx(50));
  CHECK(r.groups[0].mean_tokens == doctest::Approx(15));
  CHECK(r.groups[0].mean_seconds == doctest::Approx(1.0));
  CHECK(r.groups[1].group == "small_digits");
  CHECK(r.groups[2].config == "auto");
  CHECK(r.groups[2].escalated == 1);
  CHECK(r.groups[2].escalation_share == doctest::Approx(0.5));
  CHECK(r.groups[2].accuracy == doctest::Approx(100));
  CHECK(r.groups[3].escalation_share == doctest::Approx(1.0));

  REQUIRE(r.per_kind.size() == 6);
  CHECK(r.per_kind[1].group == "units");
  CHECK(r.per_kind[1].accuracy == doctest::Approx(0));
  REQUIRE(r.overall.size() == 2);
  CHECK(r.overall[1].group == "all");
  CHECK(r.overall[1].tasks == 3);
  CHECK(r.overall[1].mean_tokens == doctest::Approx(150));

  // The markdown: one row per (config, group); escalations only for auto.
  const std::string md = r.markdown();
  CHECK(count_lines_starting(md, "| instant | ") == 2 + 1);  // two result rows and one settings row
  CHECK(md.find("| auto | text | 2 | 2 | 100.0% | 75.0 | 1.500 | 50% |") != std::string::npos);
  CHECK(md.find("| instant | text | 2 | 1 | 50.0% | 15.0 | 1.000 |  |") != std::string::npos);

  // JSON: the same numbers per config, with escalation only where it means something.
  const auto j = nlohmann::json::parse(r.to_json());
  CHECK(j["schema_version"] == EvalReport::kSchemaVersion);
  REQUIRE(j["configs"].size() == 2);
  CHECK(j["configs"][0]["groups"].size() == 2);
  CHECK_FALSE(j["configs"][0]["groups"][0].contains("escalation_share"));
  CHECK(j["configs"][1]["groups"][1]["escalation_share"] == 1.0);
  CHECK(j["configs"][1]["per_kind"].size() == 3);
  CHECK(j["configs"][1]["overall"]["correct"] == 2);
  CHECK(j["tasks"].size() == 6);
  CHECK(j["group_kinds"]["visual"] == nlohmann::json({"count_color", "digit_sum", "compare_size"}));
}

TEST_CASE("eval: the targets compare two configurations on the kinds both ran") {
  EvalReport r;
  r.configs = {config("instant", Mode::instant, kText), config("thinking", Mode::thinking, {"arithmetic", "small_digits"}),
               config("thinking-nozoom", Mode::thinking, {"small_digits"}),
               config("vote-8", Mode::thinking, {"arithmetic"}), config("deepconf-8", Mode::thinking, {"arithmetic"})};
  // instant: arithmetic 1/4, units 4/4 (units is not run by thinking, so it does not count).
  for (int i = 0; i < 4; ++i) r.tasks.push_back(result("instant", "arithmetic", i == 0, 10));
  for (int i = 0; i < 4; ++i) r.tasks.push_back(result("instant", "units", true, 10));
  for (int i = 0; i < 4; ++i) r.tasks.push_back(result("thinking", "arithmetic", i < 3, 100));
  for (int i = 0; i < 5; ++i) r.tasks.push_back(result("thinking", "small_digits", i < 4, 100));
  for (int i = 0; i < 5; ++i) r.tasks.push_back(result("thinking-nozoom", "small_digits", i < 3, 100));
  for (int i = 0; i < 4; ++i) r.tasks.push_back(result("vote-8", "arithmetic", i < 2, 400));
  for (int i = 0; i < 4; ++i) r.tasks.push_back(result("deepconf-8", "arithmetic", i < 2, 200));
  r.summarize();

  auto target = [&](const std::string& name) -> const EvalTarget* {
    for (const auto& t : r.targets)
      if (t.name == name) return &t;
    return nullptr;
  };
  REQUIRE(target("thinking_vs_instant"));
  CHECK(target("thinking_vs_instant")->value == doctest::Approx(75 - 25));
  CHECK(target("thinking_vs_instant")->met);
  CHECK(target("contemplating_vs_thinking") == nullptr);  // not run
  REQUIRE(target("zoom"));
  CHECK(target("zoom")->value == doctest::Approx(80 - 60));
  CHECK(target("zoom")->met);
  REQUIRE(target("early_stop"));
  CHECK(target("early_stop")->value == doctest::Approx(50));
  CHECK(target("early_stop")->met);

  // One answer fewer with early stop: 25 points lower, so the target is missed.
  for (auto& t : r.tasks)
    if (t.config == "deepconf-8" && t.correct) {
      t.correct = false;
      break;
    }
  r.summarize();
  CHECK(target("early_stop")->value == doctest::Approx(50));
  CHECK_FALSE(target("early_stop")->met);
}

TEST_CASE("eval: plot axes map data to pixels with round ticks") {
  const detail::AxisScale y{0, 100, 520, 80};
  CHECK(y.to_pixel(0) == 520);
  CHECK(y.to_pixel(100) == 80);
  CHECK(y.to_pixel(50) == 300);
  CHECK(y.to_pixel(12.5) == 465);
  const detail::AxisScale x{0, 600, 90, 720};
  CHECK(x.to_pixel(300) == 405);
  CHECK(detail::AxisScale{5, 5, 10, 20}.to_pixel(7) == 10);  // a degenerate axis does not divide by zero

  CHECK(detail::nice_ticks(0, 537, 8) == std::vector<double>{0, 100, 200, 300, 400, 500, 600});
  CHECK(detail::nice_ticks(0, 100, 10).size() == 11);
  CHECK(detail::nice_ticks(0, 100, 10).back() == 100);
  CHECK(detail::nice_ticks(0, 3.2, 8) == std::vector<double>{0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5});
  CHECK(detail::nice_ticks(0, 0, 8).back() == doctest::Approx(1));  // nothing to show: 0..1
  CHECK(detail::nice_ticks(120, 180, 3) == std::vector<double>{120, 140, 160, 180});

  CHECK(detail::tick_label(300, 100) == "300");
  CHECK(detail::tick_label(2.5, 0.5) == "2.5");
  CHECK(detail::tick_label(0.05, 0.05) == "0.05");
  CHECK(detail::tick_label(-0.0, 1) == "0");
}

TEST_CASE("eval: the plot draws each configuration and group at its tokens and accuracy") {
  EvalReport r;
  r.configs = {config("instant", Mode::instant, {"arithmetic", "count_color", "small_digits"}),
               config("deepconf-8", Mode::thinking, {"arithmetic", "count_color", "small_digits"})};
  r.tasks = {result("instant", "arithmetic", true, 20),      result("instant", "count_color", false, 20),
             result("instant", "small_digits", false, 30),   result("deepconf-8", "arithmetic", true, 240),
             result("deepconf-8", "arithmetic", false, 260), result("deepconf-8", "count_color", true, 300),
             result("deepconf-8", "small_digits", true, 500)};
  r.summarize();
  const Image plot = r.plot();
  const auto layout = detail::eval_plot_layout(r);
  CHECK(plot.width() == layout.width);
  CHECK(plot.height() == layout.height);
  CHECK(layout.x.hi == 500);  // the largest mean, rounded up to a tick

  const auto at = [&](const EvalCell& c) { return std::pair{layout.x.to_pixel(c.mean_tokens), layout.y.to_pixel(c.accuracy)}; };
  for (const auto& c : r.groups) {
    const auto [x, y] = at(c);
    const detail::Color colour = detail::eval_config_color(c.config);
    // text: a filled square, small_digits: a cross through the point, visual: a hollow square.
    if (c.group == "visual") CHECK(pixel(plot, x - 5, y) == colour);
    else CHECK(pixel(plot, x, y) == colour);
  }
  CHECK(detail::eval_config_color("instant") != detail::eval_config_color("deepconf-8"));
  // deepconf-8/text: 50% at 250 tokens; small_digits: 100% at 500 (the top right corner of the axes).
  CHECK(at(r.groups[3]) == std::pair{layout.x.to_pixel(250), layout.y.to_pixel(50)});

  const auto png = plot.encode_png();
  const Image back = Image::decode(std::as_bytes(std::span(png)), "eval.png");
  CHECK(back.width() == 960);
  CHECK(back.height() == 600);
}

TEST_CASE("eval: a run on a tiny vision model writes the table, the JSON and the plot") {
  auto out = temp_dir("eval-run");
  EvalOptions o = quick_options({"instant", "thinking", "thinking-nozoom"}, {}, 1);
  o.out_dir = out;
  std::vector<EvalProgress> seen;
  o.on_progress = [&](const EvalProgress& p) { seen.push_back(p); };
  const EvalReport r = evaluate(seer(), o);

  // 8 kinds x 1 task for instant and thinking, the 4 visual kinds for thinking-nozoom.
  CHECK(r.tasks.size() == 8 + 8 + 4);
  CHECK(r.groups.size() == 3 + 3 + 2);
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.front().done == 0);
  CHECK(seen.back().config == "thinking-nozoom");
  CHECK(seen.back().config_number == 3);
  CHECK(seen.back().done == 4);
  CHECK(seen.back().total == 4);

  for (const auto& t : r.tasks) {
    CAPTURE(t.config);
    CAPTURE(t.kind);
    CHECK(t.tokens > 0);
    CHECK(t.seconds > 0);
    CHECK(t.got == normalize_answer(t.got));
    CHECK(t.correct == (!t.got.empty() && t.got == t.expected));
    CHECK(t.expected == normalize_answer(t.expected));
    CHECK(t.agents == (t.config == "instant" ? 1 : 4));
    CHECK(t.confidence > 0);
    if (t.config == "thinking-nozoom") CHECK(t.zooms == 0);
  }
  // Every configuration answers the same tasks.
  for (size_t i = 0; i < 8; ++i) CHECK(r.tasks[i].question == r.tasks[8 + i].question);

  const auto j = nlohmann::json::parse(read_text(out / "eval.json"));
  CHECK(j["schema_version"] == 1);
  // instant and thinking ran on the same tasks: Auto's threshold is fitted and reported.
  REQUIRE(r.auto_calibration);
  CHECK(r.auto_calibration->tasks == 8);
  CHECK(j["auto_calibration"]["tasks"] == 8);
  CHECK(j["auto_calibration"]["threshold"] == doctest::Approx(r.auto_calibration->threshold));
  CHECK(j["tasks"][0]["confidence"].get<double>() > 0);
  CHECK(read_text(out / "eval.md").find("## Auto's threshold") != std::string::npos);
  CHECK(j["seed"] == kEvalSeed);
  CHECK(j["tasks_per_kind"] == 1);
  CHECK(j["model"]["vision"] == true);
  CHECK(j["model"]["directory"] == vision_model().string());
  REQUIRE(j["configs"].size() == 3);
  const auto& thinking = j["configs"][1];
  CHECK(thinking["name"] == "thinking");
  CHECK(thinking["settings"]["agents"] == 4);
  CHECK(thinking["settings"]["early_stop"] == true);
  CHECK(thinking["settings"]["confidence_window"] == 8);
  CHECK(thinking["settings"]["max_thinking_tokens"] == 8);
  CHECK(thinking["settings"]["temperature"] == 0.7);
  CHECK(j["configs"][0]["settings"]["temperature"] == 0);
  CHECK(j["configs"][2]["settings"]["max_zooms"] == 0);
  CHECK(j["configs"][2]["kinds"].size() == 4);
  int tasks_in_groups = 0;
  for (const auto& g : thinking["groups"]) tasks_in_groups += g["tasks"].get<int>();
  CHECK(tasks_in_groups == 8);
  CHECK(thinking["per_kind"].size() == 8);
  REQUIRE(j["tasks"].size() == 20);
  for (const char* field : {"config", "kind", "index", "question", "expected", "got", "correct", "tokens", "seconds"})
    CHECK(j["tasks"][0].contains(field));

  const std::string md = read_text(out / "eval.md");
  CHECK(md == r.markdown());
  for (const auto& c : r.groups)
    CHECK(md.find("| " + c.config + " | " + c.group + " | ") != std::string::npos);
  CHECK(count_lines_starting(md, "| thinking-nozoom | ") == 2 + 1);  // visual, small_digits; settings

  const Image png = Image::load(out / "eval.png");
  CHECK(png.width() == 960);
  CHECK(png.height() == 600);
}

TEST_CASE("eval: the same seed gives the same answers, another seed other tasks") {
  EvalOptions o = quick_options({"instant", "deepconf-8"}, {"arithmetic", "count_color"}, 1);
  const EvalReport a = evaluate(seer(), o), b = evaluate(seer(), o);
  REQUIRE(a.tasks.size() == 4);
  REQUIRE(b.tasks.size() == a.tasks.size());
  for (size_t i = 0; i < a.tasks.size(); ++i) {
    CHECK(a.tasks[i].question == b.tasks[i].question);
    CHECK(a.tasks[i].seed == b.tasks[i].seed);
    CHECK(a.tasks[i].got == b.tasks[i].got);
    CHECK(a.tasks[i].tokens == b.tasks[i].tokens);
  }
  CHECK(a.configs[1].agents == 8);
  CHECK(a.tasks[2].agents == 8);
  CHECK(a.tasks[0].seed != a.tasks[1].seed);  // a request seed per task...
  CHECK(a.tasks[0].seed == a.tasks[2].seed);  // ...the same in every configuration

  // The training seed gives other tasks (arithmetic: other questions; a
  // picture's question may repeat, its picture differs).
  o.seed = 1;
  o.configs = {"instant"};
  o.kinds = {"arithmetic"};
  const EvalReport c = evaluate(seer(), o);
  REQUIRE(c.tasks.size() == 1);
  CHECK(c.tasks[0].question != a.tasks[0].question);

  // The held-out phrasings: the same numbers (so the same answer), other words.
  o.seed = a.seed;
  o.held_out_phrasings = true;
  const EvalReport d = evaluate(seer(), o);
  REQUIRE(d.tasks.size() == 1);
  CHECK(d.tasks[0].expected == a.tasks[0].expected);
  CHECK(d.tasks[0].question != a.tasks[0].question);
  CHECK(d.held_out_phrasings);
  CHECK(d.to_json().find("\"phrasings\": \"held_out\"") != std::string::npos);
  CHECK(d.markdown().find("in the held-out phrasings") != std::string::npos);
}

TEST_CASE("eval: tasks answered one by one elsewhere (evaluate_task) give the report evaluate() makes") {
  EvalOptions o = quick_options({"instant", "thinking-nozoom", "deepconf-8"}, {"arithmetic", "count_color"}, 2);
  const std::vector<EvalTaskRef> tasks = eval_tasks(seer(), o);
  // Configuration by configuration, kind by kind, by index; thinking-nozoom on the visual kind only.
  REQUIRE(tasks.size() == 10);
  CHECK((tasks[0].config == "instant" && tasks[0].kind == "arithmetic" && tasks[0].index == 0));
  CHECK((tasks[3].config == "instant" && tasks[3].kind == "count_color" && tasks[3].index == 1));
  CHECK((tasks[4].config == "thinking-nozoom" && tasks[4].kind == "count_color" && tasks[4].index == 0));
  CHECK((tasks[9].config == "deepconf-8" && tasks[9].kind == "count_color" && tasks[9].index == 1));
  const EvalReport here = evaluate(seer(), o);
  REQUIRE(here.tasks.size() == tasks.size());

  // Answered in another order (as a cluster finishes them), then handed to evaluate().
  auto name = [](const EvalTaskRef& t) { return t.config + "/" + t.kind + "/" + std::to_string(t.index); };
  std::map<std::string, EvalAnswer> answers;
  for (auto it = tasks.rbegin(); it != tasks.rend(); ++it) answers[name(*it)] = evaluate_task(seer(), o, *it);
  std::vector<std::string> asked;
  o.answer = [&](const EvalTaskRef& t) {
    asked.push_back(name(t));
    return answers.at(name(t));
  };
  const EvalReport there = evaluate(seer(), o);
  REQUIRE(asked.size() == tasks.size());
  REQUIRE(there.tasks.size() == tasks.size());
  for (size_t i = 0; i < tasks.size(); ++i) {
    CAPTURE(name(tasks[i]));
    CHECK(asked[i] == name(tasks[i]));
    CHECK(there.tasks[i].question == here.tasks[i].question);
    CHECK(there.tasks[i].seed == here.tasks[i].seed);
    CHECK(there.tasks[i].got == here.tasks[i].got);
    CHECK(there.tasks[i].tokens == here.tasks[i].tokens);
    CHECK(there.tasks[i].seconds == answers.at(name(tasks[i])).seconds);
  }
  // The whole report, times aside.
  auto timeless = [](EvalReport r) {
    r.seconds = 0;
    for (auto& t : r.tasks) t.seconds = 0;
    r.summarize();
    return r.to_json();
  };
  CHECK(timeless(there) == timeless(here));

  CHECK_THROWS_WITH_AS(evaluate_task(seer(), o, {"nothing", "arithmetic", 0}), doctest::Contains("nothing"), Error);
  CHECK_THROWS_WITH_AS(evaluate_task(seer(), o, {"instant", "nothing", 0}), doctest::Contains("nothing"), Error);
  // An answer that is not a trace is named.
  o.answer = [](const EvalTaskRef&) { return EvalAnswer{"{}", 0}; };
  CHECK_THROWS_WITH_AS(evaluate(seer(), o), doctest::Contains("the answer of instant/arithmetic/0"), Error);
}

TEST_CASE("eval: deepconf-8 has its own stop settings unless they are set, and they reach the engine") {
  auto out = temp_dir("eval-deepconf-stops");
  EvalOptions o = quick_options({"thinking", "deepconf-8"}, {"arithmetic"}, 1);
  o.out_dir = out;
  o.write_traces = true;
  auto requests = [&] {
    std::vector<nlohmann::json> v;
    std::istringstream lines(read_text(out / "traces.jsonl"));
    for (std::string line; std::getline(lines, line);) v.push_back(nlohmann::json::parse(line)["trace"]["request"]);
    return v;
  };

  const Request engine;
  EvalReport r = evaluate(seer(), o);
  REQUIRE(r.configs.size() == 2);
  const EvalConfig &thinking = r.configs[0], &deepconf = r.configs[1];
  CHECK(thinking.keep_fraction == engine.keep_fraction);
  CHECK(thinking.consensus_share == 0);
  CHECK(thinking.scatter_stop == 0);
  CHECK(thinking.warmup_agents == 0);
  CHECK(deepconf.keep_fraction == kDeepConfStops.keep_fraction);
  CHECK(deepconf.consensus_share == kDeepConfStops.consensus_share);
  CHECK(deepconf.scatter_stop == kDeepConfStops.scatter_stop);
  CHECK(deepconf.warmup_agents == kDeepConfStops.warmup_agents);
  CHECK(kDeepConfStops.scatter_stop == 5);  // the values docs/eval.md and the model card report
  CHECK(kDeepConfStops.consensus_share == 0.6);
  auto req = requests();
  REQUIRE(req.size() == 2);
  CHECK(req[0]["keep_fraction"] == 0.9);
  CHECK(req[0]["scatter_stop"] == 0);
  CHECK(req[1]["keep_fraction"] == 1.0);
  CHECK(req[1]["consensus_share"] == 0.6);
  CHECK(req[1]["scatter_stop"] == 5);
  CHECK(r.markdown().find("| deepconf-8 | thinking | 8 | 8 | 4 | on | on, share 0.6, scatter 5 | 8 | 1 | 3, first |") !=
        std::string::npos);

  // Set, a setting applies to both.
  o.keep_fraction = 0.5;
  o.scatter_stop = 0;
  r = evaluate(seer(), o);
  for (const EvalConfig& c : r.configs) {
    CAPTURE(c.name);
    CHECK(c.keep_fraction == 0.5);
    CHECK(c.scatter_stop == 0);
  }
  CHECK(r.configs[1].consensus_share == kDeepConfStops.consensus_share);  // still its own
  req = requests();
  REQUIRE(req.size() == 2);
  CHECK(req[1]["keep_fraction"] == 0.5);
  CHECK(req[1]["scatter_stop"] == 0);
}

TEST_CASE("eval: with write_traces, traces.jsonl holds every task's whole reasoning trace, one per line") {
  auto out = temp_dir("eval-traces");
  EvalOptions o = quick_options({"instant", "contemplating"}, {"arithmetic", "count_color"}, 1);
  o.out_dir = out;
  o.write_traces = true;
  const EvalReport r = evaluate(seer(), o);
  REQUIRE(r.tasks.size() == 4);
  std::istringstream lines(read_text(out / "traces.jsonl"));
  std::string line;
  size_t i = 0;
  for (; std::getline(lines, line); ++i) {
    REQUIRE(i < r.tasks.size());
    const EvalTaskResult& t = r.tasks[i];
    CAPTURE(t.config);
    const auto j = nlohmann::json::parse(line);
    CHECK(j["config"] == t.config);
    CHECK(j["kind"] == t.kind);
    CHECK(j["index"] == t.index);
    CHECK(j["correct"] == t.correct);
    const auto& trace = j["trace"];
    CHECK(trace["mode_used"] == (t.config == "instant" ? "instant" : "contemplating"));
    CHECK(trace["agents"].size() == static_cast<size_t>(t.agents));
    CHECK(normalize_answer(trace["final_answer"].get<std::string>()) == t.got);
    CHECK(trace["usage"]["generated_tokens"] == t.tokens);
    if (t.config == "contemplating") CHECK(!trace["workspace"].get<std::string>().empty());
  }
  CHECK(i == r.tasks.size());

  // A second run starts the file over; without an output folder there is nowhere to write.
  o.configs = {"instant"};
  evaluate(seer(), o);
  CHECK(count_lines_starting(read_text(out / "traces.jsonl"), "{") == 2);
  o.out_dir.clear();
  CHECK_THROWS_WITH_AS(evaluate(seer(), o), doctest::Contains("write_traces"), Error);
}

TEST_CASE("eval: bad options, a model that cannot load, and visual kinds without vision are named") {
  EvalOptions o = quick_options({"instant"}, {"arithmetic"}, 1);
  o.model_dir = temp_dir("eval-nothing") / "missing";
  CHECK_THROWS_WITH_AS(evaluate(o), doctest::Contains("missing"), Error);

  o.configs = {"instant", "fast"};
  CHECK_THROWS_WITH_AS(evaluate(seer(), o), doctest::Contains("configs: unknown configuration 'fast'"), Error);
  o.configs = {"instant"};
  o.kinds = {"haiku"};
  CHECK_THROWS_WITH_AS(evaluate(seer(), o), doctest::Contains("kinds: unknown task kind 'haiku'"), Error);
  o.kinds = {};
  o.tasks_per_kind = 0;
  CHECK_THROWS_WITH_AS(evaluate(seer(), o), doctest::Contains("tasks_per_kind"), Error);
  o.tasks_per_kind = 1;
  o.keep_fraction = 0;
  CHECK_THROWS_WITH_AS(evaluate(seer(), o), doctest::Contains("keep_fraction"), Error);
  o.keep_fraction = 0.9;
  o.scatter_stop = 1;
  CHECK_THROWS_WITH_AS(evaluate(seer(), o), doctest::Contains("scatter_stop"), Error);
  o.scatter_stop = 0;

  // A text-only model: every kind means the text kinds (with a note); a visual kind asked for is refused.
  const Engine blind = Engine::load(tiny_model(
      "eval-text", "--arch qwen3 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --head-dim 16 --intermediate 64 --tie "
                   "--seed 62 --tokenizer-from " + default_tokenizer()));
  EvalOptions t = quick_options({"instant", "thinking-nozoom"}, {}, 1);
  const EvalReport r = evaluate(blind, t);
  CHECK(r.kinds == kText);
  CHECK(r.tasks.size() == 4);
  REQUIRE(r.notes.size() == 2);
  CHECK(r.notes[0].find("no vision") != std::string::npos);
  CHECK(r.notes[1].find("thinking-nozoom was not run") != std::string::npos);
  t.kinds = {"units", "small_digits"};
  try {
    evaluate(blind, t);
    FAIL("a visual kind was asked of a model without vision");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::unsupported);
    CHECK(e.field() == "vision_config");
    CHECK(e.message().find("small_digits") != std::string::npos);
  }
}
