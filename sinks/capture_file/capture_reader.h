// CaptureReader: reads a clearcap capture file (docs/capture-format.md) back
// into Events, one at a time. Damage is not fatal: a corrupt frame (bad
// checksum, bad descriptor) is reported with its file offset and skipped,
// a file cut short (a crash) is read up to its last complete frame, and
// everything readable is returned. What was skipped is counted.
// Thread: one owner.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/event.h"
#include "core/result.h"
#include "sinks/capture_file/capture_format.h"

namespace clearcap {

class CaptureReader {
 public:
  // Fails when the file cannot be opened or does not start with a clearcap header.
  static Result<std::unique_ptr<CaptureReader>> open(const std::string& path);
  ~CaptureReader();
  CaptureReader(const CaptureReader&) = delete;
  CaptureReader& operator=(const CaptureReader&) = delete;

  // The next event, with wall_ns set from its batch's clock offset. Points
  // into the reader: valid until the next call. False at the end of what is readable.
  bool next(Event& ev);

  const capfile::Header& header() const { return header_; }
  const std::string& path() const { return path_; }
  uint64_t file_size() const { return size_; }
  uint64_t bytes_done() const { return pos_; }  // progress: file offset consumed so far

  // "FILE: offset N: what happened" lines, in file order.
  const std::vector<std::string>& problems() const { return problems_; }
  uint64_t skipped_frames() const { return skipped_frames_; }
  uint64_t skipped_records() const { return skipped_records_; }  // known records in skipped frames + undecodable
  uint64_t skipped_bytes() const { return skipped_bytes_; }      // file bytes not turned into records
  uint64_t frames() const { return frames_; }
  uint64_t records() const { return records_; }

 private:
  CaptureReader(int fd, std::string path, uint64_t size);
  bool load_batch();  // false at the end of what is readable
  bool read_at(uint64_t off, size_t n, std::vector<uint8_t>& out);
  void problem(uint64_t offset, const std::string& what);

  int fd_;
  std::string path_;
  uint64_t size_;
  uint64_t pos_ = 0;  // next frame
  bool done_ = false;
  capfile::Header header_;
  capfile::BatchInfo batch_;
  std::vector<uint8_t> compressed_, content_, scratch_;
  size_t rec_pos_ = 0;
  uint64_t batch_offset_ = 0;  // file offset of the current batch descriptor
  void* dctx_ = nullptr;
  std::vector<std::string> problems_;
  uint64_t skipped_frames_ = 0, skipped_records_ = 0, skipped_bytes_ = 0, frames_ = 0, records_ = 0;
};

}  // namespace clearcap
