// The trainer: its forward pass equals the inference engine's on the folder it
// writes (images and zoom-ins included), training lowers the loss, a resumed
// run equals an uninterrupted one, and logit distillation reads a teacher.
#include "doctest_with_aten.hpp"

#include <fstream>
#include <optional>

#include <ATen/autocast_mode.h>

#include <nlohmann/json.hpp>

#include "distill/batch.hpp"
#include "distill/curriculum.hpp"
#include "distill/tokenizer_files.hpp"
#include "distill/trainable.hpp"
#include "musespark/distill.hpp"
#include "musespark/error.hpp"
#include "musespark/model.hpp"
#include "musespark/runtime.hpp"
#include "reasoning/visual.hpp"
#include "support.hpp"

using namespace musespark;
using namespace musespark::detail;
using test_support::temp_dir;

namespace {

ModelShape tiny_shape() {
  ModelShape s;
  s.hidden_size = 32;
  s.intermediate_size = 64;
  s.num_layers = 2;
  s.num_heads = 4;
  s.num_kv_heads = 2;
  s.head_dim = 8;
  s.max_position_embeddings = 512;
  s.vision_hidden_size = 16;
  s.vision_intermediate_size = 32;
  s.vision_layers = 1;
  s.vision_heads = 2;
  s.stem_channels = {4, 6};  // a small stem: the parity test covers it
  s.stem_strides = {1, 2};
  return s;
}

DistillOptions tiny_run(const std::filesystem::path& out, int64_t steps) {
  DistillOptions o;
  o.out = out;
  o.shape = tiny_shape();
  o.steps = steps;
  o.batch = 4;
  o.warmup_steps = 2;
  o.learning_rate = 1e-2;
  o.eval_every = 0;
  o.eval_samples = 8;
  o.checkpoint_every = 0;
  o.threads = 2;
  return o;
}

// The first small_digits sample in the thinking style: it has an image and a zoom-in.
Sample zoom_sample(const Curriculum& c) {
  for (uint64_t i = 0;; ++i) {
    Task t = c.task(i);
    if (t.kind == TaskKind::small_digits) return c.teach(t, SampleStyle::thinking);
  }
}

std::vector<float> all_rows(const TrainableModel& m, const Sequence& seq, const SpecialIds& ids) {
  Batch b = make_batch(std::span(&seq, 1), m.shape(), ids);
  const int64_t T = static_cast<int64_t>(seq.tokens.size());
  b.input.rows = at::arange(T, at::kLong);
  at::NoGradGuard no_grad;
  at::Tensor logits = m.forward(b.input).contiguous();
  return std::vector<float>(logits.data_ptr<float>(), logits.data_ptr<float>() + logits.numel());
}

}  // namespace

