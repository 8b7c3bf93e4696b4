// musespark — what a user asks: messages, a reasoning mode, an effort, and
// budgets.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "musespark/answer.hpp"
#include "musespark/image.hpp"
#include "musespark/sampling.hpp"
#include "musespark/trace.hpp"

namespace musespark {

// One part of a message: text, or an image (for models with vision).
struct Part {
  enum class Kind { text, image };
  Kind kind = Kind::text;
  std::string text;
  std::shared_ptr<const Image> image;  // set for Kind::image

  static Part of_text(std::string text);
  static Part of_image(Image image);
};

struct Message {
  std::string role;         // "system", "user" or "assistant"
  std::vector<Part> parts;

  static Message text(std::string role, std::string text);
  // A message with images first, then the text.
  static Message with_images(std::string role, std::vector<Image> images, std::string text);
  std::string joined_text() const;  // all text parts, in order
};

// Limits. 0 means "as the effort says" (see effort_budgets in engine.hpp).
struct Budgets {
  int32_t agents = 0;               // Thinking agents; Contemplating's first round
  int32_t refine_agents = 0;        // Contemplating's second round
  int32_t max_thinking_tokens = 0;  // per agent and round; the thought is closed gracefully at it
  int32_t max_answer_tokens = 0;    // per agent, after </think>
  int64_t max_total_tokens = 0;     // all agents and rounds together; 0: no cap
  int64_t deadline_ms = 0;          // wall time from the call; 0: none
};

struct Request {
  std::vector<Message> messages;
  Mode mode = Mode::automatic;
  Effort effort = Effort::medium;
  Budgets budgets;

  // Sampling for the agents. Unset: Instant is greedy; Thinking and
  // Contemplating agents sample with temperature 0.7, top_p 0.95. The seed
  // field inside is ignored: `seed` below seeds every agent.
  std::optional<SamplingParams> sampling;
  uint64_t seed = 0;  // the same request and seed give the same trace

  // DeepConf early stopping (Thinking and Contemplating).
  bool early_stop = true;
  double keep_fraction = 0.9;       // threshold: the weakest (1-keep) of warm-up agents' lowest groups
  int32_t warmup_agents = 0;        // 0: a quarter of the agents, at least 2
  // DeepConf's schedule: the other agents wait until the warm-ups finish, so
  // every token they write is judged (most tokens saved, but the round takes
  // two batches' time). false: all agents decode together; only what they
  // write after the warm-ups finish can be cut (no extra wall time).
  bool warmup_first = true;
  int32_t confidence_window = 32;   // tokens per group
  int32_t confidence_top_k = 20;    // candidates per token confidence
  bool consensus_stop = true;
  // With consensus_stop, DeepConf's adaptive sampling: the round also ends
  // once the warm-up agents have voted and the leading answer holds at least
  // this share of the (confidence-weighted) vote, sparing the agents that
  // were waiting for them. While it does not, the waiting agents start one
  // at a time, each only if the votes so far still disagree. 0: off, all
  // waiting agents start together and the round ends early only when no
  // agent still running could change the winner. In [0, 1].
  double consensus_share = 0;
  // With consensus_stop: the round also ends once this many agents have
  // voted and no two gave the same answer. A vote that scattered rarely
  // gathers a majority from a few more agents; the leader so far (by
  // confidence) wins. 0: off; else at least 2.
  int32_t scatter_stop = 0;

  // Contemplating: an aggregator agent writes the final answer from the
  // refine round's workspace.
  bool aggregator = false;

  // Auto: escalate from Instant when its mean token confidence is below
  // auto_confidence_threshold (0: the model's calibrated threshold,
  // ModelInfo::auto_confidence_threshold, else 1.25 x ln(vocabulary size) —
  // token confidence of a model that guesses uniformly is ln(vocabulary
  // size)), and from Thinking when the winning answer's share of the vote is
  // below auto_agreement_threshold.
  double auto_confidence_threshold = 0;
  double auto_agreement_threshold = 0.6;

  // Visual chain-of-thought: an agent's <zoom>(x1,y1),(x2,y2)</zoom> crops
  // that region of the first image, encodes it and appends it to the agent's
  // context, at most this many times per agent (further zooms are recorded,
  // not applied).
  int32_t max_zooms = 2;

  // Text each agent's reply starts with, fed as if the model had written it
  // (after any <think> the template opens): steers the format, or drives the
  // visual tools (e.g. "<zoom>(0,0),(500,500)</zoom>"). Counted as forced.
  std::string assistant_prefix;

  bool record_token_confidence = false;  // per-token series in the trace
  AnswerExtractor extractor = AnswerExtractor::standard();

  // A request with one user message.
  static Request question(std::string text, Mode mode = Mode::automatic, Effort effort = Effort::medium);
};

// The rules on a request's early-stop and consensus fields (keep_fraction,
// consensus_share, scatter_stop, confidence_window, confidence_top_k,
// warmup_agents), as Engine::ask applies them; the C ABI's setters check with
// it at set time. Throws Error(invalid_argument) naming the field.
void validate_stops(const Request& request);

}  // namespace musespark
