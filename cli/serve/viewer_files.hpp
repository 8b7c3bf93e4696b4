// musespark serve — the trace viewer's files (web/viewer/), built into the
// program by embed_files.cmake so that `musespark serve` needs nothing else
// on disk.
#pragma once

#include <span>
#include <string_view>

namespace musespark::serve {

struct ViewerFile {
  std::string_view name;   // e.g. "index.html"
  std::string_view bytes;
};

std::span<const ViewerFile> viewer_files();

}  // namespace musespark::serve
