// The request types' own functions (include/musespark/request.hpp): no
// engine, no torch, so the server's request mapping can be built without them.
#include "musespark/request.hpp"

#include <fmt/format.h>

#include "musespark/error.hpp"

namespace musespark {

Part Part::of_text(std::string text) {
  Part p;
  p.text = std::move(text);
  return p;
}

Part Part::of_image(Image image) {
  Part p;
  p.kind = Kind::image;
  p.image = std::make_shared<const Image>(std::move(image));
  return p;
}

Message Message::text(std::string role, std::string text) {
  Message m;
  m.role = std::move(role);
  m.parts.push_back(Part::of_text(std::move(text)));
  return m;
}

Message Message::with_images(std::string role, std::vector<Image> images, std::string text) {
  Message m;
  m.role = std::move(role);
  for (auto& image : images) m.parts.push_back(Part::of_image(std::move(image)));
  m.parts.push_back(Part::of_text(std::move(text)));
  return m;
}

std::string Message::joined_text() const {
  std::string out;
  for (const auto& p : parts)
    if (p.kind == Part::Kind::text) out += p.text;
  return out;
}

Request Request::question(std::string text, Mode mode, Effort effort) {
  Request r;
  r.messages.push_back(Message::text("user", std::move(text)));
  r.mode = mode;
  r.effort = effort;
  return r;
}

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& message) {
  throw Error(ErrorKind::invalid_argument, "", field, message);
}

}  // namespace

void validate_stops(const Request& r) {
  if (!(r.keep_fraction > 0 && r.keep_fraction <= 1))
    bad("keep_fraction", fmt::format("must be in (0, 1], got {}", r.keep_fraction));
  if (!(r.consensus_share >= 0 && r.consensus_share <= 1))
    bad("consensus_share", fmt::format("must be in [0, 1] (0: off), got {}", r.consensus_share));
  if (r.scatter_stop < 0 || r.scatter_stop == 1)
    bad("scatter_stop", fmt::format("must be 0 (off) or at least 2 votes, got {}", r.scatter_stop));
  if (r.confidence_window < 1) bad("confidence_window", "must be at least 1");
  if (r.confidence_top_k < 1) bad("confidence_top_k", "must be at least 1");
  if (r.warmup_agents < 0) bad("warmup_agents", "must not be negative");
}

}  // namespace musespark
