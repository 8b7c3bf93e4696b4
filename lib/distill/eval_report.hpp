// The parts of `musespark eval` that are pure functions of the task results:
// scoring, totals, the targets and the plot's geometry. Declared here
// so that tests can check them without running a model.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "musespark/evaluate.hpp"
#include "vision/draw.hpp"

namespace musespark::detail {

// What a trace's final answer scores against a task's canonical answer:
// `got` is normalize_answer(final_answer); correct when it equals `expected`
// and is not empty.
struct Score {
  std::string got;
  bool correct = false;
};
Score score_answer(std::string_view final_answer, std::string_view expected);

// Totals of the tasks for which `keep` is true, labelled (config, group).
EvalCell tally(std::span<const EvalTaskResult> tasks, const std::string& config, const std::string& group,
               const std::function<bool(const EvalTaskResult&)>& keep);

// The targets of issue 6 that this report's configurations and tasks can
// answer (each compares two configurations on the kinds both ran).
std::vector<EvalTarget> check_targets(const EvalReport& report);

// A linear map from data values [lo, hi] to pixels [pixel_lo, pixel_hi]
// (pixel_hi may be smaller than pixel_lo: a y axis grows upwards).
struct AxisScale {
  double lo = 0, hi = 1;
  int pixel_lo = 0, pixel_hi = 1;
  int to_pixel(double value) const;  // rounded to the nearest pixel; hi == lo maps everything to pixel_lo
};

// Round tick values covering [lo, hi]: a step of 1, 2 or 5 times a power of
// ten giving at most max_ticks intervals, from the largest multiple of the
// step <= lo to the smallest >= hi. hi <= lo: the ticks of [lo, lo + 1].
std::vector<double> nice_ticks(double lo, double hi, int max_ticks);

// The tick label of `value` on an axis whose ticks are `step` apart: as few
// decimals as the step needs ("0", "250", "2.5", "0.05").
std::string tick_label(double value, double step);

// A configuration's colour in the plot: stable across runs (its place in
// eval_config_names), dark enough to see on white.
Color eval_config_color(const std::string& config);

// The plot of EvalReport::plot(), with its size and the scales it used.
struct EvalPlotLayout {
  int width = 960, height = 600;
  AxisScale x, y;  // x: mean generated tokens per task; y: accuracy (%)
};
EvalPlotLayout eval_plot_layout(const EvalReport& report);
Image draw_eval_plot(const EvalReport& report);

}  // namespace musespark::detail
