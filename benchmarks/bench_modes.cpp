// Thinking with N agents against Instant, for the same tokens per agent:
// how much wall time do the extra agents cost when they decode as one batch?
//
//   build/bin/bench_modes MODEL_DIR [--agents 8] [--tokens 64] [--threads 2] [--dtype f32|bf16] [--repeat 3]
//
// Instant generates --tokens answer tokens; each Thinking agent thinks for
// --tokens - 16 tokens, has its thought closed, and answers for 16 tokens.
// Early and consensus stops are off so that every agent does all its tokens.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "musespark/engine.hpp"
#include "openmp_env.hpp"

using namespace musespark;

int main(int argc, char** argv) {
  musespark::cli::prefer_short_openmp_spin(argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: bench_modes MODEL_DIR [--agents N] [--tokens N] [--threads N] [--dtype f32|bf16] [--repeat N]\n");
    return 2;
  }
  int agents = 8, tokens = 64, threads = 2, repeat = 3;
  std::string dtype = "f32";
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--agents") agents = std::stoi(v);
    else if (k == "--tokens") tokens = std::stoi(v);
    else if (k == "--threads") threads = std::stoi(v);
    else if (k == "--dtype") dtype = v;
    else if (k == "--repeat") repeat = std::stoi(v);
  }
  try {
    EngineOptions opts;
    opts.model.threads = threads;
    opts.model.dtype = parse_dtype(dtype);
    Engine engine = Engine::load(argv[1], opts);
    const std::string question = "A train leaves at 3 pm and travels 120 km at 80 km/h. When does it arrive?";

    Request instant = Request::question(question, Mode::instant);
    instant.budgets.max_answer_tokens = tokens;
    Request thinking = Request::question(question, Mode::thinking);
    thinking.budgets.agents = agents;
    thinking.budgets.max_thinking_tokens = std::max(1, tokens - 16);
    thinking.budgets.max_answer_tokens = 16;
    thinking.early_stop = false;
    thinking.consensus_stop = false;

    engine.ask(instant);  // warm-up: page in the weights
    double best_i = 1e30, best_t = 1e30;
    int64_t gen_i = 0, gen_t = 0;
    for (int r = 0; r < repeat; ++r) {
      instant.seed = thinking.seed = r;
      Result a = engine.ask(instant);
      Result b = engine.ask(thinking);
      best_i = std::min(best_i, a.trace.usage.total_seconds);
      best_t = std::min(best_t, b.trace.usage.total_seconds);
      gen_i = a.trace.usage.generated_tokens;
      gen_t = b.trace.usage.generated_tokens;
    }
    const ModelInfo& info = engine.model_info();
    std::printf("model     %s (%.0fM parameters, %s, %d threads)\n", info.directory.string().c_str(),
                info.parameter_count / 1e6, dtype_name(info.dtype), info.threads);
    std::printf("instant   1 agent,  %lld tokens: %.2f s\n", static_cast<long long>(gen_i), best_i);
    std::printf("thinking  %d agents, %lld tokens (%.0f per agent): %.2f s\n", agents, static_cast<long long>(gen_t),
                double(gen_t) / agents, best_t);
    std::printf("ratio     thinking / instant wall time = %.2f (best of %d)\n", best_t / best_i, repeat);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
