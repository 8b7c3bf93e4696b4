// The Jinja interpreter: lexer (with jinja2's whitespace rules), parser to a
// tree of statements and expressions, and a tree-walking evaluator.
#include "tokenizer/jinja.hpp"

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <optional>

#include <fmt/format.h>
#include <utf8proc.h>

#include "musespark/error.hpp"
#include "tokenizer/utf8.hpp"

namespace musespark::detail::jinja {
namespace {

constexpr size_t kMaxString = size_t{64} << 20;  // one string, and the whole output
constexpr size_t kMaxList = 1'000'000;
constexpr int kMaxMacroDepth = 100;
constexpr int kMaxNesting = 600;       // evaluation depth at run time (the C++ stack)
constexpr int kMaxParseNesting = 150;  // nested expressions and blocks in the source
constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox MAX_RANGE
constexpr uint64_t kMaxSteps = 1'000'000;

// A runtime error without a line yet: render() adds the template's name and line.
[[noreturn]] void fail(const std::string& message) { throw Error(ErrorKind::format, "", "", message); }

// ---------------------------------------------------------------- text

bool is_space(char32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

size_t length_of(std::string_view s) {
  return is_ascii(s) ? s.size() : decode_utf8(s).size();
}

char32_t lower_cp(char32_t c) { return c < 0xD800 || c > 0xDFFF ? static_cast<char32_t>(utf8proc_tolower(static_cast<int32_t>(c))) : c; }
char32_t upper_cp(char32_t c) { return c < 0xD800 || c > 0xDFFF ? static_cast<char32_t>(utf8proc_toupper(static_cast<int32_t>(c))) : c; }
char32_t title_cp(char32_t c) { return c < 0xD800 || c > 0xDFFF ? static_cast<char32_t>(utf8proc_totitle(static_cast<int32_t>(c))) : c; }
bool is_cased(char32_t c) {
  if (c >= 0xD800 && c <= 0xDFFF) return false;
  auto cat = utf8proc_category(static_cast<int32_t>(c));
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT;
}
bool is_word(char32_t c) {
  if (c < 0x80) return std::isalnum(static_cast<int>(c)) || c == '_';
  if (c >= 0xD800 && c <= 0xDFFF) return false;
  auto cat = utf8proc_category(static_cast<int32_t>(c));
  return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
         (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
}

template <typename F>
std::string map_cps(std::string_view s, F f) {
  std::u32string u = decode_utf8(s);
  for (auto& c : u) c = f(c);
  return encode_utf8(u);
}
std::string lower(std::string_view s) { return map_cps(s, lower_cp); }
std::string upper(std::string_view s) { return map_cps(s, upper_cp); }

std::string capitalize(std::string_view s) {
  std::u32string u = decode_utf8(s);
  for (size_t i = 0; i < u.size(); ++i) u[i] = i == 0 ? title_cp(u[i]) : lower_cp(u[i]);
  return encode_utf8(u);
}

// Python's str.title().
std::string py_title(std::string_view s) {
  std::u32string u = decode_utf8(s);
  bool previous_cased = false;
  for (auto& c : u) {
    bool cased = is_cased(c);
    c = previous_cased ? lower_cp(c) : title_cp(c);
    previous_cased = cased;
  }
  return encode_utf8(u);
}

// jinja2's title filter: words begin after runs of - whitespace ( { [ <.
std::string jinja_title(std::string_view s) {
  std::u32string u = decode_utf8(s);
  bool start = true;
  for (auto& c : u) {
    bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || is_space(c);
    if (sep) {
      start = true;
    } else {
      c = start ? upper_cp(c) : lower_cp(c);
      start = false;
    }
  }
  return encode_utf8(u);
}

// str.strip / lstrip / rstrip; chars == nullptr strips whitespace.
std::string strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::u32string u = decode_utf8(s);
  std::u32string set = chars ? decode_utf8(*chars) : std::u32string();
  auto drop = [&](char32_t c) { return chars ? set.find(c) != std::u32string::npos : is_space(c); };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && drop(u[b])) ++b;
  if (right)
    while (e > b && drop(u[e - 1])) --e;
  return encode_utf8(std::u32string_view(u).substr(b, e - b));
}

std::string rstrip_ws(std::string_view s) { return strip(s, nullptr, false, true); }

void check_string_size(size_t n) {
  if (n > kMaxString) fail("a string would be longer than 64 MiB");
}
void check_list_size(size_t n) {
  if (n > kMaxList) fail("a list would have more than " + std::to_string(kMaxList) + " items");
}

// ---------------------------------------------------------------- lexer

enum class T { data, var_begin, var_end, block_begin, block_end, name, string, integer, floating, op, eof };

struct Token {
  T type;
  std::string text;
  int line;
  Value value;  // string / integer / floating literals
};

const char* describe(const Token& t) {
  switch (t.type) {
    case T::data: return "template text";
    case T::var_begin: return "'{{'";
    case T::var_end: return "'}}'";
    case T::block_begin: return "'{%'";
    case T::block_end: return "'%}'";
    case T::eof: return "end of template";
    default: return nullptr;
  }
}
std::string token_name(const Token& t) {
  if (const char* d = describe(t)) return d;
  return "'" + t.text + "'";
}

[[noreturn]] void syntax_error(const std::string& name, int line, const std::string& message) {
  throw Error(ErrorKind::format, name, "chat_template", "line " + std::to_string(line) + ": " + message);
}

class Lexer {
 public:
  Lexer(std::string source, const std::string& name) : src_(std::move(source)), name_(name) {}

  std::vector<Token> run() {
    bool line_starting = true;
    const size_t n = src_.size();
    while (pos_ < n) {
      size_t p = pos_;
      while ((p = src_.find('{', p)) != std::string::npos && !(p + 1 < n && std::strchr("{%#", src_[p + 1]) && src_[p + 1]))
        ++p;
      if (p == std::string::npos) {
        emit_data(src_.substr(pos_), line_);
        advance(n);
        break;
      }
      char kind = src_[p + 1];
      size_t q = p + 2;
      char sign = q < n && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      size_t after_sign = q + (sign ? 1 : 0);
      size_t raw_after = kind == '%' ? raw_begin(after_sign) : 0;
      std::string text = src_.substr(pos_, p - pos_);
      int text_line = line_;
      text = trim_before(std::move(text), sign, kind != '{', line_starting);
      emit_data(std::move(text), text_line);
      advance(after_sign);
      if (raw_after) {
        advance(raw_after);
        line_starting = src_[raw_after - 1] == '\n';
        lex_raw(line_starting);
      } else if (kind == '#') {
        line_starting = skip_comment();
      } else {
        line_starting = lex_tag(kind == '{');
      }
    }
    tokens_.push_back({T::eof, "", line_, {}});
    return std::move(tokens_);
  }

 private:
  std::string src_;
  const std::string& name_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;

  [[noreturn]] void error(const std::string& message) { syntax_error(name_, line_, message); }

  void advance(size_t to) {
    line_ += static_cast<int>(std::count(src_.begin() + static_cast<ptrdiff_t>(pos_), src_.begin() + static_cast<ptrdiff_t>(to), '\n'));
    pos_ = to;
  }

  void emit_data(std::string text, int line) {
    if (!text.empty()) tokens_.push_back({T::data, std::move(text), line, {}});
  }

  // jinja2: "{%-" strips all whitespace before the tag; otherwise
  // lstrip_blocks drops the spaces and tabs that begin the tag's line
  // ("{%+" keeps them; "{{" is never stripped).
  std::string trim_before(std::string text, char sign, bool lstrip, bool line_starting) const {
    if (sign == '-') return rstrip_ws(text);
    if (sign == '+' || !lstrip) return text;
    size_t nl = text.rfind('\n');
    size_t l = nl == std::string::npos ? 0 : nl + 1;
    if (l == 0 && !line_starting) return text;
    std::string_view rest = std::string_view(text).substr(l);
    if (rest.empty()) return text;
    for (char32_t c : decode_utf8(rest))
      if (!is_space(c)) return text;
    text.resize(l);
    return text;
  }

  size_t skip_ws(size_t p) const {
    while (p < src_.size() && std::isspace(static_cast<unsigned char>(src_[p]))) ++p;
    return p;
  }

  // The end of "{% raw %}" (no trim_blocks after it, as in jinja2) or 0.
  size_t raw_begin(size_t p) const {
    p = skip_ws(p);
    if (src_.compare(p, 3, "raw") != 0) return 0;
    p = skip_ws(p + 3);
    if (src_.compare(p, 3, "-%}") == 0) return skip_ws(p + 3);
    if (src_.compare(p, 2, "%}") == 0) return p + 2;
    return 0;
  }

  // After "%}", "-%}" or "+%}" at p (end_len 2 for "%}" / "}}"): where the
  // text resumes. trim: trim_blocks applies (block and comment tags).
  size_t tag_end(size_t p, char sign, size_t len, bool trim) const {
    size_t e = p + len;
    if (sign == '-') return skip_ws(e);
    if (sign == 0 && trim && e < src_.size() && src_[e] == '\n') ++e;
    return e;
  }

  void lex_raw(bool line_starting) {
    size_t p = pos_;
    while ((p = src_.find("{%", p)) != std::string::npos) {
      size_t r = p + 2;
      char sign = r < src_.size() && (src_[r] == '-' || src_[r] == '+') ? src_[r] : 0;
      r = skip_ws(r + (sign ? 1 : 0));
      if (src_.compare(r, 6, "endraw") == 0) {
        r = skip_ws(r + 6);
        char end_sign = r < src_.size() && (src_[r] == '-' || src_[r] == '+') ? src_[r] : 0;
        size_t close = r + (end_sign ? 1 : 0);
        if (src_.compare(close, 2, "%}") == 0) {
          emit_data(trim_before(src_.substr(pos_, p - pos_), sign, true, line_starting), line_);
          advance(tag_end(close, end_sign, 2, true));
          return;
        }
      }
      p += 2;
    }
    error("missing end of raw directive");
  }

  bool skip_comment() {
    size_t k = src_.find("#}", pos_);
    if (k == std::string::npos) error("missing end of comment tag");
    char sign = k > pos_ && (src_[k - 1] == '-' || src_[k - 1] == '+') ? src_[k - 1] : 0;
    size_t e = tag_end(k, sign, 2, true);
    advance(e);
    return e > 0 && src_[e - 1] == '\n';
  }

  // Lexes the inside of "{{ ... }}" or "{% ... %}"; returns whether the
  // match ended with a newline (jinja2's line_starting).
  bool lex_tag(bool variable) {
    tokens_.push_back({variable ? T::var_begin : T::block_begin, "", line_, {}});
    std::string balance;
    const size_t n = src_.size();
    while (true) {
      advance(skip_ws(pos_));
      if (pos_ >= n) error(std::string("unexpected end of template, expected '") + (variable ? "}}" : "%}") + "'");
      if (balance.empty()) {
        const char* close = variable ? "}}" : "%}";
        char sign = src_[pos_] == '-' || (!variable && src_[pos_] == '+') ? src_[pos_] : 0;
        size_t c = pos_ + (sign ? 1 : 0);
        if (src_.compare(c, 2, close) == 0) {
          tokens_.push_back({variable ? T::var_end : T::block_end, "", line_, {}});
          size_t e = tag_end(c, sign, 2, !variable);
          advance(e);
          return src_[e - 1] == '\n';
        }
      }
      char ch = src_[pos_];
      if (ch == '\'' || ch == '"') {
        lex_string(ch);
      } else if (std::isdigit(static_cast<unsigned char>(ch))) {
        lex_number();
      } else if (std::isalpha(static_cast<unsigned char>(ch)) || ch == '_') {
        size_t e = pos_;
        while (e < n && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        tokens_.push_back({T::name, src_.substr(pos_, e - pos_), line_, {}});
        pos_ = e;
      } else {
        static const char* const ops[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]",
                                          "(",  ")",  "{",  "}",  ">",  "<",  "=", ".", ":", "|", ",", ";"};
        const char* found = nullptr;
        for (const char* op : ops)
          if (src_.compare(pos_, std::strlen(op), op) == 0) {
            found = op;
            break;
          }
        if (!found) error(fmt::format("unexpected character '{}'", ch));
        std::string op = found;
        if (op == "(" || op == "[" || op == "{") {
          balance += op == "(" ? ')' : op == "[" ? ']' : '}';
        } else if (op == ")" || op == "]" || op == "}") {
          if (balance.empty()) error("unexpected '" + op + "'");
          if (balance.back() != op[0]) error(fmt::format("unexpected '{}', expected '{}'", op, balance.back()));
          balance.pop_back();
        }
        tokens_.push_back({T::op, op, line_, {}});
        pos_ += op.size();
      }
    }
  }

