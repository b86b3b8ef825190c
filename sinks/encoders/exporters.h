// Offline exporters for `clearcap export`: turn events read back from a
// capture file into pcapng, JSON lines, text or HAR.
// Thread: one owner (the export command). Offline, so simple buffering and
// per-connection maps are fine here (no hot path).
#pragma once

#include <cstdint>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "core/event.h"
#include "core/result.h"
#include "sinks/event_sink.h"

namespace clearcap {

// A file written through a 1 MiB buffer; errors are returned, with the path.
class OutFile {
 public:
  // Created (or emptied) through open_output_file() with `mode`.
  static Result<std::unique_ptr<OutFile>> create(const std::string& path, mode_t mode);
  ~OutFile();
  Result<void> append(std::string_view bytes);
  Result<void> close();
  const std::string& path() const { return path_; }

 private:
  OutFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Result<void> drain();
  int fd_;
  std::string path_;
  std::string buf_;
};

class Exporter {
 public:
  virtual ~Exporter() = default;
  virtual Result<void> write(const Event& ev) = 0;
  virtual Result<void> finish() = 0;
  // Lines for the user about what was left out or synthesized (counts).
  virtual std::vector<std::string> notes() const { return {}; }
};

// format: pcapng | jsonl | txt | har
Result<std::unique_ptr<Exporter>> make_exporter(const std::string& format, const std::string& path, mode_t mode,
                                                const std::string& clearcap_version);

}  // namespace clearcap
