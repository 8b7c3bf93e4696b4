// musespark ask --model DIR [--mode instant|thinking|contemplating|auto] [--effort LEVEL]
//                [--agents N] [--max-thinking-tokens N] [--deadline-ms N] [--seed S] [--json] QUESTION
//
// While it works, one line per agent on stderr (tokens, confidence, state);
// then the answer, the vote and a short summary on stdout. --json prints the
// whole trace instead.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>

#include <fmt/format.h>

#include "commands.hpp"
#include "common.hpp"
#include "model_args.hpp"
#include "musespark/engine.hpp"
#include "musespark/error.hpp"
#include "musespark/render.hpp"

namespace musespark::cli {
namespace {

struct AskArgs {
  ModelArgs model;
  std::string question;
  std::vector<std::string> images;
  std::string render;
  std::string prefix;
  int32_t max_zooms = 2;
  std::string mode = "auto";
  std::string effort = "medium";
  Budgets budgets;
  std::optional<float> temperature;
  uint64_t seed = 0;
  bool no_early_stop = false;
  bool no_consensus = false;
  double consensus_share = Request{}.consensus_share;
  int32_t scatter_stop = Request{}.scatter_stop;
  bool together = false;
  bool aggregator = false;
  bool token_confidence = false;
  bool quiet = false;
  bool json = false;
};

// The live view: one line per agent, redrawn in place on a terminal; on a
// pipe, a line when an agent finishes.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled), tty_(enabled && isatty(STDERR_FILENO)) {}

  bool on_event(const Event& e) {
    if (!enabled_) return true;
    switch (e.kind) {
      case EventKind::agent_started: {
        Line& l = lines_[e.agent];
        l.round = e.round;
        l.state = "thinking";
        break;
      }
      case EventKind::text_delta: {
        Line& l = lines_[e.agent];
        l.tokens = e.tokens;
        l.confidence = e.confidence;
        l.state = e.in_thinking ? "thinking" : "answering";
        l.tail += std::string(e.text);
        if (l.tail.size() > 400) l.tail = utf8_tail(l.tail, 200);
        break;
      }
      case EventKind::agent_finished: {
        Line& l = lines_[e.agent];
        const AgentTrace& t = *e.agent_trace;
        l.tokens = t.thinking_tokens + t.answer_tokens;
        l.confidence = t.confidence.mean;
        l.state = agent_stop_name(t.stop_reason);
        l.done = true;
        l.answer = t.answer;
        if (!tty_) std::fprintf(stderr, "%s\n", render(e.agent, l).c_str());
        break;
      }
      case EventKind::escalation:
        if (tty_) clear();
        std::fprintf(stderr, "escalating %s -> %s (%s: %.3g vs %.3g)\n", mode_name(e.escalation->from),
                     mode_name(e.escalation->to), e.escalation->reason.c_str(), e.escalation->value,
                     e.escalation->threshold);
        lines_.clear();
        drawn_ = 0;
        break;
      case EventKind::final_answer:
        if (tty_) draw(true);
        break;
      default: break;
    }
    if (tty_) draw(false);
    return true;
  }

 private:
  struct Line {
    int32_t round = 1;
    int64_t tokens = 0;
    double confidence = 0;
    std::string state;
    std::string tail;
    std::string answer;
    bool done = false;
  };

  // The last `max_bytes` bytes of `s`, starting on a UTF-8 character boundary.
  static std::string utf8_tail(const std::string& s, size_t max_bytes) {
    if (s.size() <= max_bytes) return s;
    size_t from = s.size() - max_bytes;
    while (from < s.size() && (static_cast<unsigned char>(s[from]) & 0xC0) == 0x80) ++from;
    return s.substr(from);
  }

  static std::string one_line(std::string s) {
    for (char& c : s)
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    return s;
  }

  std::string render(int32_t id, const Line& l) const {
    std::string s = fmt::format("agent {:>2} r{}  {:>5} tok  conf {:5.2f}  {:<14}", id, l.round, l.tokens, l.confidence,
                                l.state);
    std::string extra = l.done ? (l.answer.empty() ? "" : "answer: " + one_line(l.answer)) : one_line(l.tail);
    if (extra.size() > 48) extra = "…" + utf8_tail(extra, 47);
    return s + extra;
  }

  void clear() {
    if (drawn_ > 0) std::fprintf(stderr, "\x1b[%dA\x1b[J", drawn_);
    drawn_ = 0;
  }

  void draw(bool force) {
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(80)) return;
    last_ = now;
    clear();
    for (const auto& [id, l] : lines_) std::fprintf(stderr, "\x1b[2K%s\n", render(id, l).c_str());
    drawn_ = static_cast<int>(lines_.size());
    std::fflush(stderr);
  }

