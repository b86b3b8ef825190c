// The one C++ owner of the generated probe_floor skeleton
// (bpf/probe_floor.bpf.c): count-only uprobe + uretprobe pairs, the floor
// that clearcap's probe cost is measured against (bench/probe_cost and the
// perf harness), or the copy floor (the bytes copied into a ring, nothing
// else), whose ring a thread of this object empties.
// Thread: not thread-safe; owned by one thread (the ring's consumer thread
// is private).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/result.h"

struct probe_floor_bpf;
struct bpf_link;
struct ring_buffer;

namespace clearcap {

class ProbeFloorSkeleton {
 public:
  // copy: the copy-floor programs and their 16 MiB ring instead of the
  // count-only ones.
  static Result<std::unique_ptr<ProbeFloorSkeleton>> open_and_load(bool copy = false);
  ~ProbeFloorSkeleton();
  ProbeFloorSkeleton(const ProbeFloorSkeleton&) = delete;
  ProbeFloorSkeleton& operator=(const ProbeFloorSkeleton&) = delete;

  // An entry uprobe and a uretprobe on the function at file offset `offset`
  // of `path`, in process `pid` only (-1: every process mapping the file).
  Result<void> attach(const std::string& path, uint64_t offset, int pid, bool with_return = true);
  void detach();
  // Summed over CPUs: {entries, returns}.
  Result<std::pair<uint64_t, uint64_t>> hits() const;
  // Copy floor: records lost to a full ring.
  Result<uint64_t> lost() const;
  size_t probes() const { return links_.size(); }
  // {name, fd} of both programs (program-time statistics).
  std::vector<std::pair<std::string, int>> programs() const;

 private:
  ProbeFloorSkeleton() = default;
  Result<uint64_t> counter(uint32_t idx) const;
  probe_floor_bpf* skel_ = nullptr;
  bool copy_ = false;
  std::vector<bpf_link*> links_;
  ring_buffer* ring_ = nullptr;
  std::jthread consumer_;  // copy floor: empties the ring every millisecond
};

}  // namespace clearcap
