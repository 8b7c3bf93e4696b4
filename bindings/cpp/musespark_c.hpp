// A tiny header-only C++ wrapper over the C ABI (include/musespark/musespark.h)
// for bindings: handles are unique_ptrs with their free functions, and a
// failed status becomes a musespark::c::Error carrying musespark_last_error().
//
// It adds no behaviour of its own: every method is one C call (two for the
// size-then-fill calls). Thread contract: as the C ABI's — an Engine may be
// used from several threads at once; a Request or Result may not be changed
// while another thread uses it. Errors are read on the thread that failed
// (musespark_last_error is per thread), so a check() must follow its call
// directly on the same thread, as every method here does.
#pragma once

#include <musespark/musespark.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace musespark::c {

// A failed C call: the status and the engine's message (naming file and field).
class Error : public std::runtime_error {
 public:
  Error(musespark_status status, const std::string& message) : std::runtime_error(message), status_(status) {}
  musespark_status status() const noexcept { return status_; }

 private:
  musespark_status status_;
};

// Throws Error for any status but OK; the message comes from this thread's last error.
inline void check(musespark_status status) {
  if (status == MUSESPARK_STATUS_OK) return;
  const char* message = musespark_last_error();
  std::string text = message && *message ? message : musespark_status_name(status);
  throw Error(status, text);
}

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const noexcept { Free(p); }
};

using EngineHandle = std::unique_ptr<musespark_engine, Deleter<musespark_engine, musespark_engine_free>>;
using RequestHandle = std::unique_ptr<musespark_request, Deleter<musespark_request, musespark_request_free>>;
using ResultHandle = std::unique_ptr<musespark_result, Deleter<musespark_result, musespark_result_free>>;

// The answer of an ask or a generate. Strings stay valid while the Result lives.
class Result {
 public:
  explicit Result(musespark_result* raw) : handle_(raw) {}
  const char* answer() const { return musespark_result_answer(handle_.get()); }
  const char* text() const { return musespark_result_text(handle_.get()); }
  const char* trace_json() const { return musespark_result_trace_json(handle_.get()); }
  const musespark_result* get() const noexcept { return handle_.get(); }

 private:
  ResultHandle handle_;
};

// A question: messages with text and image parts, mode, effort, budgets.
class Request {
 public:
  Request() {
    musespark_request* raw = nullptr;
    check(musespark_request_init(&raw));
    handle_.reset(raw);
  }
  void add_message(const std::string& role) { check(musespark_request_add_message(get(), role.c_str())); }
  void add_text(const std::string& text) { check(musespark_request_add_text(get(), text.c_str())); }
  void add_image_file(const std::string& path) { check(musespark_request_add_image_file(get(), path.c_str())); }
  void add_image_encoded(const uint8_t* data, size_t size) {
    check(musespark_request_add_image_encoded(get(), data, size));
  }
  void add_image_rgb(const uint8_t* pixels, int32_t width, int32_t height) {
    check(musespark_request_add_image_rgb(get(), pixels, width, height));
  }
  void set_mode(musespark_mode mode) { check(musespark_request_set_mode(get(), mode)); }
  void set_effort(musespark_effort effort) { check(musespark_request_set_effort(get(), effort)); }
  void set_seed(uint64_t seed) { check(musespark_request_set_seed(get(), seed)); }
  void set_budgets(const musespark_budgets& budgets) { check(musespark_request_set_budgets(get(), &budgets)); }
  void set_sampling(const musespark_sampling& sampling) { check(musespark_request_set_sampling(get(), &sampling)); }
  void set_early_stop(bool early_stop, bool consensus_stop) {
    check(musespark_request_set_early_stop(get(), early_stop ? 1 : 0, consensus_stop ? 1 : 0));
  }
  void set_consensus_share(double share) { check(musespark_request_set_consensus_share(get(), share)); }
  void set_scatter_stop(int32_t votes) { check(musespark_request_set_scatter_stop(get(), votes)); }
  void set_assistant_prefix(const std::string& prefix) {
    check(musespark_request_set_assistant_prefix(get(), prefix.c_str()));
  }
  musespark_request* get() const noexcept { return handle_.get(); }

 private:
  RequestHandle handle_;
};

// A loaded model. Safe to use from several threads at once.
class Engine {
 public:
  Engine(const std::string& model_dir, const musespark_engine_params& params) {
    musespark_engine* raw = nullptr;
    check(musespark_engine_load(model_dir.c_str(), &params, &raw));
    handle_.reset(raw);
  }

  musespark_model_info info() const {
    musespark_model_info info;
    musespark_model_info_init(&info);
    check(musespark_engine_info(get(), &info));
    return info;
  }

  // `callback` may be null; it runs on this thread (see musespark_event_callback).
  Result ask(const Request& request, musespark_event_callback callback = nullptr, void* user_data = nullptr) const {
    musespark_result* raw = nullptr;
    check(musespark_engine_ask(get(), request.get(), callback, user_data, &raw));
    return Result(raw);
  }

  Result generate(const std::string& prompt, const musespark_generate_params& params,
                  musespark_event_callback callback = nullptr, void* user_data = nullptr) const {
    musespark_result* raw = nullptr;
    check(musespark_generate(get(), prompt.c_str(), &params, callback, user_data, &raw));
    return Result(raw);
  }

  std::vector<int32_t> tokenize(std::string_view text) const {
    size_t count = 0;
    musespark_status status = musespark_tokenize(get(), text.data(), text.size(), nullptr, 0, &count);
    if (status != MUSESPARK_STATUS_BUFFER_TOO_SMALL) check(status);
    std::vector<int32_t> ids(count);
    if (count > 0) {
      check(musespark_tokenize(get(), text.data(), text.size(), ids.data(), ids.size(), &count));
      ids.resize(count);
    }
    return ids;
  }

  std::string detokenize(const std::vector<int32_t>& ids) const {
    std::string text(64 + ids.size() * 8, '\0');
    size_t length = 0;
    musespark_status status = musespark_detokenize(get(), ids.data(), ids.size(), text.data(), text.size(), &length);
    if (status == MUSESPARK_STATUS_BUFFER_TOO_SMALL) {
      text.assign(length + 1, '\0');
      status = musespark_detokenize(get(), ids.data(), ids.size(), text.data(), text.size(), &length);
    }
    check(status);
    text.resize(length);
    return text;
  }

  const musespark_engine* get() const noexcept { return handle_.get(); }

 private:
  EngineHandle handle_;
};

}  // namespace musespark::c
