#include "distill/batch.hpp"

#include <algorithm>

#include "musespark/error.hpp"
#include "reasoning/visual.hpp"
#include "vision/preprocess.hpp"

namespace musespark::detail {
namespace {

std::vector<float> pixels_of(const Image& image, const ModelShape& shape) {
  return preprocess(image, {static_cast<int32_t>(shape.image_size), {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f}});
}

}  // namespace

Sequence SequenceBuilder::build(const Sample& sample) const {
  const int64_t image_tokens = picture_tokens(shape);
  std::string placeholder = "<|vision_start|>";
  for (int64_t i = 0; i < image_tokens; ++i) placeholder += "<|image_pad|>";
  placeholder += "<|vision_end|>";
  const std::vector<int32_t> image_run = tokenizer.encode(placeholder);

  Sequence seq;
  const bool thinking = sample.style != SampleStyle::instant;
  const Image* image = sample.task.image ? &*sample.task.image : nullptr;
  // As Message::with_images: the image first, then the text.
  std::vector<ChatMessage> messages{{"user", (image ? placeholder : std::string()) + sample.user_text}};
  seq.tokens = tokenizer.encode(chat.render(messages, true, thinking));
  if (image) {
    auto at = std::search(seq.tokens.begin(), seq.tokens.end(), image_run.begin(), image_run.end());
    if (at == seq.tokens.end()) throw Error(ErrorKind::internal, "", "prompt", "the image placeholder run is missing");
    seq.pictures.push_back({(at - seq.tokens.begin()) + 1, pixels_of(*image, shape), sample.task.scene});
  }
  seq.trained.assign(seq.tokens.size(), 0);
  auto append = [&](const std::vector<int32_t>& ids, bool trained) {
    // Position t predicts t + 1: the flag sits on the token before.
    for (int32_t id : ids) {
      seq.trained.back() = trained;
      seq.tokens.push_back(id);
      seq.trained.push_back(0);
    }
  };

  // The completion, cut after every zoom the engine would apply (thinking
  // samples only: Instant does not zoom).
  const std::string& text = sample.completion;
  size_t done = 0;
  int zooms = 0;
  if (thinking && image) {
    const size_t think_end = std::min(text.find("</think>"), text.size());
    for (const VisualTag& tag : find_visual_tags(std::string_view(text).substr(0, think_end), 0)) {
      if (tag.kind != VisualTag::Kind::zoom || zooms >= max_zooms) continue;
      append(tokenizer.encode(std::string_view(text).substr(done, tag.end - done)), true);
      done = tag.end;
      const auto box = to_pixels(tag.relative, image->width(), image->height());
      Image crop = image->crop(box[0], box[1], box[2], box[3]);
      const std::string_view region = std::string_view(text).substr(tag.begin, tag.end - tag.begin);
      const bool at_number = !sample.task.zoom_region.empty() && region.find(sample.task.zoom_region) != std::string_view::npos;
      seq.pictures.push_back({static_cast<int64_t>(seq.tokens.size()) + 1, pixels_of(crop, shape),
                              at_number ? sample.task.zoom_scene : Scene::unlabelled()});
      append(image_run, false);
      ++zooms;
    }
  }
  // The final answer is encoded on its own (the text before it ends with
  // "\n\n" or is empty), so that its targets can be told apart.
  const std::string_view rest = std::string_view(text).substr(done);
  const bool ends_with_answer = rest.size() >= sample.task.answer.size() &&
                                rest.substr(rest.size() - sample.task.answer.size()) == sample.task.answer;
  const size_t answer_at = ends_with_answer ? rest.size() - sample.task.answer.size() : rest.size();
  append(tokenizer.encode(rest.substr(0, answer_at)), true);
  const std::vector<int32_t> answer = tokenizer.encode(rest.substr(answer_at));
  append(answer, true);
  append({static_cast<int32_t>(ids.im_end)}, true);
  seq.kind = sample.task.kind;
  seq.answer_targets = static_cast<int64_t>(answer.size()) + 1;
  return seq;
}

Batch make_batch(std::span<const Sequence> sequences, const ModelShape& shape, const SpecialIds& ids) {
  const int64_t B = static_cast<int64_t>(sequences.size());
  int64_t T = 0;
  for (const auto& s : sequences) T = std::max<int64_t>(T, static_cast<int64_t>(s.tokens.size()));
  const int64_t S = shape.image_size;
  const int64_t image_tokens = picture_tokens(shape);

  Batch b;
  at::Tensor tokens = at::full({B, T}, ids.pad, at::kLong);
  auto tok = tokens.accessor<int64_t, 2>();
  std::vector<int64_t> rows, targets, image_rows;
  std::vector<float> pixels;
  std::vector<int64_t> scenes;
  for (int64_t i = 0; i < B; ++i) {
    const Sequence& s = sequences[i];
    for (size_t t = 0; t < s.tokens.size(); ++t) {
      tok[i][t] = s.tokens[t];
      if (s.trained[t]) {
        rows.push_back(i * T + static_cast<int64_t>(t));
        targets.push_back(s.tokens[t + 1]);
      }
    }
    b.tokens += static_cast<int64_t>(s.tokens.size());
    for (const auto& pic : s.pictures) {
      for (int64_t r = 0; r < image_tokens; ++r) image_rows.push_back(i * T + pic.offset + r);
      pixels.insert(pixels.end(), pic.pixels.begin(), pic.pixels.end());
      scenes.insert(scenes.end(), pic.scene.cells.begin(), pic.scene.cells.end());
      scenes.insert(scenes.end(), pic.scene.number.begin(), pic.scene.number.end());
    }
  }
  auto longs = [](const std::vector<int64_t>& v) { return at::tensor(at::ArrayRef<int64_t>(v), at::kLong); };
  b.input.tokens = tokens;
  b.input.rows = longs(rows);
  b.targets = longs(targets);
  const int64_t pictures = static_cast<int64_t>(image_rows.size()) / image_tokens;
  if (pictures > 0) {
    b.input.image_rows = longs(image_rows);
    b.input.pixels = at::from_blob(pixels.data(), {pictures, 3, S, S}, at::kFloat).clone();
    b.scenes = longs(scenes).view({pictures, kSceneSlots});
  }
  return b;
}

}  // namespace musespark::detail
