// _musespark: the Python extension under `import musespark`.
//
// A thin layer over the C ABI (through bindings/cpp/musespark_c.hpp): Engine,
// Request, Result and Stream map one to one onto the C handles; the friendly
// API (str/list questions, images of any kind, the trace as attributes,
// Event objects) is musespark/__init__.py.
//
// One exception: Evaluator, for musespark/distributed.py, is over the C++ API
// (include/musespark/evaluate.hpp), which the C ABI does not cover: a model
// loaded as a C++ Engine that plans `musespark eval`, answers one of its
// tasks, and builds the report from answers given.
//
// The GIL is released around every call that does real work. Streaming runs
// the ask on a C++ thread that pushes events into a queue under a mutex and
// never touches Python; the iterator waits on the queue with the GIL released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "musespark/engine.hpp"
#include "musespark/error.hpp"
#include "musespark/evaluate.hpp"
#include "musespark_c.hpp"

namespace py = pybind11;
namespace mc = musespark::c;

namespace {

// Exception classes, created at import (musespark.Error and its subclasses).
struct ErrorClasses {
  PyObject* base = nullptr;
  PyObject* invalid_argument = nullptr;
  PyObject* io = nullptr;
  PyObject* format = nullptr;
  PyObject* unsupported = nullptr;
  PyObject* context_overflow = nullptr;
  PyObject* out_of_memory = nullptr;
  PyObject* internal = nullptr;
};
ErrorClasses errors;

PyObject* error_class(musespark_status status) {
  switch (status) {
    case MUSESPARK_STATUS_INVALID_ARGUMENT: return errors.invalid_argument;
    case MUSESPARK_STATUS_IO: return errors.io;
    case MUSESPARK_STATUS_FORMAT: return errors.format;
    case MUSESPARK_STATUS_UNSUPPORTED: return errors.unsupported;
    case MUSESPARK_STATUS_CONTEXT_OVERFLOW: return errors.context_overflow;
    case MUSESPARK_STATUS_OUT_OF_MEMORY: return errors.out_of_memory;
    case MUSESPARK_STATUS_INTERNAL: return errors.internal;
    default: return errors.base;
  }
}

musespark_status status_of(musespark::ErrorKind kind) {
  switch (kind) {
    case musespark::ErrorKind::io: return MUSESPARK_STATUS_IO;
    case musespark::ErrorKind::format: return MUSESPARK_STATUS_FORMAT;
    case musespark::ErrorKind::unsupported: return MUSESPARK_STATUS_UNSUPPORTED;
    case musespark::ErrorKind::invalid_argument: return MUSESPARK_STATUS_INVALID_ARGUMENT;
    case musespark::ErrorKind::context_overflow: return MUSESPARK_STATUS_CONTEXT_OVERFLOW;
    case musespark::ErrorKind::internal: return MUSESPARK_STATUS_INTERNAL;
  }
  return MUSESPARK_STATUS_INTERNAL;
}

PyObject* make_error_class(py::module_& m, const char* name, const char* doc, PyObject* bases) {
  const std::string qualified = std::string("musespark.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases, nullptr);
  if (!cls) throw py::error_already_set();
  m.add_object(name, py::handle(cls));  // the module takes its own reference; ours is never freed
  return cls;
}

void register_errors(py::module_& m) {
  errors.base = make_error_class(m, "Error", "An error reported by the musespark engine.", PyExc_Exception);
  auto sub = [&](const char* name, const char* doc, PyObject* builtin = nullptr) {
    py::tuple bases = builtin ? py::make_tuple(py::handle(errors.base), py::handle(builtin))
                              : py::make_tuple(py::handle(errors.base));
    return make_error_class(m, name, doc, bases.ptr());
  };
  errors.invalid_argument = sub("InvalidArgument", "An argument is missing, out of range or malformed.",
                                PyExc_ValueError);
  errors.io = sub("IOError", "A file is missing, unreadable or truncated.", PyExc_OSError);
  errors.format = sub("FormatError", "A file or value is malformed.");
  errors.unsupported = sub("Unsupported", "Well-formed but not supported (architecture, images on a text model).");
  errors.context_overflow = sub("ContextOverflow", "The prompt does not fit in the context.");
  errors.out_of_memory = sub("OutOfMemory", "The engine ran out of memory.", PyExc_MemoryError);
  errors.internal = sub("InternalError", "A bug in musespark.");
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const mc::Error& e) {
      PyErr_SetString(error_class(e.status()), e.what());
    }
  });
  // The C++ API's errors (Evaluator), as the C ABI maps them.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const musespark::Error& e) {
      PyErr_SetString(error_class(status_of(e.kind())), e.what());
    }
  });
}

