#include "model/weights_torch.hpp"

#include <cstdint>
#include <cstring>

#include <ATen/ATen.h>

namespace musespark::detail {

at::ScalarType scalar_type(DType dtype) noexcept {
  switch (dtype) {
    case DType::f32: return at::kFloat;
    case DType::f16: return at::kHalf;
    case DType::bf16: return at::kBFloat16;
    case DType::i64: return at::kLong;
    case DType::i32: return at::kInt;
    case DType::i16: return at::kShort;
    case DType::i8: return at::kChar;
    case DType::u8: return at::kByte;
    case DType::bool_: return at::kBool;
    case DType::f64: return at::kDouble;
  }
  return at::kFloat;
}

at::Tensor to_tensor(const TensorView& view, at::ScalarType compute_dtype, std::shared_ptr<const void> keepalive) {
  const at::ScalarType stored = scalar_type(view.dtype);
  // from_blob wants a mutable pointer; the contract in the header forbids writes.
  void* data = const_cast<std::byte*>(view.data);
  const auto options = at::TensorOptions().dtype(stored).device(at::kCPU);
  const bool aligned = reinterpret_cast<uintptr_t>(view.data) % element_size(view.dtype) == 0;

  if (stored == compute_dtype && aligned && view.data != nullptr) {
    return at::from_blob(data, view.shape, [keep = std::move(keepalive)](void*) mutable { keep.reset(); }, options);
  }
  if (view.numel() == 0) return at::empty(view.shape, options.dtype(compute_dtype));
  if (aligned) {
    // A temporary view of the mapping, converted into fresh memory.
    return at::from_blob(data, view.shape, options).to(compute_dtype, /*non_blocking=*/false, /*copy=*/true);
  }
  // Misaligned bytes: copy them to aligned memory first, then convert.
  at::Tensor raw = at::empty(view.shape, options);
  std::memcpy(raw.data_ptr(), view.data, view.nbytes);
  return raw.to(compute_dtype, /*non_blocking=*/false, /*copy=*/false).contiguous();
}

}  // namespace musespark::detail
