#include "sinks/transports/async_writer.h"

#include <algorithm>
#include <optional>

#include "core/thread_setup.h"

namespace clearcap {
namespace {

using Clock = std::chrono::steady_clock;

// A batch this large is handed to the transport at once: few syscalls, and
// the writer comes back often enough to notice log lines and stop requests.
constexpr size_t kBatchBytes = 256 * 1024;

}  // namespace

AsyncWriter::AsyncWriter(std::string name, std::unique_ptr<Transport> transport, Options opts)
    : name_(std::move(name)), transport_(std::move(transport)), opts_(opts), ring_(opts.queue_bytes) {
  batch_.reserve(kBatchBytes + 64 * 1024);
  ends_.reserve(4096);
}

AsyncWriter::~AsyncWriter() { stop(); }

void AsyncWriter::start() {
  thread_ = std::jthread([this](std::stop_token st) {
    name_this_thread("cc-output");
    run(st);
  });
}

void AsyncWriter::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  sem_.signal();
  // The writer bounds its own drain; a send blocked on a peer that stopped
  // reading is unblocked here once that bound has passed.
  const auto deadline = Clock::now() + opts_.drain_timeout + std::chrono::milliseconds(500);
  while (!finished_.load() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  interrupt_until([this] { return finished_.load(); });
  thread_.join();
}

template <typename Done>
void AsyncWriter::interrupt_until(Done done) {
  // Repeated: one interrupt may land just before the writer blocks again.
  while (!done()) {
    transport_->interrupt();
    for (int i = 0; i < 10 && !done(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void AsyncWriter::close_events() {
  begin_close_events();
  wait_events_closed();
}

void AsyncWriter::begin_close_events() {
  if (!thread_.joinable()) return;
  // The deadline counts from the request, not from when a writer blocked
  // in a send gets to see it.
  close_deadline_ns_.store((Clock::now() + opts_.drain_timeout).time_since_epoch().count());
  close_events_.store(true);
  sem_.signal();
}

void AsyncWriter::wait_events_closed() {
  if (!thread_.joinable()) return;
  auto done = [this] { return events_done_.load() || finished_.load(); };
  const auto deadline = Clock::now() + opts_.drain_timeout + std::chrono::milliseconds(500);
  while (!done() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  interrupt_until(done);  // a send stuck on a peer that stopped reading
}

void AsyncWriter::abandon() {
  if (abandoned_.load()) return;
  SinkStats s = stats();
  const uint64_t accepted = accepted_.load(), delivered = delivered_.load();
  const uint64_t lost_after = s.dropped_events - rejected_.load();
  const uint64_t unsettled = accepted > delivered + lost_after ? accepted - delivered - lost_after : 0;
  s.dropped_events += unsettled;
  s.dropped_bytes += ring_.used_bytes();
  frozen_ = s;
  frozen_delivered_ = delivered;
  abandoned_.store(true, std::memory_order_release);
}

uint64_t AsyncWriter::delivered_events() const {
  if (abandoned_.load(std::memory_order_acquire)) return frozen_delivered_;
  return delivered_.load(std::memory_order_relaxed);
}

bool AsyncWriter::push(std::string_view record) {
  if (!ring_.push(record)) {
    count_rejected(record.size());
    return false;
  }
  accepted_.fetch_add(1, std::memory_order_relaxed);
  // Wake the writer early when a good part of the ring waits; otherwise it
  // comes on flush() (pipeline idle) or its own 100 ms timer.
  if (ring_.used_bytes() > ring_.capacity() / 8) sem_.signal();
  return true;
}

void AsyncWriter::push_log(std::string_view record) {
  {
    std::lock_guard lk(log_mu_);
    if (logs_.size() >= opts_.log_queue_lines) {
      count_rejected(record.size());
      return;
    }
    logs_.emplace_back(record);
    accepted_.fetch_add(1, std::memory_order_relaxed);
  }
  sem_.signal();
}

void AsyncWriter::request_reopen() {
  {
    // Under log_mu_: drain_once() takes log lines under the same lock and
    // not while a reopen is pending, so a line logged after this call (such
    // as "reopening") cannot reach the old file.
    std::lock_guard lk(log_mu_);
    reopen_.store(true, std::memory_order_relaxed);
  }
  sem_.signal();
}

SinkStats AsyncWriter::stats() const {
  if (abandoned_.load(std::memory_order_acquire)) return frozen_;
  return {name_, write_errors_.load(std::memory_order_relaxed), dropped_bytes_.load(std::memory_order_relaxed),
          dropped_events_.load(std::memory_order_relaxed), last_errno_.load(std::memory_order_relaxed),
          longest_write_ns_.load(std::memory_order_relaxed)};
}

void AsyncWriter::failed(const Error& e) { last_errno_.store(e.err ? e.err : EIO, std::memory_order_relaxed); }

bool AsyncWriter::drain_once() {
  // Refill the batch only once the previous one is gone: records kept from
  // a failed send go first to the next connection.
  if (batch_.empty()) {
    ends_.clear();
    {
      std::lock_guard lk(log_mu_);
      if (reopen_.load(std::memory_order_relaxed)) return true;  // reopen first (run loop)
      while (!logs_.empty()) {
        batch_ += logs_.front();
        ends_.push_back(batch_.size());
        logs_.pop_front();
      }
    }
    const bool stream = transport_->is_stream();
    while (batch_.size() < kBatchBytes && (stream || ends_.empty()) && ring_.pop_into(batch_))
      ends_.push_back(batch_.size());
  }
  if (batch_.empty()) return true;

  size_t sent = 0;
  Result<void> r;
  const auto t0 = Clock::now();
  if (transport_->is_stream()) {
    r = transport_->send_stream({batch_.data(), batch_.size()}, &sent);
  } else {
    size_t start = 0;
    for (size_t end : ends_) {
      r = transport_->send({batch_.data() + start, end - start});
      if (!r) break;
      start = sent = end;
    }
  }
  note_write_time(longest_write_ns_, Clock::now() - t0);
  // Whole records sent are delivered; a record cut in the middle is lost
  // (its tail would be garbage on the next connection); the rest is kept.
  size_t done_records = 0;
  while (done_records < ends_.size() && ends_[done_records] <= sent) ++done_records;
  delivered_.fetch_add(done_records, std::memory_order_relaxed);
  if (r) {
    batch_.clear();
    ends_.clear();
    return true;
  }
  write_errors_.fetch_add(1, std::memory_order_relaxed);
  failed(r.error());
  size_t keep_from = done_records == 0 ? 0 : ends_[done_records - 1];
  size_t next = done_records;
  if (next < ends_.size() && sent > keep_from) {  // the partly sent record
    count_lost(1, ends_[next] - keep_from);
    keep_from = ends_[next];
    ++next;
  } else if (next < ends_.size() && !transport_->is_stream()) {
    // A message transport either sent a record or not; the failed one is
    // retried once after reconnecting, like the ones behind it.
  }
  batch_.erase(0, keep_from);
  std::vector<size_t>::iterator first = ends_.begin() + static_cast<std::ptrdiff_t>(next);
  for (auto it = first; it != ends_.end(); ++it) *it -= keep_from;
  ends_.erase(ends_.begin(), first);
  return false;
}

void AsyncWriter::discard_events() {
  if (!ends_.empty()) count_lost(ends_.size(), batch_.size());
  batch_.clear();
  ends_.clear();
  std::string scratch;
  while (ring_.pop_into(scratch)) {
    count_lost(1, scratch.size());
    scratch.clear();
  }
}

void AsyncWriter::pause_until(Clock::time_point t, const std::stop_token& st) {
  auto closing = [this] { return close_events_.load() && !events_done_.load(); };
  for (auto now = Clock::now(); now < t && !st.stop_requested() && !closing(); now = Clock::now())
    sem_.wait(std::chrono::duration_cast<std::chrono::microseconds>(t - now).count());
}

void AsyncWriter::run(std::stop_token st) {
  auto backoff = opts_.initial_backoff;
  auto next_attempt = Clock::now();
  auto grow = [&] {
    next_attempt = Clock::now() + backoff;
    backoff = std::min(backoff * 2, opts_.max_backoff);
  };
  auto has_work = [&] {
    if (!batch_.empty() || !ring_.empty()) return true;
    std::lock_guard lk(log_mu_);
    return !logs_.empty();
  };
  auto try_connect = [&]() -> bool {
    if (auto r = transport_->connect(); !r) {
      failed(r.error());
      connected_.store(false, std::memory_order_relaxed);
      return false;
    }
    connects_.fetch_add(1, std::memory_order_relaxed);
    connected_.store(true, std::memory_order_relaxed);
    return true;
  };

  bool failed_while_closing = false;
  while (!st.stop_requested()) {
    if (close_events_.load() && !events_done_.load()) {
      const Clock::time_point deadline{Clock::duration(close_deadline_ns_.load())};
      // Shutdown neither reconnects nor retries: a peer that is away or a
      // send that failed gets nothing more.
      if ((batch_.empty() && ring_.empty()) || Clock::now() >= deadline || !transport_->connected() ||
          transport_->closed_for_good() || failed_while_closing) {
        discard_events();
        events_done_.store(true);
      }
    }
    if (transport_->closed_for_good()) {
      // Nothing will ever get through: count what arrives, wait for the stop.
      discard_events();
      sem_.wait(100'000);
      continue;
    }
    if (reopen_.exchange(false, std::memory_order_relaxed)) transport_->reopen();
    if (!transport_->connected()) {
      connected_.store(false, std::memory_order_relaxed);
      const auto now = Clock::now();
      if (now < next_attempt) {
        sem_.wait(std::chrono::duration_cast<std::chrono::microseconds>(next_attempt - now).count());
        continue;
      }
      if (close_events_.load()) {  // no reconnect during shutdown
        sem_.wait(100'000);
        continue;
      }
      if (!try_connect()) {
        grow();
        continue;
      }
      backoff = opts_.initial_backoff;
    }
    if (!drain_once()) {
      if (close_events_.load() && !events_done_.load()) failed_while_closing = true;
      grow();
      // Connected transports (files, stdout) fail too: wait out the backoff
      // as for a reconnect, instead of trying again at once.
      pause_until(next_attempt, st);
      continue;
    }
    transport_->poll();  // answers pings, notices a peer that left
    if (!has_work()) sem_.wait(100'000);
  }

  // Stopping: deliver what is queued within drain_timeout, without
  // reconnecting and without retrying a failed send; whatever is left is
  // counted lost.
  const auto deadline = Clock::now() + opts_.drain_timeout;
  while (has_work() && Clock::now() < deadline && transport_->connected() && !transport_->closed_for_good()) {
    if (reopen_.exchange(false, std::memory_order_relaxed)) transport_->reopen();
    if (!drain_once()) break;
  }
  discard_events();
  {
    std::lock_guard lk(log_mu_);
    for (const auto& l : logs_) count_lost(1, l.size());
    logs_.clear();
  }
  transport_->close();
  connected_.store(false, std::memory_order_relaxed);
  finished_.store(true);
}

FanoutSink::FanoutSink(std::unique_ptr<Encoder> encoder, std::vector<AsyncWriter*> writers)
    : encoder_(std::move(encoder)), writers_(std::move(writers)) {
  scratch_.reserve(128 * 1024);
}

void FanoutSink::write(const Event& ev) {
  scratch_.clear();
  encoder_->encode(ev, scratch_);
  for (AsyncWriter* w : writers_) w->push(scratch_);
}

void FanoutSink::flush() {
  for (AsyncWriter* w : writers_) w->wake();
}

void FanoutSink::collect_stats(std::vector<SinkStats>& out) const {
  for (const AsyncWriter* w : writers_) out.push_back(w->stats());
}

}  // namespace clearcap
