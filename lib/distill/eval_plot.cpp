// EvalReport::plot: accuracy (%) against mean generated tokens per task, one
// point per (config, group), drawn with the project's own drawing code.
// Colour: the configuration (stable across runs: its place in
// eval_config_names); marker: the group (text ■, visual □, small_digits ×).
#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include <fmt/format.h>

#include "distill/eval_report.hpp"
#include "vision/draw.hpp"

namespace musespark::detail {
namespace {

constexpr Color kBlack{0, 0, 0}, kGrid{225, 225, 225}, kAxisText{60, 60, 60};

// The plotting area, in pixels: left, top, right, bottom.
constexpr int kLeft = 90, kTop = 80, kRight = 720, kBottom = 520;
constexpr int kMarker = 5;  // half the marker's size

void draw_marker(Image& image, int x, int y, const std::string& group, Color color) {
  if (group == "text") {
    fill_rect(image, x - kMarker, y - kMarker, x + kMarker + 1, y + kMarker + 1, color);
  } else if (group == "visual") {
    draw_rect(image, x - kMarker, y - kMarker, x + kMarker + 1, y + kMarker + 1, color, 2);
  } else {
    draw_line(image, x - kMarker, y - kMarker, x + kMarker, y + kMarker, color, 2);
    draw_line(image, x - kMarker, y + kMarker, x + kMarker, y - kMarker, color, 2);
  }
}

bool overlaps(const Box& a, const Box& b) { return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1; }

// A place for a point's label near (x, y) that overlaps no other label or
// marker and stays inside the plotting area; the first candidate when none does.
Box place_label(const std::string& text, int x, int y, const std::vector<Box>& taken) {
  const Box size = text_box(0, 0, text, 1);
  const int w = size.x1, h = size.y1, gap = kMarker + 3;
  // Beside the point first, then above and below it, then rows further up and
  // down on either side (crowded points get a column of labels).
  std::vector<std::array<int, 2>> candidates = {{x + gap, y - h / 2}, {x - gap - w, y - h / 2},
                                                {x - w / 2, y - gap - h}, {x - w / 2, y + gap}};
  for (int row = 1; row <= 8; ++row)
    for (int side : {x + gap, x - gap - w}) {
      candidates.push_back({side, y - h / 2 - row * (h + 3)});
      candidates.push_back({side, y - h / 2 + row * (h + 3)});
    }
  auto box_at = [&](const std::array<int, 2>& c) { return Box{c[0] - 1, c[1] - 1, c[0] + w + 1, c[1] + h + 1}; };
  for (const auto& c : candidates) {
    const Box b = box_at(c);
    if (b.x0 < kLeft || b.x1 > kRight || b.y0 < kTop || b.y1 > kBottom) continue;
    if (std::none_of(taken.begin(), taken.end(), [&](const Box& t) { return overlaps(b, t); })) return b;
  }
  return box_at(candidates[0]);
}

}  // namespace

Color eval_config_color(const std::string& config) {
  static constexpr int kDark[] = {0, 1, 2, 3, 4, 6, 9, 10, 11};  // the agent palette without cyan, lime, yellow
  const auto& names = eval_config_names();
  const auto i = static_cast<size_t>(std::find(names.begin(), names.end(), config) - names.begin());
  return agent_color(kDark[i % std::size(kDark)]);
}

int AxisScale::to_pixel(double value) const {
  if (!(hi != lo) || !std::isfinite(value)) return pixel_lo;
  return pixel_lo + static_cast<int>(std::lround((value - lo) / (hi - lo) * (pixel_hi - pixel_lo)));
}

std::vector<double> nice_ticks(double lo, double hi, int max_ticks) {
  if (!std::isfinite(lo)) lo = 0;
  if (!std::isfinite(hi) || hi <= lo) hi = lo + 1;
  max_ticks = std::max(max_ticks, 1);
  const double raw = (hi - lo) / max_ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * magnitude;
  for (double m : {1.0, 2.0, 5.0})
    if (m * magnitude >= raw * (1 - 1e-9)) {
      step = m * magnitude;
      break;
    }
  // The small slack keeps values already on a multiple (0, 100) from moving a step.
  const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
  std::vector<double> ticks;
  for (double i = first; i <= last; ++i) {
    const double v = i * step;
    ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return ticks;
}

std::string tick_label(double value, double step) {
  const int decimals = step > 0 ? std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9))) : 0;
  std::string s = fmt::format("{:.{}f}", value, decimals);
  if (s.find_first_not_of("-0.") == std::string::npos) s = decimals > 0 ? fmt::format("{:.{}f}", 0.0, decimals) : "0";
  return s;
}