  void lex_string(char quote) {
    size_t e = pos_ + 1;
    while (e < src_.size() && src_[e] != quote) e += src_[e] == '\\' ? 2 : 1;
    if (e >= src_.size()) error("unterminated string");
    std::string body = src_.substr(pos_ + 1, e - pos_ - 1);
    tokens_.push_back({T::string, body, line_, Value(unescape(body))});
    advance(e + 1);
  }

  // Python's unicode-escape decoding of a string literal's body.
  std::string unescape(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '\\' || i + 1 >= s.size()) {
        out += s[i];
        continue;
      }
      char c = s[++i];
      auto hex = [&](size_t count) {
        uint32_t v = 0;
        for (size_t k = 1; k <= count; ++k) {
          if (i + k >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + k]))) error("truncated escape in a string");
          char h = s[i + k];
          v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        i += count;
        if (v > 0x10FFFF) error("illegal Unicode character in a string");
        tokenizer::append_utf8(out, v);
      };
      switch (c) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x': hex(2); break;
        case 'u': hex(4); break;
        case 'U': hex(8); break;
        case 'N': error("\\N{...} escapes in strings are not supported");
        default:
          if (c >= '0' && c <= '7') {
            uint32_t v = static_cast<uint32_t>(c - '0');
            for (int k = 0; k < 2 && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7'; ++k)
              v = v * 8 + static_cast<uint32_t>(s[++i] - '0');
            tokenizer::append_utf8(out, v);
          } else {
            out += '\\';
            out += c;
          }
      }
    }
    return out;
  }

  void lex_number() {
    const size_t n = src_.size();
    auto digits = [&](size_t p) {  // \d+(_\d+)*
      if (p >= n || !std::isdigit(static_cast<unsigned char>(src_[p]))) return p;
      while (p < n && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        ++p;
        if (p + 1 < n && src_[p] == '_' && std::isdigit(static_cast<unsigned char>(src_[p + 1]))) ++p;
      }
      return p;
    };
    size_t e = digits(pos_);
    bool is_float = false;
    bool after_dot = pos_ > 0 && src_[pos_ - 1] == '.';
    if (!after_dot) {
      size_t f = e;
      if (f + 1 < n && src_[f] == '.' && std::isdigit(static_cast<unsigned char>(src_[f + 1]))) {
        f = digits(f + 1);
        is_float = true;
      }
      if (f < n && (src_[f] == 'e' || src_[f] == 'E')) {
        size_t x = f + 1;
        if (x < n && (src_[x] == '+' || src_[x] == '-')) ++x;
        size_t y = digits(x);
        if (y > x) {
          f = y;
          is_float = true;
        }
      }
      if (is_float) e = f;
    }
    std::string text = src_.substr(pos_, e - pos_);
    std::string clean;
    for (char c : text)
      if (c != '_') clean += c;
    if (is_float) {
      tokens_.push_back({T::floating, text, line_, Value(std::strtod(clean.c_str(), nullptr))});
    } else {
      errno = 0;
      long long v = std::strtoll(clean.c_str(), nullptr, 10);
      if (errno == ERANGE) error("integer literal " + text + " is too large");
      tokens_.push_back({T::integer, text, line_, Value(static_cast<int64_t>(v))});
    }
    pos_ = e;
  }
};

// ---------------------------------------------------------------- tree

struct Interp;
using FilterFn = Value (*)(Interp&, const Value&, const Arguments&);
using TestFn = bool (*)(Interp&, const Value&, const Arguments&);
const FilterFn* find_filter(std::string_view name);
const TestFn* find_test(std::string_view name);

enum class X { literal, name, list, tuple, dict, getattr, getitem, slice, call, filter, test, not_, neg, pos, binop, compare, and_, or_, cond, concat };

struct Expr;
using ExprP = std::unique_ptr<Expr>;
struct Expr {
  X kind;
  int line;
  std::string name;          // variable, attribute, filter, test or operator
  Value value;               // literal
  std::vector<ExprP> args;   // operands; for getattr/getitem/call/filter/test the subject first
  std::vector<std::pair<std::string, ExprP>> kwargs;
  std::vector<std::string> ops;  // compare
  bool negated = false;      // "is not"
  FilterFn filter = nullptr;
  TestFn test = nullptr;
};

enum class S { text, print, if_, for_, set, set_block, macro, call_block, filter_block, break_, continue_, body };

