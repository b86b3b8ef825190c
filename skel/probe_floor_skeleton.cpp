#include "skel/probe_floor_skeleton.h"

#include <cerrno>
#include <cstring>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "probe_floor.skel.h"

namespace clearcap {

Result<std::unique_ptr<ProbeFloorSkeleton>> ProbeFloorSkeleton::open_and_load() {
  std::unique_ptr<ProbeFloorSkeleton> self(new ProbeFloorSkeleton());
  self->skel_ = probe_floor_bpf__open_and_load();
  if (!self->skel_) {
    int err = errno;
    return make_error(fmt::format("cannot load the count-only floor probes: {}", std::strerror(err)), err);
  }
  return self;
}

ProbeFloorSkeleton::~ProbeFloorSkeleton() {
  detach();
  if (skel_) probe_floor_bpf__destroy(skel_);
}

void ProbeFloorSkeleton::detach() {
  for (bpf_link* l : links_) bpf_link__destroy(l);
  links_.clear();
}

Result<void> ProbeFloorSkeleton::attach(const std::string& path, uint64_t offset, int pid, bool with_return) {
  // Return probe first, as TlsCapture does: same order, same trap layout.
  for (bool ret : {true, false}) {
    if (ret && !with_return) continue;
    bpf_program* prog = ret ? skel_->progs.floor_ret : skel_->progs.floor_entry;
    bpf_link* l = bpf_program__attach_uprobe(prog, ret, pid, path.c_str(), offset);
    if (!l) {
      int err = errno;
      return make_error(fmt::format("cannot attach the floor {}probe to {}+{:#x}: {}", ret ? "uret" : "u", path,
                                    offset, std::strerror(err)),
                        err);
    }
    links_.push_back(l);
  }
  return {};
}

std::vector<std::pair<std::string, int>> ProbeFloorSkeleton::programs() const {
  return {{"floor_entry", bpf_program__fd(skel_->progs.floor_entry)},
          {"floor_ret", bpf_program__fd(skel_->progs.floor_ret)}};
}

Result<std::pair<uint64_t, uint64_t>> ProbeFloorSkeleton::hits() const {
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  uint64_t total[2] = {0, 0};
  int fd = bpf_map__fd(skel_->maps.hits);
  for (uint32_t i = 0; i < 2; ++i) {
    if (bpf_map_lookup_elem(fd, &i, per_cpu.data())) {
      int err = errno;
      return make_error(fmt::format("cannot read the floor counters: {}", std::strerror(err)), err);
    }
    for (uint64_t v : per_cpu) total[i] += v;
  }
  return std::make_pair(total[0], total[1]);
}

}  // namespace clearcap
