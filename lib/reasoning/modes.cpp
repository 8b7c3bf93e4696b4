#include "reasoning/modes.hpp"

#include "musespark/error.hpp"

#include <algorithm>
#include <cmath>

#include "common/rng.hpp"
#include "reasoning/confidence.hpp"
#include "reasoning/vote.hpp"
#include "reasoning/workspace.hpp"

namespace musespark::detail {
namespace {

// The placeholder text of one image: start marker, one image token per
// embedding row, end marker. The tokenizer turns each into its special token.
std::string image_placeholder(const ModelInfo& info) {
  std::string s = info.vision_start_token;
  for (int64_t i = 0; i < info.image_tokens; ++i) s += info.image_token;
  return s + info.vision_end_token;
}

std::vector<ChatMessage> chat_messages(const ModelInfo& info, const std::vector<Message>& messages) {
  std::vector<ChatMessage> out;
  for (const auto& m : messages) {
    std::string content;
    for (const auto& p : m.parts) content += p.kind == Part::Kind::image ? image_placeholder(info) : p.text;
    out.push_back({m.role, std::move(content)});
  }
  return out;
}

std::vector<ChatMessage> chat_messages(const ModeContext& ctx, const std::vector<Message>& messages) {
  return chat_messages(ctx.model.info(), messages);
}

bool ends_with(std::string_view s, std::string_view tail) {
  return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
}

struct Prompt {
  std::vector<int32_t> tokens;
  bool opens_think = false;
  std::vector<Injection> injections;  // the images' embeddings at their placeholder runs
};

Prompt make_prompt(const ModeContext& ctx, const std::vector<ChatMessage>& messages, bool thinking) {
  std::string text = ctx.chat.render(messages, true, thinking);
  Prompt p;
  p.opens_think = thinking && (ends_with(text, "<think>\n") || ends_with(text, "<think>"));
  p.tokens = ctx.tokenizer.encode(text);
  if (!ctx.images.empty()) {
    // Each image is one run of exactly image_tokens placeholder tokens, in order.
    const ModelInfo& info = ctx.model.info();
    size_t image = 0;
    for (size_t i = 0; i < p.tokens.size();) {
      if (p.tokens[i] != info.image_token_id) {
        ++i;
        continue;
      }
      size_t j = i;
      while (j < p.tokens.size() && p.tokens[j] == info.image_token_id) ++j;
      if (image >= ctx.images.size() || static_cast<int64_t>(j - i) != info.image_tokens)
        throw Error(ErrorKind::invalid_argument, "", "messages",
                    "the text contains the image placeholder token " + info.image_token);
      p.injections.push_back({static_cast<int64_t>(i), ctx.image_embeddings[image++]});
      i = j;
    }
    if (image != ctx.images.size())
      throw Error(ErrorKind::internal, "", "messages", "an image's placeholder tokens were not found in the prompt");
  }
  return p;
}

SamplingParams agent_sampling(const Request& r, bool instant) {
  return r.sampling.value_or(default_agent_sampling(!instant));
}

RoundConfig base_config(const ModeContext& ctx, const Prompt& prompt, bool thinking, int32_t thinking_tokens,
                        bool instant) {
  const Request& r = ctx.request;
  RoundConfig c;
  c.prompt = prompt.tokens;
  c.thinking = thinking;
  c.prompt_opens_think = prompt.opens_think;
  c.max_thinking_tokens = thinking_tokens;
  c.max_answer_tokens = budgets_for(r, Mode::instant).max_answer_tokens;
  c.sampling = agent_sampling(r, instant);
  c.stop_token_ids = ctx.stop_token_ids;
  c.early_stop = r.early_stop && !instant;
  c.keep_fraction = r.keep_fraction;
  c.warmup_first = r.warmup_first;
  c.confidence_window = r.confidence_window;
  c.confidence_top_k = r.confidence_top_k;
  c.consensus_stop = r.consensus_stop && !instant;
  c.consensus_share = r.consensus_share;
  c.scatter_stop = r.scatter_stop;
  c.record_token_confidence = r.record_token_confidence;
  c.extractor = &r.extractor;
  c.prompt_injections = prompt.injections;
  c.assistant_prefix = r.assistant_prefix;
  if (!ctx.images.empty() && !instant) {
    const ModelInfo& info = ctx.model.info();
    c.model = &ctx.model;
    c.zoom_image = ctx.images.front();
    c.max_zooms = r.max_zooms;
    c.image_run = ctx.tokenizer.encode(image_placeholder(info));
    c.image_run_offset = info.vision_start_token.empty() ? 0 : 1;
  }
  return c;
}

std::vector<AgentPlan> plans(ModeContext& ctx, int32_t count, int32_t round, const std::string& role) {
  const int32_t warmups = ctx.request.warmup_agents > 0 ? ctx.request.warmup_agents : std::max(2, count / 4);
  std::vector<AgentPlan> out;
  for (int32_t i = 0; i < count; ++i) {
    AgentPlan p;
    p.id = ctx.state.next_agent_id++;
    p.round = round;
    p.role = role;
    // Well-mixed per-agent seeds from (request seed, round, index).
    p.seed = splitmix64(ctx.request.seed ^ splitmix64((uint64_t(round) << 32) | uint64_t(i)));
    p.warmup = i < warmups;
    out.push_back(p);
  }
  return out;
}

// Sets the final answer from a vote: the winning answer, as written by its
// most confident agent.
void decide(ReasoningTrace& trace, const std::vector<VoteEntry>& votes) {
  trace.votes = votes;
  trace.final_answer.clear();
  trace.final_text.clear();
  trace.final_agent = -1;
  if (votes.empty()) return;
  trace.final_answer = votes.front().answer;
  double best = -1;
  for (const auto& a : trace.agents) {
    if (std::find(votes.front().agents.begin(), votes.front().agents.end(), a.id) == votes.front().agents.end()) continue;
    if (a.vote_weight > best) {
      best = a.vote_weight;
      trace.final_agent = a.id;
      trace.final_text = a.answer_text;
    }
  }
}

void append(ReasoningTrace& trace, RoundResult& r) {
  for (auto& a : r.agents) trace.agents.push_back(std::move(a));
  for (auto& v : r.visual_actions) trace.visual_actions.push_back(std::move(v));
  if (r.threshold) trace.early_stop_threshold = r.threshold;
}

void escalate(ModeContext& ctx, Mode from, Mode to, const std::string& reason, double value, double threshold) {
  Escalation e{from, to, reason, value, threshold};
  ctx.trace.escalations.push_back(e);
  Event ev{EventKind::escalation};
  ev.escalation = &ctx.trace.escalations.back();
  ctx.state.emit(ev);
}

// Shares with `base` (holding `first`) the tokens the two prompts have in
// common, so that part is not prefilled again.
void share_prefix(RoundConfig& c, const std::vector<int32_t>& first, SequenceId base) {
  size_t common = 0;
  while (common < first.size() && common + 1 < c.prompt.size() && first[common] == c.prompt[common]) ++common;
  // Never split an image: its rows are injected as a whole.
  for (const auto& inj : c.prompt_injections)
    if (inj.offset < static_cast<int64_t>(common) && inj.offset + inj.embeddings->rows() > static_cast<int64_t>(common))
      common = static_cast<size_t>(inj.offset);
  if (common > 0) {
    c.base = base;
    c.shared_prefix = static_cast<int64_t>(common);
  }
}

}  // namespace

int64_t first_prompt_length(const ModelInfo& info, const Tokenizer& tokenizer, const ChatTemplate& chat,
                            const Request& request) {
  const bool thinking = request.mode == Mode::thinking || request.mode == Mode::contemplating;
  return static_cast<int64_t>(tokenizer.encode(chat.render(chat_messages(info, request.messages), true, thinking)).size());
}

ModeBudgets budgets_for(const Request& r, Mode mode) {
  const EffortBudgets e = effort_budgets(r.effort);
  const Budgets& b = r.budgets;
  ModeBudgets m;
  m.max_answer_tokens = b.max_answer_tokens > 0 ? b.max_answer_tokens : e.max_answer_tokens;
  switch (mode) {
    case Mode::instant:
      m.agents = 1;
      break;
    case Mode::thinking:
    case Mode::automatic:
      m.agents = b.agents > 0 ? b.agents : e.agents;
      m.max_thinking_tokens = b.max_thinking_tokens > 0 ? b.max_thinking_tokens : e.max_thinking_tokens;
      if (mode == Mode::automatic) m.refine_agents = b.refine_agents > 0 ? b.refine_agents : e.refine_agents;
      break;
    case Mode::contemplating:
      m.agents = b.agents > 0 ? b.agents : e.contemplate_agents;
      m.refine_agents = b.refine_agents > 0 ? b.refine_agents : e.refine_agents;
      m.max_thinking_tokens = b.max_thinking_tokens > 0 ? b.max_thinking_tokens : e.contemplate_thinking_tokens;
      break;
  }
  return m;
}

namespace {

// Instant and Thinking: one round on the conversation as it is.
void run_one_round(ModeContext& ctx, Mode mode) {
  const bool instant = mode == Mode::instant;
  ctx.trace.mode_used = mode;
  const ModeBudgets b = budgets_for(ctx.request, mode);
  Prompt prompt = make_prompt(ctx, chat_messages(ctx, ctx.request.messages), !instant);
  RoundConfig c = base_config(ctx, prompt, !instant, b.max_thinking_tokens, instant);
  auto p = plans(ctx, b.agents, 1, instant ? "instant" : "agent");
  RoundResult r = run_round(ctx.runtime, ctx.tokenizer, c, p, ctx.state);
  ctx.runtime.release(r.root);
  append(ctx.trace, r);
  decide(ctx.trace, r.votes);
}

}  // namespace

void run_instant(ModeContext& ctx) { run_one_round(ctx, Mode::instant); }

void run_thinking(ModeContext& ctx) { run_one_round(ctx, Mode::thinking); }

// The model's vision markers: an agent may write them like any other token,
// but in a prompt's text they would read as an image (and be refused).
std::vector<std::string> model_markers(const ModelInfo& info) {
  return {info.image_token, info.vision_start_token, info.vision_end_token};
}

// The chat of a refine (or aggregator) round: the workspace before the last
// user message's question, after its images (with_workspace).
std::vector<ChatMessage> with_workspace_messages(const ModeContext& ctx, const std::string& workspace) {
  return chat_messages(ctx, with_workspace(ctx.request.messages, workspace));
}

void run_contemplating(ModeContext& ctx) {
  ctx.trace.mode_used = Mode::contemplating;
  const ModeBudgets rec = budgets_for(ctx.request, Mode::contemplating);
  auto messages = chat_messages(ctx, ctx.request.messages);
  Prompt first = make_prompt(ctx, messages, true);
  RoundConfig c1 = base_config(ctx, first, true, rec.max_thinking_tokens, false);
  auto p1 = plans(ctx, rec.agents, 1, "agent");
  RoundResult r1 = run_round(ctx.runtime, ctx.tokenizer, c1, p1, ctx.state);
  const std::vector<std::string> markers = model_markers(ctx.model.info());
  ctx.trace.workspace = distill_workspace(r1.agents, r1.votes, 1200, 240, markers);
  append(ctx.trace, r1);
  decide(ctx.trace, r1.votes);  // the answer so far, should round 2 be cut short

  if (!ctx.state.cancelled && !(ctx.state.deadline && Clock::now() >= *ctx.state.deadline)) {
    // Round 2 sees the workspace before the question; the prompt up to the
    // question's text is shared with round 1's KV, not recomputed.
    Prompt second = make_prompt(ctx, with_workspace_messages(ctx, ctx.trace.workspace), true);
    RoundConfig c2 = base_config(ctx, second, true, rec.max_thinking_tokens, false);
    share_prefix(c2, first.tokens, r1.root);
    auto p2 = plans(ctx, rec.refine_agents, 2, "agent");
    RoundResult r2 = run_round(ctx.runtime, ctx.tokenizer, c2, p2, ctx.state);
    ctx.runtime.release(r2.root);
    append(ctx.trace, r2);
    // The final vote spans both rounds: every answering agent of round 1
    // and of the refine round, each with its confidence weight.
    if (!r2.votes.empty()) decide(ctx.trace, tally_agents(ctx.trace.agents));

    if (ctx.request.aggregator && !r2.votes.empty() && !ctx.state.cancelled) {
      std::vector<AgentTrace> refine_agents(ctx.trace.agents.end() - r2.agents.size(), ctx.trace.agents.end());
      std::string workspace2 = distill_workspace(refine_agents, r2.votes, 1200, 240, markers);
      Prompt third = make_prompt(ctx, with_workspace_messages(ctx, workspace2), true);
      RoundConfig c3 = base_config(ctx, third, true, rec.max_thinking_tokens, false);
      c3.sampling.temperature = 0;  // the aggregator writes, it does not explore
      c3.early_stop = false;
      c3.consensus_stop = false;
      share_prefix(c3, first.tokens, r1.root);
      auto p3 = plans(ctx, 1, 3, "aggregator");
      RoundResult r3 = run_round(ctx.runtime, ctx.tokenizer, c3, p3, ctx.state);
      ctx.runtime.release(r3.root);
      append(ctx.trace, r3);
      const AgentTrace& a = ctx.trace.agents.back();
      if (!a.normalized_answer.empty()) {
        ctx.trace.final_answer = a.normalized_answer;
        ctx.trace.final_text = a.answer_text;
        ctx.trace.final_agent = a.id;
      }
    }
  }
  ctx.runtime.release(r1.root);
}

void run_auto(ModeContext& ctx) {
  run_instant(ctx);
  const AgentTrace& instant = ctx.trace.agents.back();
  const Request& r = ctx.request;
  const ModelInfo& info = ctx.runtime.model().info();
  const double threshold = r.auto_confidence_threshold > 0 ? r.auto_confidence_threshold
                           : info.auto_confidence_threshold > 0
                               ? info.auto_confidence_threshold
                               : 1.25 * std::log(static_cast<double>(info.vocab_size));
  const double confidence = instant.confidence.mean;
  if (ctx.state.cancelled) return;
  if (!instant.normalized_answer.empty() && confidence >= threshold) return;
  escalate(ctx, Mode::instant, Mode::thinking, "low_confidence", confidence, threshold);
  run_thinking(ctx);
  if (ctx.state.cancelled) return;
  const double agreed = agreement(ctx.trace.votes);
  if (agreed >= r.auto_agreement_threshold) return;
  escalate(ctx, Mode::thinking, Mode::contemplating, "disagreement", agreed, r.auto_agreement_threshold);
  run_contemplating(ctx);
}

}  // namespace musespark::detail
