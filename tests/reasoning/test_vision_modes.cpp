// Images in requests: placeholders replaced by the encoded image, every
// agent sharing it; the zoom tool loop; visual actions in the trace.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "model/vision_config.hpp"
#include "musespark/engine.hpp"
#include "musespark/error.hpp"
#include "support.hpp"
#include "vision/preprocess.hpp"

using namespace musespark;
using namespace test_support;

namespace {

std::filesystem::path vision_model() {
  return tiny_model("vision-thinker",
                    "--arch qwen3 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --head-dim 16 --intermediate 64 "
                    "--tie --seed 51 --open-think --vision --vision-image-size 28 --vision-patch 14 "
                    "--vision-hidden 32 --tokenizer-from " + qwen3_tokenizer());
}

const Engine& seer() {
  static Engine engine = Engine::load(vision_model());
  return engine;
}

// A 40x30 picture: a red square on blue, so crops differ.
Image picture() {
  std::vector<uint8_t> rgb(40 * 30 * 3);
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 40; ++x) {
      uint8_t* p = &rgb[(y * 40 + x) * 3];
      const bool square = x >= 5 && x < 20 && y >= 5 && y < 15;
      p[0] = square ? 220 : static_cast<uint8_t>(x * 3);
      p[1] = static_cast<uint8_t>(y * 5);
      p[2] = square ? 10 : 200;
    }
  return Image::from_rgb(rgb, 40, 30);
}

void write_floats(const std::filesystem::path& file, std::span<const float> v) {
  std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

}  // namespace

TEST_CASE("vision modes: the image's embeddings replace its placeholder tokens in the prompt") {
  const Engine& e = seer();
  const ModelInfo& info = e.model_info();
  REQUIRE(info.vision);
  REQUIRE(info.image_tokens == 4);  // (28/14)^2 patches

  // The expected prompt, built here independently: placeholders, then the question.
  std::string placeholder = info.vision_start_token;
  for (int i = 0; i < info.image_tokens; ++i) placeholder += info.image_token;
  placeholder += info.vision_end_token;
  const std::vector<ChatMessage> chat = {{"user", placeholder + "What is red?"}};
  const std::vector<int32_t> prompt = e.tokenizer().encode(e.chat_template().render(chat, true, false));
  const auto first_pad = std::find(prompt.begin(), prompt.end(), info.image_token_id) - prompt.begin();
  REQUIRE(first_pad < static_cast<long>(prompt.size()));

  // The reference: our preprocessing, then the Python ViT, then the Python
  // text model with the image rows injected at the placeholders.
  auto tmp = temp_dir("vision-modes");
  auto vc = detail::load_vision_config(vision_model() / "config.json");
  REQUIRE(vc.has_value());
  const std::vector<float> pixels =
      detail::preprocess(picture(), {static_cast<int32_t>(vc->image_size), {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}});
  write_floats(tmp / "pixels.f32", pixels);
  python_tool("vision_reference.py " + vision_model().string() + " --pixels " + (tmp / "pixels.f32").string() +
              " --out " + (tmp / "image.f32").string() + " >/dev/null");
  python_tool("reference_forward.py " + vision_model().string() + " --ids " + join(prompt) + " --inject " +
              std::to_string(first_pad) + ":" + (tmp / "image.f32").string() + " --out-logits " +
              (tmp / "logits.f32").string() + " >/dev/null");
  const std::vector<float> logits = read_floats(tmp / "logits.f32");
  const size_t vocab = logits.size() / prompt.size();
  std::vector<float> last(logits.end() - vocab, logits.end());
  last.resize(e.tokenizer().vocab_size());  // the engine never samples ids without a token
  double max = *std::max_element(last.begin(), last.end()), sum = 0;
  for (float l : last) sum += std::exp(l - max);
  std::vector<float> sorted = last;
  std::partial_sort(sorted.begin(), sorted.begin() + 20, sorted.end(), std::greater<>());
  double expected_c0 = 0;
  for (int i = 0; i < 20; ++i) expected_c0 -= (sorted[i] - max - std::log(sum)) / 20;

  Request r;
  r.messages.push_back(Message::with_images("user", {picture()}, "What is red?"));
  r.mode = Mode::instant;
  r.budgets.max_answer_tokens = 3;
  r.record_token_confidence = true;
  Result res = e.ask(r);
  REQUIRE(!res.trace.agents[0].token_confidence.empty());
  // The first token's confidence is computed from exactly those logits.
  CHECK(res.trace.agents[0].token_confidence[0] == doctest::Approx(expected_c0).epsilon(1e-4));
  CHECK(res.trace.usage.prompt_tokens == static_cast<int64_t>(prompt.size()));
}

