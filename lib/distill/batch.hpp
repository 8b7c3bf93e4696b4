// Turning curriculum samples into training sequences, exactly as the engine
// would see them at run time: the chat template's prompt (thinking on, or off
// for instant samples), the image placeholder run where each image is, the
// teacher's completion with a zoomed-in crop's placeholder run after every
// "</zoom>" the engine would act on, and the turn end.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <span>
#include <vector>

#include "distill/curriculum.hpp"
#include "distill/trainable.hpp"
#include "musespark/chat.hpp"
#include "musespark/tokenizer.hpp"

namespace musespark::detail {

struct Sequence {
  std::vector<int32_t> tokens;
  std::vector<char> trained;  // per position t: whether tokens[t + 1] is a target (the teacher wrote it)
  struct Picture {
    int64_t offset = 0;               // first placeholder token of its run
    std::vector<float> pixels;        // 3 x S x S, preprocessed
    Scene scene = Scene::unlabelled();  // what it shows (the auxiliary vision loss's target)
  };
  std::vector<Picture> pictures;
  TaskKind kind = TaskKind::arithmetic;
  int64_t answer_targets = 0;  // the last targets: the final answer's tokens and the turn end
};

struct SequenceBuilder {
  const Tokenizer& tokenizer;
  const ChatTemplate& chat;
  ModelShape shape;
  SpecialIds ids;
  int32_t max_zooms = 2;  // as Request::max_zooms

  Sequence build(const Sample& sample) const;
};

// Pads sequences into one batch (pad id, right padding).
struct Batch {
  TrainableModel::Input input;
  at::Tensor targets;   // [R] int64: the token each selected row must predict
  at::Tensor scenes;    // [N, kSceneSlots] int64: each picture's Scene (kSceneIgnore: no label); undefined without pictures
  int64_t tokens = 0;   // real tokens in the batch (without padding)
};
Batch make_batch(std::span<const Sequence> sequences, const ModelShape& shape, const SpecialIds& ids);

}  // namespace musespark::detail
