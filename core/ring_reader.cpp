#include "core/ring_reader.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>

#include "clearcap_abi.h"
#include "core/boot_clock.h"
#include "core/thread_setup.h"

namespace clearcap {

namespace {
// Upper bound on the time between a BPF program reading the clock and
// committing its record (a 16 KiB copy and a ring commit: microseconds).
constexpr uint64_t kInFlightNs = kPromiseLagNs;  // core/batch_source.h
// epoll tag of the kick eventfd (ring tags are their index).
constexpr uint32_t kKickTag = ~uint32_t{0};
// A perf ring's reader publishes its tail at least this often while it
// drains (the BPF ring's consumer position moves per record).
constexpr uint64_t kPublishBytes = 256 * 1024;

// The length a record says it has (its header plus its data), within the
// `avail` bytes the ring gave it: a perf record is padded to 8 bytes and a
// BPF ring data record is reserved at a size class, and only the record
// itself goes into a batch. `avail` when the header is cut or claims more.
uint32_t own_length(const uint8_t* rec, uint32_t avail) {
  if (avail < sizeof(cc_record_hdr)) return avail;
  cc_record_hdr h{};
  std::memcpy(&h, rec, sizeof(h));
  const uint64_t own = static_cast<uint64_t>(h.hdr_len) + h.data_len;
  return own <= avail ? static_cast<uint32_t>(own) : avail;
}
}  // namespace

// A mapped BPF ring buffer. Consumed directly rather than through libbpf's
// ring_buffer__consume(), whose callback cannot leave a record in the ring:
// here a record is only consumed once a batch has room for it.
//
// With --buffer perf the same struct holds a perf event ring: its meta page
// (data_head written by the kernel, data_tail by us) and data area, mapped
// once; a record that wraps around the end is copied out (wrap_).
struct RingReader::Ring {
  int fd = -1;
  uint64_t mask = 0;
  perf_event_mmap_page* perf_meta = nullptr;  // --buffer perf
  size_t perf_len = 0;
  void* consumer_map = nullptr;  // one page: consumer position (we write it)
  void* producer_map = nullptr;  // producer page + data mapped twice
  size_t producer_len = 0;
  uint64_t* consumer_pos = nullptr;
  const uint64_t* producer_pos = nullptr;
  const uint8_t* data = nullptr;

  ~Ring() {
    if (consumer_map) munmap(consumer_map, static_cast<size_t>(sysconf(_SC_PAGESIZE)));
    if (producer_map) munmap(producer_map, producer_len);
    if (perf_meta) munmap(perf_meta, perf_len);
  }
};

RingReader::RingReader(int id, std::vector<int> ring_fds, uint32_t ring_bytes, Options opts,
                       moodycamel::spsc_sema::LightweightSemaphore* processor_wake)
    : id_(id),
      ring_fds_(std::move(ring_fds)),
      ring_bytes_(ring_bytes),
      opts_(opts),
      processor_wake_(processor_wake),
      full_(opts.pool_batches + 1),
      free_(opts.pool_batches + 1) {}

RingReader::~RingReader() {
  join();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (kick_fd_ >= 0) close(kick_fd_);
}

Result<void> RingReader::open() {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return make_error(fmt::format("epoll_create1: {}", std::strerror(errno)), errno);
  // Readable fds wake the reader; the tag says which (a ring's index, or the kick).
  auto watch = [this](int fd, uint32_t tag, const char* what) -> Result<void> {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = tag;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0)
      return make_error(fmt::format("epoll_ctl on {}: {}", what, std::strerror(errno)), errno);
    return {};
  };
  kick_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (kick_fd_ < 0) return make_error(fmt::format("eventfd: {}", std::strerror(errno)), errno);
  if (auto w = watch(kick_fd_, kKickTag, "an eventfd"); !w) return w;
  for (size_t i = 0; i < ring_fds_.size(); ++i) {
    auto r = std::make_unique<Ring>();
    r->fd = ring_fds_[i];
    r->mask = ring_bytes_ - 1;
    if (auto mapped = opts_.perf ? map_perf_ring(*r, page) : map_bpf_ring(*r, page); !mapped) return mapped;
    if (auto w = watch(r->fd, static_cast<uint32_t>(i), opts_.perf ? "a perf event ring" : "a BPF ring"); !w) return w;
    rings_.push_back(std::move(r));
  }
  if (opts_.perf) wrap_.resize(ring_bytes_);
  for (size_t i = 0; i < opts_.pool_batches; ++i) {
    pool_.push_back(std::make_unique<Batch>(opts_.batch_bytes));
    free_.enqueue(pool_.back().get());
  }
  return {};
}

