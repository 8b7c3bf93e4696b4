// The Jinja interpreter (lib/tokenizer/jinja.hpp) against Python jinja2:
//  - jinja_expected.json: templates x conversations rendered by jinja2 as
//    transformers' apply_chat_template does (jinja_reference.py writes it;
//    `python3 tests/tokenizer/jinja_reference.py --check` re-renders it). The
//    real Qwen3 and Llama 3 templates are read from node_modules (npm ci).
//  - small inline cases for whitespace control and Python's printing, their
//    expected strings also rendered by jinja2.
//  - errors, the sandbox's limits and thread safety.
#include <doctest/doctest.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "musespark/error.hpp"
#include "tokenizer/jinja.hpp"
#include "tokenizer_test_support.hpp"

namespace musespark::test {
namespace {

using detail::jinja::Template;
using detail::jinja::Value;

std::filesystem::path repo_root() {
#ifdef MUSESPARK_SOURCE_DIR
  return MUSESPARK_SOURCE_DIR;
#else
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
#endif
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + " is missing" +
                                    (path.string().find("node_modules") != std::string::npos ? ": run npm ci (scripts/setup)" : ""));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string render(const std::string& source, const nlohmann::ordered_json& context = nlohmann::ordered_json::object()) {
  return Template::parse(source, "test.jinja").render(Value::from_json(context));
}

// The Error a render throws (fails the test if it throws none).
Error render_error(const std::string& source, const nlohmann::ordered_json& context = nlohmann::ordered_json::object()) {
  try {
    render(source, context);
  } catch (const Error& e) {
    return e;
  }
  FAIL("expected an Error from: " << source);
  return Error(ErrorKind::internal, "", "", "unreachable");
}

const nlohmann::ordered_json& golden() {
  static const nlohmann::ordered_json g = nlohmann::ordered_json::parse(read_file(repo_root() / "tests/tokenizer/jinja_expected.json"));
  return g;
}

struct GoldenResult {
  size_t cases = 0, matched = 0;
};

// Renders every golden case of the templates `pick` accepts.
GoldenResult check_golden(const std::function<bool(const std::string&)>& pick) {
  const auto& g = golden();
  const musespark::test::GoldenClock clock(g);
  GoldenResult r;
  std::map<std::string, std::pair<Template, nlohmann::ordered_json>> templates;
  for (const auto& [name, spec] : g["templates"].items()) {
    if (!pick(name)) continue;
    std::string text = read_file(repo_root() / spec["path"].get<std::string>());
    nlohmann::ordered_json config = spec;
    if (spec.contains("field")) {
      config = nlohmann::ordered_json::parse(text);
      text = config[spec["field"].get<std::string>()].get<std::string>();
    }
    templates.emplace(name, std::make_pair(Template::parse(text, name + ".jinja"), config));
  }
  for (const auto& c : g["cases"]) {
    auto found = templates.find(c["template"].get<std::string>());
    if (found == templates.end()) continue;
    const auto& [tmpl, config] = found->second;
    nlohmann::ordered_json ctx = g["conversations"][c["conversation"].get<std::string>()];
    if (!ctx.contains("tools")) ctx["tools"] = nullptr;  // as apply_chat_template passes them
    ctx["documents"] = nullptr;
    ctx["add_generation_prompt"] = c["add_generation_prompt"];
    for (const char* key : {"bos_token", "eos_token"}) {
      auto v = config.value(key, nlohmann::ordered_json());
      if (v.is_object()) v = v.value("content", nlohmann::ordered_json());
      if (v.is_string()) ctx[key] = v;
    }
    if (c.contains("enable_thinking")) ctx["enable_thinking"] = c["enable_thinking"];
    INFO("template " << c["template"].get<std::string>() << ", conversation " << c["conversation"].get<std::string>()
                     << ", add_generation_prompt " << c["add_generation_prompt"] << ", enable_thinking "
                     << c.value("enable_thinking", nlohmann::ordered_json()));
    ++r.cases;
    if (c.contains("error")) {
      try {
        tmpl.render(Value::from_json(ctx));
        FAIL_CHECK("rendered, but jinja2 raised: " << c["error"].get<std::string>());
      } catch (const Error& e) {
        CHECK(e.kind() == ErrorKind::invalid_argument);
        bool same = std::string(e.message()).find(c["error"].get<std::string>()) != std::string::npos;
        CHECK_MESSAGE(same, e.what());
        r.matched += same;
      }
      continue;
    }
    std::string out = tmpl.render(Value::from_json(ctx));
    const std::string want = c["output"].get<std::string>();
    CHECK(out == want);
    r.matched += out == want;
  }
  return r;
}

}  // namespace

TEST_CASE("jinja: the real Qwen3 and Llama 3 templates render as jinja2 does") {
  auto r = check_golden([](const std::string& name) { return name == "qwen3" || name == "llama3"; });
  CHECK(r.cases >= 50);
  CHECK(r.matched == r.cases);
}

TEST_CASE("jinja: templates with tools, reasoning, macros and raise_exception render as jinja2 does") {
  auto r = check_golden([](const std::string& name) { return name != "qwen3" && name != "llama3"; });
  CHECK(r.cases >= 100);
  CHECK(r.matched == r.cases);
}

TEST_CASE("jinja: whitespace control is jinja2's (trim_blocks, lstrip_blocks, -, +, comments, raw, newlines)") {
  const nlohmann::ordered_json ctx = {
      {"messages", {{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"content", "yo"}}}}, {"x", {1, 2}}};
  const std::pair<const char*, const char*> cases[] = {
      {"{% if true %}\nA\n{% endif %}\nB", "A\nB"},
      {"  {% if true %}\n  A\n  {% endif %}\n", "  A\n"},
      {"a\n  {%+ if true %}b{% endif +%}\nc", "a\n  b\nc"},
      {"a  {%- if true -%}  b  {%- endif -%}  c", "abc"},
      {"x {{- ' y ' -}} z {{ ' w ' }} v", "x y z  w  v"},
      {"a\n{# c #}\nb\n  {#- d -#}\n  e", "a\nbe"},
      {"{% raw %}\n  {{ x }}{% endraw %}\nafter", "\n  {{ x }}after"},
      {"line\r\nnext\r\n{% if true %}\r\nin\r\n{% endif %}\r\n", "line\nnext\nin\n"},
      {"trailing newline kept once\n\n", "trailing newline kept once\n"},
      {"{% for m in messages %}\n    {{ m.role }}: {{ m.content }}\n{% endfor %}", "    user: hi\n    assistant: yo\n"},
      {"{%- for m in messages -%}\n  [{{ loop.index0 }}{{ '|' if not loop.last }}]\n{%- endfor %}\n", "[0|][1]"},
      {"\t{% set v = 3 %}\n\t{{ v }}\n", "\t3"},
      {"{% macro m(a) -%}\n  <{{ a }}>\n{%- endmacro %}\n{{ m(1) }}{{ m(2) }}", "<1><2>"},
  };
  for (const auto& [source, expected] : cases) {
    INFO("template: " << source);
    CHECK(render(source, ctx) == expected);
  }
}

