#include "reasoning/agents.hpp"

#include <algorithm>
#include <cctype>
#include <memory>

#include <fmt/format.h>

#include "common/parallel.hpp"
#include "musespark/error.hpp"
#include "reasoning/confidence.hpp"
#include "reasoning/steps.hpp"
#include "reasoning/visual.hpp"
#include "reasoning/vote.hpp"

namespace musespark::detail {

void check_prompt_fits(int64_t prompt_tokens, int64_t max_context) {
  if (max_context - prompt_tokens < 2)
    throw Error(ErrorKind::context_overflow, "", "prompt",
                fmt::format("the prompt is {} tokens; this model's context is {} tokens, and reasoning needs room "
                            "after the prompt",
                            prompt_tokens, max_context));
}

namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";
// Injected when an agent reaches its thinking budget, so that an answer
// always follows.
constexpr std::string_view kClosing = "\n\nI have thought enough; time to answer.\n</think>\n\n";

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Length of the longest suffix of `text` that is a proper prefix of `tag`.
size_t partial_tag(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(tag.size() - 1, text.size()); n > 0; --n)
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  return s;
}

enum class Phase { opening, thinking, answer };

struct Agent {
  AgentPlan plan;
  SequenceId seq = 0;
  Sampler sampler;
  std::unique_ptr<Tokenizer::StreamDecoder> stream;
  ConfidenceTracker confidence;
  Phase phase = Phase::answer;
  bool active = true;
  bool waiting = false;       // held back until the warm-up agents finish
  AgentStop stop = AgentStop::eos;

  std::string raw;            // all generated text
  size_t think_start = 0;     // where the thinking text begins in raw
  size_t think_end = std::string::npos;  // where </think> begins
  size_t answer_start = 0;
  size_t emitted_thinking = 0, emitted_answer = 0;  // bytes of each passed to text_delta
  size_t step_start = 0;      // thinking-relative start of the paragraph being written
  int32_t steps_emitted = 0;
  std::vector<size_t> token_ends;  // thinking-relative end offset of each thinking token
  int64_t thinking_tokens = 0, answer_tokens = 0, forced_tokens = 0;
  bool budget_closed = false;
  std::vector<int32_t> forced;     // tokens to inject next step
  std::vector<char> forced_silent; // per forced token: an image placeholder (no text, no budget)
  std::vector<Injection> forced_injections;  // offsets within `forced`
  size_t visual_scan = 0;          // thinking-relative end of the last visual tag seen
  int32_t zooms = 0;

  Agent(AgentPlan p, const SamplingParams& s, int32_t window, const Tokenizer& tok)
      : plan(std::move(p)), sampler(s), stream(std::make_unique<Tokenizer::StreamDecoder>(tok)),
        confidence(window, window) {}

  int64_t generated() const { return thinking_tokens + answer_tokens; }
  std::string_view thinking_text() const {
    if (phase == Phase::opening) return {};
    size_t end = think_end == std::string::npos ? raw.size() : think_end;
    return std::string_view(raw).substr(think_start, end - std::min(end, think_start));
  }
  std::string_view answer_text() const {
    return phase == Phase::answer ? std::string_view(raw).substr(std::min(answer_start, raw.size())) : std::string_view();
  }
};

class RoundRunner {
 public:
  RoundRunner(Runtime& rt, const Tokenizer& tok, const RoundConfig& cfg, RequestState& st)
      : rt_(rt), tok_(tok), cfg_(cfg), st_(st) {}

  RoundResult run(std::span<const AgentPlan> plans);