EvalPlotLayout eval_plot_layout(const EvalReport& report) {
  EvalPlotLayout layout;
  double most = 0;
  for (const auto& c : report.groups) most = std::max(most, c.mean_tokens);
  const std::vector<double> xt = nice_ticks(0, most, 8);
  layout.x = {xt.front(), xt.back(), kLeft, kRight};
  layout.y = {0, 100, kBottom, kTop};
  return layout;
}

Image draw_eval_plot(const EvalReport& report) {
  const EvalPlotLayout layout = eval_plot_layout(report);
  std::vector<uint8_t> white(static_cast<size_t>(layout.width) * layout.height * 3, 255);
  Image image = Image::from_rgb(white, layout.width, layout.height);

  draw_text(image, kLeft, 10, "accuracy against generated tokens per task", kBlack, 2);
  draw_text(image, kLeft, 32,
            fmt::format("{} (seed {}, {} per kind)", report.model_dir, report.seed, report.tasks_per_kind), kAxisText,
            1);

  // Grid, ticks and their labels.
  const std::vector<double> xt = nice_ticks(layout.x.lo, layout.x.hi, 8), yt = nice_ticks(0, 100, 10);
  const double x_step = xt.size() > 1 ? xt[1] - xt[0] : 1, y_step = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double v : xt) {
    const int px = layout.x.to_pixel(v);
    draw_line(image, px, kTop, px, kBottom, kGrid, 1);
    draw_line(image, px, kBottom, px, kBottom + 6, kBlack, 2);
    const std::string label = tick_label(v, x_step);
    draw_text(image, px - text_box(0, 0, label, 2).x1 / 2, kBottom + 12, label, kBlack, 2);
  }
  for (double v : yt) {
    const int py = layout.y.to_pixel(v);
    draw_line(image, kLeft, py, kRight, py, kGrid, 1);
    draw_line(image, kLeft - 6, py, kLeft, py, kBlack, 2);
    const std::string label = tick_label(v, y_step);
    const Box size = text_box(0, 0, label, 2);
    draw_text(image, kLeft - 12 - size.x1, py - size.y1 / 2, label, kBlack, 2);
  }
  draw_line(image, kLeft, kTop, kLeft, kBottom, kBlack, 2);
  draw_line(image, kLeft, kBottom, kRight, kBottom, kBlack, 2);
  const std::string x_title = "mean generated tokens per task (all agents, all rounds)";
  draw_text(image, (kLeft + kRight - text_box(0, 0, x_title, 2).x1) / 2, kBottom + 42, x_title, kBlack, 2);
  draw_text(image, 8, kTop - 28, "accuracy (%)", kBlack, 2);

  // The points, then their labels where they collide least.
  std::vector<Box> taken;
  for (const auto& c : report.groups) {
    const int x = layout.x.to_pixel(c.mean_tokens), y = layout.y.to_pixel(c.accuracy);
    draw_marker(image, x, y, c.group, eval_config_color(c.config));
    taken.push_back({x - kMarker - 1, y - kMarker - 1, x + kMarker + 2, y + kMarker + 2});
  }
  for (const auto& c : report.groups) {
    const int x = layout.x.to_pixel(c.mean_tokens), y = layout.y.to_pixel(c.accuracy);
    const std::string label = c.config + "/" + c.group;
    const Box b = place_label(label, x, y, taken);
    taken.push_back(b);
    draw_text(image, b.x0 + 1, b.y0 + 1, label, kAxisText, 1);
  }

  // Legend: configurations by colour, groups by marker.
  int ly = kTop;
  const int lx = kRight + 30;
  draw_text(image, lx, ly, "configuration", kBlack, 2);
  ly += 26;
  for (const auto& c : report.configs) {
    fill_rect(image, lx, ly, lx + 14, ly + 14, eval_config_color(c.name));
    draw_text(image, lx + 22, ly, c.name, kBlack, 2);
    ly += 24;
  }
  ly += 16;
  draw_text(image, lx, ly, "group", kBlack, 2);
  ly += 26;
  for (const auto& g : eval_group_names()) {
    draw_marker(image, lx + 7, ly + 7, g, kBlack);
    draw_text(image, lx + 22, ly, g, kBlack, 2);
    ly += 24;
  }
  return image;
}

}  // namespace musespark::detail
