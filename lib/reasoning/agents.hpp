// Running a round of agents: N sequences forked from one prompt prefill,
// decoded as one batch, each with its own sampler, with DeepConf confidence,
// thinking budgets closed gracefully, early and consensus stops, deadlines
// and a shared token cap. Modes (modes.cpp) are built from rounds.
//
// Internal; knows nothing of tensors (it drives Runtime) or of modes.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "musespark/engine.hpp"
#include "musespark/runtime.hpp"

namespace musespark::detail {

using Clock = std::chrono::steady_clock;

struct AgentPlan {
  int32_t id = 0;
  int32_t round = 1;
  std::string role = "agent";
  uint64_t seed = 0;
  bool warmup = false;  // its confidence sets the early-stop threshold
};

struct RoundConfig {
  std::vector<int32_t> prompt;
  // Optional: the first `shared_prefix` tokens of `prompt` are already held
  // by sequence `base` (from an earlier round), and are shared, not recomputed.
  std::optional<SequenceId> base;
  int64_t shared_prefix = 0;

  bool thinking = true;            // agents think before they answer
  bool prompt_opens_think = false; // the prompt ends inside an open <think>
  int32_t max_thinking_tokens = 512;
  int32_t max_answer_tokens = 128;
  SamplingParams sampling;         // per-agent seeds come from the plans
  std::vector<int32_t> stop_token_ids;

  bool early_stop = true;
  bool warmup_first = true;        // the others wait for the warm-up agents (DeepConf)
  double keep_fraction = 0.9;
  int32_t confidence_window = 32;
  int32_t confidence_top_k = 20;
  bool consensus_stop = true;
  // With consensus_stop: also end the round once the warm-up agents (at least
  // two) have voted and the leading answer holds this share of the weight
  // cast so far; until then the waiting agents start one at a time, each
  // only while the vote disagrees. 0: off (all start at once; only a vote
  // nobody left can change ends the round early).
  double consensus_share = 0;
  // With consensus_stop: also end the round once this many votes are cast
  // and no two are for the same answer. 0: off.
  int32_t scatter_stop = 0;
  bool record_token_confidence = false;
  const AnswerExtractor* extractor = nullptr;
  std::string assistant_prefix;  // forced at the start of every agent

  // Images: embeddings to inject into the prompt (offsets in `prompt`).
  std::vector<Injection> prompt_injections;
  // Zoom-ins: an agent's <zoom> crops `zoom_image`, encodes it with `model`
  // and appends `image_run` (the placeholder tokens, with the crop's
  // embeddings at `image_run_offset`), at most max_zooms times per agent.
  const Model* model = nullptr;
  const Image* zoom_image = nullptr;
  int32_t max_zooms = 0;
  std::vector<int32_t> image_run;
  int64_t image_run_offset = 0;
};

// What all rounds of one request share.
struct RequestState {
  std::optional<Clock::time_point> deadline;
  int64_t max_total_tokens = 0;  // 0: no cap
  const EventCallback* on_event = nullptr;
  bool cancelled = false;
  Usage usage;                   // accumulated over rounds
  int32_t next_agent_id = 0;
  bool emit(const Event& e);     // calls on_event; a false return cancels
};

struct RoundResult {
  std::vector<AgentTrace> agents;
  std::vector<VoteEntry> votes;
  std::optional<double> threshold;
  std::vector<VisualAction> visual_actions;
  SequenceId root = 0;           // holds the round's prompt; released by the caller
};

// Runs one round. The root sequence (the prompt) is left alive in the
// runtime for later rounds to fork from; every agent sequence is released.
RoundResult run_round(Runtime& runtime, const Tokenizer& tokenizer, const RoundConfig& config,
                      std::span<const AgentPlan> plans, RequestState& state);

// Throws Error{context_overflow} (field "prompt") unless a prompt of
// `prompt_tokens` leaves room in `max_context` to reason and answer.
void check_prompt_fits(int64_t prompt_tokens, int64_t max_context);

// The weight an agent's answer carries in the vote: its bottom-10% group
// confidence (DeepConf's best-performing summary).
double vote_weight(const ConfidenceSummary& confidence);

}  // namespace musespark::detail
