// musespark::distill — the training loop (see include/musespark/distill.hpp).
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/grad_mode.h>
#include <ATen/Parallel.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <malloc.h>
#include <optional>

#include "common/atomic_file.hpp"
#include "common/json_file.hpp"
#include "common/parallel.hpp"
#include "distill/batch.hpp"
#include "distill/curriculum.hpp"
#include "distill/tokenizer_files.hpp"
#include "distill/trainable.hpp"
#include "kernels/cpu_features.hpp"
#include "musespark/distill.hpp"
#include "musespark/model.hpp"
#include "musespark/error.hpp"

namespace musespark {

ModelShape ModelShape::student() { return ModelShape{}; }

ModelShape ModelShape::teacher() {
  ModelShape s;
  s.hidden_size = 320;
  s.intermediate_size = 960;
  s.num_layers = 6;
  s.num_heads = 5;
  s.num_kv_heads = 1;
  s.head_dim = 64;
  s.vision_hidden_size = 128;
  s.vision_intermediate_size = 256;
  s.vision_layers = 2;
  s.vision_heads = 4;
  return s;
}

namespace {

using namespace detail;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

[[noreturn]] void bad_option(const std::string& field, const std::string& message) {
  throw Error(ErrorKind::invalid_argument, "", field, message);
}

std::vector<TaskKind> task_kinds(const std::vector<std::string>& names) {
  std::vector<TaskKind> kinds;
  for (const auto& name : names) {
    auto kind = parse_task_kind(name);
    if (!kind) bad_option("kinds", fmt::format("unknown task kind \"{}\"", name));
    kinds.push_back(*kind);
  }
  return kinds;
}

void check(const DistillOptions& o) {
  if (o.out.empty()) bad_option("out", "an output folder is required");
  if (o.steps <= 0) bad_option("steps", fmt::format("must be positive, got {}", o.steps));
  if (o.batch <= 0) bad_option("batch", fmt::format("must be positive, got {}", o.batch));
  if (o.micro_batch_tokens < 0)
    bad_option("micro_batch_tokens", fmt::format("must not be negative, got {}", o.micro_batch_tokens));
  if (!(o.learning_rate > 0)) bad_option("learning_rate", "must be positive");
  if (!(o.min_learning_rate_ratio >= 0 && o.min_learning_rate_ratio <= 1))
    bad_option("min_learning_rate_ratio", "must be in [0, 1]");
  if (o.warmup_steps < 0) bad_option("warmup_steps", "must not be negative");
  if (!(o.kl_weight >= 0 && o.kl_weight <= 1)) bad_option("kl_weight", "must be in [0, 1]");
  if (!(o.temperature > 0)) bad_option("temperature", "must be positive");
  if (!(o.clip_grad_norm >= 0)) bad_option("clip_grad_norm", "must not be negative (0: no clipping)");
  if (o.eval_samples < 0 || o.eval_every < 0 || o.checkpoint_every < 0)
    bad_option("eval_samples", "evaluation and checkpoint counts must not be negative");
  const auto& s = o.shape;
  if (s.hidden_size <= 0 || s.num_layers <= 0 || s.num_heads <= 0 || s.num_kv_heads <= 0 || s.head_dim <= 0 ||
      s.head_dim % 2 != 0 || s.num_heads % s.num_kv_heads != 0 || s.intermediate_size <= 0)
    bad_option("shape", "text model sizes must be positive, head_dim even, kv heads dividing heads");
  if (s.vision_hidden_size <= 0 || s.vision_heads <= 0 || s.vision_hidden_size % s.vision_heads != 0 ||
      s.vision_layers <= 0 || s.patch_size <= 0 || s.image_size % s.patch_size != 0)
    bad_option("shape", "vision sizes must be positive, heads dividing hidden, patch dividing image size");
  if (s.stem_channels.size() != s.stem_strides.size() ||
      std::any_of(s.stem_channels.begin(), s.stem_channels.end(), [](int64_t v) { return v <= 0; }) ||
      std::any_of(s.stem_strides.begin(), s.stem_strides.end(), [](int64_t v) { return v <= 0; }) ||
      s.patch_size % stem_stride(s) != 0)
    bad_option("shape", "stem: one positive stride per positive channel count, their product dividing patch_size");
  if (!(o.vision_aux_weight >= 0)) bad_option("vision_aux_weight", "must not be negative");
  task_kinds(o.kinds);
}

// Linear warm-up, then a cosine from the peak down to peak * min_ratio.
double learning_rate(const DistillOptions& o, int64_t step) {
  if (step < o.warmup_steps) return o.learning_rate * double(step + 1) / double(o.warmup_steps);
  const double span = std::max<int64_t>(1, o.steps - o.warmup_steps);
  const double progress = std::min(1.0, double(step - o.warmup_steps) / span);
  const double low = o.learning_rate * o.min_learning_rate_ratio;
  return low + (o.learning_rate - low) * 0.5 * (1 + std::cos(M_PI * progress));
}

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorKind::io, file.string(), "", "cannot read");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A checkpoint is several files (weights, optimizer moments, config,
// trainer_state.json) that must change together: a run killed between two of
// them would resume from weights of one step and moments of another. So the
// new files are first written whole into kStaging (each atomically), then
// kStagedStep names their step; trainer_state.json, replaced atomically, is
// the commit; then the staged files are moved over the old ones. A run that
// starts finds the staging folder and finishes the move if trainer_state.json
// already names the staged step, or else throws the staging away: either
// way the folder holds one whole checkpoint.
constexpr const char* kStaging = ".checkpoint-next";
constexpr const char* kStagedStep = "step.json";

void recover_checkpoint(const fs::path& out) {
  const fs::path staging = out / kStaging, state_file = out / "trainer_state.json";
  if (!fs::exists(staging)) return;
  bool roll_forward = false;
  if (fs::exists(staging / kStagedStep) && fs::exists(state_file)) {
    const int64_t staged = required_int(read_json_file(staging / kStagedStep), "step", (staging / kStagedStep).string());
    roll_forward = required_int(read_json_file(state_file), "step", state_file.string()) == staged;
  }
  if (roll_forward)
    for (const auto& entry : fs::directory_iterator(staging)) {
      const std::string name = entry.path().filename().string();
      if (name != kStagedStep && name.find(".tmp-") == std::string::npos) fs::rename(entry.path(), out / name);
    }
  fs::remove_all(staging);
}

SpecialIds special_ids(const Tokenizer& tok, const fs::path& dir) {
  auto need = [&](const char* token) {
    auto id = tok.token_id(token);
    if (!id) throw Error(ErrorKind::format, (dir / "tokenizer.json").string(), "added_tokens", fmt::format("no {}", token));
    return int64_t(*id);
  };
  return {tok.vocab_size(), need("<|im_end|>"), need("<|endoftext|>"), need("<|image_pad|>")};
}

// Samples [first, first + count) of `curriculum` as sequences, built on all cores.
std::vector<Sequence> sequences(const Curriculum& curriculum, const SequenceBuilder& builder, uint64_t first,
                                int64_t count) {
  std::vector<Sequence> out(count);
  parallel_for(static_cast<size_t>(count), at::get_num_threads(),
               [&](size_t i) { out[i] = builder.build(curriculum.sample(first + i)); });
  return out;
}

// Lengths vary threefold (text, a picture, a zoom-in, a workspace), and a
// batch is padded to its longest sequence. So the samples of kGroupSteps
// consecutive steps are drawn together, sorted by length and dealt out in
// runs: a step's batch holds sequences of similar length. Still a pure
// function of the step, so a resumed run trains on the same batches.
constexpr int64_t kGroupSteps = 8;

std::vector<Sequence> batch_of_step(const Curriculum& curriculum, const SequenceBuilder& builder, int64_t step,
                                    int64_t batch) {
  const int64_t group = step / kGroupSteps;
  std::vector<Sequence> all = sequences(curriculum, builder, static_cast<uint64_t>(group * kGroupSteps * batch),
                                        kGroupSteps * batch);
  std::vector<size_t> order(all.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return all[a].tokens.size() < all[b].tokens.size(); });
  // Runs in a scrambled order, so that long and short batches alternate.
  constexpr int64_t kRunOrder[kGroupSteps] = {3, 6, 0, 5, 2, 7, 1, 4};
  const int64_t run = kRunOrder[step % kGroupSteps];
  std::vector<Sequence> out;
  for (int64_t i = run * batch; i < (run + 1) * batch; ++i) out.push_back(std::move(all[order[i]]));
  return out;
}

// A step's sequences in consecutive parts of at most `budget` padded tokens
// (count x the part's longest; a longer sequence gets a part of its own),
// each padded as its own batch. budget 0: one part.
std::vector<Batch> micro_batches(std::span<const Sequence> seqs, int64_t budget, const ModelShape& shape,
                                 const SpecialIds& ids) {
  std::vector<Batch> parts;
  size_t first = 0;
  while (first < seqs.size()) {
    size_t end = first + 1;
    int64_t longest = static_cast<int64_t>(seqs[first].tokens.size());
    while (end < seqs.size()) {
      const int64_t l = std::max<int64_t>(longest, static_cast<int64_t>(seqs[end].tokens.size()));
      if (budget > 0 && l * static_cast<int64_t>(end + 1 - first) > budget) break;
      longest = l;
      ++end;
    }
    parts.push_back(make_batch(seqs.subspan(first, end - first), shape, ids));
    first = end;
  }
  return parts;
}

struct Losses {
  at::Tensor loss, ce, kl;
};

// Sums over this part's target rows divided by `rows`, the whole step's
// count: the parts of a step add up to the step's means.
Losses losses(const at::Tensor& logits, const at::Tensor& targets, const at::Tensor& teacher_logits,
              const DistillOptions& o, int64_t rows) {
  Losses l;
  const double n = double(std::max<int64_t>(1, rows));
  l.ce = at::cross_entropy_loss(logits, targets, {}, at::Reduction::Sum) / n;
  if (!teacher_logits.defined()) {
    l.loss = l.ce;
    return l;
  }
  const double T = o.temperature;
  at::Tensor log_student = at::log_softmax(logits / T, -1);
  at::Tensor log_teacher = at::log_softmax(teacher_logits / T, -1);
  l.kl = (log_teacher.exp() * (log_teacher - log_student)).sum() / n;
  l.loss = o.kl_weight * T * T * l.kl + (1 - o.kl_weight) * l.ce;
  return l;
}

// The auxiliary vision loss: a linear head reads, from each image token as
// the text model receives it, the content of the grid cell the token's patch
// lies in (its centre), and on a zoomed-in crop the small number's two digits
// (from every token: the number can be anywhere in the crop). Trained
// without it, the shipped model ignores its picture tokens (held-out loss
// unchanged with the pixels replaced by noise): their content is noise to the
// text model long before it could use it, and training shrinks it to nothing.
// This loss is meant to keep the content in the tokens; docs/distill.md has
// what it has done so far. Training only: the head is not part of the model.
struct SceneHead {
  at::Tensor weight, bias;  // [3 * kSceneClasses, hidden], [3 * kSceneClasses]: own cell, tens digit, units digit
};
constexpr int64_t kSceneHeadSlots = 3;

struct SceneLoss {
  at::Tensor loss;          // summed cross-entropy over labelled (token, slot) pairs
  int64_t labelled = 0;     // labelled (token, slot) pairs
  int64_t right = 0;        // of which the head's greedy class is right
};

// The head's targets for pictures of P patches each (g * g, row-major):
// [N * P * 3], kSceneIgnore where unlabelled. scenes [N, kSceneSlots].
at::Tensor scene_targets(const at::Tensor& scenes, int64_t P) {
  const int64_t N = scenes.size(0);
  const auto g = static_cast<int64_t>(std::lround(std::sqrt(double(P))));
  std::vector<int64_t> cell_of(static_cast<size_t>(P));
  for (int64_t t = 0; t < P; ++t) {
    const int64_t row = (2 * (t / g) + 1) * 3 / (2 * g), col = (2 * (t % g) + 1) * 3 / (2 * g);  // patch centre's cell
    cell_of[static_cast<size_t>(t)] = row * 3 + col;
  }
  at::Tensor own = scenes.index_select(1, at::tensor(at::ArrayRef<int64_t>(cell_of), at::kLong));  // [N, P]
  at::Tensor digits = scenes.narrow(1, 9, 2).unsqueeze(1).expand({N, P, 2});
  return at::cat({own.unsqueeze(2), digits}, 2).reshape({-1});
}

int64_t scene_labelled(const at::Tensor& scenes, int64_t P) {
  return scenes.defined() ? scene_targets(scenes, P).ge(0).sum().item<int64_t>() : 0;
}

// images [N, P, H].
SceneLoss scene_loss(const SceneHead& head, const at::Tensor& images, const at::Tensor& scenes) {
  at::Tensor targets = scene_targets(scenes, images.size(1));
  SceneLoss out;
  at::Tensor labelled = targets.ge(0);
  out.labelled = labelled.sum().item<int64_t>();
  if (out.labelled == 0) return out;
  // On RMS-normalised tokens: the head sees what the text model's first norm
  // sees, whatever the tokens' scale.
  at::Tensor x = images.to(at::kFloat);
  x = x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + 1e-6);
  at::Tensor logits = at::linear(x, head.weight, head.bias).reshape({-1, kSceneClasses});
  out.loss = at::cross_entropy_loss(logits, targets, {}, at::Reduction::Sum, kSceneIgnore);
  out.right = logits.detach().argmax(-1).eq(targets).logical_and(labelled).sum().item<int64_t>();
  return out;
}

