// CaptureFileSink: writes events to a clearcap capture file (-w FILE):
// batches of raw records, each batch one independent zstd frame, compressed
// and written on a writer thread. Format: docs/capture-format.md.
//
// Design: the processor hands sinks decoded Events, so this sink
// re-serializes each Event into the kernel's record layout (struct
// cc_data_event + payload). decode_record() exposes every field of the record,
// so the round trip is lossless and the reader reuses decode_record(); no
// other sink needs raw record access, so the processor stays unchanged.
//
// Never blocks the processor: records are appended to a preallocated batch
// buffer; a full (or old) batch goes to the writer thread through a bounded
// SPSC queue; the writer returns the buffer through a second SPSC queue. When
// compression falls behind (batches queue up) the writer compresses at
// faster levels, down to zstd's fastest (near-raw blocks), and returns to
// the chosen level when it has caught up: events are lost only when even
// that cannot keep up, i.e. the disk is slower than capture. Then the event
// is dropped and counted (dropped_events / dropped_bytes).
//
// A batch is closed when it reaches batch_bytes, when its first record is
// max_age_ns old (checked on every event and on the processor's idle
// flush()), or when the boot->wall clock offset changes (every record of a
// batch shares one offset, stored in the batch descriptor).
//
// Threads: write(), flush() and finish() on the processor thread (finish()
// also from the owner once the processor has stopped); collect_stats() and
// request_reopen() from any thread; the writer thread is private (it alone
// touches the CaptureOutput, so rotation and reopen happen there).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <readerwriterqueue/readerwriterqueue.h>

#include "core/result.h"
#include "sinks/capture_file/capture_format.h"
#include "sinks/event_sink.h"
#include "sinks/transports/rotating_file.h"

namespace clearcap {

// Where the compressed frames go: the seam for rotation. A rotating file
// implements this and returns true from at_file_start() after it opened a
// new file, so the writer starts that file with its own header frame.
// Thread: the writer thread only (after construction).
class CaptureOutput {
 public:
  virtual ~CaptureOutput() = default;
  // Writes all of `bytes` or fails (the caller counts the loss).
  virtual Result<void> write(std::span<const uint8_t> bytes) = 0;
  // True when the next write() is the first of a file (must begin with the header frame).
  virtual bool at_file_start() const = 0;
  virtual Result<void> close() = 0;
  // SIGHUP: close and open the file again (logrotate). Default: nothing.
  virtual Result<void> reopen() { return {}; }
  virtual const std::string& name() const = 0;
};

// A plain file, emptied on open (created through open_output_file()).
class PlainCaptureOutput : public CaptureOutput {
 public:
  static Result<std::unique_ptr<PlainCaptureOutput>> open(const std::string& path, mode_t mode);
  ~PlainCaptureOutput() override;
  Result<void> write(std::span<const uint8_t> bytes) override;
  bool at_file_start() const override { return written_ == 0; }
  Result<void> close() override;
  const std::string& name() const override { return path_; }

 private:
  PlainCaptureOutput(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
  uint64_t written_ = 0;
};

// A RotatingFile (size/age rotation, timestamped names, retention, reopen).
// The RotatingFile writes the header frame itself at the start of every new
// file (first open, rotation, reopen after logrotate moved the file away),
// so every rotated piece is a complete capture file on its own; a frame is
// a record of the RotatingFile and is never split across pieces.
// at_file_start() is therefore always false for the sink.
class RotatingCaptureOutput : public CaptureOutput {
 public:
  // Empties `path` (like -w without rotation) and opens it. `header`
  // returns the header frame for each new file.
  static Result<std::unique_ptr<RotatingCaptureOutput>> open(const std::string& path, RotatingFile::Options opts);
  Result<void> write(std::span<const uint8_t> bytes) override;
  bool at_file_start() const override { return false; }
  Result<void> close() override;
  Result<void> reopen() override { return file_.reopen(); }
  const std::string& name() const override { return file_.path(); }
  const RotatingFile& file() const { return file_; }

