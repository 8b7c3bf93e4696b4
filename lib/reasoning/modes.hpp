// The reasoning modes, built from rounds of agents (agents.hpp).
#pragma once

#include "musespark/engine.hpp"
#include "reasoning/agents.hpp"

namespace musespark::detail {

// Everything a mode needs to run one request.
struct ModeContext {
  const Model& model;
  Runtime& runtime;
  const Tokenizer& tokenizer;
  const ChatTemplate& chat;
  const Request& request;
  const std::vector<int32_t>& stop_token_ids;
  RequestState& state;
  ReasoningTrace& trace;
  // The request's images in order of appearance, each encoded once.
  std::vector<const Image*> images{};
  std::vector<std::shared_ptr<const Embeddings>> image_embeddings{};
};

// A mode's budgets: the request's own where given, else its effort's.
struct ModeBudgets {
  int32_t agents = 1;
  int32_t refine_agents = 0;
  int32_t max_thinking_tokens = 0;
  int32_t max_answer_tokens = 0;
};
ModeBudgets budgets_for(const Request& request, Mode mode);

// The length in tokens of the prompt the request's first round starts from
// (its messages in the chat template, images as their placeholder runs).
int64_t first_prompt_length(const ModelInfo& info, const Tokenizer& tokenizer, const ChatTemplate& chat,
                            const Request& request);

// Each runs its mode, appends agents (and escalations) to ctx.trace, and sets
// trace.votes, final_* fields and mode_used.
void run_instant(ModeContext& ctx);
void run_thinking(ModeContext& ctx);
void run_contemplating(ModeContext& ctx);
void run_auto(ModeContext& ctx);

}  // namespace musespark::detail
