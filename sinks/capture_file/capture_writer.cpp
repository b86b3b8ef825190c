#include "sinks/capture_file/capture_writer.h"

#include <algorithm>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <zstd.h>

#include "core/boot_clock.h"
#include "core/thread_setup.h"
#include "sinks/transports/output_file.h"

namespace clearcap {

// ---- PlainCaptureOutput ------------------------------------------------------

Result<std::unique_ptr<PlainCaptureOutput>> PlainCaptureOutput::open(const std::string& path, mode_t mode) {
  auto fd = open_output_file(path, OpenFile::kReplace, mode);
  if (!fd) return make_error(fmt::format("-w {}", fd.error().message), fd.error().err);
  return std::unique_ptr<PlainCaptureOutput>(new PlainCaptureOutput(*fd, path));
}

PlainCaptureOutput::~PlainCaptureOutput() { (void)close(); }

Result<void> PlainCaptureOutput::write(std::span<const uint8_t> bytes) {
  if (fd_ < 0) return make_error(path_ + ": closed", EBADF);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    int err = n < 0 ? errno : EIO;
    // A partial frame at the end is what a crash leaves too: readers stop
    // there. Cut it off so that later frames stay readable (the file is
    // O_APPEND: the next write lands at the new end).
    if (done > 0) (void)!ftruncate(fd_, static_cast<off_t>(written_));
    return make_error(fmt::format("{}: write failed: {}", path_, std::strerror(err)), err);
  }
  written_ += bytes.size();
  return {};
}

Result<void> PlainCaptureOutput::close() {
  if (fd_ < 0) return {};
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) return make_error(fmt::format("{}: close failed: {}", path_, std::strerror(errno)), errno);
  return {};
}

// ---- RotatingCaptureOutput -------------------------------------------------------

Result<std::unique_ptr<RotatingCaptureOutput>> RotatingCaptureOutput::open(const std::string& path,
                                                                         RotatingFile::Options opts) {
  // -w starts a new capture: an old file at the path is replaced, as without
  // rotation (later opens append, for reopen after logrotate).
  opts.replace = true;
  std::unique_ptr<RotatingCaptureOutput> out(new RotatingCaptureOutput(path, std::move(opts)));
  if (auto r = out->file_.open(); !r)
    return make_error(fmt::format("-w {}", r.error().message), r.error().err);
  return out;
}

Result<void> RotatingCaptureOutput::write(std::span<const uint8_t> bytes) {
  return file_.write({reinterpret_cast<const char*>(bytes.data()), bytes.size()});
}

Result<void> RotatingCaptureOutput::close() {
  file_.close();
  return {};
}

// ---- CaptureFileSink -----------------------------------------------------------

namespace {
// The largest record of any type (data chunk, packet, keys).
constexpr size_t kMaxRecord =
    capfile::kRecordPrefix + std::max({sizeof(cc_data_event) + CC_CHUNK_MAX, sizeof(cc_packet_event) + CC_PACKET_MAX + 1,
                                       sizeof(cc_keys_event)});
}

Result<std::unique_ptr<CaptureFileSink>> CaptureFileSink::open(const std::string& path, Options opts) {
  auto out = PlainCaptureOutput::open(path, opts.file_mode);
  if (!out) return tl::unexpected(out.error());
  if (opts.level < ZSTD_minCLevel() || opts.level > ZSTD_maxCLevel())
    return make_error(fmt::format("--zstd-level {}: must be between {} and {}", opts.level, ZSTD_minCLevel(),
                                  ZSTD_maxCLevel()),
                      EINVAL);
  return std::make_unique<CaptureFileSink>(std::move(*out), std::move(opts));
}

Result<std::unique_ptr<CaptureFileSink>> CaptureFileSink::open_rotating(const std::string& path,
                                                                       RotatingFile::Options rotation, Options opts) {
  if (opts.level < ZSTD_minCLevel() || opts.level > ZSTD_maxCLevel())
    return make_error(fmt::format("--zstd-level {}: must be between {} and {}", opts.level, ZSTD_minCLevel(),
                                  ZSTD_maxCLevel()),
                      EINVAL);
  // Called on the writer thread at the start of each file: the header of a
  // capture starting now (its own start time and clock offset).
  rotation.header = [version = opts.clearcap_version] {
    std::vector<uint8_t> frame;
    capfile::append_header_frame(
        capfile::local_header(static_cast<int64_t>(BootClock::now_wall_ns() - BootClock::now_boot_ns()), version),
        frame);
    return std::string(frame.begin(), frame.end());
  };
  auto out = RotatingCaptureOutput::open(path, std::move(rotation));
  if (!out) return tl::unexpected(out.error());
  return std::make_unique<CaptureFileSink>(std::move(*out), std::move(opts));
}

