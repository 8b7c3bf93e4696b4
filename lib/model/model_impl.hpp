// What a musespark::Model holds (internal).
#pragma once

#include <memory>

#include "model/transformer.hpp"
#include "musespark/model.hpp"

namespace musespark {

struct Model::Impl {
  ModelInfo info;
  std::unique_ptr<detail::Transformer> transformer;
};

}  // namespace musespark