Result<void> RingReader::map_bpf_ring(Ring& r, size_t page) {
  r.consumer_map = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
  if (r.consumer_map == MAP_FAILED) {
    r.consumer_map = nullptr;
    return make_error(fmt::format("mmap of a BPF ring (consumer page): {}", std::strerror(errno)), errno);
  }
  // The data area is mapped twice in a row so that a record that wraps
  // around the end can be read contiguously.
  r.producer_len = page + 2 * static_cast<size_t>(ring_bytes_);
  r.producer_map = mmap(nullptr, r.producer_len, PROT_READ, MAP_SHARED, r.fd, static_cast<off_t>(page));
  if (r.producer_map == MAP_FAILED) {
    r.producer_map = nullptr;
    return make_error(fmt::format("mmap of a BPF ring (data): {}", std::strerror(errno)), errno);
  }
  r.consumer_pos = static_cast<uint64_t*>(r.consumer_map);
  r.producer_pos = static_cast<const uint64_t*>(r.producer_map);
  r.data = static_cast<const uint8_t*>(r.producer_map) + page;
  return {};
}

Result<void> RingReader::map_perf_ring(Ring& r, size_t page) {
  r.perf_len = page + ring_bytes_;
  void* m = mmap(nullptr, r.perf_len, PROT_READ | PROT_WRITE, MAP_SHARED, r.fd, 0);
  if (m == MAP_FAILED) return make_error(fmt::format("mmap of a perf event ring: {}", std::strerror(errno)), errno);
  r.perf_meta = static_cast<perf_event_mmap_page*>(m);
  r.data = static_cast<const uint8_t*>(m) + page;
  return {};
}

void RingReader::start() {
  thread_ = std::jthread([this](std::stop_token stop) {
    name_this_thread("cc-reader" + std::to_string(id_));
    try {
      run(stop);
    } catch (const std::exception& e) {
      error_ = e.what();
      has_error_.store(true, std::memory_order_release);
    }
    finished_.store(true, std::memory_order_release);
    processor_wake_->signal();
  });
  scheduling_ = use_realtime(thread_.native_handle(), opts_.rt_priority);
}

void RingReader::join() {
  if (thread_.joinable()) thread_.join();
}

std::string RingReader::error() const { return has_error_.load(std::memory_order_acquire) ? error_ : std::string(); }

void RingReader::recycle(Batch* b) {
  b->clear();
  free_.enqueue(b);  // cannot allocate: capacity is the pool size
  batch_freed_.signal();
}

bool RingReader::next_batch() {
  if (current_ && !current_->empty()) hand_over();
  if (current_) return true;
  if (free_.try_dequeue(current_)) return true;
  current_ = nullptr;
  return false;
}

void RingReader::kick() {
  uint64_t one = 1;
  // EAGAIN (counter saturated) means a kick is pending anyway.
  [[maybe_unused]] ssize_t n = write(kick_fd_, &one, sizeof(one));
}

void RingReader::hand_over() {
  if (!current_ || current_->empty()) return;
  full_.enqueue(current_);
  current_ = nullptr;
  processor_wake_->signal();
}

