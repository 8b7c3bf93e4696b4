// musespark — a small sandboxed Jinja2 interpreter for Hugging Face chat
// templates (internal).
//
// It renders a model's `chat_template` byte for byte as transformers'
// `apply_chat_template` does: Python jinja2 with an ImmutableSandboxedEnvironment,
// trim_blocks and lstrip_blocks on, the loopcontrols extension, HF's `tojson`
// filter (json.dumps with ensure_ascii=False), and the globals raise_exception,
// strftime_now, namespace, range and dict. Values print as Python's str() does
// (None, True, 1.0, ['a', 1], {'k': 'v'}). strftime_now formats the local time
// of now, or of $SOURCE_DATE_EPOCH (seconds since 1970) when that is set.
//
// Supported: if/elif/else, for (else, `if` clause, tuple targets, loop.*,
// loop.cycle), break/continue, set (namespace attributes, tuples, block set),
// macro (defaults, keyword arguments, caller) and call blocks, filter blocks,
// raw, generation, comments and all whitespace control. Not supported:
// include/import/extends/block (there is no loader), recursive loops,
// Python's `%` string formatting and str.format, and case mapping beyond
// ASCII and Latin-1 (upper, lower, title, capitalize).
//
// Sandbox: a template sees only its context and the built-ins; lists and
// dicts cannot be changed (calling append/pop/update... is an error, as in
// jinja2's immutable sandbox). Rendering stops with an error past 100 nested
// macro calls, a range() longer than 100000, 64 MiB of output or of one
// string, or a budget of one million steps (statements, loop iterations and
// element work; a chat template needs tens per message), so no template can
// crash or hang the engine.
//
// Errors: musespark::Error naming the template's name (e.g.
// "tokenizer_config.json") and the field "chat_template", with a message
// "line N: what is wrong". Syntax errors (ErrorKind::format) are thrown by
// parse(); runtime errors (ErrorKind::format) by render(). A template's own
// raise_exception("msg") gives ErrorKind::invalid_argument with the message
// "the chat template refused the conversation: msg".
//
// Thread safety: Value and Template are values. A Template is immutable
// after parse() and render() is const and safe to call concurrently. Values
// share their lists and dicts as Python objects do (copies are cheap); a
// Value under construction must not be changed while another thread reads it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace musespark::detail::jinja {

class Value;

// The arguments of a call: f(1, 2, key=3).
struct Arguments {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// A callable Value's body. It reports a bad call by throwing
// musespark::Error (render() then adds the template's name and the line).
using Function = std::function<Value(const Arguments&)>;

class Value {
 public:
  enum class Kind { undefined, none, boolean, integer, floating, string, list, dict, function };
  using List = std::vector<Value>;
  using Item = std::pair<std::string, Value>;

  Value();  // undefined
  Value(std::nullptr_t);  // none
  Value(bool b);
  Value(int i);
  Value(int64_t i);
  Value(double d);
  Value(std::string s);
  Value(std::string_view s);
  Value(const char* s);

  // An undefined value; `hint` is what using it wrongly reports, e.g.
  // "'dict object' has no attribute 'foo'". Empty: "value is undefined".
  static Value undefined(std::string hint);
  static Value list(List items);
  static Value tuple(List items);  // a list that prints as (a, b)
  static Value dict(std::vector<Item> items = {});  // keys in insertion order
  static Value function(std::string name, Function body);

  // JSON -> Value: objects become dicts in their key order, arrays lists,
  // null none. Errors: Error{format} for JSON nested more than 512 deep.
  static Value from_json(const nlohmann::ordered_json& json);
  // Value -> JSON (tuples become arrays). Errors: Error{format} for
  // undefined values and functions.
  nlohmann::ordered_json to_json() const;

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::undefined; }
  bool is_none() const { return kind_ == Kind::none; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_list() const { return kind_ == Kind::list; }
  bool is_dict() const { return kind_ == Kind::dict; }
  bool is_tuple() const { return kind_ == Kind::list && flag_; }
  bool is_namespace() const { return kind_ == Kind::dict && flag_; }
  bool is_number() const { return kind_ == Kind::boolean || kind_ == Kind::integer || kind_ == Kind::floating; }

  // Accessors; each requires the matching kind (checked: Error{internal}).
  bool as_bool() const;
  int64_t as_int() const;  // booleans too, as Python's int(True)
  double as_double() const;  // any number
  const std::string& as_string() const;
  const List& as_list() const;
  const std::vector<Item>& items() const;  // a dict's items
  const std::string& undefined_hint() const;
  Value call(const Arguments& args) const;  // a function

  // A dict's value for `key`, or nullptr when absent (or not a dict).
  const Value* find(std::string_view key) const;
  // Sets a dict's key in place (replacing, or appending a new key). Dicts are
  // shared: every copy of this Value sees the change.
  void set(std::string key, Value value);

  // How deeply lists and dicts nest (0 for a scalar).
  uint32_t depth() const;

  // Python's truthiness and str() (undefined prints as "").
  bool truthy() const;
  std::string str() const;
  // Python's repr(): 'text' quoted, lists and dicts as Python prints them.
  std::string repr() const;
  // json.dumps(self, ensure_ascii, indent, separators, sort_keys); indent is
  // a string of spaces or nullptr for none (one line). Errors: Error{format}
  // for undefined values and functions.
  std::string dump_json(bool ensure_ascii, const std::string* indent, std::string_view item_separator,
                        std::string_view key_separator, bool sort_keys) const;
  // Python type name: str, int, float, bool, NoneType, list, tuple, dict, ...
  std::string type_name() const;

  // Python ==.
  friend bool operator==(const Value& a, const Value& b);

 private:
  struct ListData;
  struct DictData;
  struct FunctionData;
  Kind kind_ = Kind::undefined;
  bool flag_ = false;  // tuple (list) or namespace (dict)
  union {
    bool b_;
    int64_t i_;
    double d_;
  };
  std::shared_ptr<const void> ref_;  // string, ListData, DictData, FunctionData, or undefined hint

 public:
  // For the interpreter: a namespace object (a dict that `set ns.x = ...` may change).
  static Value make_namespace(std::vector<Item> items);
};

// Python's repr() of a float (0.1, 1.0, 1e-05, 1e+16, inf, nan).
std::string python_float_repr(double d);

// Text as Python sees it, one code point at a time: invalid UTF-8 bytes
// decode to U+DC80 + byte (Python's surrogateescape) and encode back to the
// same byte, so any bytes round-trip.
std::u32string decode_utf8(std::string_view text);
std::string encode_utf8(std::u32string_view text);

class Template {
 public:
  // Parses a template. `name` names it in errors ("tokenizer_config.json").
  // Errors: Error{format} "line N: ..." for a syntax error, an unknown
  // filter or test, or a tag this interpreter does not support.
  static Template parse(std::string_view source, std::string name);

  // Renders with `context` (a dict: messages, tools, add_generation_prompt,
  // bos_token, ...); names not in it resolve to the built-ins, then to
  // undefined. Errors: see the top of this file.
  std::string render(const Value& context) const;

  const std::string& name() const;

 private:
  struct Program;
  explicit Template(std::shared_ptr<const Program> program) : program_(std::move(program)) {}
  std::shared_ptr<const Program> program_;
};

}  // namespace musespark::detail::jinja
