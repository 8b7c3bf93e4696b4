// The trace JSON the viewer opens (docs/trace.md), read by
// ReasoningTrace::from_json. What it accepts must survive a round trip:
// written and read again, it gives the same document.
#include <cstdlib>
#include <string>
#include <string_view>

#include "musespark/error.hpp"
#include "musespark/trace.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  musespark::ReasoningTrace trace;
  try {
    trace = musespark::ReasoningTrace::from_json(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const musespark::Error&) {
    return 0;
  }
  const std::string once = trace.to_json();
  const std::string twice = musespark::ReasoningTrace::from_json(once, "fuzz (written)").to_json();
  if (once != twice) std::abort();
  return 0;
}
