// The one owner of a capture's probe attachments (every bpf_link): uprobes
// and uretprobes from a module's probe table, per attachment unit (a file
// and one process in it, or every process mapping the file), and the
// tracepoints a module needs.
//   - Entry probes are attached before their return probes, and return
//     probes go first: no call can reach a return probe without having
//     passed its entry (which would count a loss that is not one).
//   - A unit is a file by identity (device and inode), not by path: the same
//     library named twice (/lib/... and /usr/lib/... on a merged /usr, or
//     through /proc/PID/root) is hooked once; hooking it twice would see
//     every call twice.
//   - retarget() attaches what is new before removing what is gone, so a
//     unit kept across the change never goes unhooked; on error nothing
//     changes.
//   - Destruction detaches everything, return probes first.
//   - Where the kernel has them (Linux 6.6+), the uprobes of one program in
//     one unit are one uprobe_multi link (every function it runs at): a
//     link is detached with one wait for the kernel's grace period instead
//     of one per probe, and the links are detached in parallel, so a run
//     ends in a fraction of a second instead of ~0.1 s per probe. Elsewhere
//     each probe is its own perf-event link (libbpf). The programs must be
//     loaded for the kind in use: prepare_uprobe_programs() before load.
// Thread: one owner at a time (the capture session serialises control calls).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

struct bpf_link;
struct bpf_object;
struct bpf_program;

namespace clearcap {

// A file to hook: a library, or an executable with the library linked in.
struct ProbeTarget {
  std::string path;     // path clearcap opens (may go through /proc/PID/root for containers)
  std::string display;  // path as the owning process sees it, for messages
  std::map<std::string, uint64_t> offsets;  // function name -> file offset
  std::vector<int> pids;                    // attach only in these processes; empty = all
  std::vector<std::string> notes;           // where the probes sit and why, for --debug
};

// One row of a module's probe table: a function and the programs run at its
// entry and return (either may be null).
struct ProbeSpec {
  std::string symbol;
  bpf_program* entry = nullptr;
  bpf_program* ret = nullptr;
  // Skip this row on a target that has this function (a newer function
  // that the old one calls: hooking both would see each call twice).
  std::string unless = {};
};

// Before `obj` is loaded: its uprobe/uretprobe programs are loaded for the
// link kind ProbeAttacher uses on this kernel (uprobe_multi where it can).
void prepare_uprobe_programs(bpf_object* obj);
// Whether this kernel attaches uprobes as uprobe_multi links (Linux 6.6+).
bool uprobe_multi_supported();

// "dev:ino" of a file (what a probe unit is keyed by), or empty when it
// cannot be stat()ed.
std::string file_identity(const std::string& path);

// The syscall tracepoints a stream family's object defines with
// CC_SYS_FD_PROBES() (bpf/include/stream.bpf.h), found by section, so every
// family attaches the same set without listing it.
std::vector<bpf_program*> syscall_fd_programs(bpf_object* obj);

class ProbeAttacher {
 public:
  ProbeAttacher() = default;
  ~ProbeAttacher() { detach(); }
  ProbeAttacher(const ProbeAttacher&) = delete;
  ProbeAttacher& operator=(const ProbeAttacher&) = delete;

  // Attaches the rows of `specs` whose symbol `t` has, in every unit of `t`.
  // `cookie` reaches the programs through bpf_get_attach_cookie().
  Result<void> attach(const ProbeTarget& t, std::span<const ProbeSpec> specs, uint64_t cookie);
  // Moves the uprobes to `targets` (see the header comment).
  Result<void> retarget(const std::vector<ProbeTarget>& targets, std::span<const ProbeSpec> specs,
                        const std::function<uint64_t(const ProbeTarget&)>& cookie_of);

  // Programs attached by their own section (tracepoints); all or none.
  Result<void> attach_tracepoints(std::span<bpf_program* const> progs);
  void detach_tracepoints();
  bool has_tracepoints() const { return !tracepoints_.empty(); }

  // Every probe and tracepoint, return probes first (idempotent).
  void detach();
  size_t uprobes() const { return uprobes_; }
  // Units skipped because their process went away meanwhile.
  const std::vector<Note>& notes() const { return notes_; }

 private:
  using Unit = std::pair<std::string, int>;  // (file identity "dev:ino", or its path; pid); pid -1 = every process
  // One attachment: a libbpf link, or the fd of a uprobe_multi link.
  struct Link {
    bpf_link* link = nullptr;
    int fd = -1;
  };
  // A unit's links: entries, returns (detached first), and how many
  // functions x kinds they hook.
  struct Held {
    std::vector<Link> entries, returns;
    size_t probes = 0;
  };
  static std::vector<Unit> units_of(const ProbeTarget& t);
  // Whether attaching failed with `err` because the unit's process went
  // away meanwhile (noted; not an error).
  bool gone_meanwhile(const ProbeTarget& t, int pid, int err);
  Result<Held> attach_unit(const ProbeTarget& t, int pid, std::span<const ProbeSpec> specs, uint64_t cookie);
  Result<Held> attach_unit_multi(const ProbeTarget& t, int pid, std::span<const ProbeSpec> specs, uint64_t cookie);
  // Every return link of `held` (and `tracepoints`), then every entry
  // link; links of one batch are detached in parallel.
  static void destroy(std::vector<Held*> held, std::vector<bpf_link*>* tracepoints = nullptr);
  static void destroy(std::vector<bpf_link*>& links);  // tracepoints, in parallel
  void recount();

  std::map<Unit, Held> units_;
  std::vector<bpf_link*> tracepoints_;
  std::vector<Note> notes_;
  size_t uprobes_ = 0;
};

}  // namespace clearcap
