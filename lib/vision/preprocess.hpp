// Turning an Image into the float input of a vision encoder.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "musespark/image.hpp"

namespace musespark::detail {

struct PreprocessConfig {
  int32_t image_size;         // the encoder's square input side, in pixels
  std::array<float, 3> mean;  // per channel (R, G, B), on the [0, 1] scale
  std::array<float, 3> std;   // per channel, each > 0
};

// Resizes `image` to image_size x image_size and normalises it: each 8-bit
// sample becomes v / 255 (float32), the picture is resized bilinearly exactly
// as torch.nn.functional.interpolate(mode="bilinear", align_corners=False,
// antialias=False) does (so downscaling samples, it does not average), then
// each channel c becomes (x - mean[c]) / std[c].
// Returns a new CHW float32 vector of 3 * S * S values (channel, row, column),
// owned by the caller. Checked against torch by tests/tools/image_reference.py.
// Errors: invalid_argument if image_size is not in [1, 16384] or a std is not
// a positive finite number (naming the field).
// Thread-safety: pure function; call it from any thread.
std::vector<float> preprocess(const Image& image, const PreprocessConfig& config);

}  // namespace musespark::detail