TEST_CASE("vision modes: a zoom crops the image, is appended to that agent, and decoding goes on") {
  const Engine& e = seer();
  const int64_t run = e.model_info().image_tokens + 2;  // start, placeholders, end
  Request r;
  r.messages.push_back(Message::with_images("user", {picture()}, "How many red squares?"));
  r.mode = Mode::thinking;
  r.budgets.agents = 2;
  r.budgets.max_thinking_tokens = 40;
  r.budgets.max_answer_tokens = 3;
  r.early_stop = false;
  r.consensus_stop = false;
  r.max_zooms = 1;
  r.assistant_prefix =
      "Look: <box>(100,100),(200,300)</box> <zoom>(0,0),(500,500)</zoom> then <zoom>(500,500),(1000,1000)</zoom>";
  Result res = e.ask(r);
  const auto& t = res.trace;
  REQUIRE(t.visual_actions.size() == 6);  // box, zoom, zoom for each agent
  for (int agent = 0; agent < 2; ++agent) {
    std::vector<VisualAction> mine;
    for (const auto& v : t.visual_actions)
      if (v.agent == agent) mine.push_back(v);
    REQUIRE(mine.size() == 3);
    CHECK(mine[0].kind == "box");
    CHECK(mine[0].box == std::array<int32_t, 4>{4, 3, 8, 9});   // 0-1000 of a 40x30 image, in pixels
    CHECK_FALSE(mine[0].applied);
    CHECK(mine[1].kind == "zoom");
    CHECK(mine[1].box == std::array<int32_t, 4>{0, 0, 20, 15});
    CHECK(mine[1].applied);
    CHECK(mine[1].crop_width == 20);
    CHECK(mine[1].crop_height == 15);
    CHECK(mine[2].kind == "zoom");
    CHECK_FALSE(mine[2].applied);  // over the cap of one zoom
  }
  for (const auto& a : t.agents) {
    // Decoding went on after the zoom: the thought ran to its budget and was closed.
    CHECK(a.budget_closed);
    CHECK(a.thinking.find("<zoom>(0,0),(500,500)</zoom>") != std::string::npos);
    CHECK(a.thinking.find("<|image_pad|>") == std::string::npos);  // the crop is not text
    CHECK(a.forced_tokens >= run);
  }
  // Prompt tokens: the prompt once, plus each applied zoom's run.
  const auto prompt_tokens = t.usage.prompt_tokens - 2 * run;
  CHECK(prompt_tokens > e.model_info().image_tokens);

  // Without an image a zoom is recorded but cannot be applied.
  Request text = r;
  text.messages = {Message::text("user", "How many red squares?")};
  Result plain = e.ask(text);
  for (const auto& v : plain.trace.visual_actions) CHECK_FALSE(v.applied);
}

TEST_CASE("vision modes: images are refused by a model without vision, and bad parts are named") {
  auto dir = tiny_model("vision-none", "--arch qwen3 --hidden 32 --layers 1 --heads 2 --kv-heads 1 --head-dim 16 "
                                       "--intermediate 64 --tie --seed 52 --tokenizer-from " + qwen3_tokenizer());
  Engine blind = Engine::load(dir);
  Request r;
  r.messages.push_back(Message::with_images("user", {picture()}, "What is red?"));
  r.mode = Mode::instant;
  try {
    blind.ask(r);
    FAIL("a text-only model took an image");
  } catch (const Error& err) {
    CHECK(err.kind() == ErrorKind::unsupported);
    CHECK(err.field() == "vision_config");
  }
  r.messages[0].parts[0].image.reset();
  try {
    seer().ask(r);
    FAIL("an empty image part was taken");
  } catch (const Error& err) {
    CHECK(err.field() == "messages[0].parts[0].image");
  }
}