 private:
  void start(std::span<const AgentPlan> plans);
  void take_token(Agent& a, int32_t token, bool forced, bool silent = false);
  void visual_tags(Agent& a, std::string_view thinking);
  void queue_forced(Agent& a, std::span<const int32_t> tokens, bool silent);
  void update_text(Agent& a);
  void finish(Agent& a, AgentStop why);
  void cast_votes();
  void apply_stops();
  // Lets up to `count` waiting agents start, in plan order.
  void release_waiting(int32_t count);
  void announce(const Agent& a);
  void emit_step(Agent& a, std::string_view paragraph);
  // An event about agent `a`, with its id, round and tokens so far.
  static Event agent_event(EventKind kind, const Agent& a) {
    Event e{kind};
    e.agent = a.plan.id;
    e.round = a.plan.round;
    e.tokens = a.generated();
    return e;
  }
  AgentTrace trace_of(const Agent& a) const;
  bool emit(Event e) {
    if (st_.cancelled) return false;
    if (!st_.emit(e)) stop_all(AgentStop::cancelled);
    return !st_.cancelled;
  }
  void stop_all(AgentStop why) {
    for (auto& a : agents_)
      if (a->active) finish(*a, why);
  }
  int32_t unfinished() const {
    return static_cast<int32_t>(std::count_if(agents_.begin(), agents_.end(), [](auto& a) { return a->active; }));
  }

  Runtime& rt_;
  const Tokenizer& tok_;
  const RoundConfig& cfg_;
  RequestState& st_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::vector<int32_t> closing_;
  std::vector<int32_t> prefix_;  // the assistant prefix, forced at every agent's start
  std::optional<double> threshold_;
  std::vector<VoteEntry> votes_;
  std::vector<VisualAction> visual_actions_;
  std::vector<std::vector<Injection>> feed_injections_;  // per fed agent this step
  SequenceId root_ = 0;
};

void RoundRunner::start(std::span<const AgentPlan> plans) {
  closing_ = tok_.encode(kClosing);
  auto t0 = Clock::now();
  const int64_t prompt_len = static_cast<int64_t>(cfg_.prompt.size());
  const int64_t max_context = rt_.model().info().max_context;
  // Checked before any KV is made: a prompt longer than the context is the
  // caller's (context_overflow), not a bad argument to the runtime.
  check_prompt_fits(prompt_len, max_context);
  if (cfg_.base) {
    root_ = rt_.fork(*cfg_.base, prompt_len - cfg_.shared_prefix, cfg_.shared_prefix);
    // Images inside the shared prefix are already in its KV; the rest move
    // with the suffix. (share_prefix never splits an image.)
    std::vector<Injection> suffix_injections;
    for (const auto& inj : cfg_.prompt_injections)
      if (inj.offset >= cfg_.shared_prefix) suffix_injections.push_back({inj.offset - cfg_.shared_prefix, inj.embeddings});
    rt_.prefill(root_, std::span(cfg_.prompt).subspan(cfg_.shared_prefix), nullptr, suffix_injections);
    st_.usage.prompt_tokens += prompt_len - cfg_.shared_prefix;
  } else {
    root_ = rt_.create(prompt_len);
    rt_.prefill(root_, cfg_.prompt, nullptr, cfg_.prompt_injections);
    st_.usage.prompt_tokens += prompt_len;
  }
  st_.usage.prefill_seconds += seconds(Clock::now() - t0);

  if (!cfg_.assistant_prefix.empty()) prefix_ = tok_.encode(cfg_.assistant_prefix);
  const int64_t per_agent = int64_t(cfg_.max_thinking_tokens) + int64_t(closing_.size()) + cfg_.max_answer_tokens + 1 +
                            int64_t(cfg_.max_zooms) * static_cast<int64_t>(cfg_.image_run.size()) +
                            static_cast<int64_t>(prefix_.size());
  const int64_t room = max_context - prompt_len;
  // The agents' KV is one allocation: their decode steps attend together.
  const std::vector<SequenceId> seqs =
      rt_.fork_many(root_, static_cast<int32_t>(plans.size()), std::min(per_agent, room));
  for (size_t i = 0; i < plans.size(); ++i) {
    const AgentPlan& plan = plans[i];
    SamplingParams s = cfg_.sampling;
    s.seed = plan.seed;
    s.top_logprobs = std::max(s.top_logprobs, cfg_.confidence_top_k);
    auto a = std::make_unique<Agent>(plan, s, cfg_.confidence_window, tok_);
    a->seq = seqs[i];
    a->phase = !cfg_.thinking ? Phase::answer : cfg_.prompt_opens_think ? Phase::thinking : Phase::opening;
    agents_.push_back(std::move(a));
  }
  // DeepConf runs its warm-up agents first, so that the others are judged
  // against a threshold from whole warm-up traces.
  const bool any_warmup = std::any_of(agents_.begin(), agents_.end(), [](auto& a) { return a->plan.warmup; });
  const bool any_other = std::any_of(agents_.begin(), agents_.end(), [](auto& a) { return !a->plan.warmup; });
  if (cfg_.early_stop && cfg_.warmup_first && any_warmup && any_other)
    for (auto& a : agents_) a->waiting = !a->plan.warmup;
  for (auto& a : agents_) queue_forced(*a, prefix_, false);
  for (auto& a : agents_)
    if (!a->waiting) announce(*a);
}