CaptureFileSink::CaptureFileSink(std::unique_ptr<CaptureOutput> out, Options opts)
    : out_(std::move(out)), opts_(std::move(opts)), full_(opts_.buffers + 1), free_(opts_.buffers) {
  name_ = out_->name();
  header_ = capfile::local_header(
      static_cast<int64_t>(BootClock::now_wall_ns() - BootClock::now_boot_ns()), opts_.clearcap_version);
  for (size_t i = 0; i < opts_.buffers; ++i) {
    auto b = std::make_unique<Buffer>();
    // A record is appended whenever the batch is below batch_bytes, so one
    // maximal record of headroom is enough.
    b->data.resize(opts_.batch_bytes + kMaxRecord);
    free_.try_enqueue(b.get());
    storage_.push_back(std::move(b));
  }
  frame_.reserve(ZSTD_compressBound(opts_.batch_bytes + kMaxRecord) + 64);
  info_scratch_.reserve(8 + capfile::kBatchInfoSize);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, opts_.level);
  level_in_use_ = opts_.level;
  // A checksum per frame: a reader tells a corrupt frame from a good one
  // instead of exporting garbage.
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  cctx_ = cctx;
  writer_ = std::jthread([this] {
    name_this_thread("cc-capfile");
    writer_main();
  });
}

CaptureFileSink::~CaptureFileSink() {
  finish();
  ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(cctx_));
}

size_t CaptureFileSink::encode_data_record(const Event& ev, uint8_t* out) {
  cc_data_event rec{};
  rec.hdr.type = CC_REC_DATA;
  rec.hdr.hdr_len = sizeof(cc_data_event);
  rec.hdr.data_len = static_cast<uint32_t>(ev.payload.size());
  rec.pid = ev.pid;
  rec.tid = ev.tid;
  rec.uid = ev.uid;
  rec.fd = ev.fd;
  rec.ts_ns = ev.boot_ns;
  rec.cgroup_id = ev.cgroup_id;
  rec.conn_id = ev.conn_id;
  rec.seq = ev.seq;
  rec.call_len = ev.call_len;
  rec.call_off = ev.call_off;
  rec.sport = ev.sport;
  rec.dport = ev.dport;
  rec.family = ev.family;
  rec.direction = static_cast<uint8_t>(ev.direction);
  rec.source = ev.source;
  rec.flags = ev.flags;
  if (ev.saddr) std::memcpy(rec.saddr, ev.saddr, CC_ADDR_LEN);
  if (ev.daddr) std::memcpy(rec.daddr, ev.daddr, CC_ADDR_LEN);
  std::memcpy(rec.comm, ev.comm.data(), std::min(ev.comm.size(), sizeof(rec.comm)));
  std::memcpy(out, &rec, sizeof(rec));
  if (!ev.payload.empty()) std::memcpy(out + sizeof(rec), ev.payload.data(), ev.payload.size());
  return sizeof(rec) + ev.payload.size();
}

