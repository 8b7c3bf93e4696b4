// What a musespark::Model holds (internal).
#pragma once

#include <memory>

#include "model/transformer.hpp"
#include "model/vision_encoder.hpp"
#include "vision/preprocess.hpp"
#include "musespark/model.hpp"

namespace musespark {

struct Model::Impl {
  ModelInfo info;
  std::unique_ptr<detail::Transformer> transformer;
  std::unique_ptr<detail::VisionEncoder> vision;  // null without vision_config
  detail::PreprocessConfig preprocess{};
};

}  // namespace musespark
