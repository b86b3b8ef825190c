#include "sinks/transports/async_writer.h"

#include <algorithm>
#include <optional>

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
  thread_ = std::jthread([this](std::stop_token st) { run(st); });
}

void AsyncWriter::stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  sem_.signal();
  // The writer bounds its own drain; a send blocked on a peer that stopped
  // reading is unblocked here once that bound has passed.
  const auto deadline = Clock::now() + opts_.drain_timeout + std::chrono::milliseconds(500);
  while (!finished_.load() && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!finished_.load()) transport_->interrupt();
  thread_.join();
}

void AsyncWriter::close_events() {
  if (!thread_.joinable()) return;
  close_events_.store(true);
  sem_.signal();
  const auto deadline = Clock::now() + opts_.drain_timeout + std::chrono::milliseconds(500);
  while (!events_done_.load() && !finished_.load() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!events_done_.load() && !finished_.load()) {
    transport_->interrupt();  // a send stuck on a peer that stopped reading
    while (!events_done_.load() && !finished_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool AsyncWriter::push(std::string_view record) {
  if (!ring_.push(record)) {
    count_lost(1, record.size());
    return false;
  }
  // Wake the writer early when a good part of the ring waits; otherwise it
  // comes on flush() (pipeline idle) or its own 100 ms timer.
  if (ring_.used_bytes() > ring_.capacity() / 8) sem_.signal();
  return true;
}

void AsyncWriter::push_log(std::string_view record) {
  {
    std::lock_guard lk(log_mu_);
    if (logs_.size() >= opts_.log_queue_lines) {
      count_lost(1, record.size());
      return;
    }
    logs_.emplace_back(record);
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
  return {name_, write_errors_.load(std::memory_order_relaxed), dropped_bytes_.load(std::memory_order_relaxed),
          dropped_events_.load(std::memory_order_relaxed), last_errno_.load(std::memory_order_relaxed)};
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

  std::optional<Clock::time_point> events_deadline;
  while (!st.stop_requested()) {
    if (close_events_.load() && !events_done_.load()) {
      if (!events_deadline) events_deadline = Clock::now() + opts_.drain_timeout;
      if ((batch_.empty() && ring_.empty()) || Clock::now() >= *events_deadline) {
        discard_events();
        events_done_.store(true);
      }
    }
    if (reopen_.exchange(false, std::memory_order_relaxed)) transport_->reopen();
    if (!transport_->connected()) {
      connected_.store(false, std::memory_order_relaxed);
      const auto now = Clock::now();
      if (now < next_attempt) {
        sem_.wait(std::chrono::duration_cast<std::chrono::microseconds>(next_attempt - now).count());
        continue;
      }
      if (!try_connect()) {
        grow();
        continue;
      }
      backoff = opts_.initial_backoff;
    }
    if (!drain_once()) {
      grow();
      continue;
    }
    transport_->poll();  // answers pings, notices a peer that left
    if (!has_work()) sem_.wait(100'000);
  }

  // Stopping: deliver what is queued within drain_timeout, reaching once
  // more for a peer that is away; whatever is left is counted lost.
  const auto deadline = Clock::now() + opts_.drain_timeout;
  while (has_work() && Clock::now() < deadline) {
    if (reopen_.exchange(false, std::memory_order_relaxed)) transport_->reopen();
    if (!transport_->connected() && !try_connect()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    drain_once();
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