TEST_CASE("distill: the trainer's forward pass equals the engine's on the written folder, zoom-in included") {
  auto dir = temp_dir("distill-parity");
  write_tokenizer_files(dir);
  const Tokenizer tok = Tokenizer::load(dir);
  const ChatTemplate chat = ChatTemplate::load(dir);
  const SpecialIds ids{tok.vocab_size(), *tok.token_id("<|im_end|>"), *tok.token_id("<|endoftext|>"),
                       *tok.token_id("<|image_pad|>")};
  TrainableModel trainable(tiny_shape(), ids, 7);
  trainable.save(dir);

  const Curriculum curriculum({3});
  const Sample sample = zoom_sample(curriculum);
  const SequenceBuilder builder{tok, chat, tiny_shape(), ids};
  const Sequence seq = builder.build(sample);
  REQUIRE(seq.pictures.size() == 2);  // the picture and the zoomed-in crop
  // Their scene labels: the picture's cells, and the number's digits on the crop.
  CHECK(seq.pictures[0].scene.cells == sample.task.scene.cells);
  CHECK(seq.pictures[1].scene.number == sample.task.zoom_scene.number);
  CHECK(seq.pictures[1].scene.number[0] >= kSceneDigit0);
  const Batch batch = make_batch(std::span(&seq, 1), tiny_shape(), ids);
  REQUIRE(batch.scenes.sizes() == at::IntArrayRef({2, kSceneSlots}));
  CHECK(batch.scenes[1][9].item<int64_t>() == sample.task.zoom_scene.number[0]);
  CHECK(batch.scenes[0][4].item<int64_t>() == sample.task.scene.cells[4]);

  auto model = Model::load(dir, {DType::f32, 2, 0});
  const Image& image = *sample.task.image;
  auto tags = find_visual_tags(sample.completion, 0);
  REQUIRE(!tags.empty());
  auto box = to_pixels(tags.front().relative, image.width(), image.height());
  std::vector<Injection> injections(2);
  injections[0].offset = seq.pictures[0].offset;
  injections[0].embeddings = model->encode_image(image);
  injections[1].offset = seq.pictures[1].offset;
  injections[1].embeddings = model->encode_image(image.crop(box[0], box[1], box[2], box[3]));
  Runtime runtime(model);
  SequenceId s = runtime.create(static_cast<int64_t>(seq.tokens.size()));
  std::vector<float> engine;
  runtime.prefill(s, seq.tokens, &engine, injections);
  const std::vector<float> ours = all_rows(trainable, seq, ids);
  REQUIRE(engine.size() == ours.size());
  double worst = 0;
  for (size_t i = 0; i < ours.size(); ++i) worst = std::max(worst, double(std::abs(engine[i] - ours[i])));
  CHECK(worst < 1e-4);

  // The trained targets are exactly the completion and the turn end.
  std::string trained_text;
  for (size_t t = 0; t + 1 < seq.tokens.size(); ++t)
    if (seq.trained[t] && seq.tokens[t + 1] != ids.image_pad) trained_text += tok.token_bytes(seq.tokens[t + 1]);
  CHECK(trained_text == sample.completion + "<|im_end|>");
}

TEST_CASE("distill: training lowers the loss, writes a loadable folder, and a resumed run equals an uninterrupted one") {
  auto straight = temp_dir("distill-straight");
  std::vector<double> losses;
  DistillOptions o = tiny_run(straight, 12);
  o.on_progress = [&](const DistillProgress& p) { losses.push_back(p.cross_entropy); };
  DistillReport r = distill(o);
  REQUIRE(losses.size() == 12);
  CHECK(r.steps == 12);
  CHECK(r.eval_cross_entropy.has_value());
  CHECK(losses.back() < losses.front() * 0.75);
  CHECK(Model::load(straight)->info().vision);

  auto resumed = temp_dir("distill-resumed");
  DistillOptions first = tiny_run(resumed, 12);
  first.checkpoint_every = 5;
  int64_t calls = 0;
  first.on_progress = [&](const DistillProgress& p) {
    if (++calls == 7) throw std::runtime_error("interrupted");  // two steps after the step-5 checkpoint
  };
  CHECK_THROWS_AS(distill(first), std::runtime_error);
  DistillOptions second = tiny_run(resumed, 12);
  second.init_seed = 99;  // ignored: the run resumes from its checkpoint
  DistillReport r2 = distill(second);
  CHECK(r2.steps == 12);
  auto a = read_safetensors(straight / "model.safetensors");
  auto b = read_safetensors(resumed / "model.safetensors");
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, (a[i].second - b[i].second).abs().max().template item<double>());
  CHECK(worst < 1e-6);
}

namespace {

// Trains `run` until `stop_after` steps have run, then throws (a kill between
// checkpoints).
void train_until(DistillOptions run, int64_t stop_after) {
  int64_t calls = 0;
  run.on_progress = [&](const DistillProgress&) {
    if (++calls == stop_after) throw std::runtime_error("interrupted");
  };
  CHECK_THROWS_AS(distill(run), std::runtime_error);
}

double largest_difference(const std::filesystem::path& a, const std::filesystem::path& b) {
  auto x = read_safetensors(a), y = read_safetensors(b);
  REQUIRE(x.size() == y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    REQUIRE(x[i].first == y[i].first);
    worst = std::max(worst, (x[i].second - y[i].second).abs().max().template item<double>());
  }
  return worst;
}

}  // namespace