void RoundRunner::announce(const Agent& a) { emit(agent_event(EventKind::agent_started, a)); }

void RoundRunner::release_waiting(int32_t count) {
  for (auto& a : agents_)
    if (a->waiting && count-- > 0) {
      a->waiting = false;
      announce(*a);
    }
}

void RoundRunner::emit_step(Agent& a, std::string_view paragraph) {
  if (trim_left(paragraph).empty()) return;
  Event e = agent_event(EventKind::step, a);
  e.text = paragraph;
  ++a.steps_emitted;
  emit(e);
}

void RoundRunner::queue_forced(Agent& a, std::span<const int32_t> tokens, bool silent) {
  a.forced.insert(a.forced.end(), tokens.begin(), tokens.end());
  a.forced_silent.insert(a.forced_silent.end(), tokens.size(), silent ? 1 : 0);
}

// Boxes and zooms the agent has just closed in its thinking. A zoom crops
// the first image, encodes the crop and queues it (placeholder tokens with
// the crop's embeddings) to be appended to this agent's context.
void RoundRunner::visual_tags(Agent& a, std::string_view thinking) {
  for (const VisualTag& tag : find_visual_tags(thinking, a.visual_scan)) {
    a.visual_scan = tag.end;
    VisualAction v;
    v.agent = a.plan.id;
    v.kind = tag.kind == VisualTag::Kind::zoom ? "zoom" : "box";
    v.relative = tag.relative;
    v.token = a.generated();
    if (cfg_.zoom_image) v.box = to_pixels(tag.relative, cfg_.zoom_image->width(), cfg_.zoom_image->height());
    if (tag.kind == VisualTag::Kind::zoom && cfg_.zoom_image && cfg_.model && a.zooms < cfg_.max_zooms) {
      Image crop = cfg_.zoom_image->crop(v.box[0], v.box[1], v.box[2], v.box[3]);
      v.crop_width = crop.width();
      v.crop_height = crop.height();
      v.applied = true;
      ++a.zooms;
      a.forced_injections.push_back(
          {static_cast<int64_t>(a.forced.size()) + cfg_.image_run_offset, cfg_.model->encode_image(crop)});
      queue_forced(a, cfg_.image_run, true);
    }
    visual_actions_.push_back(v);
  }
}

