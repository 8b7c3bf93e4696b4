// Uses the installed C++ API: the headers compile with the package's usage
// requirements alone, and the library links.
#include <cstdio>

#include <musespark/engine.hpp>
#include <musespark/musespark.h>

int main() {
  const musespark::EffortBudgets budgets = musespark::effort_budgets(musespark::Effort::low);
  std::printf("musespark %s (C++: %s, %d agents at low effort)\n", musespark_version_string(),
              musespark::mode_name(musespark::Mode::thinking), budgets.agents);
  return budgets.agents > 0 ? 0 : 1;
}