TEST_CASE("distill: a run killed while writing a checkpoint resumes to the same result") {
  namespace fs = std::filesystem;
  const auto straight = temp_dir("distill-kill-straight");
  (void)distill(tiny_run(straight, 12));

  // Two checkpoints of one run: at step 6 (`older`) and at step 9 (`newer`).
  auto run = [](const fs::path& dir) {
    DistillOptions o = tiny_run(dir, 12);
    o.checkpoint_every = 3;
    return o;
  };
  const auto older = temp_dir("distill-kill-older"), newer = temp_dir("distill-kill-newer");
  train_until(run(older), 7);
  train_until(run(newer), 10);
  const std::vector<std::string> files = {"model.safetensors", "optimizer.safetensors", "config.json"};

  // Each moment a kill can come while step 9's checkpoint replaces step 6's.
  enum class Killed { while_staging, before_commit, after_commit, while_moving };
  for (Killed killed : {Killed::while_staging, Killed::before_commit, Killed::after_commit, Killed::while_moving}) {
    CAPTURE(static_cast<int>(killed));
    const auto dir = temp_dir("distill-kill-case");
    for (const auto& entry : fs::directory_iterator(older)) fs::copy(entry.path(), dir / entry.path().filename());
    const fs::path staging = dir / ".checkpoint-next";
    fs::create_directories(staging);
    // Staged files are whole (each was written atomically); a torn temporary
    // of the one being written may lie beside them.
    for (const auto& f : files) fs::copy(newer / f, staging / f);
    std::ofstream(staging / "model.safetensors.tmp-1-0") << "torn";
    if (killed == Killed::while_staging) fs::remove(staging / "config.json");
    if (killed != Killed::while_staging)
      std::ofstream(staging / "step.json") << R"({"step": 9})";
    if (killed == Killed::after_commit || killed == Killed::while_moving)
      fs::copy(newer / "trainer_state.json", dir / "trainer_state.json", fs::copy_options::overwrite_existing);
    if (killed == Killed::while_moving)
      fs::rename(staging / "optimizer.safetensors", dir / "optimizer.safetensors");

    int64_t first_step = -1;
    DistillOptions resume = tiny_run(dir, 12);
    resume.on_progress = [&](const DistillProgress& p) {
      if (first_step < 0) first_step = p.step;
    };
    CHECK(distill(resume).steps == 12);
    // From step 6 where the commit had not happened, from step 9 where it had.
    CHECK(first_step == (killed == Killed::after_commit || killed == Killed::while_moving ? 10 : 7));
    CHECK_FALSE(fs::exists(staging));
    CHECK(largest_difference(straight / "model.safetensors", dir / "model.safetensors") < 1e-6);
  }
}

TEST_CASE("distill: bf16 matrix products train like f32, and leave f32 weights") {
  std::vector<double> f32_losses, bf16_losses;
  DistillOptions a = tiny_run(temp_dir("distill-f32"), 8);
  a.precision = DistillOptions::Precision::f32;
  a.on_progress = [&](const DistillProgress& p) { f32_losses.push_back(p.cross_entropy); };
  distill(a);
  DistillOptions b = tiny_run(temp_dir("distill-bf16"), 8);
  b.precision = DistillOptions::Precision::bf16;
  b.on_progress = [&](const DistillProgress& p) { bf16_losses.push_back(p.cross_entropy); };
  distill(b);
  REQUIRE(f32_losses.size() == 8);
  REQUIRE(bf16_losses.size() == 8);
  // The same batches and initial weights: the first loss differs only by
  // rounding, and bf16 must learn as f32 does (not stall or diverge).
  CHECK(bf16_losses.front() == doctest::Approx(f32_losses.front()).epsilon(0.02));
  CHECK(bf16_losses.back() < bf16_losses.front() * 0.8);
  CHECK(bf16_losses.back() == doctest::Approx(f32_losses.back()).epsilon(0.1));
  CHECK(f32_losses.front() != bf16_losses.front());  // bf16 really ran
  for (const auto& [name, t] : read_safetensors(b.out / "model.safetensors")) CHECK_MESSAGE(bool(t.scalar_type() == at::kFloat), name);
  CHECK(!at::autocast::is_cpu_enabled());  // the autocast state is restored
}

