// The embedded default model (models/musespark-mini): it loads through the
// ordinary path, is the student the trainer describes, and writes the
// curriculum's formats — thinking closed by </think> then an answer, and a
// zoom-in on a picture with a number too small to read.
#include <doctest/doctest.h>

#include "distill/curriculum.hpp"
#include "musespark/distill.hpp"
#include "musespark/engine.hpp"
#include "support.hpp"

using namespace musespark;

namespace {
std::filesystem::path model_dir() { return test_support::source_dir() / "models/musespark-mini"; }
}  // namespace

TEST_CASE("default model: loads as the student shape, with vision and the byte-level tokenizer") {
  Engine engine = Engine::load(model_dir(), {{DType::f32, 2, 0}});
  const ModelInfo& info = engine.model_info();
  const ModelShape s = ModelShape::student();
  CHECK(info.hidden_size == s.hidden_size);
  CHECK(info.num_layers == s.num_layers);
  CHECK(info.vocab_size == 268);
  CHECK(info.vision);
  CHECK(info.parameter_count == 2192448);  // text 1,774,016 + vision tower and projector 418,432
  CHECK(info.image_tokens == (s.image_size / s.patch_size) * (s.image_size / s.patch_size));
  CHECK(engine.chat_template().opens_think());
}

TEST_CASE("default model: Thinking agents close their thought and answer a held-out word problem") {
  Engine engine = Engine::load(model_dir(), {{DType::f32, 2, 0}});
  const detail::Curriculum held_out({1000003, {detail::TaskKind::arithmetic}});
  for (uint64_t i = 0; i < 3; ++i) {
    Request r = Request::question(held_out.task(i).question, Mode::thinking, Effort::low);
    r.budgets.agents = 2;
    r.seed = i;
    Result result = engine.ask(r);
    REQUIRE(result.trace.agents.size() == 2);
    for (const auto& a : result.trace.agents) {
      CAPTURE(a.thinking);
      CHECK(a.stop_reason == AgentStop::eos);  // it ends its turn, not the budget
      CHECK(a.thinking.find('=') != std::string::npos);  // symbolic steps
      CHECK(!a.normalized_answer.empty());
    }
  }
}

TEST_CASE("default model: it zooms into a picture whose number is too small to read") {
  Engine engine = Engine::load(model_dir(), {{DType::f32, 2, 0}});
  Image picture = Image::load(model_dir() / "samples/small-number.png");
  Request r;
  r.messages.push_back(Message::with_images("user", {picture}, "What number is written in the image?"));
  r.mode = Mode::thinking;
  r.budgets.agents = 2;
  r.seed = 1;
  Result result = engine.ask(r);
  int zooms = 0;
  for (const auto& v : result.trace.visual_actions) zooms += v.kind == "zoom";
  CHECK(zooms >= 1);
  for (const auto& a : result.trace.agents) CHECK(!a.normalized_answer.empty());
}
