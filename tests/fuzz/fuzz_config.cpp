// config.json: the text model's and the vision tower's settings.
#include "fuzz_input.hpp"
#include "model/config.hpp"
#include "model/vision_config.hpp"
#include "musespark/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = musespark::fuzz::write_input("config.json", data, size);
  try {
    (void)musespark::detail::load_model_config(path);
  } catch (const musespark::Error&) {
  }
  try {
    (void)musespark::detail::load_vision_config(path);
  } catch (const musespark::Error&) {
  }
  return 0;
}
