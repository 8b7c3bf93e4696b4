// musespark — training the default model: sequence-level distillation from
// the curriculum's teacher traces, and logit distillation (KL at a
// temperature) from a larger trained model into a smaller one.
//
//   musespark::DistillOptions o;
//   o.out = "build/teacher";                 // a model folder, written as it trains
//   o.shape = musespark::ModelShape::teacher();
//   musespark::distill(o);                    // sequence-level: cross-entropy on the traces
//
//   o.out = "models/musespark-mini";
//   o.shape = musespark::ModelShape::student();
//   o.teacher = "build/teacher";              // logit distillation from it
//   musespark::distill(o);
//
// The output is an ordinary model folder (config.json, model.safetensors,
// tokenizer.json, tokenizer_config.json) that Engine::load reads; training
// state lives beside it (optimizer.safetensors, trainer_state.json) so a run
// resumes where it stopped. Data are drawn from the curriculum by index
// (the samples of 8 consecutive steps are grouped by length into their 8
// batches), so a resumed run sees exactly the batches an uninterrupted one
// would.
//
// Thread safety: distill() uses the tensor backend's threads and its autocast
// state (process-wide settings) and must not run concurrently with another
// distill() in the same process. It also tells the C allocator to keep freed
// memory instead of returning it to the system (mallopt: M_MMAP_THRESHOLD,
// M_TRIM_THRESHOLD), which halves a training step here — every step frees and
// reallocates the same large activations, and the kernel zeroes each page
// handed back; this stays in force after it returns. Errors: musespark::Error naming the file and field (a bad teacher
// folder, a teacher whose vocabulary differs, a corrupt checkpoint, options
// out of range).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace musespark {

// The architecture of a model to train: a Qwen3-style text model (q/k norm,
// GQA, SwiGLU, tied embeddings) with a SigLIP-style ViT and a LLaVA projector.
struct ModelShape {
  int64_t hidden_size = 192;
  int64_t intermediate_size = 576;
  int64_t num_layers = 4;
  int64_t num_heads = 3;
  int64_t num_kv_heads = 1;
  int64_t head_dim = 64;
  int64_t max_position_embeddings = 1024;
  int64_t vision_hidden_size = 96;
  int64_t vision_intermediate_size = 192;
  int64_t vision_layers = 2;
  int64_t vision_heads = 4;
  int64_t image_size = 64;   // the encoder's input side in pixels
  int64_t patch_size = 8;    // image_size / patch_size squared tokens per image
  // A convolutional stem before the patch embedding: 3 x 3 convolutions
  // (padding 1) with these output channels and strides, each followed by the
  // vision activation; the patch embedding then takes patch_size / (product of
  // the strides) pixels of the last one. Empty (the shipped model): the plain
  // ViT patch embedding. See docs/distill.md for what it has been measured to do.
  std::vector<int64_t> stem_channels;
  std::vector<int64_t> stem_strides;

  static ModelShape student();  // the shipped default model (these defaults): 2.0M parameters
  static ModelShape teacher();  // larger (7.5M): the source of the student's logits
};

struct DistillProgress {
  int64_t step = 0;             // optimizer steps done
  int64_t steps = 0;            // planned
  double loss = 0;              // the optimised loss of this step
  double cross_entropy = 0;     // on the teacher traces' tokens
  double kl = 0;                // 0 without a teacher model
  double learning_rate = 0;
  double grad_norm = 0;         // before clipping
  double tokens_per_second = 0; // sequence tokens (prompts, images, completions) per second in this run
  double elapsed_seconds = 0;   // since the start of training (resumed runs add the earlier time)
  // Set at evaluation steps: on held-out samples (another seed), the
  // cross-entropy and the share of samples whose every completion token is
  // the model's greedy choice under teacher forcing.
  std::optional<double> eval_cross_entropy;
  std::optional<double> eval_exact;
  // With the auxiliary vision loss: its value this step, and at evaluation
  // steps the share of held-out labels (per image token: its cell's content,
  // a digit of a zoomed-in number) its head reads right.
  double scene_loss = 0;
  std::optional<double> eval_scene_accuracy;
  bool checkpoint = false;      // a checkpoint was written at this step
};