void CaptureFileSink::write(const Event& ev) {
  // An event built in memory (no raw record) can only be a data event.
  if ((ev.record.empty() && ev.record_type != CC_REC_DATA) || ev.record.size() + capfile::kRecordPrefix > kMaxRecord) {
    dropped_events_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const int64_t offset = static_cast<int64_t>(ev.wall_ns - ev.boot_ns);
  if (cur_ && (cur_->info.boot_to_wall_ns != offset ||
               (ev.boot_ns > cur_->info.first_boot_ns && ev.boot_ns - cur_->info.first_boot_ns >= opts_.max_age_ns)))
    hand_off();
  if (!cur_) {
    if (!free_.try_dequeue(cur_)) {
      dropped_events_.fetch_add(1, std::memory_order_relaxed);
      dropped_bytes_.fetch_add(ev.record.empty() ? sizeof(cc_data_event) + ev.payload.size() : ev.record.size(),
                               std::memory_order_relaxed);
      return;
    }
    cur_->used = 0;
    cur_->info = capfile::BatchInfo{};
    cur_->info.boot_to_wall_ns = offset;
    cur_->info.first_boot_ns = ev.boot_ns;
  }

  uint8_t* p = cur_->data.data() + cur_->used;
  uint32_t len = 0;
  if (!ev.record.empty()) {
    // The record exactly as the kernel wrote it, whatever its type: capture
    // files keep raw records (the ABI is append-only), decoded when read.
    len = static_cast<uint32_t>(ev.record.size());
    std::memcpy(p, &len, sizeof(len));
    std::memcpy(p + sizeof(len), ev.record.data(), len);
  } else {
    len = static_cast<uint32_t>(encode_data_record(ev, p + sizeof(len)));
    std::memcpy(p, &len, sizeof(len));
  }
  cur_->used += sizeof(len) + len;
  cur_->info.records++;
  cur_->info.last_boot_ns = ev.boot_ns;
  if (cur_->used >= opts_.batch_bytes) hand_off();
}

void CaptureFileSink::flush() {
  // Called when the processor is idle: a quiet capture still gets its
  // records on disk within about max_age_ns.
  if (cur_ && BootClock::now_boot_ns() - cur_->info.first_boot_ns >= opts_.max_age_ns) hand_off();
}

void CaptureFileSink::hand_off() {
  // Capacity is buffers + 1 and only `buffers` buffers exist (plus one stop
  // marker): try_enqueue cannot fail or allocate.
  full_.try_enqueue(cur_);
  cur_ = nullptr;
}

void CaptureFileSink::finish() {
  if (finished_) return;
  finished_ = true;
  if (cur_ && cur_->info.records > 0) hand_off();
  full_.try_enqueue(nullptr);
  if (writer_.joinable()) writer_.join();
  if (auto r = out_->close(); !r) {
    last_errno_.store(r.error().err, std::memory_order_relaxed);
    write_errors_.fetch_add(1, std::memory_order_relaxed);
  }
}

void CaptureFileSink::writer_main() {
  while (true) {
    Buffer* b = nullptr;
    full_.wait_dequeue(b);
    if (!b) break;
    if (reopen_.exchange(false, std::memory_order_acq_rel)) {
      if (auto r = out_->reopen(); !r) {
        last_errno_.store(r.error().err, std::memory_order_relaxed);
        write_errors_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    write_batch(*b);
    free_.try_enqueue(b);
  }
}

void CaptureFileSink::fail(int err, uint64_t events, uint64_t bytes) {
  last_errno_.store(err ? err : EIO, std::memory_order_relaxed);
  write_errors_.fetch_add(1, std::memory_order_relaxed);
  dropped_events_.fetch_add(events, std::memory_order_relaxed);
  dropped_bytes_.fetch_add(bytes, std::memory_order_relaxed);
}

std::optional<int> CaptureFileSink::level_for_backlog(int level, size_t waiting, size_t buffers) {
  // At most buffers - 2 can wait (one is being filled, one written).
  if (waiting * 4 <= buffers) return level;
  if (waiting * 2 <= buffers) return std::min(level, -5);
  if (waiting * 8 <= buffers * 5) return std::min(level, -50);
  return std::nullopt;  // stored: a copy, whatever the data
}

void CaptureFileSink::write_batch(Buffer& b) {
  // Behind: compress faster, and in the end store the batch as it is,
  // rather than let the processor drop events. Only a destination slower
  // than copying loses them.
  const std::optional<int> level = level_for_backlog(opts_.level, full_.size_approx(), opts_.buffers);
  if (!level) frames_stored_.fetch_add(1, std::memory_order_relaxed);
  else if (*level != opts_.level) frames_faster_.fetch_add(1, std::memory_order_relaxed);
  frame_.clear();
  if (out_->at_file_start()) {
    capfile::Header h = header_;
    h.boot_to_wall_ns = b.info.boot_to_wall_ns;
    capfile::append_header_frame(h, frame_);
  }
  b.info.uncompressed_bytes = b.used;
  const size_t info_at = frame_.size();
  capfile::append_batch_frame(b.info, frame_);
  const size_t data_at = frame_.size();
  if (level) {
    if (*level != level_in_use_) {
      ZSTD_CCtx_setParameter(static_cast<ZSTD_CCtx*>(cctx_), ZSTD_c_compressionLevel, *level);
      level_in_use_ = *level;
    }
    const size_t bound = ZSTD_compressBound(b.used);
    frame_.resize(data_at + bound);  // within the reserved capacity: no allocation
    size_t n = ZSTD_compress2(static_cast<ZSTD_CCtx*>(cctx_), frame_.data() + data_at, bound, b.data.data(), b.used);
    if (ZSTD_isError(n)) {
      fail(EIO, b.info.records, b.used);
      return;
    }
    frame_.resize(data_at + n);
  } else {
    capfile::append_stored_zstd_frame({b.data.data(), b.used}, frame_);  // within the reserved capacity too
  }
  b.info.compressed_bytes = static_cast<uint32_t>(frame_.size() - data_at);
  // Rewrite the descriptor now that the frame's size is known (same size).
  info_scratch_.clear();
  capfile::append_batch_frame(b.info, info_scratch_);
  std::memcpy(frame_.data() + info_at, info_scratch_.data(), info_scratch_.size());
  const auto t0 = std::chrono::steady_clock::now();
  auto r = out_->write(frame_);
  note_write_time(longest_write_ns_, std::chrono::steady_clock::now() - t0);
  if (!r) {
    fail(r.error().err, b.info.records, b.used);
    return;
  }
  frames_.fetch_add(1, std::memory_order_relaxed);
}

void CaptureFileSink::collect_stats(std::vector<SinkStats>& out) const {
  out.push_back({name_, write_errors_.load(std::memory_order_relaxed), dropped_bytes_.load(std::memory_order_relaxed),
                 dropped_events_.load(std::memory_order_relaxed), last_errno_.load(std::memory_order_relaxed),
                 longest_write_ns_.load(std::memory_order_relaxed)});
}

}  // namespace clearcap
