// The body of POST /v1/chat/completions, mapped to an engine Request.
#include <string_view>

#include "musespark/error.hpp"
#include "serve/api_error.hpp"
#include "serve/chat_request.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  musespark::serve::RequestLimits limits;
  limits.images.max_pixels = 1 << 18;
  try {
    (void)musespark::serve::parse_chat_request(std::string_view(reinterpret_cast<const char*>(data), size), limits);
  } catch (const musespark::serve::ApiError&) {
  } catch (const musespark::Error&) {
  }
  return 0;
}