// UTF-8 bytes to str; invalid bytes (a delta may split a character) become U+FFFD.
py::str utf8(const char* data, size_t size) {
  PyObject* s = PyUnicode_DecodeUTF8(data, static_cast<Py_ssize_t>(size), "replace");
  if (!s) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(s);
}
py::str utf8(const char* s) { return utf8(s, s ? std::strlen(s) : 0); }

const char* kind_name(musespark_event_kind kind) {
  switch (kind) {
    case MUSESPARK_EVENT_AGENT_STARTED: return "agent_started";
    case MUSESPARK_EVENT_TEXT_DELTA: return "text_delta";
    case MUSESPARK_EVENT_STEP: return "step";
    case MUSESPARK_EVENT_AGENT_FINISHED: return "agent_finished";
    case MUSESPARK_EVENT_VOTE_UPDATE: return "vote_update";
    case MUSESPARK_EVENT_ESCALATION: return "escalation";
    case MUSESPARK_EVENT_FINAL: return "final";
  }
  return "unknown";
}

// A C event, copied out of the callback (its text is valid only during it).
struct EventCopy {
  musespark_event_kind kind;
  int32_t agent, round;
  std::string text;
  bool in_thinking;
  int64_t tokens;
  double confidence;
};

EventCopy copy_event(const musespark_event& e) {
  return {e.kind, e.agent, e.round, std::string(e.text ? e.text : "", e.text ? e.text_length : 0),
          e.in_thinking != 0, e.tokens, e.confidence};
}

// (kind, agent, round, text, in_thinking, tokens, confidence, result-or-None)
py::tuple event_tuple(const EventCopy& e, py::object result) {
  return py::make_tuple(kind_name(e.kind), e.agent, e.round, utf8(e.text.data(), e.text.size()), e.in_thinking,
                        e.tokens, e.confidence, std::move(result));
}

// One ask running on a background thread. The thread only touches C++ state;
// Python reads events through next() (GIL released while it waits). close()
// (or destruction) makes the callback return 0, which cancels the ask, and
// joins the thread.
class Stream {
 public:
  Stream(std::shared_ptr<const mc::Engine> engine, std::shared_ptr<const mc::Request> request)
      : engine_(std::move(engine)), request_(std::move(request)) {
    thread_ = std::thread([this] { run(); });
  }
  ~Stream() { stop(); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // The next event as a tuple; StopIteration after the final one. The GIL is
  // released while waiting and the queue's mutex is never held with the GIL.
  py::tuple next() {
    std::optional<EventCopy> event;
    std::optional<mc::Error> error;
    std::shared_ptr<mc::Result> result;
    {
      py::gil_scoped_release release;
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [&] { return !queue_.empty() || done_; });
      if (!queue_.empty()) {
        event = std::move(queue_.front());
        queue_.pop_front();
      } else if (!finished_) {
        finished_ = true;
        error = std::move(error_);
        result = std::move(result_);
        if (result)
          event = final_event_ ? *final_event_
                               : EventCopy{MUSESPARK_EVENT_FINAL, -1, 0, result->answer(), false, 0, 0.0};
      }
      if (!event || result) {
        lock.unlock();
        join();
      }
    }
    if (error) throw *error;
    if (!event) throw py::stop_iteration();
    return event_tuple(*event, result ? py::cast(result) : py::none());
  }

