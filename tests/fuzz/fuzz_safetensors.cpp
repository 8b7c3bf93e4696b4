// A safetensors file: header length, JSON header, offsets into the data.
#include "fuzz_input.hpp"
#include "model/safetensors.hpp"
#include "musespark/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = musespark::fuzz::write_input("model.safetensors", data, size);
  try {
    auto file = musespark::detail::SafetensorsFile::open(path);
    size_t bytes = 0;
    for (const auto& t : file.tensors()) {
      // Every view must lie inside the mapping: touch its first and last byte.
      if (t.nbytes > 0) bytes += static_cast<size_t>(t.data[0]) + static_cast<size_t>(t.data[t.nbytes - 1]);
    }
    (void)bytes;
  } catch (const musespark::Error&) {
  }
  return 0;
}
