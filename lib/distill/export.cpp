#include <fmt/format.h>
#include <nlohmann/json.hpp>


#include "common/atomic_file.hpp"
#include "distill/curriculum.hpp"
#include "musespark/distill.hpp"
#include "musespark/error.hpp"

namespace musespark {

void export_samples(const std::filesystem::path& dir, uint64_t seed, uint64_t first, int64_t count) {
  using namespace detail;
  std::filesystem::create_directories(dir);
  CurriculumOptions options;
  options.seed = seed;
  const Curriculum curriculum(options);
  const auto file = dir / "samples.jsonl";
  // The pictures first, then the lines that name them (atomically): a killed
  // run leaves the old samples.jsonl, never one naming a missing picture.
  AtomicFile out(file);
  for (int64_t i = 0; i < count; ++i) {
    const uint64_t index = first + static_cast<uint64_t>(i);
    const Sample s = curriculum.sample(index);
    const char* style = s.style == SampleStyle::thinking ? "thinking" : s.style == SampleStyle::instant ? "instant" : "refine";
    nlohmann::ordered_json j;
    j["index"] = index;
    j["kind"] = task_kind_name(s.task.kind);
    j["style"] = style;
    j["user_text"] = s.user_text;
    j["completion"] = s.completion;
    j["answer"] = s.task.answer;
    j["needs_zoom"] = s.task.needs_zoom;
    j["image"] = nullptr;
    if (s.task.image) {
      const std::string name = fmt::format("{}-{}.png", index, task_kind_name(s.task.kind));
      s.task.image->save_png(dir / name);
      j["image"] = name;
    }
    out.write(j.dump() + "\n");
  }
  out.commit();
}

}  // namespace musespark