TEST_CASE("distill: logit distillation reads the teacher, and refuses one with another tokenizer") {
  auto teacher = temp_dir("distill-teacher");
  distill(tiny_run(teacher, 2));
  auto student = temp_dir("distill-student");
  DistillOptions o = tiny_run(student, 3);
  o.teacher = teacher;
  std::vector<double> kls;
  o.on_progress = [&](const DistillProgress& p) { kls.push_back(p.kl); };
  distill(o);
  REQUIRE(kls.size() == 3);
  CHECK(kls.front() > 0);

  // Another tokenizer: logits over different vocabularies cannot be compared.
  std::ofstream(teacher / "tokenizer.json", std::ios::app) << " ";
  DistillOptions bad = tiny_run(temp_dir("distill-student2"), 1);
  bad.teacher = teacher;
  CHECK_THROWS_WITH_AS(distill(bad), doctest::Contains("tokenizer differs"), Error);
}

TEST_CASE("distill: the scene loss trains a head that is kept out of the model, and reads the pictures") {
  auto dir = temp_dir("distill-scene");
  DistillOptions o = tiny_run(dir, 16);
  o.kinds = {"digit_sum", "count_color"};
  o.eval_samples = 16;
  o.vision_aux_weight = 1;
  std::vector<double> scene;
  std::optional<double> accuracy;
  o.on_progress = [&](const DistillProgress& p) {
    scene.push_back(p.scene_loss);
    if (p.eval_scene_accuracy) accuracy = p.eval_scene_accuracy;
  };
  distill(o);
  REQUIRE(scene.size() == 16);
  CHECK(scene.front() > 0);
  CHECK(scene.back() < scene.front() * 0.7);
  REQUIRE(accuracy.has_value());
  CHECK(*accuracy > 0.5);  // most cells are empty: a head that learnt anything gets those
  bool in_optimizer = false, in_model = false;
  for (const auto& [name, t] : read_safetensors(dir / "optimizer.safetensors"))
    in_optimizer = in_optimizer || name == "aux.scene_head.weight";
  for (const auto& [name, t] : read_safetensors(dir / "model.safetensors")) in_model = in_model || name.find("aux.") == 0;
  CHECK(in_optimizer);
  CHECK_FALSE(in_model);
  // Held-out accuracy per kind, only of the kinds trained on.
  auto state = nlohmann::json::parse(std::ifstream(dir / "trainer_state.json"));
  const auto& by_kind = state["history"].back()["eval_by_kind"];
  CHECK(by_kind.size() == 2);
  CHECK(by_kind["digit_sum"]["samples"] == 8);
  CHECK(by_kind.contains("count_color"));
  CHECK(state["kinds"] == nlohmann::json({"digit_sum", "count_color"}));

  // Weight 0 (the default): no head, no scene loss.
  auto off = temp_dir("distill-scene-off");
  DistillOptions o2 = tiny_run(off, 2);
  CHECK(o2.vision_aux_weight == 0);
  double most = 0;
  o2.on_progress = [&](const DistillProgress& p) { most = std::max(most, p.scene_loss); };
  distill(o2);
  CHECK(most == 0);
  for (const auto& [name, t] : read_safetensors(off / "optimizer.safetensors")) CHECK(name.find("aux.") != 0);
}

