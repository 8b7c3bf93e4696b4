// musespark — the one exception type of the C++ API.
//
// Every error a user can cause (a missing file, a malformed header, a bad
// argument, a prompt longer than the context) is reported as musespark::Error.
// It names the file and the field at fault where there is one, so that
// `what()` alone tells a person what to fix:
//
//     models/x/config.json: num_attention_heads: must be a positive integer, got -1
//
// Errors are values: copyable, and safe to pass between threads.
#pragma once

#include <stdexcept>
#include <string>

namespace musespark {

enum class ErrorKind {
  io,                // a file is missing, unreadable or truncated
  format,            // a file or argument is malformed (bad JSON, bad header, wrong shape)
  unsupported,       // well-formed but not supported (unknown architecture, dtype)
  invalid_argument,  // an API or command-line argument is out of range
  context_overflow,  // a sequence would exceed its context length
  internal,          // a bug in musespark; please report it
};

class Error : public std::runtime_error {
 public:
  // `file` and `field` may be empty when there is none.
  Error(ErrorKind kind, std::string file, std::string field, const std::string& message);

  ErrorKind kind() const noexcept { return kind_; }
  const std::string& file() const noexcept { return file_; }
  const std::string& field() const noexcept { return field_; }
  // The message without the "file: field: " prefix.
  const std::string& message() const noexcept { return message_; }

 private:
  ErrorKind kind_;
  std::string file_;
  std::string field_;
  std::string message_;
};

}  // namespace musespark
