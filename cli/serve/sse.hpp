// musespark serve — server-sent events framing (text/event-stream).
#pragma once

#include <string>
#include <string_view>

namespace musespark::serve {

// One event carrying `payload` as its data: "data: <line>\n" per line of the
// payload, then a blank line. (One-line JSON gives one data line.)
inline std::string sse_event(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 8);
  size_t start = 0;
  while (true) {
    size_t end = payload.find('\n', start);
    std::string_view line = payload.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out += "data: ";
    out += line;
    out += '\n';
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  out += '\n';
  return out;
}

// The last event of an OpenAI stream.
inline constexpr std::string_view kSseDone = "data: [DONE]\n\n";

}  // namespace musespark::serve