  // Cancels the ask if it is still running and waits for its thread.
  void close() {
    py::gil_scoped_release release;
    stop();
  }

 private:
  static int32_t on_event(const musespark_event* event, void* user_data) {
    auto* self = static_cast<Stream*>(user_data);
    if (self->cancelled_.load()) return 0;
    EventCopy e = copy_event(*event);
    std::lock_guard lock(self->mutex_);
    // The final event goes out after the ask returns, carrying the result.
    if (e.kind == MUSESPARK_EVENT_FINAL) {
      self->final_event_ = std::move(e);
    } else {
      self->queue_.push_back(std::move(e));
      self->ready_.notify_one();
    }
    return self->cancelled_.load() ? 0 : 1;
  }

  void run() {
    std::optional<mc::Error> error;
    std::shared_ptr<mc::Result> result;
    try {
      result = std::make_shared<mc::Result>(engine_->ask(*request_, &Stream::on_event, this));
    } catch (const mc::Error& e) {
      error = e;
    } catch (const std::exception& e) {
      error = mc::Error(MUSESPARK_STATUS_INTERNAL, e.what());
    }
    std::lock_guard lock(mutex_);
    error_ = std::move(error);
    result_ = std::move(result);
    done_ = true;
    ready_.notify_all();
  }

  void stop() {
    cancelled_.store(true);
    join();
  }

  void join() {
    std::lock_guard lock(join_mutex_);
    if (thread_.joinable()) thread_.join();
  }

  std::shared_ptr<const mc::Engine> engine_;
  std::shared_ptr<const mc::Request> request_;
  std::atomic<bool> cancelled_{false};
  std::mutex mutex_;  // guards everything below
  std::condition_variable ready_;
  std::deque<EventCopy> queue_;
  std::optional<EventCopy> final_event_;
  std::optional<mc::Error> error_;
  std::shared_ptr<mc::Result> result_;
  bool done_ = false;      // the ask returned
  bool finished_ = false;  // the final event (or the error) was handed out
  std::mutex join_mutex_;
  std::thread thread_;
};

// C strings end at the first NUL: refuse text that would be cut short silently.
const std::string& c_string(const std::string& s, const char* what) {
  if (s.find('\0') != std::string::npos)
    throw mc::Error(MUSESPARK_STATUS_INVALID_ARGUMENT, std::string(what) + ": contains a NUL character");
  return s;
}

musespark_mode parse_mode(const std::string& s) {
  if (s == "instant") return MUSESPARK_MODE_INSTANT;
  if (s == "thinking") return MUSESPARK_MODE_THINKING;
  if (s == "contemplating") return MUSESPARK_MODE_CONTEMPLATING;
  if (s == "auto") return MUSESPARK_MODE_AUTO;
  throw mc::Error(MUSESPARK_STATUS_INVALID_ARGUMENT,
                  "mode: '" + s + "' is not one of 'instant', 'thinking', 'contemplating', 'auto'");
}

musespark_effort parse_effort(const std::string& s) {
  if (s == "minimal") return MUSESPARK_EFFORT_MINIMAL;
  if (s == "low") return MUSESPARK_EFFORT_LOW;
  if (s == "medium") return MUSESPARK_EFFORT_MEDIUM;
  if (s == "high") return MUSESPARK_EFFORT_HIGH;
  if (s == "xhigh") return MUSESPARK_EFFORT_XHIGH;
  throw mc::Error(MUSESPARK_STATUS_INVALID_ARGUMENT,
                  "effort: '" + s + "' is not one of 'minimal', 'low', 'medium', 'high', 'xhigh'");
}

musespark_dtype parse_dtype(const std::string& s) {
  if (s == "f32") return MUSESPARK_DTYPE_F32;
  if (s == "bf16") return MUSESPARK_DTYPE_BF16;
  if (s == "int8") return MUSESPARK_DTYPE_INT8;
  if (s == "q4") return MUSESPARK_DTYPE_Q4;
  throw mc::Error(MUSESPARK_STATUS_INVALID_ARGUMENT, "dtype: '" + s + "' is not one of 'f32', 'bf16', 'int8', 'q4'");
}

