// RotatingFile: an append-only output file that rotates by size and/or age,
// keeps a bounded number of rotated files, and reopens on request (SIGHUP,
// logrotate). Used by every file output (events, logs, and any writer that
// needs rotation: keylog, pcapng, capture files).
//
// Rotation renames the current file to a timestamped name next to it, with
// the extension kept last so tools still recognise the file:
//   events.jsonl -> events.20261122-193544.jsonl (then -1, -2 ... within one second)
// Records are never split: write() rotates *before* a record that would take
// the file past max_bytes, and a fresh file always takes the record whole.
// Each new file (first open, rotation, reopen of a missing or empty file)
// starts with the bytes of Options::header, for formats that need one
// (pcapng section header, capture file header).
//
// Thread: not thread-safe; one thread (a writer thread) owns each instance.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"

namespace clearcap {

class RotatingFile {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  struct Options {
    uint64_t max_bytes = 0;              // rotate before exceeding this size; 0 = never by size
    std::chrono::seconds max_age{0};     // rotate a file this old at its next write; 0 = never by age
    unsigned keep = 0;                   // rotated files to keep (oldest deleted); 0 = keep all
    mode_t mode = 0600;                  // for files clearcap creates (--file-mode); see output_file.h
    bool replace = false;                // the first open empties an existing file (a new capture starts)
    std::function<std::string()> header; // bytes written at the start of every new file; may be empty
    Clock clock;                         // wall clock (injectable for tests); default system_clock::now
  };

  RotatingFile(std::string path, Options opts);
  ~RotatingFile();
  RotatingFile(const RotatingFile&) = delete;
  RotatingFile& operator=(const RotatingFile&) = delete;

  // Opens through open_output_file() (no symlink followed, a file of
  // another user refused), creating with Options::mode, appending to an
  // existing file (emptying it on the first open with Options::replace).
  Result<void> open();
  // Writes one record whole, rotating first when the size or age limit says
  // so. A short write is retried; on an error (ENOSPC, EIO) the part of the
  // record already written is truncated away, so the file always ends at a
  // record boundary, and the error is returned with errno.
  Result<void> write(std::span<const char> record);
  // Closes and opens the path again: after logrotate moved the file away
  // (create mode) a new file is created; after a copytruncate the size is
  // taken again from the file (writes use O_APPEND, so they land at its new
  // end either way).
  Result<void> reopen();
  // Rotates now (if the current file holds anything).
  Result<void> rotate();
  void close();

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }
  uint64_t rotations() const { return rotations_; }
  bool is_open() const { return fd_ >= 0; }

  // Rotated files of `path`, oldest first (what retention would delete first).
  static std::vector<std::string> rotated_files(const std::string& path);
  // "<dir>/<stem>.<YYYYmmdd-HHMMSS>[-N]<ext>" for `path` at `when` (UTC).
  static std::string rotated_name(const std::string& path, std::chrono::system_clock::time_point when,
                                  unsigned n);

 private:
  std::chrono::system_clock::time_point now() const;
  Result<void> write_all(const char* p, size_t n);
  Result<void> start_file();  // header if empty
  void apply_retention();

  std::string path_;
  Options opts_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::chrono::system_clock::time_point opened_at_{};
  uint64_t rotations_ = 0;
  bool replaced_ = false;  // Options::replace done
};

}  // namespace clearcap