 private:
  RotatingCaptureOutput(std::string path, RotatingFile::Options opts) : file_(std::move(path), std::move(opts)) {}
  RotatingFile file_;
};

class CaptureFileSink : public EventSink {
 public:
  struct Options {
    int level = 1;                              // zstd level (1 measured as the best throughput/size trade-off)
    size_t batch_bytes = 1 << 20;               // close a frame at this much raw data
    uint64_t max_age_ns = 1'000'000'000;        // ... or when its first record is this old
    size_t buffers = 16;                        // preallocated batch buffers (bounds memory and queue)
    std::string clearcap_version = "dev";
    mode_t file_mode = 0600;                    // open() without rotation (--file-mode)
  };

  CaptureFileSink(std::unique_ptr<CaptureOutput> out, Options opts);
  ~CaptureFileSink() override;  // finish()
  CaptureFileSink(const CaptureFileSink&) = delete;
  CaptureFileSink& operator=(const CaptureFileSink&) = delete;

  static Result<std::unique_ptr<CaptureFileSink>> open(const std::string& path, Options opts);
  // -w with rotation (--eventroratesize/--eventroratetime/--rotate-keep) and
  // SIGHUP reopen: a RotatingCaptureOutput whose every file starts with a
  // header frame. `rotation.header` is set here.
  static Result<std::unique_ptr<CaptureFileSink>> open_rotating(const std::string& path, RotatingFile::Options rotation,
                                                                Options opts);

  void write(const Event& ev) override;
  void flush() override;
  void collect_stats(std::vector<SinkStats>& out) const override;
  // A data record for an event built in memory (no raw record); returns its size.
  static size_t encode_data_record(const Event& ev, uint8_t* out);

  // Hands over the last batch, waits for the writer to compress and write
  // everything, closes the output. Idempotent.
  void finish();
  // Any thread (SIGHUP): the writer thread reopens the file before its next
  // frame; the processor never waits for it.
  void request_reopen() { reopen_.store(true, std::memory_order_release); }

  uint64_t frames_written() const { return frames_.load(std::memory_order_relaxed); }
  // Frames compressed at a faster level than asked, or stored uncompressed,
  // because batches queued up.
  uint64_t frames_faster() const { return frames_faster_.load(std::memory_order_relaxed); }
  uint64_t frames_stored() const { return frames_stored_.load(std::memory_order_relaxed); }
  // The level for a frame when `waiting` batches queue behind it: the chosen
  // level while at most a quarter of the buffers wait, then -5 and -50 as
  // the queue passes a quarter and a half; past five eighths nullopt: the
  // frame is stored (raw zstd blocks), which costs a copy, whatever the data.
  static std::optional<int> level_for_backlog(int level, size_t waiting, size_t buffers);
  uint64_t dropped_events() const { return dropped_events_.load(std::memory_order_relaxed); }

 private:
  struct Buffer {
    std::vector<uint8_t> data;  // capacity fixed at construction
    size_t used = 0;
    capfile::BatchInfo info;
  };

  void hand_off();
  void writer_main();
  void write_batch(Buffer& b);
  void fail(int err, uint64_t events, uint64_t bytes);

  std::unique_ptr<CaptureOutput> out_;
  Options opts_;
  std::string name_;
  capfile::Header header_;
  std::vector<std::unique_ptr<Buffer>> storage_;
  Buffer* cur_ = nullptr;  // processor thread
  moodycamel::BlockingReaderWriterQueue<Buffer*> full_;  // processor -> writer (nullptr = stop)
  moodycamel::ReaderWriterQueue<Buffer*> free_;          // writer -> processor
  std::vector<uint8_t> info_scratch_;                     // writer thread: a batch descriptor
  std::vector<uint8_t> frame_;                            // writer thread: descriptor + compressed frame
  void* cctx_ = nullptr;                                  // ZSTD_CCtx, writer thread
  std::jthread writer_;
  bool finished_ = false;

  std::atomic<uint64_t> frames_{0};
  std::atomic<uint64_t> frames_faster_{0};
  std::atomic<uint64_t> frames_stored_{0};
  int level_in_use_ = 0;  // writer thread: the level cctx_ is set to
  std::atomic<uint64_t> write_errors_{0};
  std::atomic<uint64_t> dropped_bytes_{0};
  std::atomic<uint64_t> dropped_events_{0};
  std::atomic<uint64_t> longest_write_ns_{0};  // written by the writer thread only
  std::atomic<int> last_errno_{0};
  std::atomic<bool> reopen_{false};
};

}  // namespace clearcap