struct Target {
  std::vector<std::string> names;
  std::string attr;  // set ns.attr = ...
  bool tuple = false;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;
using Params = std::vector<std::pair<std::string, ExprP>>;  // default may be null
struct Stmt {
  S kind;
  int line;
  std::string text;  // text, macro name
  ExprP expr;        // print, set value, for iterable, call, filter chain
  ExprP cond;        // for ... if cond
  std::vector<std::pair<ExprP, Body>> branches;
  Body body, else_body;
  Target target;
  Params params;
};

// ---------------------------------------------------------------- parser

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& name) : t_(std::move(tokens)), name_(name) {}

  Body parse_template() {
    Body body = subparse({}, "", 0);
    return body;
  }

 private:
  std::vector<Token> t_;
  size_t i_ = 0;
  const std::string& name_;
  int depth_ = 0;
  int loops_ = 0;

  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxParseNesting) p.error("nested too deeply (more than " + std::to_string(kMaxParseNesting) + " levels)");
    }
    ~Nest() { --p.depth_; }
  };

  const Token& cur() const { return t_[i_]; }
  const Token& peek() const { return t_[std::min(i_ + 1, t_.size() - 1)]; }
  const Token& next() {
    const Token& t = t_[i_];
    if (i_ + 1 < t_.size()) ++i_;
    return t;
  }
  bool at_op(std::string_view op) const { return cur().type == T::op && cur().text == op; }
  bool at_name(std::string_view n) const { return cur().type == T::name && cur().text == n; }
  [[noreturn]] void error(const std::string& message) const { syntax_error(name_, cur().line, message); }
  void expect_op(std::string_view op) {
    if (!at_op(op)) error(fmt::format("expected '{}', got {}", op, token_name(cur())));
    next();
  }
  std::string expect_name() {
    if (cur().type != T::name) error("expected a name, got " + token_name(cur()));
    return next().text;
  }
  void expect(T type) {
    if (cur().type != type) {
      Token want{type, "", 0, {}};
      error(fmt::format("expected {}, got {}", describe(want), token_name(cur())));
    }
    next();
  }

  ExprP node(X kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // Statements up to one of `ends` (a tag name, left unread after its
  // "{%"); the last of `ends` closes the block opened by `opener`.
  Body subparse(std::initializer_list<const char*> ends, const char* opener, int opener_line) {
    Nest nest(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == T::eof) {
        if (ends.size() == 0) return body;
        error(fmt::format("expected '{}' to close the '{}' of line {}, got end of template", *(ends.end() - 1), opener, opener_line));
      }
      if (t.type == T::data) {
        auto s = std::make_unique<Stmt>();
        s->kind = S::text;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == T::var_begin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = S::print;
        s->line = t.line;
        s->expr = parse_tuple(true, false);
        expect(T::var_end);
        body.push_back(std::move(s));
      } else if (t.type == T::block_begin) {
        next();
        if (cur().type == T::name)
          for (const char* end : ends)
            if (cur().text == end) return body;
        body.push_back(parse_statement(ends));
      } else {
        error("unexpected " + token_name(t));
      }
    }
  }

  std::unique_ptr<Stmt> stmt(S kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  std::unique_ptr<Stmt> parse_statement(std::initializer_list<const char*> ends) {
    if (cur().type != T::name) error("expected a tag name, got " + token_name(cur()));
    int line = cur().line;
    std::string tag = next().text;
    if (tag == "if") return parse_if(line);
    if (tag == "for") return parse_for(line);
    if (tag == "set") return parse_set(line);
    if (tag == "macro") return parse_macro(line);
    if (tag == "call") return parse_call(line);
    if (tag == "filter") return parse_filter_block(line);
    if (tag == "generation") {
      auto s = stmt(S::body, line);
      expect(T::block_end);
      s->body = subparse({"endgeneration"}, "generation", line);
      next();
      expect(T::block_end);
      return s;
    }
    if (tag == "break" || tag == "continue") {
      if (loops_ == 0) syntax_error(name_, line, "'" + tag + "' outside a loop");
      expect(T::block_end);
      return stmt(tag == "break" ? S::break_ : S::continue_, line);
    }
    static const char* const unsupported[] = {"include", "import", "from", "extends", "block", "with", "autoescape", "do", "raw"};
    for (const char* u : unsupported)
      if (tag == u) syntax_error(name_, line, "the tag '" + tag + "' is not supported");
    if (tag.rfind("end", 0) == 0 || tag == "elif" || tag == "else") {
      if (ends.size()) syntax_error(name_, line, fmt::format("unexpected '{}', expected '{}'", tag, *(ends.end() - 1)));
      syntax_error(name_, line, "unexpected '" + tag + "'");
    }
    syntax_error(name_, line, "unknown tag '" + tag + "'");
  }

  std::unique_ptr<Stmt> parse_if(int line) {
    auto s = stmt(S::if_, line);
    while (true) {
      ExprP cond = parse_tuple(false, false);
      expect(T::block_end);
      Body body = subparse({"elif", "else", "endif"}, "if", line);
      s->branches.emplace_back(std::move(cond), std::move(body));
      std::string tag = next().text;
      if (tag == "elif") continue;
      if (tag == "else") {
        expect(T::block_end);
        s->else_body = subparse({"endif"}, "if", line);
        next();
      }
      break;
    }
    expect(T::block_end);
    return s;
  }

  Target parse_target(bool allow_attr) {
    Target t;
    bool paren = at_op("(");
    if (paren) next();
    t.names.push_back(expect_name());
    if (allow_attr && !paren && at_op(".")) {
      next();
      t.attr = expect_name();
      return t;
    }
    while (at_op(",")) {
      next();
      t.tuple = true;
      if (cur().type != T::name) break;
      t.names.push_back(expect_name());
    }
    if (paren) {
      expect_op(")");
      t.tuple = true;
    }
    return t;
  }

  std::unique_ptr<Stmt> parse_for(int line) {
    auto s = stmt(S::for_, line);
    s->target = parse_target(false);
    if (!at_name("in")) error("expected 'in', got " + token_name(cur()));
    next();
    s->expr = parse_tuple(false, false, true);
    if (at_name("if")) {
      next();
      s->cond = parse_expression(true);
    }
    if (at_name("recursive")) error("recursive loops are not supported");
    expect(T::block_end);
    ++loops_;
    s->body = subparse({"else", "endfor"}, "for", line);
    --loops_;
    if (next().text == "else") {
      expect(T::block_end);
      s->else_body = subparse({"endfor"}, "for", line);
      next();
    }
    expect(T::block_end);
    return s;
  }

  std::unique_ptr<Stmt> parse_set(int line) {
    auto s = stmt(S::set, line);
    s->target = parse_target(true);
    if (at_op("=")) {
      next();
      s->expr = parse_tuple(true, false);
      expect(T::block_end);
      return s;
    }
    s->kind = S::set_block;
    expect(T::block_end);
    s->body = subparse({"endset"}, "set", line);
    next();
    expect(T::block_end);
    return s;
  }

  Params parse_params() {
    Params params;
    expect_op("(");
    while (!at_op(")")) {
      if (!params.empty()) expect_op(",");
      if (at_op(")")) break;
      std::string name = expect_name();
      ExprP def;
      if (at_op("=")) {
        next();
        def = parse_expression(true);
      } else if (!params.empty() && params.back().second) {
        error("non-default argument follows default argument");
      }
      params.emplace_back(std::move(name), std::move(def));
    }
    next();
    return params;
  }

  std::unique_ptr<Stmt> parse_macro(int line) {
    auto s = stmt(S::macro, line);
    s->text = expect_name();
    s->params = parse_params();
    expect(T::block_end);
    int loops = loops_;
    loops_ = 0;
    s->body = subparse({"endmacro"}, "macro", line);
    loops_ = loops;
    next();
    if (cur().type == T::name) next();  // {% endmacro name %}
    expect(T::block_end);
    return s;
  }

  std::unique_ptr<Stmt> parse_call(int line) {
    auto s = stmt(S::call_block, line);
    if (at_op("(")) s->params = parse_params();
    s->expr = parse_expression(true);
    if (s->expr->kind != X::call) syntax_error(name_, line, "expected a call after 'call'");
    expect(T::block_end);
    int loops = loops_;
    loops_ = 0;
    s->body = subparse({"endcall"}, "call", line);
    loops_ = loops;
    next();
    expect(T::block_end);
    return s;
  }

  std::unique_ptr<Stmt> parse_filter_block(int line) {
    auto s = stmt(S::filter_block, line);
    ExprP chain;
    do {
      if (chain) next();  // '|'
      chain = parse_filter(std::move(chain));
    } while (at_op("|"));
    s->expr = std::move(chain);
    expect(T::block_end);
    s->body = subparse({"endfilter"}, "filter", line);
    next();
    expect(T::block_end);
    return s;
  }

  // ---- expressions (jinja2's precedence)

  ExprP parse_tuple(bool with_condexpr, bool explicit_parens, bool for_iter = false) {
    int line = cur().line;
    std::vector<ExprP> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (cur().type == T::var_end || cur().type == T::block_end || (explicit_parens && at_op(")")) ||
          (for_iter && (at_name("recursive") || at_name("if"))))
        break;
      items.push_back(parse_expression(with_condexpr));
      if (at_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) error("expected an expression, got " + token_name(cur()));
    }
    auto e = node(X::tuple, line);
    e->args = std::move(items);
    return e;
  }

  ExprP parse_expression(bool with_condexpr) {
    Nest nest(*this);
    ExprP e = parse_or();
    if (!with_condexpr) return e;
    while (at_name("if")) {
      int line = next().line;
      auto c = node(X::cond, line);
      ExprP test = parse_or();
      ExprP otherwise;
      if (at_name("else")) {
        next();
        otherwise = parse_expression(true);
      }
      c->args.push_back(std::move(test));
      c->args.push_back(std::move(e));
      c->args.push_back(std::move(otherwise));
      e = std::move(c);
    }
    return e;
  }

  ExprP binary(X kind, int line, ExprP a, ExprP b, std::string op = {}) {
    auto e = node(kind, line);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprP parse_or() {
    ExprP e = parse_and();
    while (at_name("or")) {
      int line = next().line;
      e = binary(X::or_, line, std::move(e), parse_and());
    }
    return e;
  }

  ExprP parse_and() {
    ExprP e = parse_not();
    while (at_name("and")) {
      int line = next().line;
      e = binary(X::and_, line, std::move(e), parse_not());
    }
    return e;
  }

  ExprP parse_not() {
    if (at_name("not")) {
      Nest nest(*this);
      auto e = node(X::not_, next().line);
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprP parse_compare() {
    int line = cur().line;
    ExprP first = parse_math1();
    std::vector<ExprP> operands;
    std::vector<std::string> ops;
    while (true) {
      if (cur().type == T::op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
                                  cur().text == "<=" || cur().text == ">=")) {
        ops.push_back(next().text);
      } else if (at_name("in")) {
        next();
        ops.push_back("in");
      } else if (at_name("not") && peek().type == T::name && peek().text == "in") {
        next();
        next();
        ops.push_back("not in");
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = node(X::compare, line);
    e->args.push_back(std::move(first));
    for (auto& o : operands) e->args.push_back(std::move(o));
    e->ops = std::move(ops);
    return e;
  }

  ExprP parse_math1() {
    ExprP e = parse_concat();
    while (at_op("+") || at_op("-")) {
      int line = cur().line;
      std::string op = next().text;
      e = binary(X::binop, line, std::move(e), parse_concat(), op);
    }
    return e;
  }

  ExprP parse_concat() {
    int line = cur().line;
    ExprP first = parse_math2();
    if (!at_op("~")) return first;
    auto e = node(X::concat, line);
    e->args.push_back(std::move(first));
    while (at_op("~")) {
      next();
      e->args.push_back(parse_math2());
    }
    return e;
  }

  ExprP parse_math2() {
    ExprP e = parse_pow();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      int line = cur().line;
      std::string op = next().text;
      e = binary(X::binop, line, std::move(e), parse_pow(), op);
    }
    return e;
  }

  ExprP parse_pow() {
    ExprP e = parse_unary(true);
    while (at_op("**")) {
      int line = next().line;
      e = binary(X::binop, line, std::move(e), parse_unary(true), "**");
    }
    return e;
  }

  ExprP parse_unary(bool with_filter) {
    Nest nest(*this);
    ExprP e;
    if (at_op("-") || at_op("+")) {
      int line = cur().line;
      e = node(next().text == "-" ? X::neg : X::pos, line);
      e->args.push_back(parse_unary(false));
    } else {
      e = parse_postfix(parse_primary());
    }
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprP parse_primary() {
    Nest nest(*this);
    const Token& t = cur();
    int line = t.line;
    if (t.type == T::name) {
      next();
      if (t.text == "true" || t.text == "True" || t.text == "false" || t.text == "False") {
        auto e = node(X::literal, line);
        e->value = Value(t.text[0] == 't' || t.text[0] == 'T');
        return e;
      }
      if (t.text == "none" || t.text == "None") {
        auto e = node(X::literal, line);
        e->value = Value(nullptr);
        return e;
      }
      auto e = node(X::name, line);
      e->name = t.text;
      return e;
    }
    if (t.type == T::string) {
      std::string s;
      while (cur().type == T::string) s += next().value.as_string();
      auto e = node(X::literal, line);
      e->value = Value(std::move(s));
      return e;
    }
    if (t.type == T::integer || t.type == T::floating) {
      auto e = node(X::literal, line);
      e->value = next().value;
      return e;
    }
    if (at_op("(")) {
      next();
      ExprP e = parse_tuple(true, true);
      expect_op(")");
      return e;
    }
    if (at_op("[")) {
      next();
      auto e = node(X::list, line);
      while (!at_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (at_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      next();
      return e;
    }
    if (at_op("{")) {
      next();
      auto e = node(X::dict, line);
      while (!at_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (at_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      next();
      return e;
    }
    error("unexpected " + token_name(t));
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    bool any = false;
    while (!at_op(")")) {
      if (any) expect_op(",");
      if (at_op(")")) break;
      any = true;
      if (at_op("*") || at_op("**")) error("*args and **kwargs in calls are not supported");
      if (cur().type == T::name && peek().type == T::op && peek().text == "=") {
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error("positional argument follows keyword argument");
        e.args.push_back(parse_expression(true));
      }
    }
    next();
  }

  ExprP parse_postfix(ExprP e) {
    while (true) {
      int line = cur().line;
      if (at_op(".")) {
        next();
        if (cur().type == T::name) {
          auto a = node(X::getattr, line);
          a->name = next().text;
          a->args.push_back(std::move(e));
          e = std::move(a);
        } else if (cur().type == T::integer) {
          auto a = node(X::getitem, line);
          auto k = node(X::literal, line);
          k->value = next().value;
          a->args.push_back(std::move(e));
          a->args.push_back(std::move(k));
          e = std::move(a);
        } else {
          error("expected an attribute name, got " + token_name(cur()));
        }
      } else if (at_op("[")) {
        next();
        e = parse_subscript(std::move(e), line);
      } else if (at_op("(")) {
        auto c = node(X::call, line);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprP parse_subscript(ExprP subject, int line) {
    ExprP parts[3];
    bool slice = false;
    if (!at_op(":")) parts[0] = parse_expression(true);
    if (at_op(":")) {
      slice = true;
      next();
      if (!at_op("]") && !at_op(":")) parts[1] = parse_expression(true);
      if (at_op(":")) {
        next();
        if (!at_op("]")) parts[2] = parse_expression(true);
      }
    }
    if (at_op(",")) error("tuple subscripts are not supported");
    expect_op("]");
    auto e = node(slice ? X::slice : X::getitem, line);
    e->args.push_back(std::move(subject));
    if (slice) {
      for (auto& p : parts) e->args.push_back(std::move(p));
    } else {
      e->args.push_back(std::move(parts[0]));
    }
    return e;
  }

  ExprP parse_filter(ExprP subject) {
    int line = cur().line;
    std::string name = expect_name();
    while (at_op(".")) {
      next();
      name += "." + expect_name();
    }
    const FilterFn* fn = find_filter(name);
    if (!fn) syntax_error(name_, line, "unknown filter '" + name + "'");
    auto e = node(X::filter, line);
    e->name = name;
    e->filter = *fn;
    e->args.push_back(std::move(subject));
    if (at_op("(")) parse_call_args(*e);
    return e;
  }

  ExprP parse_filter_expr(ExprP e) {
    while (true) {
      if (at_op("|")) {
        next();
        e = parse_filter(std::move(e));
      } else if (at_name("is")) {
        int line = next().line;
        auto t = node(X::test, line);
        if (at_name("not")) {
          next();
          t->negated = true;
        }
        t->name = expect_name();
        const TestFn* fn = find_test(t->name);
        if (!fn) syntax_error(name_, line, "unknown test '" + t->name + "'");
        t->test = *fn;
        t->args.push_back(std::move(e));
        const Token& c = cur();
        if (at_op("(")) {
          parse_call_args(*t);
        } else if ((c.type == T::name || c.type == T::string || c.type == T::integer || c.type == T::floating ||
                    at_op("[") || at_op("{")) &&
                   !at_name("else") && !at_name("or") && !at_name("and")) {
          if (at_name("is")) error("tests cannot be chained with 'is'");
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else if (at_op("(")) {
        auto c = node(X::call, cur().line);
        c->args.push_back(std::move(e));
        parse_call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
};

}  // namespace

// ---------------------------------------------------------------- evaluator

struct Template::Program {
  std::string name;
  Body body;
};

namespace {

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;

  void set(const std::string& name, Value v) {
    for (auto& [k, old] : vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    vars.emplace_back(name, std::move(v));
  }
};
using FrameP = std::shared_ptr<Frame>;

enum class Flow { normal, break_, continue_ };

const Value* arg(const Arguments& a, size_t index, std::string_view name) {
  if (index < a.positional.size()) return &a.positional[index];
  for (const auto& [k, v] : a.keyword)
    if (k == name) return &v;
  return nullptr;
}

int64_t int_arg(const Arguments& a, size_t index, std::string_view name, int64_t fallback) {
  const Value* v = arg(a, index, name);
  if (!v || v->is_none()) return fallback;
  if (v->kind() != Value::Kind::integer && v->kind() != Value::Kind::boolean) fail("'" + std::string(name) + "' must be an integer, got " + v->type_name());
  return v->as_int();
}

bool bool_arg(const Arguments& a, size_t index, std::string_view name, bool fallback) {
  const Value* v = arg(a, index, name);
  return v ? v->truthy() : fallback;
}

const std::string* string_arg(const Arguments& a, size_t index, std::string_view name) {
  const Value* v = arg(a, index, name);
  if (!v || v->is_none() || v->is_undefined()) return nullptr;
  if (!v->is_string()) fail("'" + std::string(name) + "' must be a string, got " + v->type_name());
  return &v->as_string();
}

[[noreturn]] void undefined_error(const Value& v) { fail(v.undefined_hint()); }

Value python_slice(const Value& v, const Value& start_v, const Value& stop_v, const Value& step_v) {
  auto num = [](const Value& x, const char* what) -> std::optional<int64_t> {
    if (x.is_none() || x.is_undefined()) return std::nullopt;
    if (x.kind() != Value::Kind::integer && x.kind() != Value::Kind::boolean) fail(std::string("slice ") + what + " must be an integer or None");
    return x.as_int();
  };
  int64_t step = num(step_v, "step").value_or(1);
  if (step == 0) fail("slice step cannot be zero");
  std::u32string chars;
  bool ascii = v.is_string() && is_ascii(v.as_string());
  if (v.is_string() && !ascii) chars = decode_utf8(v.as_string());
  int64_t len = v.is_list() ? static_cast<int64_t>(v.as_list().size())
                : ascii      ? static_cast<int64_t>(v.as_string().size())
                             : static_cast<int64_t>(chars.size());
  auto clamp = [&](std::optional<int64_t> x, int64_t def) {
    if (!x) return def;
    int64_t i = *x < 0 ? *x + len : *x;
    if (step > 0) return std::clamp<int64_t>(i, 0, len);
    return std::clamp<int64_t>(i, -1, len - 1);
  };
  int64_t start = clamp(num(start_v, "start"), step > 0 ? 0 : len - 1);
  int64_t stop = clamp(num(stop_v, "stop"), step > 0 ? len : -1);
  std::vector<int64_t> idx;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) idx.push_back(i);
  if (v.is_list()) {
    Value::List out;
    for (auto i : idx) out.push_back(v.as_list()[static_cast<size_t>(i)]);
    return v.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
  }
  if (ascii) {
    std::string out;
    for (auto i : idx) out += v.as_string()[static_cast<size_t>(i)];
    return Value(std::move(out));
  }
  std::u32string out;
  for (auto i : idx) out += chars[static_cast<size_t>(i)];
  return Value(encode_utf8(out));
}

std::string type_article(const Value& v) { return "'" + v.type_name() + " object'"; }

// Python's list / iteration of a value.
Value::List iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::undefined: return {};
    case Value::Kind::list: return v.as_list();
    case Value::Kind::dict: {
      Value::List keys;
      for (const auto& [k, e] : v.items()) keys.emplace_back(k);
      return keys;
    }
    case Value::Kind::string: {
      const std::string& s = v.as_string();
      check_list_size(length_of(s));
      Value::List chars;
      if (is_ascii(s)) {
        for (char c : s) chars.emplace_back(std::string(1, c));
      } else {
        for (char32_t c : decode_utf8(s)) chars.emplace_back(encode_utf8(std::u32string(1, c)));
      }
      return chars;
    }
    default: fail("'" + v.type_name() + "' object is not iterable");
  }
}

Value::List items_of(const Value& v) {
  Value::List out;
  for (const auto& [k, e] : v.items()) out.push_back(Value::tuple({Value(k), e}));
  return out;
}

// Python's <, for sort, min, max and comparisons.
bool less(const Value& a, const Value& b) {
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Value::Kind::floating || b.kind() == Value::Kind::floating) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    const auto &x = a.as_list(), &y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!(x[i] == y[i])) return less(x[i], y[i]);
    return x.size() < y.size();
  }
  fail("'<' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::undefined: return false;
    case Value::Kind::string:
      if (!item.is_string()) fail("'in <string>' requires string as left operand, not " + item.type_name());
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::list:
      return std::any_of(container.as_list().begin(), container.as_list().end(), [&](const Value& e) { return e == item; });
    case Value::Kind::dict: return item.is_string() && container.find(item.as_string()) != nullptr;
    default: fail("argument of type '" + container.type_name() + "' is not iterable");
  }
}

template <typename Op>
int64_t checked(Op op, int64_t a, int64_t b) {
  int64_t r = 0;
  if (op(a, b, &r)) fail("integer overflow");
  return r;
}
bool add_overflow(int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }
bool sub_overflow(int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); }
bool mul_overflow(int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); }

int64_t floor_div(int64_t a, int64_t b) {
  if (a == INT64_MIN && b == -1) fail("integer overflow");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_undefined()) undefined_error(a);
  if (b.is_undefined()) undefined_error(b);
  bool ints = (a.kind() == K::integer || a.kind() == K::boolean) && (b.kind() == K::integer || b.kind() == K::boolean);
  bool nums = a.is_number() && b.is_number();
  auto unsupported = [&]() -> Value {
    if (op == "+" && (a.is_string() || a.is_list()))
      fail(fmt::format("can only concatenate {} (not \"{}\") to {}", a.type_name(), b.type_name(), a.type_name()));
    fail(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, a.type_name(), b.type_name()));
  };
  if (op == "+") {
    if (ints) return Value(checked(add_overflow, a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      check_string_size(a.as_string().size() + b.as_string().size());
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      check_list_size(a.as_list().size() + b.as_list().size());
      Value::List out = a.as_list();
      out.insert(out.end(), b.as_list().begin(), b.as_list().end());
      return a.is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    }
    return unsupported();
  }
  if (op == "-") {
    if (ints) return Value(checked(sub_overflow, a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() - b.as_double());
    return unsupported();
  }
  if (op == "*") {
    if (ints) return Value(checked(mul_overflow, a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() * b.as_double());
    const Value* seq = a.is_string() || a.is_list() ? &a : &b;
    const Value* count = seq == &a ? &b : &a;
    if ((seq->is_string() || seq->is_list()) && (count->kind() == K::integer || count->kind() == K::boolean)) {
      int64_t n = std::max<int64_t>(count->as_int(), 0);
      if (seq->is_string()) {
        const std::string& s = seq->as_string();
        if (n > 0 && s.size() > 0) check_string_size(static_cast<size_t>(n) > kMaxString / s.size() ? kMaxString + 1 : s.size() * static_cast<size_t>(n));
        std::string out;
        for (int64_t i = 0; i < n && !s.empty(); ++i) out += s;
        return Value(std::move(out));
      }
      const auto& l = seq->as_list();
      if (n > 0 && !l.empty()) check_list_size(static_cast<size_t>(n) > kMaxList ? kMaxList + 1 : l.size() * static_cast<size_t>(n));
      Value::List out;
      for (int64_t i = 0; i < n && !l.empty(); ++i) out.insert(out.end(), l.begin(), l.end());
      return seq->is_tuple() ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    }
    return unsupported();
  }
  if (op == "/") {
    if (!nums) return unsupported();
    if (b.as_double() == 0) fail(ints ? "division by zero" : "float division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (a.is_string() && op == "%") fail("string formatting with % is not supported");
    if (!nums) return unsupported();
    if (b.as_double() == 0) fail(ints ? "integer division or modulo by zero" : "float floor division by zero");
    if (ints) {
      int64_t q = floor_div(a.as_int(), b.as_int());
      if (op == "//") return Value(q);
      return Value(a.as_int() - q * b.as_int());
    }
    double x = a.as_double(), y = b.as_double();
    // CPython's float_divmod.
    double m = std::fmod(x, y);
    double div = (x - m) / y;
    if (m != 0 && ((m < 0) != (y < 0))) {
      m += y;
      div -= 1.0;
    }
    if (op == "%") return Value(m == 0 ? std::copysign(0.0, y) : m);
    double fl = std::floor(div);
    if (div - fl > 0.5) fl += 1.0;
    return Value(div == 0 ? std::copysign(0.0, x / y) : fl);
  }
  if (op == "**") {
    if (!nums) return unsupported();
    if (ints && b.as_int() >= 0) {
      int64_t base = a.as_int(), e = b.as_int(), result = 1;
      while (e > 0) {
        if (e & 1) result = checked(mul_overflow, result, base);
        e >>= 1;
        if (e) base = checked(mul_overflow, base, base);
      }
      return Value(result);
    }
    if (a.as_double() == 0 && b.as_double() < 0) fail("0.0 cannot be raised to a negative power");
    return Value(std::pow(a.as_double(), b.as_double()));
  }
  return unsupported();
}

bool compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return a == b;
  if (op == "!=") return !(a == b);
  if (op == "<") return less(a, b);
  if (op == ">") return less(b, a);
  if (op == "<=") return !less(b, a);
  if (op == ">=") return !less(a, b);
  if (op == "in") return contains(b, a);
  return !contains(b, a);  // not in
}

// Python's int(x) / float(x) of a string, as jinja2's int and float filters.
std::optional<int64_t> parse_int(std::string s, int base) {
  s = strip(s, nullptr, true, true);
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  if (s.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, base);
  if (errno || *end) return std::nullopt;
  return v;
}
std::optional<double> parse_float(std::string s) {
  s = strip(s, nullptr, true, true);
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (*end) return std::nullopt;
  return v;
}

std::vector<std::string> split_ws(const std::string& s, int64_t maxsplit, bool from_right) {
  std::u32string u = decode_utf8(s);
  std::vector<std::u32string> parts;
  if (!from_right) {
    size_t i = 0;
    while (true) {
      while (i < u.size() && is_space(u[i])) ++i;
      if (i >= u.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        parts.push_back(u.substr(i));
        break;
      }
      size_t j = i;
      while (j < u.size() && !is_space(u[j])) ++j;
      parts.push_back(u.substr(i, j - i));
      i = j;
    }
  } else {
    size_t e = u.size();
    while (true) {
      while (e > 0 && is_space(u[e - 1])) --e;
      if (e == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        parts.push_back(u.substr(0, e));
        break;
      }
      size_t b = e;
      while (b > 0 && !is_space(u[b - 1])) --b;
      parts.push_back(u.substr(b, e - b));
      e = b;
    }
    std::reverse(parts.begin(), parts.end());
  }
  std::vector<std::string> out;
  for (auto& p : parts) out.push_back(encode_utf8(p));
  return out;
}

std::vector<std::string> split_sep(const std::string& s, const std::string& sep, int64_t maxsplit, bool from_right) {
  if (sep.empty()) fail("empty separator");
  std::vector<std::string> out;
  if (!from_right) {
    size_t b = 0, p;
    while ((maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) && (p = s.find(sep, b)) != std::string::npos) {
      out.push_back(s.substr(b, p - b));
      b = p + sep.size();
      check_list_size(out.size());
    }
    out.push_back(s.substr(b));
  } else {
    size_t e = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      if (e < sep.size()) break;
      size_t p = s.rfind(sep, e - sep.size());
      if (p == std::string::npos) break;
      out.push_back(s.substr(p + sep.size(), e - p - sep.size()));
      e = p;
      check_list_size(out.size());
    }
    out.push_back(s.substr(0, e));
    std::reverse(out.begin(), out.end());
  }
  return out;
}

Value string_list(const std::vector<std::string>& parts) {
  check_list_size(parts.size());
  Value::List out;
  for (const auto& p : parts) out.emplace_back(p);
  return Value::list(std::move(out));
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  if (from.empty()) {
    std::u32string u = decode_utf8(s);
    int64_t done = 0;
    for (size_t i = 0; i <= u.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (i < u.size()) out += encode_utf8(std::u32string(1, u[i]));
      check_string_size(out.size());
    }
    return out;
  }
  size_t b = 0, p;
  int64_t done = 0;
  while ((count < 0 || done < count) && (p = s.find(from, b)) != std::string::npos) {
    out.append(s, b, p - b);
    out += to;
    check_string_size(out.size());
    b = p + from.size();
    ++done;
  }
  out.append(s, b, std::string::npos);
  check_string_size(out.size());
  return out;
}

// Code-point index of a byte offset.
int64_t cp_index(const std::string& s, size_t byte) {
  if (byte == std::string::npos) return -1;
  return static_cast<int64_t>(length_of(std::string_view(s).substr(0, byte)));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Value bound(std::string name, Function f) { return Value::function(std::move(name), std::move(f)); }

// A string's Python methods (str.strip, str.split, ...), or undefined.
Value string_method(const Value& self, const std::string& name) {
  const std::string& s = self.as_string();
  auto m = [&](auto f) { return bound(name, [self, f](const Arguments& a) { return f(self.as_string(), a); }); };
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return m([name](const std::string& s, const Arguments& a) {
      return Value(strip(s, string_arg(a, 0, "chars"), name != "rstrip", name != "lstrip"));
    });
  if (name == "split" || name == "rsplit")
    return m([name](const std::string& s, const Arguments& a) {
      const std::string* sep = string_arg(a, 0, "sep");
      int64_t maxsplit = int_arg(a, 1, "maxsplit", -1);
      bool right = name == "rsplit";
      return string_list(sep ? split_sep(s, *sep, maxsplit, right) : split_ws(s, maxsplit, right));
    });
  if (name == "splitlines")
    return m([](const std::string& s, const Arguments&) {
      std::vector<std::string> lines;
      size_t b = 0;
      for (size_t i = 0; i < s.size(); ++i)
        if (s[i] == '\n' || s[i] == '\r') {
          lines.push_back(s.substr(b, i - b));
          if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
          b = i + 1;
        }
      if (b < s.size()) lines.push_back(s.substr(b));
      return string_list(lines);
    });
  if (name == "startswith" || name == "endswith")
    return m([name](const std::string& s, const Arguments& a) {
      const Value* p = arg(a, 0, "prefix");
      if (!p) fail(name + "() takes at least 1 argument (0 given)");
      Value::List options = p->is_tuple() ? p->as_list() : Value::List{*p};
      for (const auto& o : options) {
        if (!o.is_string()) fail(name + " first arg must be str or a tuple of str, not " + o.type_name());
        const std::string& x = o.as_string();
        if (x.size() <= s.size() && (name == "startswith" ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0))
          return Value(true);
      }
      return Value(false);
    });
  if (name == "replace")
    return m([](const std::string& s, const Arguments& a) {
      const std::string* from = string_arg(a, 0, "old");
      const std::string* to = string_arg(a, 1, "new");
      if (!from || !to) fail("replace() takes at least 2 arguments");
      return Value(replace_all(s, *from, *to, int_arg(a, 2, "count", -1)));
    });
  if (name == "upper") return m([](const std::string& s, const Arguments&) { return Value(upper(s)); });
  if (name == "lower") return m([](const std::string& s, const Arguments&) { return Value(lower(s)); });
  if (name == "title") return m([](const std::string& s, const Arguments&) { return Value(py_title(s)); });
  if (name == "capitalize") return m([](const std::string& s, const Arguments&) { return Value(capitalize(s)); });
  if (name == "find" || name == "rfind" || name == "index" || name == "count")
    return m([name](const std::string& s, const Arguments& a) {
      const std::string* sub = string_arg(a, 0, "sub");
      if (!sub) fail(name + "() takes at least 1 argument");
      if (name == "count") {
        if (sub->empty()) return Value(static_cast<int64_t>(length_of(s)) + 1);
        int64_t n = 0;
        for (size_t p = s.find(*sub); p != std::string::npos; p = s.find(*sub, p + sub->size())) ++n;
        return Value(n);
      }
      int64_t at = cp_index(s, name == "rfind" ? s.rfind(*sub) : s.find(*sub));
      if (name == "index" && at < 0) fail("substring not found");
      return Value(at);
    });
  if (name == "join")
    return m([](const std::string& s, const Arguments& a) {
      const Value* items = arg(a, 0, "iterable");
      if (!items) fail("join() takes exactly one argument");
      std::string out;
      bool first = true;
      for (const auto& e : iterate(*items)) {
        if (!e.is_string()) fail("sequence item: expected str instance, " + e.type_name() + " found");
        if (!first) out += s;
        first = false;
        out += e.as_string();
        check_string_size(out.size());
      }
      return Value(std::move(out));
    });
  if (name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "isspace" || name == "islower" || name == "isupper")
    return m([name](const std::string& s, const Arguments&) {
      std::u32string u = decode_utf8(s);
      if (u.empty()) return Value(false);
      bool any_cased = false;
      for (char32_t c : u) {
        bool ok = true;
        if (name == "isdigit")
          ok = c < 0x80 ? std::isdigit(static_cast<int>(c)) != 0
                        : c < 0xD800 || c > 0xDFFF ? utf8proc_category(static_cast<int32_t>(c)) == UTF8PROC_CATEGORY_ND : false;
        if (name == "isalpha") ok = c < 0x80 ? std::isalpha(static_cast<int>(c)) != 0 : is_word(c);
        if (name == "isalnum") ok = is_word(c) && c != '_';
        if (name == "isspace") ok = is_space(c);
        if (name == "islower" || name == "isupper") {
          if (is_cased(c)) {
            any_cased = true;
            ok = name == "islower" ? lower_cp(c) == c : upper_cp(c) == c;
          }
        }
        if (!ok) return Value(false);
      }
      return Value(name == "islower" || name == "isupper" ? any_cased : true);
    });
  (void)s;
  return Value::undefined("'str object' has no attribute '" + name + "'");
}

Value dict_method(const Value& self, const std::string& name) {
  if (name == "items") return bound(name, [self](const Arguments&) { return Value::list(items_of(self)); });
  if (name == "keys") return bound(name, [self](const Arguments&) { return Value::list(iterate(self)); });
  if (name == "values")
    return bound(name, [self](const Arguments&) {
      Value::List out;
      for (const auto& [k, v] : self.items()) out.push_back(v);
      return Value::list(std::move(out));
    });
  if (name == "get")
    return bound(name, [self](const Arguments& a) {
      const Value* key = arg(a, 0, "key");
      if (!key) fail("get expected at least 1 argument, got 0");
      const Value* fallback = arg(a, 1, "default");
      const Value* found = key->is_string() ? self.find(key->as_string()) : nullptr;
      return found ? *found : fallback ? *fallback : Value(nullptr);
    });
  static const char* const mutators[] = {"clear", "pop", "popitem", "setdefault", "update"};
  for (const char* m : mutators)
    if (name == m) return Value::undefined("access to attribute '" + name + "' of 'dict' object is unsafe.");
  return Value();
}

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind()) {
    case Value::Kind::undefined: undefined_error(obj);
    case Value::Kind::dict: {
      if (!obj.is_namespace()) {
        Value m = dict_method(obj, name);
        if (m.kind() == Value::Kind::function || (m.is_undefined() && m.undefined_hint() != Value().undefined_hint())) return m;
      }
      if (const Value* v = obj.find(name)) return *v;
      return Value::undefined(type_article(obj) + " has no attribute '" + name + "'");
    }
    case Value::Kind::string: return string_method(obj, name);
    case Value::Kind::list: {
      static const char* const mutators[] = {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"};
      for (const char* m : mutators)
        if (name == m) return Value::undefined("access to attribute '" + name + "' of 'list' object is unsafe.");
      return Value::undefined(type_article(obj) + " has no attribute '" + name + "'");
    }
    default: return Value::undefined(type_article(obj) + " has no attribute '" + name + "'");
  }
}

Value get_item(const Value& obj, const Value& key) {
  using K = Value::Kind;
  if (obj.is_undefined()) undefined_error(obj);
  bool int_key = key.kind() == K::integer || key.kind() == K::boolean;
  if (obj.is_dict() && key.is_string()) {
    if (const Value* v = obj.find(key.as_string())) return *v;
    return get_attr(obj, key.as_string());
  }
  if ((obj.is_list() || obj.is_string()) && int_key) {
    int64_t i = key.as_int();
    if (obj.is_list()) {
      int64_t n = static_cast<int64_t>(obj.as_list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.as_list()[static_cast<size_t>(i)];
    } else if (is_ascii(obj.as_string())) {
      int64_t n = static_cast<int64_t>(obj.as_string().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(std::string(1, obj.as_string()[static_cast<size_t>(i)]));
    } else {
      std::u32string u = decode_utf8(obj.as_string());
      int64_t n = static_cast<int64_t>(u.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(encode_utf8(u.substr(static_cast<size_t>(i), 1)));
    }
    return Value::undefined(type_article(obj) + " has no element " + std::to_string(key.as_int()));
  }
  if (key.is_string()) return get_attr(obj, key.as_string());
  return Value::undefined(type_article(obj) + " has no element " + key.repr());
}

// Dotted attribute lookup as jinja2's attribute= arguments ("a.b", "0").
Value get_path(const Value& obj, const std::string& path) {
  Value v = obj;
  size_t b = 0;
  while (true) {
    size_t e = path.find('.', b);
    std::string part = path.substr(b, e == std::string::npos ? std::string::npos : e - b);
    auto index = parse_int(part, 10);
    v = index && !part.empty() && std::isdigit(static_cast<unsigned char>(part[0])) ? get_item(v, Value(*index)) : get_item(v, Value(part));
    if (e == std::string::npos) return v;
    b = e + 1;
  }
}

// ---------------------------------------------------------------- interpreter

struct Interp {
  const std::string& name;
  const Value& context;
  std::vector<std::pair<std::string, Value>> globals;
  FrameP top = std::make_shared<Frame>();
  std::string out;
  size_t suspended = 0;  // bytes in outputs captured by enclosing macros and blocks
  int line = 0;
  int nesting = 0;
  int macro_depth = 0;
  uint64_t steps = 0;
  Value hole;  // the body text a {% filter %} block applies its filters to
  std::vector<Value> namespaces;  // emptied at the end: breaks any cycle through them

  Interp(const std::string& template_name, const Value& ctx);
  ~Interp() {
    for (auto& ns : namespaces)
      for (auto& item : const_cast<std::vector<Value::Item>&>(ns.items())) item.second = Value();
  }

  void tick(uint64_t n = 1) {
    steps += n;
    if (steps > kMaxSteps) fail("the template ran past its limit of " + std::to_string(kMaxSteps) + " steps");
  }

  struct Nest {
    Interp& in;
    explicit Nest(Interp& i) : in(i) {
      if (++in.nesting > kMaxNesting) fail("maximum recursion depth exceeded");
    }
    ~Nest() { --in.nesting; }
  };

  void emit(std::string_view s) {
    if (out.size() + suspended + s.size() > kMaxString) fail("the output would be longer than 64 MiB");
    out += s;
  }

  // Runs `f` with a fresh output; returns what it wrote.
  template <typename F>
  std::string capture(F f) {
    std::string saved;
    saved.swap(out);
    suspended += saved.size();
    try {
      f();
    } catch (...) {
      suspended -= saved.size();
      out.swap(saved);
      throw;
    }
    suspended -= saved.size();
    out.swap(saved);
    return saved;
  }

  Value lookup(const FrameP& frame, const std::string& var) const {
    for (const Frame* f = frame.get(); f; f = f->parent.get())
      for (const auto& [k, v] : f->vars)
        if (k == var) return v;
    if (const Value* v = context.find(var)) return *v;
    for (const auto& [k, v] : globals)
      if (k == var) return v;
    return Value::undefined("'" + var + "' is undefined");
  }

  Value eval(const Expr& e, const FrameP& frame);
  Arguments eval_args(const Expr& e, size_t first, const FrameP& frame);
  Flow exec(const Body& body, const FrameP& frame);
  void assign(const Target& t, const Value& v, const FrameP& frame);
  Value make_macro(const std::string& macro_name, const Params& params, const Body& body, const FrameP& closure);
  Value call_macro(const std::string& macro_name, const Params& params, const Body& body, const FrameP& closure,
                   const Arguments& a);
  Value make_loop(const Value::List& items, size_t i);
};

Value call_value(const Value& callee, const Arguments& a) {
  if (callee.kind() == Value::Kind::function) return callee.call(a);
  if (callee.is_undefined()) undefined_error(callee);
  fail("'" + callee.type_name() + "' object is not callable");
}

Value Interp::make_loop(const Value::List& items, size_t i) {
  auto n = static_cast<int64_t>(items.size());
  auto k = static_cast<int64_t>(i);
  Value loop = Value::dict({{"index", Value(k + 1)},
                            {"index0", Value(k)},
                            {"revindex", Value(n - k)},
                            {"revindex0", Value(n - k - 1)},
                            {"first", Value(k == 0)},
                            {"last", Value(k + 1 == n)},
                            {"length", Value(n)},
                            {"depth", Value(1)},
                            {"depth0", Value(0)}});
  if (i > 0) loop.set("previtem", items[i - 1]);
  if (i + 1 < items.size()) loop.set("nextitem", items[i + 1]);
  loop.set("cycle", Value::function("cycle", [i](const Arguments& a) {
             if (a.positional.empty()) fail("no items for cycling given");
             return a.positional[i % a.positional.size()];
           }));
  return loop;
}

Arguments Interp::eval_args(const Expr& e, size_t first, const FrameP& frame) {
  Arguments a;
  for (size_t i = first; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i], frame));
  for (const auto& [k, v] : e.kwargs) a.keyword.emplace_back(k, eval(*v, frame));
  return a;
}

Value Interp::eval(const Expr& e, const FrameP& frame) {
  Nest nest(*this);
  line = e.line;
  switch (e.kind) {
    case X::literal: return e.value;
    case X::name: return lookup(frame, e.name);
    case X::list:
    case X::tuple: {
      Value::List items;
      for (const auto& a : e.args) items.push_back(eval(*a, frame));
      return e.kind == X::tuple ? Value::tuple(std::move(items)) : Value::list(std::move(items));
    }
    case X::dict: {
      Value d = Value::dict();
      for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
        Value k = eval(*e.args[i], frame);
        Value v = eval(*e.args[i + 1], frame);
        if (!k.is_string()) fail("dict keys must be strings, got " + k.type_name());
        d.set(k.as_string(), std::move(v));
      }
      return d;
    }
    case X::getattr: {
      Value o = eval(*e.args[0], frame);
      line = e.line;
      return get_attr(o, e.name);
    }
    case X::getitem: {
      Value o = eval(*e.args[0], frame);
      Value k = eval(*e.args[1], frame);
      line = e.line;
      return get_item(o, k);
    }
    case X::slice: {
      Value o = eval(*e.args[0], frame);
      Value part[3];
      for (int i = 0; i < 3; ++i) part[i] = e.args[1 + i] ? eval(*e.args[1 + i], frame) : Value(nullptr);
      line = e.line;
      if (o.is_undefined()) undefined_error(o);
      if (!o.is_list() && !o.is_string()) return Value::undefined("'" + o.type_name() + "' object is not subscriptable");
      return python_slice(o, part[0], part[1], part[2]);
    }
    case X::call: {
      Value callee = eval(*e.args[0], frame);
      Arguments a = eval_args(e, 1, frame);
      line = e.line;
      return call_value(callee, a);
    }
    case X::filter: {
      Value subject = e.args[0] ? eval(*e.args[0], frame) : hole;
      Arguments a = eval_args(e, 1, frame);
      line = e.line;
      return e.filter(*this, subject, a);
    }
    case X::test: {
      Value subject = eval(*e.args[0], frame);
      Arguments a = eval_args(e, 1, frame);
      line = e.line;
      return Value(e.test(*this, subject, a) != e.negated);
    }
    case X::not_: return Value(!eval(*e.args[0], frame).truthy());
    case X::neg:
    case X::pos: {
      Value v = eval(*e.args[0], frame);
      line = e.line;
      bool neg = e.kind == X::neg;
      if (v.is_undefined()) undefined_error(v);
      if (v.kind() == Value::Kind::integer || v.kind() == Value::Kind::boolean) {
        if (neg && v.as_int() == INT64_MIN) fail("integer overflow");
        return Value(neg ? -v.as_int() : v.as_int());
      }
      if (v.kind() == Value::Kind::floating) return Value(neg ? -v.as_double() : v.as_double());
      fail(fmt::format("bad operand type for unary {}: '{}'", neg ? '-' : '+', v.type_name()));
    }
    case X::binop: {
      Value a = eval(*e.args[0], frame);
      Value b = eval(*e.args[1], frame);
      line = e.line;
      return arithmetic(e.name, a, b);
    }
    case X::compare: {
      Value left = eval(*e.args[0], frame);
      for (size_t i = 0; i < e.ops.size(); ++i) {
        Value right = eval(*e.args[i + 1], frame);
        line = e.line;
        if (!compare(e.ops[i], left, right)) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case X::and_: {
      Value a = eval(*e.args[0], frame);
      return a.truthy() ? eval(*e.args[1], frame) : a;
    }
    case X::or_: {
      Value a = eval(*e.args[0], frame);
      return a.truthy() ? a : eval(*e.args[1], frame);
    }
    case X::cond: {
      if (eval(*e.args[0], frame).truthy()) return eval(*e.args[1], frame);
      if (e.args[2]) return eval(*e.args[2], frame);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    }
    case X::concat: {
      std::string s;
      for (const auto& a : e.args) {
        Value v = eval(*a, frame);
        s += v.is_string() ? v.as_string() : v.str();
        check_string_size(s.size());
      }
      return Value(std::move(s));
    }
  }
  fail("unknown expression");
}

void Interp::assign(const Target& t, const Value& v, const FrameP& frame) {
  if (!t.attr.empty()) {
    Value ns = lookup(frame, t.names[0]);
    if (!ns.is_namespace()) fail("cannot assign attribute on non-namespace object");
    ns.set(t.attr, v);
    return;
  }
  if (!t.tuple) {
    frame->set(t.names[0], v);
    return;
  }
  Value::List items = iterate(v);
  if (items.size() > t.names.size()) fail(fmt::format("too many values to unpack (expected {})", t.names.size()));
  if (items.size() < t.names.size())
    fail(fmt::format("not enough values to unpack (expected {}, got {})", t.names.size(), items.size()));
  for (size_t i = 0; i < items.size(); ++i) frame->set(t.names[i], items[i]);
}

Value Interp::make_macro(const std::string& macro_name, const Params& params, const Body& body, const FrameP& closure) {
  // The closure is held weakly: a macro stored in its own frame must not keep it alive.
  std::weak_ptr<Frame> weak = closure;
  const Params* p = &params;
  const Body* b = &body;
  return Value::function(macro_name, [this, macro_name, p, b, weak](const Arguments& a) {
    return call_macro(macro_name, *p, *b, weak.lock(), a);
  });
}

Value Interp::call_macro(const std::string& macro_name, const Params& params, const Body& body, const FrameP& closure,
                         const Arguments& a) {
  if (macro_depth >= kMaxMacroDepth) fail("macro calls nested more than " + std::to_string(kMaxMacroDepth) + " deep");
  ++macro_depth;
  struct Leave {
    int& depth;
    ~Leave() { --depth; }
  } leave{macro_depth};
  tick();
  auto frame = std::make_shared<Frame>();
  frame->parent = closure ? closure : top;
  if (a.positional.size() > params.size())
    fail(fmt::format("macro '{}' takes not more than {} argument(s)", macro_name, params.size()));
  std::vector<bool> given(params.size());
  for (size_t i = 0; i < a.positional.size(); ++i) {
    frame->set(params[i].first, a.positional[i]);
    given[i] = true;
  }
  for (const auto& [k, v] : a.keyword) {
    if (k == "caller") {
      frame->set(k, v);
      continue;
    }
    size_t j = 0;
    while (j < params.size() && params[j].first != k) ++j;
    if (j == params.size()) fail(fmt::format("macro '{}' takes no keyword argument '{}'", macro_name, k));
    if (given[j]) fail(fmt::format("macro '{}' got multiple values for argument '{}'", macro_name, k));
    frame->set(k, v);
    given[j] = true;
  }
  frame->set("varargs", Value::tuple({}));
  frame->set("kwargs", Value::dict());
  for (size_t j = 0; j < params.size(); ++j)
    if (!given[j])
      frame->set(params[j].first, params[j].second ? eval(*params[j].second, frame)
                                                   : Value::undefined("parameter '" + params[j].first + "' was not provided"));
  return Value(capture([&] { exec(body, frame); }));
}

Flow Interp::exec(const Body& body, const FrameP& frame) {
  Nest nest(*this);
  for (const auto& sp : body) {
    const Stmt& s = *sp;
    tick();
    line = s.line;
    switch (s.kind) {
      case S::text: emit(s.text); break;
      case S::print: {
        Value v = eval(*s.expr, frame);
        line = s.line;
        if (v.is_string())
          emit(v.as_string());
        else
          emit(v.str());
        break;
      }
      case S::if_: {
        const Body* chosen = &s.else_body;
        for (const auto& [cond, b] : s.branches)
          if (eval(*cond, frame).truthy()) {
            chosen = &b;
            break;
          }
        Flow f = exec(*chosen, frame);
        if (f != Flow::normal) return f;
        break;
      }
      case S::for_: {
        Value::List items = iterate(eval(*s.expr, frame));
        if (s.cond) {
          Value::List kept;
          for (auto& item : items) {
            tick();
            auto f = std::make_shared<Frame>();
            f->parent = frame;
            assign(s.target, item, f);
            if (eval(*s.cond, f).truthy()) kept.push_back(std::move(item));
          }
          items = std::move(kept);
        }
        if (items.empty()) {
          auto f = std::make_shared<Frame>();
          f->parent = frame;
          exec(s.else_body, f);
          break;
        }
        for (size_t i = 0; i < items.size(); ++i) {
          tick();
          line = s.line;
          // A fresh scope per iteration, as jinja2: a `set` in the body does not outlive it.
          auto f = std::make_shared<Frame>();
          f->parent = frame;
          assign(s.target, items[i], f);
          f->set("loop", make_loop(items, i));
          if (exec(s.body, f) == Flow::break_) break;
        }
        break;
      }
      case S::set: assign(s.target, eval(*s.expr, frame), frame); break;
      case S::set_block: {
        std::string text = capture([&] { exec(s.body, frame); });
        assign(s.target, Value(std::move(text)), frame);
        break;
      }
      case S::macro: frame->set(s.text, make_macro(s.text, s.params, s.body, frame)); break;
      case S::call_block: {
        const Expr& call = *s.expr;
        Value callee = eval(*call.args[0], frame);
        Arguments a = eval_args(call, 1, frame);
        a.keyword.emplace_back("caller", make_macro("caller", s.params, s.body, frame));
        line = s.line;
        Value result = call_value(callee, a);
        emit(result.str());
        break;
      }
      case S::filter_block: {
        Value text(capture([&] { exec(s.body, frame); }));
        Value saved = hole;
        hole = text;
        Value result = eval(*s.expr, frame);
        hole = saved;
        emit(result.str());
        break;
      }
      case S::break_: return Flow::break_;
      case S::continue_: return Flow::continue_;
      case S::body: {
        Flow f = exec(s.body, frame);
        if (f != Flow::normal) return f;
        break;
      }
    }
  }
  return Flow::normal;
}

// ---------------------------------------------------------------- filters

Value f_tojson(Interp&, const Value& v, const Arguments& a) {
  // transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
  bool ensure_ascii = bool_arg(a, 0, "ensure_ascii", false);
  const Value* ind = arg(a, 1, "indent");
  std::string indent_text;
  const std::string* indent = nullptr;
  if (ind && !ind->is_none() && !ind->is_undefined()) {
    if (ind->is_string()) {
      indent_text = ind->as_string();
    } else if (ind->kind() == Value::Kind::integer) {
      if (ind->as_int() > 1000) fail("tojson: indent is too large");
      indent_text = std::string(static_cast<size_t>(std::max<int64_t>(ind->as_int(), 0)), ' ');
    } else {
      fail("tojson: indent must be an integer or a string");
    }
    indent = &indent_text;
  }
  std::string item_sep = indent ? "," : ", ", key_sep = ": ";
  const Value* sep = arg(a, 2, "separators");
  if (sep && !sep->is_none() && !sep->is_undefined()) {
    if (!sep->is_list() || sep->as_list().size() != 2 || !sep->as_list()[0].is_string() || !sep->as_list()[1].is_string())
      fail("tojson: separators must be a pair of strings");
    item_sep = sep->as_list()[0].as_string();
    key_sep = sep->as_list()[1].as_string();
  }
  return Value(v.dump_json(ensure_ascii, indent, item_sep, key_sep, bool_arg(a, 3, "sort_keys", false)));
}

std::string text_of(const Value& v) { return v.is_string() ? v.as_string() : v.str(); }

Value f_trim(Interp&, const Value& v, const Arguments& a) { return Value(strip(text_of(v), string_arg(a, 0, "chars"), true, true)); }
Value f_length(Interp&, const Value& v, const Arguments&) {
  switch (v.kind()) {
    case Value::Kind::undefined: return Value(0);
    case Value::Kind::string: return Value(static_cast<int64_t>(length_of(v.as_string())));
    case Value::Kind::list: return Value(static_cast<int64_t>(v.as_list().size()));
    case Value::Kind::dict: return Value(static_cast<int64_t>(v.items().size()));
    default: fail("object of type '" + v.type_name() + "' has no len()");
  }
}
Value f_items(Interp&, const Value& v, const Arguments&) {
  if (v.is_undefined()) return Value::list({});
  if (!v.is_dict()) fail("Can only get item pairs from a mapping.");
  return Value::list(items_of(v));
}
Value f_list(Interp&, const Value& v, const Arguments&) { return Value::list(iterate(v)); }
Value f_first(Interp&, const Value& v, const Arguments&) {
  if (v.is_list()) return v.as_list().empty() ? Value::undefined("No first item, sequence was empty.") : v.as_list().front();
  Value::List items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}
Value f_last(Interp&, const Value& v, const Arguments&) {
  if (v.is_undefined()) undefined_error(v);
  if (v.is_list()) return v.as_list().empty() ? Value::undefined("No last item, sequence was empty.") : v.as_list().back();
  Value::List items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}
Value f_join(Interp& in, const Value& v, const Arguments& a) {
  const std::string* sep = string_arg(a, 0, "d");
  const std::string* attribute = string_arg(a, 1, "attribute");
  std::string out;
  bool first = true;
  for (const auto& item : iterate(v)) {
    in.tick();
    if (!first && sep) out += *sep;
    first = false;
    Value e = attribute ? get_path(item, *attribute) : item;
    out += text_of(e);
    check_string_size(out.size());
  }
  return Value(std::move(out));
}
Value f_replace(Interp&, const Value& v, const Arguments& a) {
  const std::string* from = string_arg(a, 0, "old");
  const std::string* to = string_arg(a, 1, "new");
  if (!from || !to) fail("replace needs the old and the new string");
  return Value(replace_all(text_of(v), *from, *to, int_arg(a, 2, "count", -1)));
}
Value f_string(Interp&, const Value& v, const Arguments&) { return v.is_string() ? v : Value(v.str()); }
Value f_default(Interp&, const Value& v, const Arguments& a) {
  const Value* fallback = arg(a, 0, "default_value");
  if (v.is_undefined() || (bool_arg(a, 1, "boolean", false) && !v.truthy())) return fallback ? *fallback : Value("");
  return v;
}
Value f_lower(Interp&, const Value& v, const Arguments&) { return Value(lower(text_of(v))); }
Value f_upper(Interp&, const Value& v, const Arguments&) { return Value(upper(text_of(v))); }
Value f_title(Interp&, const Value& v, const Arguments&) { return Value(jinja_title(text_of(v))); }
Value f_capitalize(Interp&, const Value& v, const Arguments&) { return Value(capitalize(text_of(v))); }
Value f_int(Interp&, const Value& v, const Arguments& a) {
  const Value* fallback = arg(a, 0, "default");
  Value def = fallback ? *fallback : Value(0);
  int64_t base = int_arg(a, 1, "base", 10);
  if (v.is_string()) {
    if (base < 2 || base > 36) return def;
    if (auto i = parse_int(v.as_string(), static_cast<int>(base))) return Value(*i);
    if (auto d = parse_float(v.as_string()); d && std::isfinite(*d) && std::fabs(*d) < 9.2e18) return Value(static_cast<int64_t>(*d));
    return def;
  }
  if (v.kind() == Value::Kind::integer || v.kind() == Value::Kind::boolean) return Value(v.as_int());
  if (v.kind() == Value::Kind::floating && std::isfinite(v.as_double()) && std::fabs(v.as_double()) < 9.2e18)
    return Value(static_cast<int64_t>(v.as_double()));
  return def;
}
Value f_float(Interp&, const Value& v, const Arguments& a) {
  const Value* fallback = arg(a, 0, "default");
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string())
    if (auto d = parse_float(v.as_string())) return Value(*d);
  return fallback ? *fallback : Value(0.0);
}
Value f_abs(Interp&, const Value& v, const Arguments&) {
  if (v.kind() == Value::Kind::floating) return Value(std::fabs(v.as_double()));
  if (v.kind() == Value::Kind::integer || v.kind() == Value::Kind::boolean) {
    if (v.as_int() == INT64_MIN) fail("integer overflow");
    return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  fail("bad operand type for abs(): '" + v.type_name() + "'");
}
Value f_round(Interp&, const Value& v, const Arguments& a) {
  int64_t precision = int_arg(a, 0, "precision", 0);
  const std::string* method = string_arg(a, 1, "method");
  std::string how = method ? *method : "common";
  if (how != "common" && how != "ceil" && how != "floor") fail("method must be 'common', 'ceil' or 'floor'");
  if (!v.is_number()) fail("type " + v.type_name() + " doesn't define __round__ method");
  if (how == "common" && v.kind() != Value::Kind::floating) return Value(v.as_int());
  double x = v.as_double();
  if (how != "common") {
    double scale = std::pow(10.0, static_cast<double>(precision));
    return Value((how == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale);
  }
  if (!std::isfinite(x) || precision > 300) return Value(x);
  if (precision < -300) return Value(0.0 * x);
  if (precision <= 0) {
    double scale = std::pow(10.0, static_cast<double>(-precision));
    return Value(std::nearbyint(x / scale) * scale);
  }
  // printf rounds the exact binary value half-to-even, as Python's round does.
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), x);
  return Value(std::strtod(buf, nullptr));
}

// The sort key of jinja2's sort, unique, min, max and dictsort.
Value sort_key(const Value& item, const std::string* attribute, bool case_sensitive) {
  Value k = attribute ? get_path(item, *attribute) : item;
  if (!case_sensitive && k.is_string()) return Value(lower(k.as_string()));
  return k;
}

Value f_sort(Interp& in, const Value& v, const Arguments& a) {
  bool reverse = bool_arg(a, 0, "reverse", false);
  bool case_sensitive = bool_arg(a, 1, "case_sensitive", false);
  const std::string* attribute = string_arg(a, 2, "attribute");
  Value::List items = iterate(v);
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t i = 0; i < items.size(); ++i) keyed.emplace_back(sort_key(items[i], attribute, case_sensitive), i);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    in.tick();
    return reverse ? less(y.first, x.first) : less(x.first, y.first);
  });
  Value::List out;
  for (const auto& [k, i] : keyed) out.push_back(items[i]);
  return Value::list(std::move(out));
}
Value f_dictsort(Interp& in, const Value& v, const Arguments& a) {
  if (!v.is_dict()) fail("dictsort requires a mapping");
  bool case_sensitive = bool_arg(a, 0, "case_sensitive", false);
  const std::string* by = string_arg(a, 1, "by");
  bool by_value = by && *by == "value";
  if (by && !by_value && *by != "key") fail("You can only sort by either 'key' or 'value'");
  bool reverse = bool_arg(a, 2, "reverse", false);
  Value::List items = items_of(v);
  auto key = [&](const Value& item) { return sort_key(item.as_list()[by_value ? 1 : 0], nullptr, case_sensitive); };
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    in.tick();
    return reverse ? less(key(y), key(x)) : less(key(x), key(y));
  });
  return Value::list(std::move(items));
}
Value f_unique(Interp& in, const Value& v, const Arguments& a) {
  bool case_sensitive = bool_arg(a, 0, "case_sensitive", false);
  const std::string* attribute = string_arg(a, 1, "attribute");
  Value::List out, seen;
  for (const auto& item : iterate(v)) {
    Value k = sort_key(item, attribute, case_sensitive);
    in.tick(seen.size() + 1);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return s == k; })) {
      seen.push_back(k);
      out.push_back(item);
    }
  }
  return Value::list(std::move(out));
}
Value min_max(Interp& in, const Value& v, const Arguments& a, bool want_max) {
  bool case_sensitive = bool_arg(a, 0, "case_sensitive", false);
  const std::string* attribute = string_arg(a, 1, "attribute");
  Value::List items = iterate(v);
  if (items.empty()) return Value::undefined(std::string("No aggregated item, sequence was empty."));
  size_t best = 0;
  Value best_key = sort_key(items[0], attribute, case_sensitive);
  for (size_t i = 1; i < items.size(); ++i) {
    in.tick();
    Value k = sort_key(items[i], attribute, case_sensitive);
    if (want_max ? less(best_key, k) : less(k, best_key)) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}
Value f_min(Interp& in, const Value& v, const Arguments& a) { return min_max(in, v, a, false); }
Value f_max(Interp& in, const Value& v, const Arguments& a) { return min_max(in, v, a, true); }
Value f_sum(Interp& in, const Value& v, const Arguments& a) {
  const std::string* attribute = string_arg(a, 0, "attribute");
  const Value* start = arg(a, 1, "start");
  Value total = start ? *start : Value(0);
  for (const auto& item : iterate(v)) {
    in.tick();
    total = arithmetic("+", total, attribute ? get_path(item, *attribute) : item);
  }
  return total;
}
Value f_reverse(Interp&, const Value& v, const Arguments&) {
  if (v.is_string()) {
    std::u32string u = decode_utf8(v.as_string());
    std::reverse(u.begin(), u.end());
    return Value(encode_utf8(u));
  }
  Value::List items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}
Value f_indent(Interp&, const Value& v, const Arguments& a) {
  const Value* w = arg(a, 0, "width");
  std::string pad = w && w->is_string() ? w->as_string() : std::string(static_cast<size_t>(std::clamp<int64_t>(int_arg(a, 0, "width", 4), 0, 1000)), ' ');
  bool first = bool_arg(a, 1, "first", false), blank = bool_arg(a, 2, "blank", false);
  std::string s = text_of(v) + "\n";
  std::vector<std::string> lines;  // str.splitlines() for \n, \r\n and \r
  size_t b = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n' || s[i] == '\r') {
      lines.push_back(s.substr(b, i - b));
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      b = i + 1;
    }
  if (b < s.size()) lines.push_back(s.substr(b));
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += "\n";
    if ((i > 0 || first) && (blank || !lines[i].empty())) out += pad;
    out += lines[i];
    check_string_size(out.size());
  }
  if (first && lines.empty()) out = pad;
  return Value(std::move(out));
}
Value f_safe(Interp&, const Value& v, const Arguments&) { return v; }
Value f_escape(Interp&, const Value& v, const Arguments&) { return Value(html_escape(text_of(v))); }
Value f_wordcount(Interp&, const Value& v, const Arguments&) {
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : decode_utf8(text_of(v))) {
    bool w = is_word(c);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value(n);
}
Value f_batch(Interp&, const Value& v, const Arguments& a) {
  int64_t size = int_arg(a, 0, "linecount", 0);
  if (size <= 0) fail("batch size must be positive");
  const Value* fill = arg(a, 1, "fill_with");
  Value::List out, cur;
  for (const auto& item : iterate(v)) {
    cur.push_back(item);
    if (static_cast<int64_t>(cur.size()) == size) out.push_back(Value::list(std::exchange(cur, {})));
  }
  if (!cur.empty()) {
    if (fill && !fill->is_none())
      while (static_cast<int64_t>(cur.size()) < size) cur.push_back(*fill);
    out.push_back(Value::list(std::move(cur)));
  }
  return Value::list(std::move(out));
}
Value f_format(Interp&, const Value& v, const Arguments& a) {
  // Python's "%s" % args for %s, %r, %d, %i, %f and %%.
  const std::string fmt_text = text_of(v);
  std::string out;
  size_t next = 0;
  auto take = [&]() -> const Value& {
    if (next >= a.positional.size()) fail("not enough arguments for format string");
    return a.positional[next++];
  };
  for (size_t i = 0; i < fmt_text.size(); ++i) {
    if (fmt_text[i] != '%') {
      out += fmt_text[i];
      continue;
    }
    if (++i >= fmt_text.size()) fail("incomplete format");
    char c = fmt_text[i];
    if (c == '%') out += '%';
    else if (c == 's') out += take().str();
    else if (c == 'r') out += take().repr();
    else if (c == 'd' || c == 'i') {
      const Value& x = take();
      if (!x.is_number()) fail("%d format: a real number is required, not " + x.type_name());
      out += std::to_string(x.kind() == Value::Kind::floating ? static_cast<int64_t>(x.as_double()) : x.as_int());
    } else if (c == 'f') {
      const Value& x = take();
      if (!x.is_number()) fail("must be real number, not " + x.type_name());
      out += fmt::format("{:.6f}", x.as_double());
    } else {
      fail(fmt::format("unsupported format character '{}'", c));
    }
    check_string_size(out.size());
  }
  if (next < a.positional.size()) fail("not all arguments converted during string formatting");
  return Value(std::move(out));
}
Value f_truncate(Interp&, const Value& v, const Arguments& a) {
  std::u32string s = decode_utf8(text_of(v));
  int64_t length = int_arg(a, 0, "length", 255);
  bool killwords = bool_arg(a, 1, "killwords", false);
  const std::string* end_arg = string_arg(a, 2, "end");
  std::u32string end = decode_utf8(end_arg ? *end_arg : "...");
  int64_t leeway = int_arg(a, 3, "leeway", 5);
  if (length < static_cast<int64_t>(end.size())) fail("expected length >= " + std::to_string(end.size()) + ", got " + std::to_string(length));
  if (leeway < 0) fail("expected leeway >= 0, got " + std::to_string(leeway));
  if (static_cast<int64_t>(s.size()) <= length + leeway) return Value(encode_utf8(s));
  std::u32string head = s.substr(0, static_cast<size_t>(length) - end.size());
  if (!killwords) {
    size_t sp = head.rfind(U' ');
    if (sp != std::u32string::npos) head = head.substr(0, sp);
  }
  return Value(encode_utf8(head + end));
}
Value f_center(Interp&, const Value& v, const Arguments& a) {
  std::u32string s = decode_utf8(text_of(v));
  int64_t width = std::min<int64_t>(int_arg(a, 0, "width", 80), 100000);
  if (width <= static_cast<int64_t>(s.size())) return Value(encode_utf8(s));
  // Python's str.center: the odd space goes left when the width is odd.
  size_t pad = static_cast<size_t>(width) - s.size();
  size_t left = pad / 2 + (pad & static_cast<size_t>(width) & 1);
  return Value(std::string(left, ' ') + encode_utf8(s) + std::string(pad - left, ' '));
}
Value f_attr(Interp&, const Value& v, const Arguments& a) {
  const std::string* name = string_arg(a, 0, "name");
  if (!name) fail("attr needs a name");
  return get_attr(v, *name);
}

