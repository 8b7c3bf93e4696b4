// The curriculum of the default model: reasoning tasks whose answers a
// program can check, each with a teacher — a program that writes the
// step-by-step thinking a good model would write, in the formats the engine
// reads (DESIGN.md "Reasoning"): thinking closed by "</think>", grounding
// boxes <box>(x1,y1),(x2,y2)</box> and zoom-ins <zoom>(x1,y1),(x2,y2)</zoom>
// with 0..1000 coordinates relative to the image.
//
// Text tasks: multi-step arithmetic, word problems, comparisons, units.
// Visual tasks, on images rendered here: counting shapes of a colour, adding
// the digits shown, comparing sizes, and reading a number written too small
// to read at the model's input resolution unless the model zooms in.
//
// Everything is a pure function of (options, index): the same seed and index
// give the same task, image and trace on every machine, so a held-out set is
// just another seed. Thread-safe: a Curriculum is immutable; task() and
// sample() may be called from many threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "distill/phrasing.hpp"
#include "musespark/image.hpp"

namespace musespark::detail {

enum class TaskKind {
  arithmetic,    // "What is 37 + 48 - 19?"  (3-4 operands; + - and single-digit x)
  word_problem,  // "Ann has 3 boxes of 12 pens. She gives away 7 pens. How many pens does she have now?"
  comparison,    // "Which is larger, 47 + 18 or 9 * 7?"  answer: the larger value
  units,         // "How many minutes are in 3 hours and 15 minutes?"
  count_color,   // image: shapes in a 3x3 grid; "How many red shapes are there?"
  digit_sum,     // image: large digits in some cells of a 3x3 grid; "What is the sum of the digits?"
  compare_size,  // image: two shapes; "Which shape is bigger, the red one or the blue one?" answer: a colour
  small_digits,  // image: a 2-digit number written small in one cell; "What number is written in the image?"
};
inline constexpr TaskKind kAllTaskKinds[] = {TaskKind::arithmetic,  TaskKind::word_problem, TaskKind::comparison,
                                             TaskKind::units,       TaskKind::count_color,  TaskKind::digit_sum,
                                             TaskKind::compare_size, TaskKind::small_digits};

// "arithmetic", "word_problem", ... ; parse_task_kind returns nullopt for an unknown name.
const char* task_kind_name(TaskKind kind);
std::optional<TaskKind> parse_task_kind(std::string_view name);
bool is_visual(TaskKind kind);  // count_color, digit_sum, compare_size, small_digits

// What a picture shows, cell by cell: the target of the trainer's auxiliary
// vision loss (see DistillOptions::vision_aux_weight), never seen by the
// model itself. Cells in reading order of the 3 x 3 grid; `number` is the
// two digits of the small number, labelled only on the zoomed-in crop of its
// cell (where they are legible). kSceneIgnore marks a slot without a label.
inline constexpr int kSceneIgnore = -1;
enum SceneClass : int8_t {
  kSceneEmpty = 0,
  kSceneDigit0 = 1,        // + d: the digit d (0-9)
  kSceneShape = 11,        // + colour (0 red, 1 green, 2 blue): a shape of count_color
  kSceneBigShape = 14,     // + colour: compare_size's bigger shape
  kSceneSmallShape = 17,   // + colour: compare_size's smaller shape
  kSceneFaintShape = 20,   // small_digits' faint distractors
  kSceneSmallNumber = 21,  // small_digits' number, too small to read at the full view
  kSceneClasses = 22,
};
struct Scene {
  std::array<int8_t, 9> cells;
  std::array<int8_t, 2> number;
  static Scene unlabelled() {
    Scene s;
    s.cells.fill(kSceneIgnore);
    s.number.fill(kSceneIgnore);
    return s;
  }
};
inline constexpr int kSceneSlots = 11;  // 9 cells + 2 digits

struct Task {
  TaskKind kind = TaskKind::arithmetic;
  uint64_t index = 0;
  std::string question;         // the user's text (no image placeholder: the image is a separate part)
  std::optional<Image> image;   // set exactly for visual tasks
  std::string answer;           // the expected answer, already canonical: normalize_answer(answer) == answer
  bool needs_zoom = false;      // small_digits: unreadable at the vision input size without a zoom-in
  Scene scene = Scene::unlabelled();       // of `image` (visual tasks)
  std::string zoom_region;                 // small_digits: the number's cell, "(x0,y0),(x1,y1)" as the teacher zooms
  Scene zoom_scene = Scene::unlabelled();  // of the crop of zoom_region
};

// The teacher's thinking is regular (the model is tiny and reads bytes): one
// small step a line, each line ending in "\n".
//   arithmetic, word_problem, units: each binary operation, on numbers of the
//                 question or earlier results, in column arithmetic: a header,
//                 one line per digit column (least significant first, carries
//                 and borrows written out), then "=" and the result:
//                 "37+48\n7+8=15\n3+4+1=8\n=85\n85-19\n15-9=6\n8-1-1=6\n=66\n";
//                 two one-digit numbers are one line ("4+7=11"); a product by a
//                 two-digit multiplier is long multiplication (a partial
//                 product per digit, then their sum)
//   comparison:   both sides so, then "65>63\n"
//   count_color:  each shape of the colour, in reading order, then the count:
//                 "<box>(333,0),(667,333)</box> red\n<box>(0,667),(333,1000)</box> red\n2\n"
//                 ("none\n" when there is none)
//   digit_sum:    "<box>...</box> 4\n<box>...</box> 7\n4+7=11\n"
//   compare_size: "<box>...</box> red big\n<box>...</box> blue small\n"
//   small_digits: "<zoom>(0,333),(333,667)</zoom>47\n"
// Boxes and zooms are whole cells of the 3 x 3 grid (edges 0, 333, 667,
// 1000); the zoom's cell holds the whole number, as the engine crops it
// (to_pixels in reasoning/visual.hpp).
//
// How the teacher answers.
enum class SampleStyle {
  thinking,  // the template opened "<think>\n"; completion = thinking + "</think>\n\n" + answer
  instant,   // thinking off (the template wrote "<think>\n\n</think>\n\n"); completion = answer
  refine,    // as thinking, but the user text also carries a Contemplating workspace (see below)
};

struct Sample {
  Task task;
  SampleStyle style = SampleStyle::thinking;
  // The user message's text: the question, or for refine samples the question
  // after a workspace, exactly as the engine's Contemplating round 2 writes it
  // (with_workspace; an image stays before all of it):
  //   workspace + "\nCheck these attempts, reason again on your own, and give your final answer.\n\n" + question
  // where workspace lists earlier answers (some wrong) in the engine's
  // workspace format ("Earlier attempts reached these answers:\n1. 66 (75% of the vote, 3 agents)\n ...").
  // The workspace is written by the engine's own distill_workspace: 1-3
  // answers (in 60% of samples the right one among them), each from 1-4
  // agents whose reasoning is the teacher's trace with one slip (a wrong
  // step, a misread digit, a missed shape) or the right trace; in 5% of
  // samples "No earlier attempt reached an answer.".
  std::string user_text;
  // What the assistant writes after the generation prompt, without the turn
  // end token. A zoom-in is the text "<zoom>(x1,y1),(x2,y2)</zoom>" directly
  // followed by the rest of the thinking: the trainer inserts the crop's image
  // placeholder run after "</zoom>" exactly as the engine does at run time.
  // Example (thinking): "37+48=85\n85-19=66\n</think>\n\n66"
  std::string completion;
};

struct CurriculumOptions {
  uint64_t seed = 1;
  std::vector<TaskKind> kinds;     // empty: all kinds, in equal shares
  double instant_fraction = 0.2;   // share of samples in the instant style
  double refine_fraction = 0.2;    // share of samples in the refine style
  // The text kinds' wording (distill/phrasing.hpp): training, or the held-out
  // frames evaluated separately. The numbers of a (seed, index) are the same in both.
  Phrasings phrasings = Phrasings::training;
};

class Curriculum {
 public:
  // Error{invalid_argument} naming instant_fraction or refine_fraction when
  // one is outside [0, 1] (or NaN) or their sum is over 1.
  explicit Curriculum(CurriculumOptions options);

