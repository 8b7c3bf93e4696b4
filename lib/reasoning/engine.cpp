#include "musespark/engine.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "musespark/error.hpp"
#include "musespark/runtime.hpp"
#include "reasoning/agents.hpp"
#include "reasoning/modes.hpp"

namespace musespark {

EffortBudgets effort_budgets(Effort effort) {
  // Contemplating runs two rounds of half the thinking each, with more
  // agents batched, so its wall time stays near Thinking's.
  switch (effort) {
    case Effort::minimal: return {2, 128, 4, 2, 64, 64};
    case Effort::low: return {4, 256, 6, 4, 128, 96};
    case Effort::medium: return {6, 512, 8, 6, 256, 128};
    case Effort::high: return {8, 1024, 12, 8, 512, 192};
    case Effort::xhigh: return {12, 2048, 16, 12, 1024, 256};
  }
  return {6, 512, 8, 6, 256, 128};
}

const char* event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::agent_started: return "agent_started";
    case EventKind::text_delta: return "text_delta";
    case EventKind::step: return "step";
    case EventKind::agent_finished: return "agent_finished";
    case EventKind::vote_update: return "vote_update";
    case EventKind::escalation: return "escalation";
    case EventKind::final_answer: return "final";
  }
  return "unknown";
}

struct Engine::Impl {
  std::shared_ptr<const Model> model;
  Tokenizer tokenizer;
  ChatTemplate chat;
  std::vector<int32_t> stop_token_ids;
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::Engine(Engine&&) noexcept = default;
Engine& Engine::operator=(Engine&&) noexcept = default;
Engine::~Engine() = default;

Engine Engine::load(const std::filesystem::path& directory, const EngineOptions& options) {
  auto model = Model::load(directory, options.model);
  Tokenizer tokenizer = Tokenizer::load(directory);
  ChatTemplate chat = ChatTemplate::load(directory);
  std::vector<int32_t> stops;
  auto add = [&](int32_t id) {
    if (std::find(stops.begin(), stops.end(), id) == stops.end()) stops.push_back(id);
  };
  for (int32_t id : model->info().eos_token_ids) add(id);
  if (auto eos = tokenizer.eos_id()) add(*eos);
  for (const auto& name : chat.stop_tokens())
    if (auto id = tokenizer.token_id(name)) add(*id);
  return Engine(std::make_unique<Impl>(Impl{std::move(model), std::move(tokenizer), std::move(chat), std::move(stops)}));
}

const ModelInfo& Engine::model_info() const noexcept { return impl_->model->info(); }
const Tokenizer& Engine::tokenizer() const noexcept { return impl_->tokenizer; }
const ChatTemplate& Engine::chat_template() const noexcept { return impl_->chat; }
std::shared_ptr<const Model> Engine::model() const noexcept { return impl_->model; }

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& message) {
  throw Error(ErrorKind::invalid_argument, "", field, message);
}

void validate(const Request& r) {
  if (r.messages.empty()) bad("messages", "no messages: ask something");
  bool user = false;
  for (size_t i = 0; i < r.messages.size(); ++i) {
    const auto& role = r.messages[i].role;
    if (role != "system" && role != "user" && role != "assistant")
      bad(fmt::format("messages[{}].role", i), "expected system, user or assistant, got '" + role + "'");
    user = user || role == "user";
  }
  if (!user) bad("messages", "there is no user message");
  for (size_t i = 0; i < r.messages.size(); ++i)
    for (size_t j = 0; j < r.messages[i].parts.size(); ++j)
      if (r.messages[i].parts[j].kind == Part::Kind::image && !r.messages[i].parts[j].image)
        bad(fmt::format("messages[{}].parts[{}].image", i, j), "an image part without an image");
  if (r.max_zooms < 0) bad("max_zooms", "must not be negative");
  const Budgets& b = r.budgets;
  if (b.agents < 0 || b.agents > 64) bad("budgets.agents", fmt::format("must be 0 (by effort) to 64, got {}", b.agents));
  if (b.refine_agents < 0 || b.refine_agents > 64)
    bad("budgets.refine_agents", fmt::format("must be 0 (by effort) to 64, got {}", b.refine_agents));
  if (b.max_thinking_tokens < 0) bad("budgets.max_thinking_tokens", "must not be negative");
  if (b.max_answer_tokens < 0) bad("budgets.max_answer_tokens", "must not be negative");
  if (b.max_total_tokens < 0) bad("budgets.max_total_tokens", "must not be negative");
  if (b.deadline_ms < 0) bad("budgets.deadline_ms", "must not be negative");
  validate_stops(r);
  if (!(r.auto_confidence_threshold >= 0)) bad("auto_confidence_threshold", "must be 0 (automatic) or positive");
  if (!(r.auto_agreement_threshold >= 0)) bad("auto_agreement_threshold", "must not be negative");
  if (!r.extractor.extract || !r.extractor.normalize) bad("extractor", "both functions must be set");
  if (r.sampling) validate(*r.sampling);
}

}  // namespace