TEST_CASE("jinja: values print as Python's str() and tojson is json.dumps") {
  const std::pair<const char*, const char*> cases[] = {
      {"{{ 1.0 }} {{ 0.1 }} {{ 1e-05 }} {{ 1e16 }} {{ 123456789.0 }} {{ -0.0 }} {{ 2 ** 0.5 }} {{ 1 / 3 }}", "1.0 0.1 1e-05 1e+16 123456789.0 -0.0 1.4142135623730951 0.3333333333333333"},
      {"{{ none }} {{ true }} {{ [1, 'a', none, false, 2.5] }} {{ {'k': \"it's\", 'q': 'say \"hi\"'} }} {{ (1,) }} {{ undefined_name }}|", "None True [1, 'a', None, False, 2.5] {'k': \"it's\", 'q': 'say \"hi\"'} (1,) |"},
      {"{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ 2 ** 10 }} {{ 10 / 4 }} {{ 'ab' * 3 }} {{ [0] * 3 }}", "3 -4 2 3.0 1024 2.5 ababab [0, 0, 0]"},
      {"{{ {'a': [1, {'b': None}]} | tojson }} {{ 'é\"\\n' | tojson }} {{ 'é' | tojson(true) }} {{ [1, 2] | tojson(indent=2) }} {{ {'b': 1, 'a': 2} | tojson(sort_keys=true, separators=(',', ':')) }}", "{\"a\": [1, {\"b\": null}]} \"é\\\"\\n\" \"\\u00e9\" [\n  1,\n  2\n] {\"a\":2,\"b\":1}"},
  };
  for (const auto& [source, expected] : cases) {
    INFO("template: " << source);
    CHECK(render(source) == expected);
  }
}

