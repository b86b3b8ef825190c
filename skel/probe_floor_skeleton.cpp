#include "skel/probe_floor_skeleton.h"

#include <cerrno>
#include <chrono>
#include <cstring>

#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "probe_floor.skel.h"

namespace clearcap {

Result<std::unique_ptr<ProbeFloorSkeleton>> ProbeFloorSkeleton::open_and_load(bool copy) {
  std::unique_ptr<ProbeFloorSkeleton> self(new ProbeFloorSkeleton());
  self->copy_ = copy;
  self->skel_ = probe_floor_bpf__open();
  if (!self->skel_) {
    int err = errno;
    return make_error(fmt::format("cannot open the floor probes: {}", std::strerror(err)), err);
  }
  // Only the programs in use are loaded; an unused copy ring is one page.
  bpf_program__set_autoload(self->skel_->progs.floor_entry, !copy);
  bpf_program__set_autoload(self->skel_->progs.floor_ret, !copy);
  bpf_program__set_autoload(self->skel_->progs.copy_entry, copy);
  bpf_program__set_autoload(self->skel_->progs.copy_ret, copy);
  if (!copy) bpf_map__set_max_entries(self->skel_->maps.copy_ring, static_cast<uint32_t>(sysconf(_SC_PAGESIZE)));
  if (probe_floor_bpf__load(self->skel_)) {
    int err = errno;
    return make_error(fmt::format("cannot load the floor probes: {}", std::strerror(err)), err);
  }
  if (copy) {
    self->ring_ = ring_buffer__new(
        bpf_map__fd(self->skel_->maps.copy_ring), [](void*, void*, size_t) { return 0; }, nullptr, nullptr);
    if (!self->ring_) {
      int err = errno;
      return make_error(fmt::format("cannot map the copy floor's ring: {}", std::strerror(err)), err);
    }
    // Records are submitted without a wake-up, as clearcap's below its
    // threshold: the consumer looks every millisecond (16 MiB last ~10 ms
    // at the fastest rate of 16 KiB records).
    self->consumer_ = std::jthread([rb = self->ring_](std::stop_token st) {
      while (!st.stop_requested()) {
        ring_buffer__consume(rb);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      ring_buffer__consume(rb);
    });
  }
  return self;
}

ProbeFloorSkeleton::~ProbeFloorSkeleton() {
  detach();
  if (consumer_.joinable()) {
    consumer_.request_stop();
    consumer_.join();
  }
  if (ring_) ring_buffer__free(ring_);
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
    bpf_program* prog = copy_ ? (ret ? skel_->progs.copy_ret : skel_->progs.copy_entry)
                              : (ret ? skel_->progs.floor_ret : skel_->progs.floor_entry);
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
  if (copy_)
    return {{"copy_entry", bpf_program__fd(skel_->progs.copy_entry)},
            {"copy_ret", bpf_program__fd(skel_->progs.copy_ret)}};
  return {{"floor_entry", bpf_program__fd(skel_->progs.floor_entry)},
          {"floor_ret", bpf_program__fd(skel_->progs.floor_ret)}};
}

Result<uint64_t> ProbeFloorSkeleton::counter(uint32_t idx) const {
  std::vector<uint64_t> per_cpu(static_cast<size_t>(libbpf_num_possible_cpus()));
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.hits), &idx, per_cpu.data())) {
    int err = errno;
    return make_error(fmt::format("cannot read the floor counters: {}", std::strerror(err)), err);
  }
  uint64_t total = 0;
  for (uint64_t v : per_cpu) total += v;
  return total;
}

Result<std::pair<uint64_t, uint64_t>> ProbeFloorSkeleton::hits() const {
  auto entries = counter(0);
  if (!entries) return tl::unexpected(entries.error());
  auto returns = counter(1);
  if (!returns) return tl::unexpected(returns.error());
  return std::make_pair(*entries, *returns);
}

Result<uint64_t> ProbeFloorSkeleton::lost() const { return counter(2); }

}  // namespace clearcap