void Engine::check(const Request& request) const {
  validate(request);
  const ModelInfo& info = impl_->model->info();
  detail::check_prompt_fits(detail::first_prompt_length(info, impl_->tokenizer, impl_->chat, request), info.max_context);
}

Result Engine::ask(const Request& request, const EventCallback& on_event) const {
  check(request);
  const auto started = detail::Clock::now();

  ReasoningTrace trace;
  RequestRecord& rec = trace.request;
  const detail::ModeBudgets b = detail::budgets_for(request, request.mode);
  rec.mode = request.mode;
  rec.effort = request.effort;
  rec.agents = b.agents;
  rec.refine_agents = b.refine_agents;
  rec.rounds = request.mode == Mode::contemplating ? 2 : 1;
  rec.max_thinking_tokens = b.max_thinking_tokens;
  rec.max_answer_tokens = b.max_answer_tokens;
  rec.max_total_tokens = request.budgets.max_total_tokens;
  rec.deadline_ms = request.budgets.deadline_ms;
  rec.seed = request.seed;
  const SamplingParams s = request.sampling.value_or(default_agent_sampling(request.mode != Mode::instant));
  rec.temperature = s.temperature;
  rec.top_p = s.top_p;
  rec.early_stop = request.early_stop;
  rec.consensus_stop = request.consensus_stop;
  rec.warmup_first = request.warmup_first;
  rec.confidence_window = request.confidence_window;
  rec.keep_fraction = request.keep_fraction;
  rec.consensus_share = request.consensus_share;
  rec.scatter_stop = request.scatter_stop;
  for (auto it = request.messages.rbegin(); it != request.messages.rend(); ++it)
    if (it->role == "user") {
      rec.question = it->joined_text();
      break;
    }

  detail::RequestState state;
  if (request.budgets.deadline_ms > 0)
    state.deadline = started + std::chrono::milliseconds(request.budgets.deadline_ms);
  state.max_total_tokens = request.budgets.max_total_tokens;
  state.on_event = &on_event;

  Runtime runtime(impl_->model);
  detail::ModeContext ctx{*impl_->model, runtime, impl_->tokenizer, impl_->chat, request, impl_->stop_token_ids, state,
                          trace};
  // Every image is encoded once, and shared by every agent and round.
  for (const auto& m : request.messages)
    for (const auto& p : m.parts)
      if (p.kind == Part::Kind::image) {
        ctx.images.push_back(p.image.get());
        auto t0 = detail::Clock::now();
        ctx.image_embeddings.push_back(impl_->model->encode_image(*p.image));
        state.usage.prefill_seconds += std::chrono::duration<double>(detail::Clock::now() - t0).count();
      }
  switch (request.mode) {
    case Mode::instant: detail::run_instant(ctx); break;
    case Mode::thinking: detail::run_thinking(ctx); break;
    case Mode::contemplating: detail::run_contemplating(ctx); break;
    case Mode::automatic: detail::run_auto(ctx); break;
  }

  trace.usage = state.usage;
  trace.usage.total_seconds = std::chrono::duration<double>(detail::Clock::now() - started).count();
  trace.usage.tokens_per_second =
      trace.usage.decode_seconds > 0 ? trace.usage.generated_tokens / trace.usage.decode_seconds : 0;

  Result result;
  for (const auto& a : trace.agents)
    if (a.id == trace.final_agent) result.answer = a.answer;
  result.text = trace.final_text;
  result.trace = std::move(trace);
  Event e{EventKind::final_answer};
  e.trace = &result.trace;
  e.text = result.answer;
  if (on_event) on_event(e);
  return result;
}

}  // namespace musespark