struct Evaluation {
  double cross_entropy = 0;
  double exact = 0;
  // Per task kind: samples, the share wholly exact, the share whose final
  // answer (and turn end) is the greedy choice under teacher forcing.
  nlohmann::ordered_json by_kind = nlohmann::ordered_json::object();
  std::optional<double> scene_accuracy;  // the scene head's share of labelled (token, slot) pairs right
};

Evaluation evaluate(const TrainableModel& model, std::span<const Sequence> held_out, int64_t batch,
                    const SpecialIds& ids, const SceneHead* head) {
  at::NoGradGuard no_grad;
  double ce_sum = 0, rows = 0, exact = 0;
  int64_t scene_labelled = 0, scene_right = 0;
  struct Tally {
    int64_t samples = 0, exact = 0, answer_exact = 0;
  };
  std::map<TaskKind, Tally> tallies;
  for (size_t first = 0; first < held_out.size(); first += batch) {
    auto chunk = held_out.subspan(first, std::min<size_t>(batch, held_out.size() - first));
    Batch b = make_batch(chunk, model.shape(), ids);
    at::Tensor images;
    at::Tensor logits = model.forward(b.input, &images);
    if (head && images.defined()) {
      SceneLoss sl = scene_loss(*head, images, b.scenes);
      scene_labelled += sl.labelled;
      scene_right += sl.right;
    }
    ce_sum += at::cross_entropy_loss(logits, b.targets, {}, at::Reduction::Sum).item<double>();
    rows += b.targets.size(0);
    at::Tensor right = logits.argmax(-1).eq(b.targets);
    auto r = right.accessor<bool, 1>();
    int64_t row = 0;
    for (const Sequence& s : chunk) {
      const int64_t targets = std::count(s.trained.begin(), s.trained.end(), char(1));
      bool all = true, answer = true;
      for (int64_t i = 0; i < targets; ++i, ++row) {
        all = all && r[row];
        if (i >= targets - s.answer_targets) answer = answer && r[row];
      }
      exact += all;
      Tally& t = tallies[s.kind];
      ++t.samples;
      t.exact += all;
      t.answer_exact += answer;
    }
  }
  Evaluation e;
  e.cross_entropy = ce_sum / std::max(1.0, rows);
  e.exact = exact / std::max<size_t>(1, held_out.size());
  for (const auto& [kind, t] : tallies)
    e.by_kind[task_kind_name(kind)] = {{"samples", t.samples},
                                       {"exact", double(t.exact) / t.samples},
                                       {"answer_exact", double(t.answer_exact) / t.samples}};
  if (scene_labelled > 0) e.scene_accuracy = double(scene_right) / double(scene_labelled);
  return e;
}