void RoundRunner::take_token(Agent& a, int32_t token, bool forced, bool silent) {
  if (silent) {
    // An image placeholder of a zoom-in: input, not text and not thinking.
    ++a.forced_tokens;
    ++st_.usage.prompt_tokens;
    return;
  }
  const bool stop_token =
      std::find(cfg_.stop_token_ids.begin(), cfg_.stop_token_ids.end(), token) != cfg_.stop_token_ids.end();
  // Injected tokens close a thought: they count as thinking, never against
  // the answer budget.
  if (forced) ++a.forced_tokens;
  if (a.phase == Phase::answer && !forced) ++a.answer_tokens; else ++a.thinking_tokens;
  ++st_.usage.generated_tokens;
  if (stop_token) {
    finish(a, AgentStop::eos);
    return;
  }
  a.raw += a.stream->push(token);
  update_text(a);
  if (a.phase == Phase::thinking) a.token_ends.push_back(a.thinking_text().size());

  if (a.phase != Phase::answer && !a.budget_closed && a.thinking_tokens >= cfg_.max_thinking_tokens) {
    // Close the thought gracefully: the closing text goes in as forced tokens.
    a.budget_closed = true;
    queue_forced(a, closing_, false);
    if (a.phase == Phase::opening) {
      // It never opened a thought: treat what it wrote as thinking.
      a.phase = Phase::thinking;
      a.think_start = 0;
    }
  } else if (a.phase == Phase::answer && a.answer_tokens >= cfg_.max_answer_tokens) {
    finish(a, AgentStop::budget);
  }
}

// Moves the agent through opening -> thinking -> answer as the tags appear,
// and streams the new thinking / answer text (tags themselves are not shown).
void RoundRunner::update_text(Agent& a) {
  if (a.phase == Phase::opening) {
    std::string_view t = trim_left(a.raw);
    if (t.size() >= kOpen.size() || (!t.empty() && kOpen.substr(0, t.size()) != t)) {
      if (t.substr(0, kOpen.size()) == kOpen) {
        a.phase = Phase::thinking;
        a.think_start = a.raw.size() - t.size() + kOpen.size();
      } else if (t.find(kClose) != std::string_view::npos || partial_tag(t, kClose) > 0) {
        // A template that opened <think> itself: the model writes only the close.
        a.phase = Phase::thinking;
        a.think_start = 0;
      } else {
        a.phase = Phase::answer;
        a.answer_start = 0;
      }
    }
  }
  if (a.phase == Phase::thinking) {
    size_t from = a.think_start + (a.emitted_thinking > kClose.size() ? a.emitted_thinking - kClose.size() : 0);
    size_t at = a.raw.find(kClose, std::min(from, a.raw.size()));
    if (at != std::string::npos) {
      a.think_end = at;
      a.answer_start = at + kClose.size();
      // Leading blank lines after </think> are layout, not answer.
      while (a.answer_start < a.raw.size() && (a.raw[a.answer_start] == '\n' || a.raw[a.answer_start] == ' '))
        ++a.answer_start;
    }
    std::string_view thinking = std::string_view(a.raw).substr(a.think_start, (at == std::string::npos ? a.raw.size() : at) - a.think_start);
    visual_tags(a, thinking);
    const size_t ready = at == std::string::npos ? thinking.size() - partial_tag(thinking, kClose) : thinking.size();
    if (ready > a.emitted_thinking) {
      Event e = agent_event(EventKind::text_delta, a);
      e.in_thinking = true;
      e.text = thinking.substr(a.emitted_thinking, ready - a.emitted_thinking);
      e.confidence = a.confidence.count() ? a.confidence.current_group() : 0;
      a.emitted_thinking = ready;
      emit(e);
    }
    // Paragraphs of thinking are steps.
    for (size_t brk; (brk = thinking.substr(0, ready).find("\n\n", a.step_start)) != std::string_view::npos;) {
      std::string_view para = thinking.substr(a.step_start, brk - a.step_start);
      a.step_start = brk + 2;
      emit_step(a, para);
    }
    if (at != std::string::npos) {
      emit_step(a, thinking.substr(std::min(a.step_start, thinking.size())));
      a.step_start = thinking.size();
      a.phase = Phase::answer;
    }
  }
  if (a.phase == Phase::answer && cfg_.thinking && a.think_end == std::string::npos) {
    // It answered without opening a thought, then closed one: what came
    // before the close was thinking after all.
    size_t at = a.raw.find(kClose);
    if (at != std::string::npos) {
      a.think_start = 0;
      a.think_end = at;
      a.answer_start = at + kClose.size();
      while (a.answer_start < a.raw.size() && (a.raw[a.answer_start] == '\n' || a.raw[a.answer_start] == ' '))
        ++a.answer_start;
      a.emitted_answer = 0;
    }
  }
  if (a.phase == Phase::answer) {
    std::string_view answer = a.answer_text();
    if (answer.size() > a.emitted_answer) {
      Event e = agent_event(EventKind::text_delta, a);
      e.in_thinking = false;
      e.text = answer.substr(a.emitted_answer);
      e.confidence = a.confidence.count() ? a.confidence.current_group() : 0;
      a.emitted_answer = answer.size();
      emit(e);
    }
  }
}