// A read-only, C-contiguous byte buffer of exactly `expected` bytes (or any size when expected is 0).
py::buffer_info byte_buffer(const py::buffer& data, size_t expected, const char* what) {
  py::buffer_info info = data.request();
  if (info.itemsize != 1)
    throw py::type_error(std::string(what) + ": expected bytes or uint8 data, got items of " +
                         std::to_string(info.itemsize) + " bytes");
  py::ssize_t stride = 1;
  for (py::ssize_t d = info.ndim - 1; d >= 0; --d) {
    if (info.shape[d] > 1 && info.strides[d] != stride)
      throw py::value_error(std::string(what) + ": the data must be C-contiguous");
    stride *= info.shape[d];
  }
  if (expected && static_cast<size_t>(info.size) != expected)
    throw mc::Error(MUSESPARK_STATUS_INVALID_ARGUMENT, std::string(what) + ": expected " + std::to_string(expected) +
                                                           " bytes, got " + std::to_string(info.size));
  return info;
}

// ------------------------------------------------------------ Evaluator (C++ API)

[[noreturn]] void bad_option(const std::string& name, const std::string& message) {
  throw musespark::Error(musespark::ErrorKind::invalid_argument, "", name, message);
}

// A list of names: a list of str, or one comma-separated str (as --kinds takes).
std::vector<std::string> names_option(const py::handle& value, const std::string& name) {
  if (py::isinstance<py::str>(value)) {
    const std::string list = value.cast<std::string>();
    return name == "kinds" ? musespark::parse_eval_kinds(list, name) : musespark::parse_eval_configs(list, name);
  }
  try {
    return value.cast<std::vector<std::string>>();
  } catch (const py::cast_error&) {
    bad_option(name, "expected a list of str or a comma-separated str");
  }
}

template <class T>
T number_option(const py::handle& value, const std::string& name) {
  if (py::isinstance<py::bool_>(value)) bad_option(name, "expected a number, got a bool");
  try {
    return value.cast<T>();
  } catch (const py::cast_error&) {
    bad_option(name, "expected a number, got " + std::string(py::str(py::type::of(value).attr("__name__"))));
  }
}

// EvalOptions from a dict of its field names (model_dir, model and the
// callbacks aside); a None value leaves a field as it is. Unknown names are refused.
musespark::EvalOptions eval_options(const py::dict& d) {
  musespark::EvalOptions o;
  for (const auto& [k, value] : d) {
    const std::string name = py::str(k);
    if (value.is_none()) continue;
    if (name == "seed") o.seed = number_option<uint64_t>(value, name);
    else if (name == "held_out_phrasings") o.held_out_phrasings = value.cast<bool>();
    else if (name == "tasks_per_kind") o.tasks_per_kind = number_option<int32_t>(value, name);
    else if (name == "kinds") o.kinds = names_option(value, name);
    else if (name == "configs") o.configs = names_option(value, name);
    else if (name == "effort") o.effort = musespark::parse_effort(value.cast<std::string>(), name);
    else if (name == "agents") o.agents = number_option<int32_t>(value, name);
    else if (name == "max_thinking_tokens") o.max_thinking_tokens = number_option<int32_t>(value, name);
    else if (name == "max_answer_tokens") o.max_answer_tokens = number_option<int32_t>(value, name);
    else if (name == "confidence_window") o.confidence_window = number_option<int32_t>(value, name);
    else if (name == "keep_fraction") o.keep_fraction = number_option<double>(value, name);
    else if (name == "consensus_share") o.consensus_share = number_option<double>(value, name);
    else if (name == "scatter_stop") o.scatter_stop = number_option<int32_t>(value, name);
    else if (name == "warmup_agents") o.warmup_agents = number_option<int32_t>(value, name);
    else if (name == "max_zooms") o.max_zooms = number_option<int32_t>(value, name);
    else if (name == "out_dir") o.out_dir = value.cast<std::string>();
    else if (name == "write_traces") o.write_traces = value.cast<bool>();
    else
      bad_option(name, "not an evaluation option (seed, held_out_phrasings, tasks_per_kind, kinds, configs, effort, "
                       "agents, max_thinking_tokens, max_answer_tokens, confidence_window, keep_fraction, "
                       "consensus_share, scatter_stop, warmup_agents, max_zooms, out_dir, write_traces)");
  }
  return o;
}

