#include "core/capture_session.h"

#include <algorithm>

#include <fmt/format.h>

namespace clearcap {

Result<std::unique_ptr<CaptureSession>> CaptureSession::create(const Options& opts, EventSink& sink) {
  std::unique_ptr<CaptureSession> self(new CaptureSession(sink));
  self->opts_ = opts;
  auto rings = RingSet::create(opts.rings);
  if (!rings) return tl::unexpected(rings.error());
  self->rings_ = std::move(*rings);
  // Filters before any probe: nothing outside them is ever captured.
  if (auto r = self->rings_->set_filter(opts.pids, opts.uid, opts.cgroup); !r) return tl::unexpected(r.error());
  return self;
}

CaptureSession::~CaptureSession() { stop(); }

Result<CaptureModule*> CaptureSession::add_module(const Loader& load) {
  auto m = load(*rings_);
  if (!m) return tl::unexpected(m.error());
  modules_.push_back(std::move(*m));
  return modules_.back().get();
}

Result<void> CaptureSession::start() {
  const auto& rings = rings_->ring_fds();
  int n = opts_.readers > 0 ? opts_.readers : std::min<int>(4, static_cast<int>(rings.size()));
  n = std::max(1, std::min<int>(n, static_cast<int>(rings.size())));
  std::vector<std::vector<int>> groups(static_cast<size_t>(n));
  for (size_t i = 0; i < rings.size(); ++i) groups[i % groups.size()].push_back(rings[i]);
  RingReader::Options ropts;
  ropts.poll_ms = opts_.poll_ms;
  ropts.rt_priority = opts_.reader_priority;
  ropts.perf = rings_->perf();
  std::vector<BatchSource*> sources;
  for (int i = 0; i < n; ++i) {
    readers_.push_back(
        std::make_unique<RingReader>(i, groups[static_cast<size_t>(i)], rings_->ring_bytes(), ropts, &wake_));
    if (auto r = readers_.back()->open(); !r) return r;
    sources.push_back(readers_.back().get());
  }
  Processor::Options popts;
  // Longer than a reader's poll period plus the hand-over (see Processor).
  popts.merge_window_ns = std::max<uint64_t>(100'000'000ull, 5ull * static_cast<uint64_t>(opts_.poll_ms) * 1'000'000ull);
  processor_ = std::make_unique<Processor>(sources, sink_, popts, &wake_);
  processor_->set_format(opts_.format);
  processor_->start();
  for (auto& r : readers_) r->start();
  started_ = true;
  return {};
}

void CaptureSession::stop() {
  std::lock_guard lock(control_mu_);
  if (stopped_) return;
  stopped_ = true;
  // Stop producing, then drain: readers empty their rings, the processor
  // delivers everything.
  for (auto& m : modules_) m->detach();
  for (auto& s : producer_stops_) s();
  if (!started_) return;
  for (auto& r : readers_) r->request_stop();
  for (auto& r : readers_) r->join();
  processor_->join();
}

Result<void> CaptureSession::set_filter(const std::vector<int>& pids, uint32_t uid, const Cgroup& cgroup) {
  std::lock_guard lock(control_mu_);
  return rings_->set_filter(pids, uid, cgroup);
}

Result<void> CaptureSession::want_syscall_fd(bool wanted) {
  std::lock_guard lock(control_mu_);
  Result<void> first;
  for (const auto& m : modules_)
    if (auto r = m->want_syscall_fd(wanted); !r && first) first = r;
  return first;
}

Result<void> CaptureSession::retarget(CaptureModule& module, const DiscoveryOptions& discovery) {
  std::lock_guard lock(control_mu_);
  if (stopped_) return make_error(ErrorKind::kBusy, "the capture is stopping");
  auto r = module.retarget(discovery);
  if (r) discovery_ = discovery;
  return r;
}

Counters CaptureSession::counters() const {
  Counters t;
  if (auto s = rings_->read_stats(); s) t.bpf = *s;
  if (processor_) {
    t.events = processor_->events();
    t.payload_bytes = processor_->payload_bytes();
    t.decode_errors = processor_->decode_errors();
    t.gaps = processor_->gaps();
    t.gap_bytes = processor_->gap_bytes();
    t.late = processor_->late_events();
  }
  for (const auto& r : readers_) {
    t.stalls += r->stalls();
    t.oversize += r->oversize();
    t.ring_peak_fill = std::max(t.ring_peak_fill, r->peak_fill());
  }
  t.ring_bytes = rings_->ring_bytes();
  return t;
}

std::string CaptureSession::reader_error() const {
  for (const auto& r : readers_)
    if (r->finished() && !r->error().empty()) return fmt::format("reader {} failed: {}", r->id(), r->error());
  return {};
}

}  // namespace clearcap