bool run_test(Interp& in, const std::string& name, const Value& v, const Arguments& args) {
  const TestFn* t = find_test(name);
  if (!t) fail("no test named '" + name + "'");
  return (*t)(in, v, args);
}

// select / reject / selectattr / rejectattr.
Value select_items(Interp& in, const Value& v, const Arguments& a, bool by_attribute, bool keep) {
  size_t base = 0;
  std::string attribute;
  if (by_attribute) {
    const std::string* at = string_arg(a, 0, "attribute");
    if (!at) fail("selectattr and rejectattr need an attribute name");
    attribute = *at;
    base = 1;
  }
  std::string test;
  Arguments rest;
  if (a.positional.size() > base) {
    if (!a.positional[base].is_string()) fail("the test name must be a string");
    test = a.positional[base].as_string();
    rest.positional.assign(a.positional.begin() + static_cast<ptrdiff_t>(base) + 1, a.positional.end());
  }
  Value::List out;
  for (const auto& item : iterate(v)) {
    in.tick();
    Value subject = by_attribute ? get_path(item, attribute) : item;
    bool r = test.empty() ? subject.truthy() : run_test(in, test, subject, rest);
    if (r == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}
Value f_select(Interp& in, const Value& v, const Arguments& a) { return select_items(in, v, a, false, true); }
Value f_reject(Interp& in, const Value& v, const Arguments& a) { return select_items(in, v, a, false, false); }
Value f_selectattr(Interp& in, const Value& v, const Arguments& a) { return select_items(in, v, a, true, true); }
Value f_rejectattr(Interp& in, const Value& v, const Arguments& a) { return select_items(in, v, a, true, false); }

Value f_map(Interp& in, const Value& v, const Arguments& a) {
  Value::List out;
  if (a.positional.empty()) {
    const std::string* attribute = string_arg(a, 0, "attribute");
    if (!attribute) fail("map needs a filter name or attribute=");
    const Value* fallback = nullptr;
    for (const auto& [k, x] : a.keyword)
      if (k == "default") fallback = &x;
    for (const auto& item : iterate(v)) {
      in.tick();
      Value e = get_path(item, *attribute);
      out.push_back(e.is_undefined() && fallback ? *fallback : e);
    }
    return Value::list(std::move(out));
  }
  if (!a.positional[0].is_string()) fail("map: the filter name must be a string");
  const std::string& name = a.positional[0].as_string();
  const FilterFn* f = find_filter(name);
  if (!f) fail("no filter named '" + name + "'");
  Arguments rest;
  rest.positional.assign(a.positional.begin() + 1, a.positional.end());
  rest.keyword = a.keyword;
  for (const auto& item : iterate(v)) {
    in.tick();
    out.push_back((*f)(in, item, rest));
  }
  return Value::list(std::move(out));
}

const std::pair<const char*, FilterFn> kFilters[] = {
    {"tojson", f_tojson},       {"trim", f_trim},         {"length", f_length},         {"count", f_length},
    {"items", f_items},         {"list", f_list},         {"first", f_first},           {"last", f_last},
    {"join", f_join},           {"replace", f_replace},   {"string", f_string},         {"default", f_default},
    {"d", f_default},           {"lower", f_lower},       {"upper", f_upper},           {"title", f_title},
    {"capitalize", f_capitalize}, {"int", f_int},         {"float", f_float},           {"abs", f_abs},
    {"round", f_round},         {"sort", f_sort},         {"dictsort", f_dictsort},     {"unique", f_unique},
    {"min", f_min},             {"max", f_max},           {"sum", f_sum},               {"reverse", f_reverse},
    {"indent", f_indent},       {"safe", f_safe},         {"escape", f_escape},         {"e", f_escape},
    {"forceescape", f_escape},  {"wordcount", f_wordcount}, {"batch", f_batch},         {"format", f_format},
    {"truncate", f_truncate},   {"attr", f_attr},         {"center", f_center},         {"select", f_select},         {"reject", f_reject},
    {"selectattr", f_selectattr}, {"rejectattr", f_rejectattr}, {"map", f_map},
};

const FilterFn* find_filter(std::string_view name) {
  for (const auto& [n, f] : kFilters)
    if (name == n) return &f;
  return nullptr;
}

// ---------------------------------------------------------------- tests

const Value& test_operand(const Arguments& a, const char* test) {
  if (a.positional.empty()) fail(std::string("the test '") + test + "' needs an argument");
  return a.positional[0];
}

bool t_defined(Interp&, const Value& v, const Arguments&) { return !v.is_undefined(); }
bool t_undefined(Interp&, const Value& v, const Arguments&) { return v.is_undefined(); }
bool t_none(Interp&, const Value& v, const Arguments&) { return v.is_none(); }
bool t_string(Interp&, const Value& v, const Arguments&) { return v.is_string(); }
bool t_number(Interp&, const Value& v, const Arguments&) { return v.is_number(); }
bool t_integer(Interp&, const Value& v, const Arguments&) { return v.kind() == Value::Kind::integer; }
bool t_float(Interp&, const Value& v, const Arguments&) { return v.kind() == Value::Kind::floating; }
bool t_boolean(Interp&, const Value& v, const Arguments&) { return v.kind() == Value::Kind::boolean; }
bool t_true(Interp&, const Value& v, const Arguments&) { return v.kind() == Value::Kind::boolean && v.as_bool(); }
bool t_false(Interp&, const Value& v, const Arguments&) { return v.kind() == Value::Kind::boolean && !v.as_bool(); }
bool t_mapping(Interp&, const Value& v, const Arguments&) { return v.is_dict() && !v.is_namespace(); }
bool t_iterable(Interp&, const Value& v, const Arguments&) { return v.is_undefined() || v.is_string() || v.is_list() || v.is_dict(); }
bool t_sequence(Interp&, const Value& v, const Arguments&) { return v.is_string() || v.is_list() || v.is_dict(); }
bool t_callable(Interp&, const Value& v, const Arguments&) { return v.kind() == Value::Kind::function; }
bool t_eq(Interp&, const Value& v, const Arguments& a) { return v == test_operand(a, "eq"); }
bool t_ne(Interp&, const Value& v, const Arguments& a) { return !(v == test_operand(a, "ne")); }
bool t_lt(Interp&, const Value& v, const Arguments& a) { return less(v, test_operand(a, "lt")); }
bool t_gt(Interp&, const Value& v, const Arguments& a) { return less(test_operand(a, "gt"), v); }
bool t_le(Interp&, const Value& v, const Arguments& a) { return !less(test_operand(a, "le"), v); }
bool t_ge(Interp&, const Value& v, const Arguments& a) { return !less(v, test_operand(a, "ge")); }
bool t_in(Interp&, const Value& v, const Arguments& a) { return contains(test_operand(a, "in"), v); }
int64_t int_operand(const Value& v, const char* test) {
  if (v.kind() != Value::Kind::integer && v.kind() != Value::Kind::boolean)
    fail(std::string("the test '") + test + "' needs an integer, got " + v.type_name());
  return v.as_int();
}
bool t_odd(Interp&, const Value& v, const Arguments&) { return int_operand(v, "odd") % 2 != 0; }
bool t_even(Interp&, const Value& v, const Arguments&) { return int_operand(v, "even") % 2 == 0; }
bool t_divisibleby(Interp&, const Value& v, const Arguments& a) {
  int64_t d = int_operand(test_operand(a, "divisibleby"), "divisibleby");
  if (d == 0) fail("integer division or modulo by zero");
  if (d == -1) return true;
  return int_operand(v, "divisibleby") % d == 0;
}
bool t_sameas(Interp&, const Value& v, const Arguments& a) {
  const Value& o = test_operand(a, "sameas");
  if (v.kind() != o.kind()) return false;
  if (v.is_list()) return &v.as_list() == &o.as_list();
  if (v.is_dict()) return &v.items() == &o.items();
  if (v.is_string()) return &v.as_string() == &o.as_string() || v == o;
  return v == o;
}
bool t_lower(Interp&, const Value& v, const Arguments&) { return v.is_string() && lower(v.as_string()) == v.as_string() && upper(v.as_string()) != v.as_string(); }
bool t_upper(Interp&, const Value& v, const Arguments&) { return v.is_string() && upper(v.as_string()) == v.as_string() && lower(v.as_string()) != v.as_string(); }
bool t_escaped(Interp&, const Value&, const Arguments&) { return false; }

const std::pair<const char*, TestFn> kTests[] = {
    {"defined", t_defined},   {"undefined", t_undefined}, {"none", t_none},         {"string", t_string},
    {"number", t_number},     {"integer", t_integer},     {"float", t_float},       {"boolean", t_boolean},
    {"true", t_true},         {"false", t_false},         {"mapping", t_mapping},   {"iterable", t_iterable},
    {"sequence", t_sequence}, {"callable", t_callable},   {"equalto", t_eq},        {"eq", t_eq},
    {"==", t_eq},             {"ne", t_ne},               {"!=", t_ne},             {"lt", t_lt},
    {"lessthan", t_lt},       {"<", t_lt},                {"gt", t_gt},             {"greaterthan", t_gt},
    {">", t_gt},              {"le", t_le},               {"<=", t_le},             {"ge", t_ge},
    {">=", t_ge},             {"in", t_in},               {"odd", t_odd},           {"even", t_even},
    {"divisibleby", t_divisibleby}, {"sameas", t_sameas}, {"lower", t_lower},       {"upper", t_upper},
    {"escaped", t_escaped},
};

const TestFn* find_test(std::string_view name) {
  for (const auto& [n, t] : kTests)
    if (name == n) return &t;
  return nullptr;
}

// ---------------------------------------------------------------- globals

const char kRefused[] = "the chat template refused the conversation: ";

Value dict_from(const Arguments& a, const char* what) {
  Value d = Value::dict();
  if (!a.positional.empty()) {
    const Value& src = a.positional[0];
    if (a.positional.size() > 1) fail(std::string(what) + " expected at most 1 argument");
    if (src.is_dict()) {
      for (const auto& [k, v] : src.items()) d.set(k, v);
    } else {
      for (const auto& pair : iterate(src)) {
        Value::List kv = iterate(pair);
        if (kv.size() != 2 || !kv[0].is_string()) fail(std::string(what) + ": expected (string key, value) pairs");
        d.set(kv[0].as_string(), kv[1]);
      }
    }
  }
  for (const auto& [k, v] : a.keyword) d.set(k, v);
  return d;
}

Interp::Interp(const std::string& template_name, const Value& ctx) : name(template_name), context(ctx) {
  globals.emplace_back("range", Value::function("range", [](const Arguments& a) {
    std::vector<int64_t> n;
    for (const auto& x : a.positional) {
      if (x.kind() != Value::Kind::integer && x.kind() != Value::Kind::boolean)
        fail("'" + x.type_name() + "' object cannot be interpreted as an integer");
      n.push_back(x.as_int());
    }
    if (n.empty() || n.size() > 3) fail("range expected 1 to 3 arguments, got " + std::to_string(n.size()));
    int64_t start = n.size() == 1 ? 0 : n[0], stop = n.size() == 1 ? n[0] : n[1], step = n.size() == 3 ? n[2] : 1;
    if (step == 0) fail("range() arg 3 must not be zero");
    long double count = step > 0 ? (static_cast<long double>(stop) - start + step - 1) / step
                                 : (static_cast<long double>(start) - stop - step - 1) / -step;
    if (count > kMaxRange) fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    Value::List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.emplace_back(i);
    return Value::list(std::move(out));
  }));
  globals.emplace_back("dict", Value::function("dict", [](const Arguments& a) { return dict_from(a, "dict"); }));
  globals.emplace_back("namespace", Value::function("namespace", [this](const Arguments& a) {
    Value d = dict_from(a, "namespace");
    Value ns = Value::make_namespace(d.items());
    namespaces.push_back(ns);
    return ns;
  }));
  globals.emplace_back("raise_exception", Value::function("raise_exception", [](const Arguments& a) -> Value {
    const Value* message = arg(a, 0, "message");
    throw Error(ErrorKind::invalid_argument, "", "", kRefused + (message ? message->str() : std::string()));
  }));
  globals.emplace_back("strftime_now", Value::function("strftime_now", [](const Arguments& a) {
    const std::string* format = string_arg(a, 0, "format");
    if (!format) fail("strftime_now needs a format");
    if (format->empty()) return Value("");
    // SOURCE_DATE_EPOCH (seconds since 1970, the reproducible-builds
    // convention), when set, stands for now: renders that do not change with
    // the day (the golden tests use it).
    std::time_t now = std::time(nullptr);
    if (const char* fixed = std::getenv("SOURCE_DATE_EPOCH"); fixed && *fixed) {
      char* end = nullptr;
      const long long seconds = std::strtoll(fixed, &end, 10);
      if (*end == '\0' && seconds >= 0) now = static_cast<std::time_t>(seconds);
    }
    std::tm tm{};
    localtime_r(&now, &tm);
    for (size_t size = 256; size <= (size_t{1} << 20); size *= 4) {
      std::string buf(size, '\0');
      size_t n = std::strftime(buf.data(), buf.size(), format->c_str(), &tm);
      if (n > 0) return Value(buf.substr(0, n));
    }
    return Value("");
  }));
}

}  // namespace

// ---------------------------------------------------------------- API

Template Template::parse(std::string_view source, std::string name) {
  // jinja2 reads "\r\n" and "\r" as "\n" and drops one trailing newline.
  std::string text;
  text.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      text += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      text += source[i];
    }
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  auto program = std::make_shared<Program>();
  program->name = std::move(name);
  program->body = Parser(Lexer(std::move(text), program->name).run(), program->name).parse_template();
  return Template(std::move(program));
}

std::string Template::render(const Value& context) const {
  const std::string& name = program_->name;
  if (!context.is_dict()) throw Error(ErrorKind::invalid_argument, name, "chat_template", "the render context must be a dict");
  Interp in(name, context);
  try {
    in.exec(program_->body, in.top);
  } catch (const Error& e) {
    if (!e.file().empty()) throw;
    if (e.kind() == ErrorKind::invalid_argument && e.message().rfind(kRefused, 0) == 0)
      throw Error(e.kind(), name, "chat_template", e.message());
    throw Error(e.kind(), name, "chat_template", "line " + std::to_string(in.line) + ": " + e.message());
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::format, name, "chat_template", "line " + std::to_string(in.line) + ": out of memory");
  }
  return std::move(in.out);
}

const std::string& Template::name() const { return program_->name; }

}  // namespace musespark::detail::jinja