// A model loaded as a C++ Engine, for `musespark eval` spread over processes.
class Evaluator {
 public:
  Evaluator(const std::string& path, int32_t threads, const std::string& dtype, int64_t max_context)
      : engine_(load(path, threads, dtype, max_context)) {}

  // (config, kind, index) of every task evaluate() answers, in its order.
  std::vector<std::tuple<std::string, std::string, uint64_t>> tasks(const py::dict& options) const {
    const musespark::EvalOptions o = eval_options(options);
    std::vector<musespark::EvalTaskRef> refs;
    {
      py::gil_scoped_release release;
      refs = musespark::eval_tasks(engine_, o);
    }
    std::vector<std::tuple<std::string, std::string, uint64_t>> out;
    out.reserve(refs.size());
    for (auto& r : refs) out.emplace_back(std::move(r.config), std::move(r.kind), r.index);
    return out;
  }

  // (trace JSON, seconds) of one task, asked as evaluate() asks it.
  std::tuple<std::string, double> answer(const py::dict& options, const std::string& config, const std::string& kind,
                                         uint64_t index) const {
    const musespark::EvalOptions o = eval_options(options);
    const musespark::EvalTaskRef ref{config, kind, index};
    musespark::EvalAnswer a;
    {
      py::gil_scoped_release release;
      a = musespark::evaluate_task(engine_, o, ref);
    }
    return {std::move(a.trace_json), a.seconds};
  }

  // The report of the options from the answers given, one per task of
  // tasks(): (config, kind, index, trace JSON, seconds). Writes it to
  // options["out_dir"] when set; returns its markdown.
  std::string evaluate(const py::dict& options,
                       const std::vector<std::tuple<std::string, std::string, uint64_t, std::string, double>>& answers)
      const {
    musespark::EvalOptions o = eval_options(options);
    std::map<std::tuple<std::string, std::string, uint64_t>, musespark::EvalAnswer> by_task;
    for (const auto& [config, kind, index, trace_json, seconds] : answers)
      by_task[{config, kind, index}] = musespark::EvalAnswer{trace_json, seconds};
    o.answer = [&by_task](const musespark::EvalTaskRef& t) {
      const auto it = by_task.find({t.config, t.kind, t.index});
      if (it == by_task.end())
        throw musespark::Error(musespark::ErrorKind::invalid_argument, "", "answers",
                               "no answer for task " + t.config + "/" + t.kind + "/" + std::to_string(t.index));
      return it->second;
    };
    py::gil_scoped_release release;
    return musespark::evaluate(engine_, o).markdown();
  }

 private:
  static musespark::Engine load(const std::string& path, int32_t threads, const std::string& dtype,
                                int64_t max_context) {
    c_string(path, "path");
    musespark::EngineOptions options;
    options.model.threads = threads;
    options.model.dtype = musespark::parse_dtype(dtype);
    options.model.max_context = max_context;
    py::gil_scoped_release release;
    return musespark::Engine::load(path, options);
  }

  musespark::Engine engine_;
};

}  // namespace