void RoundRunner::finish(Agent& a, AgentStop why) {
  if (!a.active) return;
  a.active = false;
  a.stop = why;
  a.raw += a.stream->flush();
  a.forced.clear();
  a.forced_silent.clear();
  a.forced_injections.clear();
  if (a.phase != Phase::answer) {
    // Stopped mid-thought: everything so far is thinking, there is no answer.
    if (a.phase == Phase::opening) a.think_start = 0;
    a.phase = Phase::thinking;
  } else {
    update_text(a);
  }
  AgentTrace t = trace_of(a);
  Event e = agent_event(EventKind::agent_finished, a);
  e.agent_trace = &t;
  emit(e);
  if (!t.normalized_answer.empty()) cast_votes();
}

AgentTrace RoundRunner::trace_of(const Agent& a) const {
  AgentTrace t;
  t.id = a.plan.id;
  t.round = a.plan.round;
  t.role = a.plan.role;
  t.seed = a.plan.seed;
  const std::string_view raw = a.raw;
  std::string_view thinking;
  if (a.phase != Phase::answer) thinking = raw.substr(std::min(a.think_start, raw.size()));
  else if (a.think_end != std::string::npos) thinking = raw.substr(a.think_start, a.think_end - a.think_start);
  t.thinking = std::string(thinking);
  std::vector<size_t> ends = a.token_ends;
  for (auto& e : ends) e = std::min(e, t.thinking.size());
  t.steps = split_steps(t.thinking, ends);
  if (a.phase == Phase::answer) t.answer_text = std::string(a.answer_text());
  // Whitespace at the end of an answer is layout.
  while (!t.answer_text.empty() && std::isspace(static_cast<unsigned char>(t.answer_text.back()))) t.answer_text.pop_back();
  // Only agents that finished their answer vote (or, at a deadline, what
  // they had answered by then); stopped ones do not.
  const bool votes = a.stop == AgentStop::eos || a.stop == AgentStop::budget || a.stop == AgentStop::deadline;
  if (votes && !t.answer_text.empty()) {
    t.answer = cfg_.extractor->extract(t.answer_text);
    t.normalized_answer = t.answer.empty() ? "" : cfg_.extractor->normalize(t.answer);
  }
  t.thinking_tokens = a.thinking_tokens;
  t.answer_tokens = a.answer_tokens;
  t.forced_tokens = a.forced_tokens;
  t.budget_closed = a.budget_closed;
  t.confidence = a.confidence.summary();
  if (cfg_.record_token_confidence) t.token_confidence = a.confidence.series();
  t.stop_reason = a.stop;
  t.vote_weight = t.normalized_answer.empty() ? 0 : vote_weight(t.confidence);
  return t;
}

void RoundRunner::cast_votes() {
  std::vector<Ballot> ballots;
  for (const auto& a : agents_) {
    if (a->active) continue;
    AgentTrace t = trace_of(*a);
    if (!t.normalized_answer.empty()) ballots.push_back({t.id, t.normalized_answer, t.answer, t.vote_weight});
  }
  votes_ = tally(ballots);
  Event e{EventKind::vote_update};
  e.votes = &votes_;
  emit(e);
}

