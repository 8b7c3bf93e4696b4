#include "serve/api_error.hpp"

#include <new>

#include <nlohmann/json.hpp>

#include "musespark/error.hpp"

namespace musespark::serve {

ApiError::ApiError(int status, std::string type, std::string code, std::string param, const std::string& message)
    : std::runtime_error(message), status_(status), type_(std::move(type)), code_(std::move(code)),
      param_(std::move(param)) {}

ApiError ApiError::invalid(std::string param, const std::string& message, std::string code) {
  return ApiError(400, "invalid_request_error", std::move(code), std::move(param), message);
}

std::string ApiError::body() const {
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s); };
  nlohmann::ordered_json error{{"message", what()}, {"type", type_}, {"param", or_null(param_)}, {"code", or_null(code_)}};
  return nlohmann::ordered_json{{"error", std::move(error)}}.dump(-1, ' ', false,
                                                                  nlohmann::ordered_json::error_handler_t::replace);
}

ApiError to_api_error(std::exception_ptr error) noexcept {
  try {
    try {
      std::rethrow_exception(error);
    } catch (const ApiError& e) {
      return e;
    } catch (const Error& e) {
      switch (e.kind()) {
        case ErrorKind::context_overflow:
          return ApiError(400, "invalid_request_error", "context_length_exceeded", "messages", e.what());
        case ErrorKind::invalid_argument:
        case ErrorKind::format:
        case ErrorKind::unsupported: return ApiError::invalid(e.field(), e.what());
        case ErrorKind::io:
        case ErrorKind::internal: break;
      }
      return ApiError(500, "server_error", "internal_error", "", e.what());
    } catch (const std::bad_alloc&) {
      return ApiError(503, "server_error", "out_of_memory", "", "the server ran out of memory; try again later");
    } catch (const std::exception& e) {
      return ApiError(500, "server_error", "internal_error", "", e.what());
    } catch (...) {
      return ApiError(500, "server_error", "internal_error", "", "unknown error");
    }
  } catch (...) {
    // Building the error itself failed (out of memory): the plainest one.
    return ApiError(500, "server_error", "", "", "internal error");
  }
}

}  // namespace musespark::serve