PYBIND11_MODULE(_musespark, m) {
  m.doc() = "Low-level bindings of the musespark C ABI; use the `musespark` package.";
  register_errors(m);
  m.attr("__version__") = musespark_version_string();
  m.def("version", [] { return std::string(musespark_version_string()); });
  m.def("abi_version", [] { return musespark_abi_version(); });
  m.attr("ABI_VERSION") = MUSESPARK_ABI_VERSION;

  py::class_<mc::Result, std::shared_ptr<mc::Result>>(m, "RawResult")
      .def_property_readonly("answer", [](const mc::Result& r) { return utf8(r.answer()); })
      .def_property_readonly("text", [](const mc::Result& r) { return utf8(r.text()); })
      .def_property_readonly("trace_json", [](const mc::Result& r) { return utf8(r.trace_json()); });

  py::class_<mc::Request, std::shared_ptr<mc::Request>>(m, "Request")
      .def(py::init<>())
      .def(
          "add_message", [](mc::Request& r, const std::string& role) { r.add_message(c_string(role, "role")); },
          py::arg("role"))
      .def(
          "add_text", [](mc::Request& r, const std::string& text) { r.add_text(c_string(text, "text")); },
          py::arg("text"))
      .def(
          "add_image_file",
          [](mc::Request& r, const std::string& path) {
            c_string(path, "image path");
            py::gil_scoped_release release;
            r.add_image_file(path);
          },
          py::arg("path"))
      .def(
          "add_image_encoded",
          [](mc::Request& r, const py::buffer& data) {
            py::buffer_info info = byte_buffer(data, 0, "image");
            py::gil_scoped_release release;  // `data` keeps the bytes alive
            r.add_image_encoded(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size));
          },
          py::arg("data"))
      .def(
          "add_image_rgb",
          [](mc::Request& r, const py::buffer& pixels, int32_t width, int32_t height) {
            if (width <= 0 || height <= 0)
              throw mc::Error(MUSESPARK_STATUS_INVALID_ARGUMENT, "image: width and height must be positive");
            py::buffer_info info =
                byte_buffer(pixels, static_cast<size_t>(width) * static_cast<size_t>(height) * 3, "image");
            py::gil_scoped_release release;
            r.add_image_rgb(static_cast<const uint8_t*>(info.ptr), width, height);
          },
          py::arg("pixels"), py::arg("width"), py::arg("height"))
      .def("set_mode", [](mc::Request& r, const std::string& mode) { r.set_mode(parse_mode(mode)); })
      .def("set_effort", [](mc::Request& r, const std::string& effort) { r.set_effort(parse_effort(effort)); })
      .def("set_seed", &mc::Request::set_seed, py::arg("seed"))
      .def(
          "set_budgets",
          [](mc::Request& r, int32_t agents, int32_t refine_agents, int32_t max_thinking_tokens,
             int32_t max_answer_tokens, int64_t max_total_tokens, int64_t deadline_ms, int32_t max_zooms) {
            musespark_budgets b;
            musespark_budgets_init(&b);
            b.agents = agents;
            b.refine_agents = refine_agents;
            b.max_thinking_tokens = max_thinking_tokens;
            b.max_answer_tokens = max_answer_tokens;
            b.max_total_tokens = max_total_tokens;
            b.deadline_ms = deadline_ms;
            b.max_zooms = max_zooms;
            r.set_budgets(b);
          },
          py::arg("agents") = 0, py::arg("refine_agents") = 0, py::arg("max_thinking_tokens") = 0,
          py::arg("max_answer_tokens") = 0, py::arg("max_total_tokens") = 0, py::arg("deadline_ms") = 0,
          py::arg("max_zooms") = 2)
      .def(
          "set_temperature",
          [](mc::Request& r, float temperature) {
            musespark_sampling s;
            musespark_sampling_init(&s);
            s.temperature = temperature;
            r.set_sampling(s);
          },
          py::arg("temperature"))
      .def("set_early_stop", &mc::Request::set_early_stop, py::arg("early_stop"), py::arg("consensus_stop") = true)
      .def("set_consensus_share", &mc::Request::set_consensus_share, py::arg("share"))
      .def("set_scatter_stop", &mc::Request::set_scatter_stop, py::arg("votes"))
      .def(
          "set_assistant_prefix",
          [](mc::Request& r, const std::string& prefix) { r.set_assistant_prefix(c_string(prefix, "prefix")); },
          py::arg("prefix"));

  py::class_<Stream>(m, "RawStream")
      .def("next", &Stream::next, "The next event as a tuple (kind, agent, round, text, in_thinking, tokens, "
                                  "confidence, result); StopIteration after the final event.")
      .def("close", &Stream::close, "Cancels the ask if it still runs and waits for its thread.");

  py::class_<mc::Engine, std::shared_ptr<mc::Engine>>(m, "Engine")
      .def(py::init([](const std::string& path, int32_t threads, const std::string& dtype, int64_t max_context) {
             musespark_engine_params params;
             musespark_engine_params_init(&params);
             params.threads = threads;
             params.dtype = parse_dtype(dtype);
             params.max_context = max_context;
             c_string(path, "path");
             py::gil_scoped_release release;
             return std::make_shared<mc::Engine>(path, params);
           }),
           py::arg("path"), py::arg("threads") = 0, py::arg("dtype") = "f32", py::arg("max_context") = 0)
      .def("info",
           [](const mc::Engine& e) {
             const musespark_model_info i = e.info();
             py::dict d;
             d["architecture"] = utf8(i.architecture);
             d["vocab_size"] = i.vocab_size;
             d["hidden_size"] = i.hidden_size;
             d["num_layers"] = i.num_layers;
             d["max_context"] = i.max_context;
             d["parameter_count"] = i.parameter_count;
             d["vision"] = i.vision != 0;
             d["threads"] = i.threads;
             return d;
           })
      .def(
          "ask",
          [](const mc::Engine& e, const mc::Request& request) {
            py::gil_scoped_release release;
            return std::make_shared<mc::Result>(e.ask(request));
          },
          py::arg("request"))
      .def(
          "stream",
          [](const std::shared_ptr<mc::Engine>& e, const std::shared_ptr<mc::Request>& request) {
            return std::make_unique<Stream>(e, request);
          },
          py::arg("request"))
      .def(
          "tokenize",
          [](const mc::Engine& e, const std::string& text) {
            py::gil_scoped_release release;
            return e.tokenize(text);
          },
          py::arg("text"))
      .def(
          "detokenize",
          [](const mc::Engine& e, const std::vector<int32_t>& ids) {
            std::string text;
            {
              py::gil_scoped_release release;
              text = e.detokenize(ids);
            }
            return utf8(text.data(), text.size());
          },
          py::arg("ids"))
      .def(
          "generate",
          [](const mc::Engine& e, const std::string& prompt, int32_t max_tokens, bool chat, bool thinking,
             float temperature, float top_p, uint64_t seed) {
            musespark_generate_params params;
            musespark_generate_params_init(&params);
            params.max_tokens = max_tokens;
            params.chat = chat ? 1 : 0;
            params.thinking = thinking ? 1 : 0;
            musespark_sampling sampling;
            musespark_sampling_init(&sampling);
            sampling.temperature = temperature;
            sampling.top_p = top_p;
            params.sampling = &sampling;  // read during the call only
            params.seed = seed;
            c_string(prompt, "prompt");
            py::gil_scoped_release release;
            return std::make_shared<mc::Result>(e.generate(prompt, params));
          },
          py::arg("prompt"), py::arg("max_tokens") = 128, py::arg("chat") = false, py::arg("thinking") = true,
          py::arg("temperature") = 0.0f, py::arg("top_p") = 1.0f, py::arg("seed") = 0);

  py::class_<Evaluator>(m, "Evaluator", "A model loaded for `musespark eval` spread over processes "
                                        "(musespark.distributed).")
      .def(py::init<const std::string&, int32_t, const std::string&, int64_t>(), py::arg("path"),
           py::arg("threads") = 0, py::arg("dtype") = "f32", py::arg("max_context") = 0)
      .def("tasks", &Evaluator::tasks, py::arg("options"),
           "(config, kind, index) of every task of the evaluation, in its order; checks the options.")
      .def("answer", &Evaluator::answer, py::arg("options"), py::arg("config"), py::arg("kind"), py::arg("index"),
           "(trace JSON, seconds) of one task, asked as the evaluation asks it.")
      .def("evaluate", &Evaluator::evaluate, py::arg("options"), py::arg("answers"),
           "The report from (config, kind, index, trace JSON, seconds) answers: written to options['out_dir'] "
           "when set; returns its markdown.");
}