TEST_CASE("jinja: dicts keep their key order from JSON and back") {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(R"({"z": 1, "a": {"y": [true, null, 2.5], "b": "é"}})");
  Value v = Value::from_json(j);
  CHECK(v.items().front().first == "z");
  CHECK(v.to_json().dump() == j.dump());
  CHECK(render("{% for k in d %}{{ k }}{% endfor %}|{{ d.a.keys() | list }}", {{"d", j}}) == "za|['y', 'b']");
}

TEST_CASE("jinja: syntax errors name the template, the field and the line") {
  auto parse_error = [](const std::string& source) {
    try {
      Template::parse(source, "tokenizer_config.json");
    } catch (const Error& e) {
      return e;
    }
    FAIL("expected a syntax error from: " << source);
    return Error(ErrorKind::internal, "", "", "unreachable");
  };
  Error unknown = parse_error("a\nb\n{{ x | foo }}");
  CHECK(unknown.kind() == ErrorKind::format);
  CHECK(unknown.file() == "tokenizer_config.json");
  CHECK(unknown.field() == "chat_template");
  CHECK(unknown.message() == "line 3: unknown filter 'foo'");
  CHECK(std::string(unknown.what()) == "tokenizer_config.json: chat_template: line 3: unknown filter 'foo'");
  CHECK(parse_error("{% if x %}\n\nno end").message() ==
        "line 3: expected 'endif' to close the 'if' of line 1, got end of template");
  CHECK(parse_error("{{ x is frobnicated }}").message() == "line 1: unknown test 'frobnicated'");
  CHECK(parse_error("{% for x in y %}{% endif %}").message() == "line 1: unexpected 'endif', expected 'endfor'");
  CHECK(parse_error("{% include 'x' %}").message() == "line 1: the tag 'include' is not supported");
  CHECK(parse_error("\n{{ (1 + }}").message().rfind("line 2: ", 0) == 0);
  CHECK(parse_error("{% break %}").message() == "line 1: 'break' outside a loop");
  CHECK(parse_error("{# never closed").message() == "line 1: missing end of comment tag");
  CHECK(parse_error("{{ 'open }}").message() == "line 1: unterminated string");
}

TEST_CASE("jinja: runtime errors name the line and say what Python would") {
  Error concat = render_error("line one\n{{ 'a' + 1 }}");
  CHECK(concat.kind() == ErrorKind::format);
  CHECK(concat.file() == "test.jinja");
  CHECK(concat.field() == "chat_template");
  CHECK(concat.message() == "line 2: can only concatenate str (not \"int\") to str");
  CHECK(render_error("\n\n{{ 1 / 0 }}").message() == "line 3: division by zero");
  CHECK(render_error("{{ 5 // 0 }}").message() == "line 1: integer division or modulo by zero");
  CHECK(render_error("{{ nope.attr }}").message() == "line 1: 'nope' is undefined");
  CHECK(render_error("{{ m.a.b }}", {{"m", nlohmann::ordered_json::object()}}).message() ==
        "line 1: 'dict object' has no attribute 'a'");
  CHECK(render_error("{{ 1 < 'a' }}").message() == "line 1: '<' not supported between instances of 'int' and 'str'");
  CHECK(render_error("{% set a, b = [1] %}").message() == "line 1: not enough values to unpack (expected 2, got 1)");
  // Undefined values print as "" and compare, but arithmetic on them fails.
  CHECK(render("[{{ missing }}]{{ missing == none }}{{ missing is defined }}") == "[]FalseFalse");
  CHECK(render_error("{{ missing + 1 }}").message() == "line 1: 'missing' is undefined");
}

