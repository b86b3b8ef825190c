// The one C++ owner of the generated probe_floor skeleton
// (bpf/probe_floor.bpf.c): count-only uprobe + uretprobe pairs, the floor
// that clearcap's probe cost is measured against (bench/probe_cost and the
// perf harness).
// Thread: not thread-safe; owned by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

struct probe_floor_bpf;
struct bpf_link;

namespace clearcap {

class ProbeFloorSkeleton {
 public:
  static Result<std::unique_ptr<ProbeFloorSkeleton>> open_and_load();
  ~ProbeFloorSkeleton();
  ProbeFloorSkeleton(const ProbeFloorSkeleton&) = delete;
  ProbeFloorSkeleton& operator=(const ProbeFloorSkeleton&) = delete;

  // An entry uprobe and a uretprobe on the function at file offset `offset`
  // of `path`, in process `pid` only (-1: every process mapping the file).
  Result<void> attach(const std::string& path, uint64_t offset, int pid, bool with_return = true);
  void detach();
  // Summed over CPUs: {entries, returns}.
  Result<std::pair<uint64_t, uint64_t>> hits() const;
  size_t probes() const { return links_.size(); }
  // {name, fd} of both programs (program-time statistics).
  std::vector<std::pair<std::string, int>> programs() const;

 private:
  ProbeFloorSkeleton() = default;
  probe_floor_bpf* skel_ = nullptr;
  std::vector<bpf_link*> links_;
};

}  // namespace clearcap