// See distill.hpp: every step frees and reallocates activations of the same
// sizes; by default glibc hands large blocks back to the system (and the
// kernel zeroes the pages again on the next step).
void keep_freed_memory() {
  // glibc refuses thresholds above 32 MiB on 64-bit; the top pad covers the rest.
  if (mallopt(M_MMAP_THRESHOLD, 1 << 30) == 0) mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
  mallopt(M_TOP_PAD, 1 << 30);
}

bool use_bf16(DistillOptions::Precision p) {
  if (p == DistillOptions::Precision::automatic) return kernels::detected_isa() == kernels::KernelIsa::avx512;
  return p == DistillOptions::Precision::bf16;
}

// Matrix products in bfloat16 for the guard's lifetime (ATen's CPU autocast).
class Bf16Autocast {
 public:
  explicit Bf16Autocast(bool on) : on_(on) {
    if (!on_) return;
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(true);
  }
  ~Bf16Autocast() {
    if (!on_) return;
    at::autocast::set_cpu_enabled(false);
    at::autocast::clear_cache();
  }
  Bf16Autocast(const Bf16Autocast&) = delete;
  Bf16Autocast& operator=(const Bf16Autocast&) = delete;

 private:
  bool on_;
};

struct State {
  int64_t step = 0;
  double seconds = 0;
  nlohmann::json history = nlohmann::json::array();
};

}  // namespace