// Early stop (DeepConf online) and consensus stop.
//
// The threshold is a percentile of the warm-up agents' lowest group
// confidence, set once they have all finished; from then on an agent whose
// lowest group confidence falls below it stops. With warmup_first (DeepConf's
// schedule) the other agents wait for the warm-ups, so all of their tokens
// are judged; without it they run alongside, and only what they write after
// the warm-ups finish can be cut, but the round takes no longer.
//
// Consensus stop ends the round when the vote can no longer change, or (with
// a consensus_share) once the warm-ups have voted and the vote agrees that
// much: with warmup_first, agreeing warm-ups spare the others every token,
// and the others start one at a time, each only if the votes so far still
// disagree (DeepConf's adaptive sampling: one more trace only while the
// answer is in doubt, at the cost of rounds that take longer). With a
// scatter_stop it also ends once that many votes are cast and no two agree:
// a question the agents answer all differently seldom finds a majority in
// the few agents left, and their tokens are better saved.
void RoundRunner::apply_stops() {
  int32_t warmups = 0;
  for (const auto& a : agents_) warmups += a->plan.warmup;
  const bool waves = cfg_.consensus_stop && cfg_.consensus_share > 0;
  if (cfg_.early_stop && !threshold_) {
    std::vector<double> lowest;
    bool done = true, any_warmup = false;
    for (const auto& a : agents_) {
      if (!a->plan.warmup) continue;
      any_warmup = true;
      if (a->active) done = false;
      else if (a->confidence.count() > 0) lowest.push_back(a->confidence.lowest_group());
    }
    if (any_warmup && done) {
      if (!lowest.empty()) threshold_ = early_stop_threshold(lowest, cfg_.keep_fraction);
      // With waves, the first one starts below, should the warm-ups not agree.
      if (!waves) release_waiting(static_cast<int32_t>(agents_.size()));
    }
  }
  if (threshold_) {
    for (auto& a : agents_)
      if (a->active && !a->waiting && a->confidence.has_full_window() &&
          below_threshold(a->confidence.lowest_group(), *threshold_))
        finish(*a, AgentStop::low_confidence);
  }
  bool warmups_done = true;
  for (const auto& a : agents_)
    if (a->plan.warmup && a->active) warmups_done = false;
  if (cfg_.consensus_stop && !votes_.empty() && unfinished() > 0) {
    double max_weight = 0;
    for (const auto& a : agents_)
      if (!a->active) max_weight = std::max(max_weight, vote_weight(a->confidence.summary()));
    const bool agreed = cfg_.consensus_share > 0 && warmups_done &&
                        vote_agreed(votes_, std::max<int32_t>(2, warmups), cfg_.consensus_share);
    const bool scattered = cfg_.scatter_stop > 0 && vote_scattered(votes_, cfg_.scatter_stop);
    if (agreed || scattered || vote_settled(votes_, unfinished(), max_weight)) stop_all(AgentStop::consensus);
  }
  // The next agent, once every agent let start so far has finished.
  if (waves && warmups_done && std::none_of(agents_.begin(), agents_.end(), [](auto& a) {
        return a->active && !a->waiting;
      }))
    release_waiting(1);
}