  const CurriculumOptions& options() const { return options_; }

  // Task number `index` (kinds cycle through options.kinds, or all kinds).
  // A task depends only on (seed, index, its kind), not on the other kinds.
  Task task(uint64_t index) const;
  // Task `index` with the teacher's trace, in a style drawn from (seed, index).
  Sample sample(uint64_t index) const;
  // The teacher's trace for `task` in `style` (refine: the workspace is drawn from (seed, task.index)).
  // `task` must be one this curriculum made (task(i) or sample(i).task, any
  // kind): Error{invalid_argument, field "task"} when its question or answer
  // is not that of task.kind's task task.index under this seed.
  Sample teach(const Task& task, SampleStyle style) const;

 private:
  CurriculumOptions options_;
  std::vector<TaskKind> kinds_;
};

// Sizes of the rendered pictures. The vision encoder of the default model sees
// 64 x 64 pixels; the normal pictures are 128 x 128 (digits stay legible when
// halved), the small_digits pictures 256 x 256 with the number in one cell of
// a 3 x 3 grid, at a size a quarter-scale view cannot read but a zoom into
// that cell (cropped and resized to 64 x 64) can.
inline constexpr int kVisionInputSize = 64;
inline constexpr int kPictureSize = 128;
inline constexpr int kSmallDigitsPictureSize = 256;

}  // namespace musespark::detail
