// Wrapping safetensors bytes as torch tensors (zero-copy where possible).
#pragma once

#include <memory>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include "model/safetensors.hpp"

namespace musespark::detail {

// The torch scalar type of a safetensors dtype.
at::ScalarType scalar_type(DType dtype) noexcept;

// `view` as a CPU tensor of `compute_dtype` with `view.shape`.
//
// When view.dtype is already `compute_dtype` and the bytes are aligned to the
// element size, the tensor wraps the mapped bytes without copying and holds
// `keepalive` (from SafetensorsFile/WeightStore::keepalive()) until the last
// tensor sharing that storage is gone. Such a tensor is READ-ONLY: the
// mapping is PROT_READ, so writing to it (in-place ops, copy_ into it, an
// optimizer step) crashes the process. Clone it before changing it.
// Otherwise the result is a freshly allocated contiguous tensor holding the
// converted values (it owns its memory; keepalive is not retained).
at::Tensor to_tensor(const TensorView& view, at::ScalarType compute_dtype, std::shared_ptr<const void> keepalive);

}  // namespace musespark::detail