RoundResult RoundRunner::run(std::span<const AgentPlan> plans) {
  start(plans);
  // Models pad their vocabulary beyond the tokenizer's (Qwen3: 151936 rows,
  // 151669 tokens); ids without a token are never sampled.
  const size_t sample_vocab = std::min<size_t>(rt_.model().info().vocab_size, tok_.vocab_size());
  const int threads = rt_.model().info().threads;
  auto t0 = Clock::now();
  std::vector<SequenceId> ids;
  std::vector<std::vector<int32_t>> feeds;
  while (unfinished() > 0 && !st_.cancelled) {
    if (st_.deadline && Clock::now() >= *st_.deadline) {
      stop_all(AgentStop::deadline);
      break;
    }
    ids.clear();
    feeds.clear();
    feed_injections_.clear();
    // Sampling is independent per agent (each has its own sampler and
    // stream): it runs in parallel, then tokens are taken in agent order.
    std::vector<Agent*> sampling;
    for (auto& ap : agents_)
      if (ap->active && !ap->waiting && ap->forced.empty()) sampling.push_back(ap.get());
    std::vector<SampledToken> sampled(sampling.size());
    parallel_for(sampling.size(), threads, [&](size_t i) {
      Agent& a = *sampling[i];
      sampled[i] = a.sampler.sample(rt_.logits(a.seq).first(sample_vocab), rt_.tokens(a.seq));
    });
    size_t next_sample = 0;
    for (auto& ap : agents_) {
      Agent& a = *ap;
      if (!a.active || a.waiting) continue;
      std::vector<int32_t> feed;
      std::vector<Injection> feed_injections;
      if (!a.forced.empty()) {
        // Injected text (and zoomed-in images) go in whole, in this same batched pass.
        feed.swap(a.forced);
        feed_injections.swap(a.forced_injections);
        std::vector<char> silent;
        silent.swap(a.forced_silent);
        for (size_t i = 0; i < feed.size(); ++i) {
          take_token(a, feed[i], true, silent[i] != 0);
          if (!a.active) break;
        }
      } else {
        const SampledToken& s = sampled[next_sample++];
        a.confidence.add(token_confidence(std::span<const TokenLogprob>(s.top).first(
            std::min<size_t>(s.top.size(), static_cast<size_t>(cfg_.confidence_top_k)))));
        take_token(a, s.id, false);
        feed.push_back(s.id);
      }
      if (a.active) {
        ids.push_back(a.seq);
        feeds.push_back(std::move(feed));
        feed_injections_.push_back(std::move(feed_injections));
      }
    }
    apply_stops();
    if (st_.max_total_tokens > 0 && st_.usage.generated_tokens >= st_.max_total_tokens) stop_all(AgentStop::budget);
    // Only agents still running are fed.
    std::vector<SequenceId> live_ids;
    std::vector<std::span<const int32_t>> live_feeds;
    std::vector<std::span<const Injection>> live_injections;
    for (size_t i = 0; i < ids.size(); ++i) {
      auto it = std::find_if(agents_.begin(), agents_.end(), [&](auto& a) { return a->seq == ids[i]; });
      if ((*it)->active) {
        live_ids.push_back(ids[i]);
        live_feeds.emplace_back(feeds[i]);
        live_injections.emplace_back(feed_injections_[i]);
      }
    }
    if (!live_ids.empty()) rt_.extend(live_ids, live_feeds, live_injections);
  }
  st_.usage.decode_seconds += seconds(Clock::now() - t0);

  RoundResult result;
  for (auto& a : agents_) {
    result.agents.push_back(trace_of(*a));
    rt_.release(a->seq);
  }
  result.votes = tally_agents(result.agents);
  result.threshold = threshold_;
  result.visual_actions = visual_actions_;
  result.root = root_;
  return result;
}

}  // namespace

bool RequestState::emit(const Event& e) {
  if (cancelled) return false;
  if (on_event && *on_event && !(*on_event)(e)) cancelled = true;
  return !cancelled;
}

double vote_weight(const ConfidenceSummary& confidence) { return confidence.bottom10; }

RoundResult run_round(Runtime& runtime, const Tokenizer& tokenizer, const RoundConfig& config,
                      std::span<const AgentPlan> plans, RequestState& state) {
  if (!config.extractor) throw Error(ErrorKind::internal, "", "extractor", "not set");
  RoundRunner runner(runtime, tokenizer, config, state);
  return runner.run(plans);
}

}  // namespace musespark::detail
