// musespark serve — the engine's streaming events as JSON, one object per
// event, for POST /v1/musespark/ask (docs/server.md lists the shapes).
// Agents, votes, escalations and the final trace are written exactly as in
// the trace document (docs/trace.md): they are cut out of ReasoningTrace::to_json.
#pragma once

#include <string>

#include "musespark/engine.hpp"

namespace musespark::serve {

// {"type": "<event_kind_name>", ...} on one line.
std::string event_json(const Event& event);

}  // namespace musespark::serve