bool RingReader::take(const uint8_t* rec, uint32_t rec_len) {
  if (Batch::entry_size(rec_len) > opts_.batch_bytes) {
    // Cannot happen with the shipped programs (records are at most
    // CC_PACKET_MAX + header); counted, not silently skipped.
    oversize_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (!current_ && !next_batch()) return false;
  if (!current_->append(rec, rec_len)) {
    if (!next_batch()) return false;
    current_->append(rec, rec_len);
  }
  return true;
}

// A perf ring: PERF_RECORD_SAMPLE records carry our record as raw data
// (u32 size, then the bytes, padded). data_head moves only once a record is
// complete, so there is nothing like the BPF ring's busy bit. A full ring
// drops in the kernel: bpf_perf_event_output fails and the program counts
// it (ringbuf_full), so the kernel's PERF_RECORD_LOST is not counted again.
bool RingReader::consume_perf(Ring& r) {
  const uint64_t size = r.mask + 1;
  uint64_t head = __atomic_load_n(&r.perf_meta->data_head, __ATOMIC_ACQUIRE);
  uint64_t tail = r.perf_meta->data_tail;
  note_fill(head - tail);
  uint64_t n_records = 0, n_bytes = 0, published = tail;
  bool ok = true;
  while (tail < head) {
    const uint64_t off = tail & r.mask;
    perf_event_header ph;
    // The 8-byte header never wraps (records are 8-byte aligned, the ring a
    // power of two); the body may.
    std::memcpy(&ph, r.data + off, sizeof(ph));
    if (ph.size < sizeof(ph) || ph.size > head - tail) break;  // cannot happen; never read past head
    const uint8_t* rec = r.data + off;
    if (off + ph.size > size) {
      const size_t first = static_cast<size_t>(size - off);
      std::memcpy(wrap_.data(), r.data + off, first);
      std::memcpy(wrap_.data() + first, r.data, ph.size - first);
      rec = wrap_.data();
    }
    if (ph.type == PERF_RECORD_SAMPLE && ph.size >= sizeof(ph) + 4) {
      uint32_t raw = 0;
      std::memcpy(&raw, rec + sizeof(ph), 4);
      const uint8_t* body = rec + sizeof(ph) + 4;
      raw = std::min<uint32_t>(raw, ph.size - sizeof(ph) - 4);
      // The raw size is padded to 8 bytes.
      const uint32_t len = own_length(body, raw);
      if (!take(body, len)) {
        ok = false;
        break;
      }
      ++n_records;
      n_bytes += len;
    }
    tail += ph.size;
    // Give space back while draining, not only at the end: a full ring
    // drains for a while (copies into batches), and the producer on the
    // other CPU fails every record until it sees the tail move.
    if (tail - published >= kPublishBytes) {
      __atomic_store_n(&r.perf_meta->data_tail, tail, __ATOMIC_RELEASE);
      published = tail;
    }
  }
  __atomic_store_n(&r.perf_meta->data_tail, tail, __ATOMIC_RELEASE);
  records_.fetch_add(n_records, std::memory_order_relaxed);
  bytes_.fetch_add(n_bytes, std::memory_order_relaxed);
  return ok;
}

bool RingReader::consume(Ring& r) {
  if (r.perf_meta) return consume_perf(r);
  constexpr uint32_t kBusy = BPF_RINGBUF_BUSY_BIT;
  constexpr uint32_t kDiscard = BPF_RINGBUF_DISCARD_BIT;
  uint64_t cons = __atomic_load_n(r.consumer_pos, __ATOMIC_ACQUIRE);
  note_fill(__atomic_load_n(r.producer_pos, __ATOMIC_ACQUIRE) - cons);
  uint64_t n_records = 0, n_bytes = 0;
  bool ok = true;
  while (true) {
    uint64_t prod = __atomic_load_n(r.producer_pos, __ATOMIC_ACQUIRE);
    if (cons >= prod) break;
    const uint8_t* hdr = r.data + (cons & r.mask);
    uint32_t len = __atomic_load_n(reinterpret_cast<const uint32_t*>(hdr), __ATOMIC_ACQUIRE);
    if (len & kBusy) {
      // Reserved, not yet committed: this record (stamped before its
      // reservation) and every record behind it stay in the ring, so the
      // ring is not drained and no watermark may be promised this tick.
      at_busy_ = true;
      break;
    }
    uint32_t rec_len = len & ~(kBusy | kDiscard);
    uint64_t advance = (static_cast<uint64_t>(rec_len) + BPF_RINGBUF_HDR_SZ + 7) & ~uint64_t{7};
    if (!(len & kDiscard)) {
      // Data records are reserved at a size class (stream.bpf.h).
      const uint8_t* body = hdr + BPF_RINGBUF_HDR_SZ;
      const uint32_t take_len = own_length(body, rec_len);
      if (!take(body, take_len)) {
        ok = false;
        break;
      }
      ++n_records;
      n_bytes += take_len;
    }
    cons += advance;
    __atomic_store_n(r.consumer_pos, cons, __ATOMIC_RELEASE);
  }
  records_.fetch_add(n_records, std::memory_order_relaxed);
  bytes_.fetch_add(n_bytes, std::memory_order_relaxed);
  return ok;
}

void RingReader::run(std::stop_token stop) {
  std::vector<epoll_event> events(rings_.size() + 1);
  while (!stop.stop_requested()) {
    int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), opts_.poll_ms);
    if (n < 0 && errno != EINTR) throw std::runtime_error(fmt::format("epoll_wait: {}", std::strerror(errno)));
    // Records are submitted without a wake-up below the threshold, so every
    // ring is checked on every tick, not just the ones epoll reported.
    const uint64_t tick_start = BootClock::now_boot_ns();
    bool kicked = false;
    for (int i = 0; i < n; ++i) {
      if (events[static_cast<size_t>(i)].data.u32 != kKickTag) continue;
      uint64_t v;
      kicked = read(kick_fd_, &v, sizeof(v)) == sizeof(v);
    }
    bool stalled = false;
    at_busy_ = false;
    for (auto& r : rings_) stalled |= !consume(*r);
    const bool handed = current_ && !current_->empty();
    hand_over();
    // Every ring was drained: what was committed before tick_start is handed
    // over. A record stamped just before tick_start may still be between its
    // timestamp and its commit; kInFlightNs covers that window.
    if (!stalled && !at_busy_ && tick_start > kInFlightNs)
      watermark_.store(tick_start - kInFlightNs, std::memory_order_release);
    // Asked for: the processor waits for this promise (hand_over() already
    // woke it when there were records).
    if (kicked && !handed) processor_wake_->signal();
    if (stalled) {
      // The ring still has data, so epoll would return at once: wait for the
      // processor to give a batch back instead of spinning.
      stalls_.fetch_add(1, std::memory_order_relaxed);
      batch_freed_.wait(static_cast<int64_t>(opts_.poll_ms) * 1000);
    }
  }
  // Final drain: the probes are detached, so the rings only shrink. Waiting
  // for free batches is acceptable here; nothing is produced any more.
  while (true) {
    bool all_done = true;
    for (auto& r : rings_) all_done &= consume(*r);
    hand_over();
    if (all_done) break;
    batch_freed_.wait(static_cast<int64_t>(opts_.poll_ms) * 1000);
  }
}

}  // namespace clearcap