TEST_CASE("distill: a step run in micro-batches makes the same update as one pass") {
  auto teacher = temp_dir("distill-micro-teacher");
  distill(tiny_run(teacher, 1));
  auto run = [&](const char* name, int64_t budget, std::vector<DistillProgress>* seen) {
    auto dir = temp_dir(name);
    DistillOptions o = tiny_run(dir, 3);
    o.batch = 6;
    o.teacher = teacher;
    o.kl_weight = 0.5;
    o.vision_aux_weight = 1;
    o.kinds = {"arithmetic", "small_digits", "count_color"};
    o.precision = DistillOptions::Precision::f32;
    o.micro_batch_tokens = budget;
    o.on_progress = [seen](const DistillProgress& p) { seen->push_back(p); };
    distill(o);
    return dir;
  };
  std::vector<DistillProgress> whole, parts;
  auto a = run("distill-micro-whole", 0, &whole);
  auto b = run("distill-micro-parts", 1, &parts);  // every sequence a part of its own
  REQUIRE(whole.size() == 3);
  REQUIRE(parts.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(parts[i].cross_entropy == doctest::Approx(whole[i].cross_entropy).epsilon(1e-5));
    CHECK(parts[i].kl == doctest::Approx(whole[i].kl).epsilon(1e-4));
    CHECK(parts[i].scene_loss == doctest::Approx(whole[i].scene_loss).epsilon(1e-5));
    CHECK(parts[i].grad_norm == doctest::Approx(whole[i].grad_norm).epsilon(1e-4));
  }
  CHECK(whole.front().scene_loss > 0);
  CHECK(whole.front().kl > 0);
  // Adam divides by the gradients' own scale, so rounding in near-zero ones shows:
  // 1e-4 is 1% of one step's largest change (learning rate 1e-2).
  CHECK(largest_difference(a / "model.safetensors", b / "model.safetensors") < 1e-4);
}

TEST_CASE("distill: bad options name the field") {
  DistillOptions o = tiny_run(temp_dir("distill-bad"), 0);
  CHECK_THROWS_WITH_AS(distill(o), doctest::Contains("steps"), Error);
  o.steps = 1;
  o.shape.num_kv_heads = 3;
  CHECK_THROWS_WITH_AS(distill(o), doctest::Contains("shape"), Error);
  o = tiny_run(temp_dir("distill-bad"), 1);
  o.shape.stem_strides = {1};  // two stem layers, one stride
  CHECK_THROWS_WITH_AS(distill(o), doctest::Contains("stem"), Error);
  o = tiny_run(temp_dir("distill-bad"), 1);
  o.kinds = {"digit_sum", "juggling"};
  CHECK_THROWS_WITH_AS(distill(o), doctest::Contains("juggling"), Error);
  o.kinds = {};
  o.vision_aux_weight = -1;
  CHECK_THROWS_WITH_AS(distill(o), doctest::Contains("vision_aux_weight"), Error);
  o = tiny_run(temp_dir("distill-bad"), 1);
  o.micro_batch_tokens = -1;
  CHECK_THROWS_WITH_AS(distill(o), doctest::Contains("micro_batch_tokens"), Error);
  o = tiny_run("", 1);
  CHECK_THROWS_WITH_AS(distill(o), doctest::Contains("out"), Error);
}

TEST_CASE("distill: exported samples are the curriculum's, one JSON line each, with their pictures") {
  auto dir = temp_dir("distill-export");
  export_samples(dir, 5, 10, 16);
  std::ifstream in(dir / "samples.jsonl");
  const Curriculum curriculum({5});
  std::string line;
  int64_t lines = 0, pictures = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    const Sample s = curriculum.sample(10 + lines);
    CHECK(j["index"] == 10 + lines);
    CHECK(j["completion"] == s.completion);
    CHECK(j["answer"] == s.task.answer);
    CHECK(j["image"].is_null() == !s.task.image.has_value());
    if (s.task.image) {
      Image back = Image::load(dir / j["image"].get<std::string>());
      CHECK(std::equal(back.pixels().begin(), back.pixels().end(), s.task.image->pixels().begin()));
      ++pictures;
    }
    ++lines;
  }
  CHECK(lines == 16);
  CHECK(pictures > 0);
}
