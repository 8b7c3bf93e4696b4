#include "reasoning/visual.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

namespace musespark::detail {
namespace {

struct Reader {
  std::string_view s;
  size_t i = 0;
  void spaces() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
  }
  bool expect(char c) {
    spaces();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  bool number(double& out) {
    spaces();
    const char* first = s.data() + i;
    auto [ptr, ec] = std::from_chars(first, s.data() + s.size(), out);
    if (ec != std::errc() || !std::isfinite(out)) return false;
    i += static_cast<size_t>(ptr - first);
    return true;
  }
};

// "(x1,y1),(x2,y2)" with every number in [0, 1000].
bool parse_body(std::string_view body, std::array<double, 4>& out) {
  Reader r{body};
  bool ok = r.expect('(') && r.number(out[0]) && r.expect(',') && r.number(out[1]) && r.expect(')') &&
            r.expect(',') && r.expect('(') && r.number(out[2]) && r.expect(',') && r.number(out[3]) && r.expect(')');
  r.spaces();
  if (!ok || r.i != body.size()) return false;
  return std::all_of(out.begin(), out.end(), [](double v) { return v >= 0 && v <= 1000; });
}

}  // namespace

std::vector<VisualTag> find_visual_tags(std::string_view text, size_t from) {
  struct Spec {
    VisualTag::Kind kind;
    std::string_view open, close;
  };
  static constexpr Spec kSpecs[] = {{VisualTag::Kind::box, "<box>", "</box>"},
                                    {VisualTag::Kind::zoom, "<zoom>", "</zoom>"}};
  std::vector<VisualTag> out;
  for (const auto& spec : kSpecs) {
    // Tags may start before `from` as long as they end at or after it.
    size_t search = from > 64 ? from - 64 : 0;
    for (size_t at; (at = text.find(spec.open, search)) != std::string_view::npos;) {
      const size_t body = at + spec.open.size();
      const size_t close = text.find(spec.close, body);
      if (close == std::string_view::npos) break;
      // Another opening tag before the close: this one was never closed.
      const size_t reopened = text.find(spec.open, body);
      search = body;
      if (reopened != std::string_view::npos && reopened < close) continue;
      VisualTag tag;
      tag.kind = spec.kind;
      tag.begin = at;
      tag.end = close + spec.close.size();
      if (tag.end > from && parse_body(text.substr(body, close - body), tag.relative))
        out.push_back(tag);
      search = tag.end;
    }
  }
  std::sort(out.begin(), out.end(), [](const VisualTag& a, const VisualTag& b) { return a.end < b.end; });
  return out;
}

std::array<int32_t, 4> to_pixels(const std::array<double, 4>& r, int32_t width, int32_t height) {
  auto span = [](double a, double b, int32_t size) {
    const double lo = std::min(a, b), hi = std::max(a, b);
    int32_t p0 = static_cast<int32_t>(std::floor(lo / 1000.0 * size));
    int32_t p1 = static_cast<int32_t>(std::ceil(hi / 1000.0 * size));
    p0 = std::clamp(p0, 0, std::max(size - 1, 0));
    p1 = std::clamp(p1, p0 + 1, size);
    return std::pair{p0, p1};
  };
  auto [x0, x1] = span(r[0], r[2], width);
  auto [y0, y1] = span(r[1], r[3], height);
  return {x0, y0, x1, y1};
}

}  // namespace musespark::detail
