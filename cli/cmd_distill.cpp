// musespark distill --out DIR [--teacher DIR] [--shape student|teacher] [--steps N] ...
// musespark distill --out DIR --export-samples N [--seed S] [--export-from I]
//
// Trains a model folder on the curriculum's teacher traces; with --teacher,
// adds logit distillation from that (larger, trained) model. Resumes from DIR
// when it holds an unfinished run. Progress on stderr: a bar with the loss,
// learning rate and tokens/s, and a line at every evaluation.
#include <cstdio>
#include <filesystem>
#include <map>
#include <unistd.h>

#include <fmt/format.h>

#include "commands.hpp"
#include "common.hpp"
#include "musespark/distill.hpp"

namespace musespark::cli {
namespace {

struct DistillArgs {
  DistillOptions options;
  std::string out, teacher, shape = "student";
  std::vector<int64_t> stem_channels, stem_strides;
  // A new model's text size, over --shape's (0: the shape's own).
  int64_t hidden_size = 0, intermediate_size = 0, layers = 0, heads = 0;
  bool no_resume = false;
  int64_t export_count = 0;
  uint64_t export_first = 0;
};

std::string clock_text(double seconds) {
  const int s = static_cast<int>(seconds + 0.5);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{}:{:02}", s / 60, s % 60);
}

void show(const DistillProgress& p, bool terminal) {
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(kWidth * p.step / std::max<int64_t>(1, p.steps));
  const double per_step = p.step > 0 ? p.elapsed_seconds / p.step : 0;
  const std::string extra = (p.kl > 0 ? fmt::format(" kl {:.4f}", p.kl) : "") +
                            (p.scene_loss > 0 ? fmt::format(" scene {:.3f}", p.scene_loss) : "");
  std::string line = fmt::format("[{}{}] {}/{} loss {:.4f} ce {:.4f}{} lr {:.2e} {:.0f} tok/s {} eta {}",
                                 std::string(filled, '#'), std::string(kWidth - filled, '-'), p.step, p.steps, p.loss,
                                 p.cross_entropy, extra, p.learning_rate,
                                 p.tokens_per_second, clock_text(p.elapsed_seconds),
                                 clock_text(per_step * double(p.steps - p.step)));
  if (terminal) {
    std::fprintf(stderr, "\r%s\033[K", line.c_str());
    if (p.eval_cross_entropy || p.step == p.steps) std::fprintf(stderr, "\n");
  } else if (p.eval_cross_entropy || p.checkpoint || p.step == 1 || p.step % 50 == 0) {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  if (p.eval_cross_entropy)
    std::fprintf(stderr, "eval @ %lld: held-out cross-entropy %.4f, exact %.1f%%%s%s\n", static_cast<long long>(p.step),
                 *p.eval_cross_entropy, 100 * p.eval_exact.value_or(0),
                 p.eval_scene_accuracy ? fmt::format(", scene {:.1f}%", 100 * *p.eval_scene_accuracy).c_str() : "",
                 p.checkpoint ? " (checkpoint written)" : "");
}

void run(DistillArgs& a) {
  if (a.export_count > 0) {
    export_samples(a.out, a.options.data_seed, a.export_first, a.export_count);
    std::printf("wrote %lld samples of seed %llu to %s\n", static_cast<long long>(a.export_count),
                static_cast<unsigned long long>(a.options.data_seed), (std::filesystem::path(a.out) / "samples.jsonl").c_str());
    return;
  }
  DistillOptions o = a.options;
  o.out = a.out;
  if (!a.teacher.empty()) o.teacher = a.teacher;
  ModelShape defaults = a.shape == "teacher" ? ModelShape::teacher() : ModelShape::student();
  o.shape = defaults;
  if (!a.stem_channels.empty() || !a.stem_strides.empty()) {
    o.shape.stem_channels = a.stem_channels;
    o.shape.stem_strides = a.stem_strides;
  }
  if (a.hidden_size > 0) o.shape.hidden_size = a.hidden_size;
  if (a.intermediate_size > 0) o.shape.intermediate_size = a.intermediate_size;
  if (a.layers > 0) o.shape.num_layers = a.layers;
  if (a.heads > 0) o.shape.num_heads = a.heads;
  o.resume = !a.no_resume;
  const bool terminal = isatty(fileno(stderr));
  o.on_progress = [terminal](const DistillProgress& p) { show(p, terminal); };
  DistillReport r = distill(o);
  std::printf("trained %s: %lld parameters, %lld steps in %s", a.out.c_str(), static_cast<long long>(r.parameter_count),
              static_cast<long long>(r.steps), clock_text(r.seconds).c_str());
  if (r.eval_cross_entropy)
    std::printf(", held-out cross-entropy %.4f, exact %.1f%%", *r.eval_cross_entropy, 100 * r.eval_exact.value_or(0));
  std::printf("\n");
}

}  // namespace

void add_distill_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<DistillArgs>();
  auto* cmd = app.add_subcommand("distill", "train a model on the curriculum's traces, optionally from a teacher model's logits");
  DistillOptions& o = a->options;
  cmd->add_option("--out", a->out, "model folder to write (resumed if it holds an unfinished run)")->required();
  cmd->add_option("--teacher", a->teacher, "trained model folder: adds logit distillation (KL at --temperature)");
  cmd->add_option("--shape", a->shape, "architecture of a new model")->check(CLI::IsMember({"student", "teacher"}));
  cmd->add_option("--steps", o.steps)->check(CLI::PositiveNumber);
  cmd->add_option("--batch", o.batch, "sequences per step")->check(CLI::PositiveNumber);
  cmd->add_option("--micro-batch-tokens", o.micro_batch_tokens,
                  "padded tokens per forward/backward part of a step (bounds memory; 0: whole batch)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--lr", o.learning_rate, "peak learning rate")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", o.warmup_steps, "warm-up steps")->check(CLI::NonNegativeNumber);
  cmd->add_option("--kl-weight", o.kl_weight, "share of the KL term with --teacher")->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--temperature", o.temperature, "distillation temperature")->check(CLI::PositiveNumber);
  cmd->add_option("--vision-aux-weight", o.vision_aux_weight, "weight of the auxiliary vision (scene) loss; 0: off")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--stem-channels", a->stem_channels, "a new model's convolutional stem: channels per 3x3 conv")
      ->delimiter(',');
  cmd->add_option("--hidden-size", a->hidden_size, "a new model's text hidden size (default: --shape's)")
      ->check(CLI::Range(int64_t{16}, int64_t{4096}));
  cmd->add_option("--intermediate-size", a->intermediate_size, "a new model's SwiGLU width (default: --shape's)")
      ->check(CLI::Range(int64_t{16}, int64_t{16384}));
  cmd->add_option("--layers", a->layers, "a new model's text layers (default: --shape's)")->check(CLI::Range(1, 64));
  cmd->add_option("--heads", a->heads, "a new model's attention heads of 64 (default: --shape's)")->check(CLI::Range(1, 64));
  cmd->add_option("--stem-strides", a->stem_strides, "the stem's strides, one per conv")->delimiter(',');
  cmd->add_option("--seed", o.data_seed, "curriculum seed");
  cmd->add_option("--kinds", o.kinds, "task kinds to train on, comma-separated (default: all)")->delimiter(',');
  cmd->add_option("--init-seed", o.init_seed, "weight initialisation seed");
  cmd->add_option("--eval-every", o.eval_every, "steps between evaluations (0: at the end)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-samples", o.eval_samples, "held-out samples per evaluation")->check(CLI::NonNegativeNumber);
  cmd->add_option("--checkpoint-every", o.checkpoint_every, "steps between checkpoints")->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o.threads, "intra-op threads (default: one per core)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--precision", o.precision,
                  "matrix products in training: auto (bf16 where the CPU has AVX-512 BF16), f32 or bf16")
      ->transform(CLI::CheckedTransformer(std::map<std::string, DistillOptions::Precision>{
          {"auto", DistillOptions::Precision::automatic},
          {"f32", DistillOptions::Precision::f32},
          {"bf16", DistillOptions::Precision::bf16}}));
  cmd->add_flag("--no-resume", a->no_resume, "start over even if --out holds a run");
  cmd->add_option("--export-samples", a->export_count,
                  "instead of training: write this many curriculum samples (JSONL + PNG) to --out")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--export-from", a->export_first, "first sample index to export");
  cmd->callback([a, &exit_code] { exit_code = run_command([&] { run(*a); }); });
}

}  // namespace musespark::cli
