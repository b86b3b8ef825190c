// Finding the code a module attaches to: a library named on the command
// line, the system copy of the library, and every copy mapped by running
// processes (through /proc/PID/root, so containers are found too), plus,
// for libraries that programs link statically, each process's executable.
// What to look for is the module's LibrarySpec; nothing here knows a library.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/probe_attacher.h"
#include "core/result.h"

namespace clearcap {

struct LibrarySpec {
  std::string what;                        // the library's name, for messages
  std::string what_file;                   // what the flag may name ("a libfoo.so or a program with foo linked in")
  std::string flag;                        // the flag that names a file
  std::vector<std::string> file_prefixes;  // "libfoo.so": mapped files worth a look
  std::vector<std::string> system_paths;   // where distributions put the library
  std::vector<std::string> functions;      // every function the module may hook
  // A file qualifies when it has at least one function of every group.
  std::vector<std::vector<std::string>> required;
  bool executables = false;                // also look into each process's executable
  std::string install_hint;                // "install libfoo1"
  // Moves some of a target's probes to where they cost less (see
  // core/probe_placement.h), adding offsets under names of its own and
  // saying why in the target's notes. Null: every probe at its symbol.
  void (*place)(ProbeTarget& t) = nullptr;
};

struct DiscoveryOptions {
  std::optional<std::string> library;  // the file the module's flag names
  std::vector<int> pids;               // --pid: only these processes
  std::string proc_root = "/proc";     // for tests
  bool at_symbols = false;             // --probe-placement symbol: no LibrarySpec::place
};

struct Discovery {
  std::vector<ProbeTarget> targets;
  std::vector<std::string> notes;  // what was skipped and why (shown with --debug)
};

// Checks one file: it exists and has the required functions.
Result<ProbeTarget> inspect_target(const LibrarySpec& spec, const std::string& path, const std::string& display = {});

// Errors say what to do: a missing file, a pid that is not running, the
// library found nowhere.
Result<Discovery> discover_targets(const LibrarySpec& spec, const DiscoveryOptions& opts);

}  // namespace clearcap
