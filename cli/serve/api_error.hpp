// musespark serve — errors as the OpenAI API reports them: an HTTP status and
// the body {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace musespark::serve {

class ApiError : public std::runtime_error {
 public:
  // `param` and `code` may be empty (written as null).
  ApiError(int status, std::string type, std::string code, std::string param, const std::string& message);

  // 400 invalid_request_error, the usual error of a bad request.
  static ApiError invalid(std::string param, const std::string& message, std::string code = "invalid_value");

  int status() const noexcept { return status_; }
  const std::string& type() const noexcept { return type_; }
  const std::string& code() const noexcept { return code_; }
  const std::string& param() const noexcept { return param_; }

  // The response body: {"error": {...}} on one line.
  std::string body() const;

 private:
  int status_;
  std::string type_, code_, param_;
};

// The API error for an exception thrown while answering a request:
// ApiError as it is; musespark::Error by kind (a bad argument, a malformed or
// unsupported input, a prompt longer than the context: 400; io and internal
// errors: 500); std::bad_alloc 503; anything else 500. Never throws.
ApiError to_api_error(std::exception_ptr error) noexcept;

}  // namespace musespark::serve
