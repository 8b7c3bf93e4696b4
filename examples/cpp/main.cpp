// musespark from C++: ask a question about an image in Thinking mode and
// print the answer and the vote.
//
//   usage: example_cpp MODEL_DIR IMAGE_PATH [QUESTION]
//
// Uses the C++ API (include/musespark/*.hpp) directly; errors are
// musespark::Error exceptions whose what() names the file and field.
#include <cstdio>
#include <exception>
#include <string>

#include <musespark/engine.hpp>
#include <musespark/error.hpp>

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR IMAGE_PATH [QUESTION]\n", argv[0]);
    return 2;
  }
  const std::string question = argc > 3 ? argv[3] : "What colour is the square in this picture?";

  try {
    const auto engine = musespark::Engine::load(argv[1]);

    musespark::Request request;
    request.messages.push_back(
        musespark::Message::with_images("user", {musespark::Image::load(argv[2])}, question));
    request.mode = musespark::Mode::thinking;
    request.budgets.agents = 3;
    request.budgets.max_thinking_tokens = 8;
    request.budgets.max_answer_tokens = 4;
    request.seed = 1;

    const musespark::Result result = engine.ask(request);

    std::printf("answer: %s\n", result.answer.c_str());
    for (const auto& vote : result.trace.votes)
      std::printf("vote: %s (%d votes, %.1f%%)\n", vote.answer.c_str(), static_cast<int>(vote.votes),
                  vote.share * 100.0);
    std::printf("agents: %zu\n", result.trace.agents.size());
    return std::fflush(stdout) == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