  bool enabled_, tty_;
  std::map<int32_t, Line> lines_;
  int drawn_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

void print_summary(const Result& r) {
  const ReasoningTrace& t = r.trace;
  std::printf("%s\n", r.answer.empty() ? "(no answer)" : r.answer.c_str());
  if (!t.votes.empty()) {
    std::printf("\nvote (%s, %zu agents):\n", mode_name(t.mode_used), t.agents.size());
    for (const auto& v : t.votes)
      std::printf("  %-24s %2d vote%s  weight %6.2f  %5.1f%%\n", v.display.c_str(), v.votes, v.votes == 1 ? " " : "s",
                  v.weight, 100 * v.share);
  }
  std::map<std::string, int> stops;
  for (const auto& a : t.agents) stops[agent_stop_name(a.stop_reason)]++;
  std::string stop_text;
  for (const auto& [name, n] : stops) stop_text += fmt::format("{}{} {}", stop_text.empty() ? "" : ", ", n, name);
  std::printf("\n%zu agents (%s); %lld tokens generated in %.2f s (%.1f tok/s); prompt %lld tokens in %.2f s\n",
              t.agents.size(), stop_text.c_str(), static_cast<long long>(t.usage.generated_tokens),
              t.usage.decode_seconds, t.usage.tokens_per_second, static_cast<long long>(t.usage.prompt_tokens),
              t.usage.prefill_seconds);
}

void run(const AskArgs& a) {
  EngineOptions options;
  options.model = a.model.options();
  Engine engine = Engine::load(a.model.model_dir, options);
  Request request = Request::question(a.question, parse_mode(a.mode, "--mode"), parse_effort(a.effort, "--effort"));
  if (!a.images.empty()) {
    std::vector<Image> images;
    for (const auto& file : a.images) images.push_back(Image::load(file));
    request.messages = {Message::with_images("user", std::move(images), a.question)};
  } else if (!a.render.empty()) {
    throw Error(ErrorKind::invalid_argument, "", "--render", "needs an --image to draw on");
  }
  request.max_zooms = a.max_zooms;
  request.assistant_prefix = a.prefix;
  request.budgets = a.budgets;
  request.seed = a.seed;
  request.early_stop = !a.no_early_stop;
  request.consensus_stop = !a.no_consensus;
  request.consensus_share = a.consensus_share;
  request.scatter_stop = a.scatter_stop;
  request.warmup_first = !a.together;
  request.aggregator = a.aggregator;
  request.record_token_confidence = a.token_confidence;
  if (a.temperature) {
    SamplingParams s = default_agent_sampling(*a.temperature > 0);
    s.temperature = *a.temperature;
    request.sampling = s;
  }
  Progress progress(!a.quiet);
  Result result = engine.ask(request, [&](const Event& e) { return progress.on_event(e); });
  if (a.json) {
    std::printf("%s\n", result.trace.to_json(2).c_str());
  } else {
    print_summary(result);
  }
  if (!a.render.empty()) {
    const auto* first = request.messages[0].parts[0].image.get();
    render_visual_actions(*first, result.trace, 0).save_png(a.render);
    std::fprintf(stderr, "drew %zu visual actions on %s\n", result.trace.visual_actions.size(), a.render.c_str());
  }
}

}  // namespace

void add_ask_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<AskArgs>();
  auto* cmd = app.add_subcommand("ask", "answer a question in a reasoning mode, showing the reasoning");
  args->model.add_to(*cmd);
  cmd->add_option("question", args->question, "the question")->required();
  cmd->add_option("--image", args->images, "an image (PNG or JPEG) to ask about; repeatable")->check(CLI::ExistingFile);
  cmd->add_option("--render", args->render, "write the first image with every agent's boxes and zooms drawn on it (PNG)");
  cmd->add_option("--max-zooms", args->max_zooms, "zoom-ins per agent")->check(CLI::NonNegativeNumber);
  cmd->add_option("--prefix", args->prefix, "text every agent's reply starts with, as if the model wrote it");
  cmd->add_option("--mode", args->mode, "instant, thinking, contemplating or auto")
      ->check(CLI::IsMember({"instant", "thinking", "contemplating", "auto"}));
  cmd->add_option("--effort", args->effort, "minimal, low, medium, high or xhigh")
      ->check(CLI::IsMember({"minimal", "low", "medium", "high", "xhigh"}));
  cmd->add_option("--agents", args->budgets.agents, "agents (Contemplating: first round)")->check(CLI::Range(1, 64));
  cmd->add_option("--refine-agents", args->budgets.refine_agents, "Contemplating: second-round agents")
      ->check(CLI::Range(1, 64));
  cmd->add_option("--max-thinking-tokens", args->budgets.max_thinking_tokens, "per agent and round")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-answer-tokens", args->budgets.max_answer_tokens)->check(CLI::PositiveNumber);
  cmd->add_option("--max-total-tokens", args->budgets.max_total_tokens, "all agents together")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--deadline-ms", args->budgets.deadline_ms)->check(CLI::PositiveNumber);
  cmd->add_option("--temperature", args->temperature, "agents' temperature (default: 0.7 thinking, 0 instant)");
  cmd->add_option("--seed", args->seed);
  cmd->add_flag("--no-early-stop", args->no_early_stop, "no confidence early stopping");
  cmd->add_flag("--no-consensus", args->no_consensus, "no consensus stop");
  cmd->add_option("--consensus-share", args->consensus_share,
                  "consensus stop also once the warm-up agents agree this much (0: off)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--scatter-stop", args->scatter_stop,
                  "consensus stop also once this many agents voted and no two agreed (0: off; else at least 2)")
      ->check(CLI::Range(0, 64));
  cmd->add_flag("--together", args->together,
                "early stop without holding agents back for the warm-ups (no extra wall time, fewer tokens saved)");
  cmd->add_flag("--aggregator", args->aggregator, "Contemplating: an aggregator agent writes the final answer");
  cmd->add_flag("--token-confidence", args->token_confidence, "per-token confidence in the trace");
  cmd->add_flag("--quiet", args->quiet, "no live progress");
  cmd->add_flag("--json", args->json, "print the whole reasoning trace as JSON");
  cmd->callback([args, &exit_code] { exit_code = run_command([&] { run(*args); }); });
}

}  // namespace musespark::cli
