#include "reasoning/workspace.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "musespark/error.hpp"
#include "reasoning/steps.hpp"

namespace musespark::detail {
namespace {

constexpr size_t kMaxAnswers = 4;
constexpr size_t kMinExcerpt = 24;  // shorter excerpts say too little to keep
constexpr std::string_view kHeader = "Earlier attempts reached these answers:\n";
constexpr std::string_view kNoAnswer = "No earlier attempt reached an answer.\n";

bool is_ascii_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// The last `limit` bytes of collapsed `text`, starting at a character and,
// when a word was cut and a later space exists, at the next word.
std::string tail_excerpt(std::string_view raw, size_t limit) {
  std::string text = collapse_space(raw);
  if (text.size() <= limit) return text;
  if (limit == 0) return "...";
  size_t start = text.size() - limit;
  while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) ++start;
  if (start > 0 && is_ascii_word(text[start - 1]) && start < text.size() && is_ascii_word(text[start])) {
    size_t space = text.find(' ', start);
    if (space != std::string::npos && space + 1 < text.size()) start = space + 1;
  }
  if (start < text.size() && text[start] == ' ') ++start;
  return "..." + text.substr(start);
}

// The first `limit` bytes of collapsed `text`, cut at a character boundary.
std::string head_excerpt(std::string_view raw, size_t limit) {
  std::string text = collapse_space(raw);
  if (text.size() <= limit) return text;
  return text.substr(0, utf8_floor(text, limit)) + "...";
}

const AgentTrace* strongest_agent(std::span<const AgentTrace> agents, const VoteEntry& entry) {
  const AgentTrace* best = nullptr;
  for (int32_t id : entry.agents) {
    auto it = std::find_if(agents.begin(), agents.end(), [&](const AgentTrace& a) { return a.id == id; });
    if (it == agents.end()) continue;
    if (!best || it->vote_weight > best->vote_weight || (it->vote_weight == best->vote_weight && it->id < best->id))
      best = &*it;
  }
  return best;
}

std::string rationale_of(const AgentTrace* agent) {
  if (!agent) return {};
  std::string_view thinking = trim_space(agent->thinking);
  return std::string(thinking.empty() ? trim_space(agent->answer_text) : thinking);
}

// `text` without any occurrence of the markers.
std::string without(std::string text, std::span<const std::string> markers) {
  for (const std::string& m : markers)
    if (!m.empty()) replace_all(text, m, "");
  return text;
}

std::string entry_text(size_t number, const VoteEntry& entry, const std::string& rationale, size_t excerpt_chars,
                       bool with_excerpt, std::span<const std::string> markers) {
  const std::string display =
      head_excerpt(without(entry.display.empty() ? entry.answer : entry.display, markers), excerpt_chars);
  std::string out = fmt::format("{}. {} ({:.0f}% of the vote, {} agent{})\n", number, display, entry.share * 100,
                                entry.votes, entry.votes == 1 ? "" : "s");
  if (with_excerpt && !rationale.empty())
    out += fmt::format("   Reasoning: \"{}\"\n", tail_excerpt(rationale, excerpt_chars));
  return out;
}

std::string cut(std::string text, size_t max_chars) {
  text.resize(utf8_floor(text, max_chars));
  return text;
}

}  // namespace

std::string distill_workspace(std::span<const AgentTrace> agents, const std::vector<VoteEntry>& votes,
                              size_t max_chars, size_t excerpt_chars, std::span<const std::string> markers) {
  if (votes.empty()) return cut(std::string(kNoAnswer), max_chars);

  std::string out(kHeader);
  size_t shown = 0;
  for (; shown < std::min(votes.size(), kMaxAnswers); ++shown) {
    const VoteEntry& entry = votes[shown];
    const std::string rationale = without(rationale_of(strongest_agent(agents, entry)), markers);
    std::string text = entry_text(shown + 1, entry, rationale, excerpt_chars, true, markers);
    if (out.size() + text.size() > max_chars && shown == 0) {
      // Not even the first answer fits whole: shorten its excerpt, or drop it.
      const std::string bare = entry_text(1, entry, rationale, excerpt_chars, false, markers);
      // The excerpt line costs its frame ("   Reasoning: \"...\"\n") plus the excerpt.
      const size_t used = out.size() + bare.size() + std::string_view("   Reasoning: \"...\"\n").size();
      const bool excerpt_fits = !rationale.empty() && max_chars >= used + kMinExcerpt;
      text = excerpt_fits ? entry_text(1, entry, rationale, std::min(max_chars - used, excerpt_chars), true, markers)
                          : bare;
    }
    if (out.size() + text.size() > max_chars) break;
    out += text;
  }
  if (shown == 0) return {};  // a header over nothing would only mislead

  if (shown < votes.size()) {
    double rest = 0;
    for (size_t i = shown; i < votes.size(); ++i) rest += votes[i].share;
    const size_t hidden = votes.size() - shown;
    std::string more = fmt::format("({} more answer{} with {:.0f}% of the vote not shown.)\n", hidden,
                                   hidden == 1 ? "" : "s", rest * 100);
    if (out.size() + more.size() <= max_chars) out += more;
  }
  return out;
}

std::string with_workspace(const std::string& question, const std::string& workspace) {
  return workspace + "\nCheck these attempts, reason again on your own, and give your final answer.\n\n" + question;
}

std::vector<Message> with_workspace(std::vector<Message> messages, const std::string& workspace) {
  auto user = std::find_if(messages.rbegin(), messages.rend(), [](const Message& m) { return m.role == "user"; });
  if (user == messages.rend())
    throw Error(ErrorKind::invalid_argument, "", "messages", "a Contemplating request needs a user message");
  auto text = std::find_if(user->parts.rbegin(), user->parts.rend(),
                           [](const Part& p) { return p.kind == Part::Kind::text; });
  if (text == user->parts.rend())
    user->parts.push_back(Part::of_text(with_workspace("", workspace)));
  else
    text->text = with_workspace(text->text, workspace);
  return messages;
}

}  // namespace musespark::detail