struct DistillOptions {
  std::filesystem::path out;                 // the model folder to write (created)
  std::optional<std::filesystem::path> teacher;  // a model folder: adds logit distillation
  ModelShape shape;                          // for a new run (a resumed run keeps its own)
  double kl_weight = 0.7;                    // loss = kl_weight * T^2 * KL + (1 - kl_weight) * CE
  double temperature = 2.0;                  // T
  int64_t steps = 2000;
  int64_t batch = 32;                        // sequences per step
  // A step's batch runs forward and backward in parts of at most this many
  // padded tokens (sequences x the part's longest), gradients summed over the
  // parts: the same update as one pass (up to rounding), with memory bounded
  // by the part instead of the batch. 0: the whole batch in one part.
  int64_t micro_batch_tokens = 8192;
  double learning_rate = 2e-3;               // peak
  double min_learning_rate_ratio = 0.1;      // the cosine ends at peak * this
  int64_t warmup_steps = 100;                // linear from 0
  double weight_decay = 0.05;                // AdamW, on matrices only
  double adam_beta1 = 0.9, adam_beta2 = 0.98, adam_eps = 1e-8;
  double clip_grad_norm = 1.0;
  uint64_t data_seed = 1;                    // the curriculum seed
  uint64_t init_seed = 1;                    // weight initialisation
  double instant_fraction = 0.2;             // curriculum styles
  double refine_fraction = 0.2;
  // Weight of the auxiliary vision loss (0, the default: off): a
  // training-only head reads from each image token the content of the grid
  // cell it lies in (and, on a zoomed-in crop, the number's two digits); the
  // loss is added to the distillation loss. See docs/distill.md.
  double vision_aux_weight = 0;
  // Task kinds to train and evaluate on, by name ("arithmetic", "digit_sum",
  // ...); empty: all kinds in equal shares. Error{invalid_argument, field
  // "kinds"} naming an unknown kind.
  std::vector<std::string> kinds;
  int64_t eval_every = 250;                  // steps; 0: only at the end
  int64_t eval_samples = 96;
  uint64_t eval_seed = 1000003;              // held-out samples
  int64_t checkpoint_every = 250;            // steps; the last step always writes one
  bool resume = true;                        // continue from `out` if it holds a run
  int threads = 0;                           // 0: one per core
  // Matrix products of the training forward and backward (and the teacher's
  // forward) in bfloat16 through the backend's autocast, parameters, optimizer
  // state and losses in f32. auto: bf16 where the CPU has AVX-512 BF16 dot
  // products (about 1.2x faster for the student, 1.6x for the teacher here),
  // f32 elsewhere. Held-out evaluation always runs in f32.
  enum class Precision { automatic, f32, bf16 };
  Precision precision = Precision::automatic;
  std::function<void(const DistillProgress&)> on_progress;  // every step, from the calling thread
};

struct DistillReport {
  int64_t steps = 0;
  int64_t parameter_count = 0;
  double seconds = 0;          // total training time, resumed runs included
  double final_cross_entropy = 0;
  std::optional<double> eval_cross_entropy;
  std::optional<double> eval_exact;
};

// Trains into options.out (see the top of this file). Returns when `steps`
// are done (or at once, if a resumed run had already finished them).
DistillReport distill(const DistillOptions& options);

}  // namespace musespark

namespace musespark {

// Writes samples [first, first + count) of the curriculum with `seed` (the
// teacher's traces, as the trainer sees them) to `dir`: samples.jsonl, one
// JSON object per line (index, kind, style, user_text, completion, answer,
// needs_zoom, image: a file name or null), and each picture as
// <index>-<kind>.png. Errors: Error{io} naming the file that cannot be written.
void export_samples(const std::filesystem::path& dir, uint64_t seed, uint64_t first, int64_t count);

}  // namespace musespark