TEST_CASE("jinja: raise_exception refuses the conversation with the template's message") {
  Error e = render_error("{% if messages | length > 1 %}{{ raise_exception('Only one message, got ' ~ messages | length) }}{% endif %}",
                         {{"messages", {1, 2, 3}}});
  CHECK(e.kind() == ErrorKind::invalid_argument);
  CHECK(e.field() == "chat_template");
  CHECK(e.message() == "the chat template refused the conversation: Only one message, got 3");
}

TEST_CASE("jinja: the immutable sandbox refuses changes and bounds recursion, ranges, output and time") {
  Error append = render_error("{% set l = [1] %}{{ l.append(2) }}");
  CHECK(append.message() == "line 1: access to attribute 'append' of 'list' object is unsafe.");
  CHECK(render_error("{{ d.update({'a': 1}) }}", {{"d", nlohmann::ordered_json::object()}}).message() ==
        "line 1: access to attribute 'update' of 'dict' object is unsafe.");
  CHECK(render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").message().find("nested more than 100 deep") !=
        std::string::npos);
  CHECK(render_error("{{ range(100001) | length }}").message().find("Range too big") != std::string::npos);
  CHECK(render("{{ range(100000) | length }}") == "100000");
  CHECK(render_error("{% set s = 'x' * 1000000 %}{% for i in range(100) %}{{ s }}{% endfor %}").message().find("64 MiB") !=
        std::string::npos);
  CHECK(render_error("{{ 'ab' * 100000000 }}").message().find("64 MiB") != std::string::npos);
  CHECK(render_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
            .message()
            .find("steps") != std::string::npos);
  CHECK(render_error("{{ 9223372036854775807 + 1 }}").message() == "line 1: integer overflow");
  // A namespace that holds itself neither loops forever nor leaks.
  CHECK(render_error("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}").message().find("recursion") !=
        std::string::npos);
}

TEST_CASE("jinja: namespace, loop variables, macros with caller and filter blocks") {
  CHECK(render("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set local = i %}{% endfor %}"
               "{{ ns.n }}[{{ local }}]") == "6[]");
  CHECK(render("{% for a, b in [[1, 'x'], [2, 'y']] %}{{ loop.index }}{{ a }}{{ b }}{{ loop.revindex0 }}{{ loop.first }}"
               "{{ loop.previtem is defined }};{% endfor %}") == "11x1TrueFalse;22y0FalseTrue;");
  CHECK(render("{% macro row(x) %}({{ caller(x * 2) }}){% endmacro %}{% call(v) row(21) %}v={{ v }}{% endcall %}") ==
        "(v=42)");
  CHECK(render("{% filter upper | replace('B', '-') %}abc{% endfilter %}") == "A-C");
  CHECK(render("{% generation %}kept{% endgeneration %}") == "kept");
}

TEST_CASE("jinja: strftime_now formats the local time") {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  // SOURCE_DATE_EPOCH stands for now when set (reproducible renders).
  ::setenv("SOURCE_DATE_EPOCH", "34560000", 1);  // 1971-02-05
  CHECK(render("{{ strftime_now('%Y') }}") == "1971");
  ::unsetenv("SOURCE_DATE_EPOCH");
  std::string year = render("{{ strftime_now('%Y') }}");
  CHECK(year == std::to_string(1900 + tm.tm_year));
  CHECK(render("{{ strftime_now('%d %b %Y') | length }}") == "11");
}

TEST_CASE("jinja: one parsed template renders on many threads at once") {
  Template t = Template::parse(
      "{% set ns = namespace(s='') %}{% for m in messages %}{% set ns.s = ns.s ~ m %}{% endfor %}{{ ns.s }}{{ n }}", "t");
  std::vector<std::string> outs(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      for (int k = 0; k < 50; ++k)
        outs[static_cast<size_t>(i)] = t.render(Value::from_json({{"messages", {"a", "b", "c"}}, {"n", i}}));
    });
  for (auto& th : threads) th.join();
  for (int i = 0; i < 8; ++i) CHECK(outs[static_cast<size_t>(i)] == "abc" + std::to_string(i));
}

}  // namespace musespark::test
