// `clearcap export FILE... -o OUT`: converts capture files offline.
#pragma once

#include <string>
#include <vector>

namespace clearcap {

struct ExportOptions {
  std::vector<std::string> inputs;
  std::string output;
  std::string format;  // empty: from the output's extension
  bool progress = true;  // a progress bar when stderr is a terminal
  unsigned file_mode = 0600;  // --file-mode of the output
};

// Returns the exit code: 0 clean, 1 some input was damaged (everything
// readable was exported), 2 nothing exported (bad arguments, unreadable input).
int run_export_command(const ExportOptions& opts);

}  // namespace clearcap