DistillReport distill(const DistillOptions& options) {
  DistillOptions o = options;
  check(o);
  keep_freed_memory();
  const bool bf16 = use_bf16(o.precision);
  at::set_num_threads(resolve_threads(o.threads));
  fs::create_directories(o.out);
  recover_checkpoint(o.out);
  const fs::path state_file = o.out / "trainer_state.json";
  const bool resuming = o.resume && fs::exists(state_file);
  if (!resuming || !fs::exists(o.out / "tokenizer.json")) write_tokenizer_files(o.out);
  const Tokenizer tokenizer = Tokenizer::load(o.out);
  const ChatTemplate chat = ChatTemplate::load(o.out);
  const SpecialIds ids = special_ids(tokenizer, o.out);

  State state;
  std::optional<TrainableModel> loaded;
  std::map<std::string, at::Tensor> moments;
  if (resuming) {
    nlohmann::json j = read_json_file(state_file);
    state.step = required_int(j, "step", state_file.string());
    state.seconds = required_number(j, "seconds", state_file.string());
    if (j.contains("history")) state.history = j["history"];
    o.shape = TrainableModel::read_shape(o.out / "config.json");
    loaded.emplace(TrainableModel::load(o.out, o.shape, ids));
    for (auto& [name, t] : read_safetensors(o.out / "optimizer.safetensors")) moments[name] = t;
  } else {
    loaded.emplace(o.shape, ids, o.init_seed);
  }
  TrainableModel& model = *loaded;

  std::optional<TrainableModel> teacher;
  if (o.teacher) {
    if (read_bytes(*o.teacher / "tokenizer.json") != read_bytes(o.out / "tokenizer.json"))
      throw Error(ErrorKind::invalid_argument, (*o.teacher / "tokenizer.json").string(), "teacher",
                  "the teacher's tokenizer differs from the student's: logits cannot be compared");
    teacher.emplace(TrainableModel::load(*o.teacher, TrainableModel::read_shape(*o.teacher / "config.json"), ids));
    for (const auto& [name, t] : teacher->parameters()) t.set_requires_grad(false);
  }

  // Everything the optimizer updates: the model, and the scene head while the
  // auxiliary vision loss is on (its weights live in optimizer.safetensors).
  std::vector<std::pair<std::string, at::Tensor>> trained = model.parameters();
  std::optional<SceneHead> head;
  if (o.vision_aux_weight > 0) {
    const int64_t outputs = kSceneHeadSlots * kSceneClasses, H = model.shape().hidden_size;
    auto stored = [&](const std::string& name, at::Tensor fresh) {
      auto it = moments.find(name);
      at::Tensor t = it != moments.end() && it->second.sizes() == fresh.sizes() ? it->second : fresh;
      return t.set_requires_grad(true);
    };
    at::manual_seed(o.init_seed + 1);
    head = SceneHead{stored("aux.scene_head.weight", at::randn({outputs, H}, at::kFloat) * 0.02),
                     stored("aux.scene_head.bias", at::zeros({outputs}, at::kFloat))};
    trained.emplace_back("aux.scene_head.weight", head->weight);
    trained.emplace_back("aux.scene_head.bias", head->bias);
  }
  std::vector<at::Tensor> exp_avg, exp_avg_sq;
  for (const auto& [name, t] : trained) {
    auto m = moments.find("exp_avg." + name), v = moments.find("exp_avg_sq." + name);
    const bool have = m != moments.end() && v != moments.end() && m->second.sizes() == t.sizes() &&
                      v->second.sizes() == t.sizes();
    if (resuming && !have && name.rfind("aux.", 0) != 0)  // a head added on resume starts afresh
      throw Error(ErrorKind::format, (o.out / "optimizer.safetensors").string(), "exp_avg." + name,
                  "missing or of the wrong shape");
    exp_avg.push_back(have ? m->second : at::zeros_like(t).detach());
    exp_avg_sq.push_back(have ? v->second : at::zeros_like(t).detach());
  }

  const std::vector<TaskKind> kinds = task_kinds(o.kinds);
  const Curriculum curriculum({o.data_seed, kinds, o.instant_fraction, o.refine_fraction});
  const Curriculum held_out_curriculum({o.eval_seed, kinds, o.instant_fraction, o.refine_fraction});
  const SequenceBuilder builder{tokenizer, chat, model.shape(), ids};
  const std::vector<Sequence> held_out = sequences(held_out_curriculum, builder, 0, o.eval_samples);

  auto checkpoint = [&](const State& s) {
    const fs::path staging = o.out / kStaging;
    fs::remove_all(staging);
    fs::create_directories(staging);
    std::vector<std::pair<std::string, at::Tensor>> opt;
    for (size_t i = 0; i < trained.size(); ++i) {
      opt.emplace_back("exp_avg." + trained[i].first, exp_avg[i]);
      opt.emplace_back("exp_avg_sq." + trained[i].first, exp_avg_sq[i]);
    }
    if (head) {
      opt.emplace_back("aux.scene_head.weight", head->weight);
      opt.emplace_back("aux.scene_head.bias", head->bias);
    }
    write_safetensors(staging / "optimizer.safetensors", opt);
    model.save(staging);
    write_file_atomically(staging / kStagedStep, nlohmann::json{{"step", s.step}}.dump() + "\n");
    nlohmann::ordered_json j;
    j["step"] = s.step;
    j["steps"] = o.steps;
    j["seconds"] = s.seconds;
    j["teacher"] = o.teacher ? o.teacher->string() : "";
    j["batch"] = o.batch;
    j["learning_rate"] = o.learning_rate;
    j["kl_weight"] = o.teacher ? o.kl_weight : 0.0;
    j["temperature"] = o.temperature;
    j["data_seed"] = o.data_seed;
    j["kinds"] = o.kinds;
    j["vision_aux_weight"] = o.vision_aux_weight;
    j["init_seed"] = o.init_seed;
    j["parameters"] = model.parameter_count();
    j["history"] = s.history;
    write_file_atomically(state_file, j.dump(2) + "\n");  // the commit
    recover_checkpoint(o.out);
  };

  DistillReport report;
  report.parameter_count = model.parameter_count();
  const auto start = Clock::now();
  const double seconds_before = state.seconds;
  int64_t tokens_this_run = 0;
  const double b1 = o.adam_beta1, b2 = o.adam_beta2;
  const int64_t image_tokens = picture_tokens(model.shape());
  for (; state.step < o.steps;) {
    const int64_t step = state.step;
    const double lr = learning_rate(o, step);
    const auto seqs = batch_of_step(curriculum, builder, step, o.batch);
    const std::vector<Batch> parts = micro_batches(seqs, o.micro_batch_tokens, model.shape(), ids);
    int64_t rows = 0, labelled = 0, step_tokens = 0;
    for (const Batch& b : parts) {
      rows += b.targets.size(0);
      labelled += scene_labelled(b.scenes, image_tokens);
      step_tokens += b.tokens;
    }
    for (const auto& [name, t] : trained) const_cast<at::Tensor&>(t).mutable_grad().reset();
    double loss_sum = 0, ce_sum = 0, kl_sum = 0, scene_sum = 0;
    bool has_scene = false;
    for (const Batch& b : parts) {
      at::Tensor teacher_logits, logits, images;
      {
        Bf16Autocast autocast(bf16);
        if (teacher) {
          at::NoGradGuard no_grad;
          teacher_logits = teacher->forward(b.input).to(at::kFloat);
        }
        logits = model.forward(b.input, &images).to(at::kFloat);
      }
      Losses l = losses(logits, b.targets, teacher_logits, o, rows);
      at::Tensor total = l.loss;
      if (head && images.defined() && labelled > 0) {
        SceneLoss scene = scene_loss(*head, images, b.scenes);
        if (scene.loss.defined()) {
          at::Tensor part = scene.loss / double(labelled);
          total = total + o.vision_aux_weight * part;
          scene_sum += part.item<double>();
          has_scene = true;
        }
      }
      total.backward();
      loss_sum += total.item<double>();
      ce_sum += l.ce.item<double>();
      if (l.kl.defined()) kl_sum += l.kl.item<double>();
    }

    DistillProgress p;
    {
      at::NoGradGuard no_grad;
      double sq = 0;
      for (const auto& [name, t] : trained)
        if (t.grad().defined()) sq += t.grad().pow(2).sum().item<double>();
      p.grad_norm = std::sqrt(sq);
      const double scale = o.clip_grad_norm > 0 && p.grad_norm > o.clip_grad_norm ? o.clip_grad_norm / p.grad_norm : 1.0;
      const double t = double(step + 1);
      const double bc1 = 1 - std::pow(b1, t), bc2 = 1 - std::pow(b2, t);
      for (size_t i = 0; i < trained.size(); ++i) {
        const auto& [name, param] = trained[i];
        at::Tensor w = param;  // shares storage: the update is in place
        if (!w.grad().defined()) continue;
        at::Tensor g = w.grad() * scale;
        exp_avg[i].mul_(b1).add_(g, 1 - b1);
        exp_avg_sq[i].mul_(b2).addcmul_(g, g, 1 - b2);
        if (TrainableModel::decays(name)) w.mul_(1 - lr * o.weight_decay);
        w.addcdiv_(exp_avg[i], (exp_avg_sq[i] / bc2).sqrt_().add_(o.adam_eps), -lr / bc1);
      }
    }
    state.step = step + 1;
    tokens_this_run += step_tokens;
    const double run_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    state.seconds = seconds_before + run_seconds;

    p.step = state.step;
    p.steps = o.steps;
    p.loss = loss_sum;
    p.scene_loss = has_scene ? scene_sum : 0.0;
    p.cross_entropy = ce_sum;
    p.kl = kl_sum;
    p.learning_rate = lr;
    p.tokens_per_second = tokens_this_run / std::max(1e-9, run_seconds);
    p.elapsed_seconds = state.seconds;
    if (!std::isfinite(p.loss))
      throw Error(ErrorKind::internal, "", "loss", fmt::format("not finite at step {} (lower the learning rate)", p.step));
    const bool last = state.step == o.steps;
    if (!held_out.empty() && ((o.eval_every > 0 && state.step % o.eval_every == 0) || last)) {
      Evaluation e = evaluate(model, held_out, o.batch, ids, head ? &*head : nullptr);
      p.eval_cross_entropy = e.cross_entropy;
      p.eval_exact = e.exact;
      p.eval_scene_accuracy = e.scene_accuracy;
      state.history.push_back({{"step", state.step},
                               {"seconds", state.seconds},
                               {"train_loss", p.loss},
                               {"train_cross_entropy", p.cross_entropy},
                               {"eval_cross_entropy", e.cross_entropy},
                               {"eval_exact", e.exact},
                               {"eval_by_kind", e.by_kind}});
      if (e.scene_accuracy) state.history.back()["eval_scene_accuracy"] = *e.scene_accuracy;
    }
    if (last || (o.checkpoint_every > 0 && state.step % o.checkpoint_every == 0)) {
      checkpoint(state);
      p.checkpoint = true;
    }
    report.final_cross_entropy = p.cross_entropy;
    report.eval_cross_entropy = p.eval_cross_entropy;
    report.eval_exact = p.eval_exact;
    if (o.on_progress) o.on_progress(p);
  }
  report.steps = state.step;
  report.seconds = state.seconds;
  if (!report.eval_cross_entropy && !state.history.empty()) {
    report.eval_cross_entropy = state.history.back().value("eval_cross_entropy", 0.0);
    report.eval_exact = state.history.back().value("eval_exact", 0.0);
  }
  return report;
}

}  // namespace musespark
