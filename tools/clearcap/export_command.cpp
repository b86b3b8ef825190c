#include "tools/clearcap/export_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <atomic>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "core/processor.h"
#include "sinks/capture_file/capture_reader.h"
#include "sinks/capture_file/capture_source.h"
#include "sinks/encoders/exporters.h"
#include "sinks/transports/output_file.h"

#ifndef CLEARCAP_VERSION
#define CLEARCAP_VERSION "dev"
#endif

namespace clearcap {

namespace {

template <typename... Args>
void log(fmt::format_string<Args...> f, Args&&... args) {
  fmt::print(stderr, "clearcap: {}\n", fmt::format(f, std::forward<Args>(args)...));
}

std::string format_from_extension(const std::string& path) {
  auto dot = path.rfind('.');
  if (dot == std::string::npos || path.find('/', dot) != std::string::npos) return {};
  std::string ext = path.substr(dot + 1);
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == "pcapng") return "pcapng";
  if (ext == "jsonl" || ext == "json" || ext == "ndjson") return "jsonl";
  if (ext == "txt" || ext == "text" || ext == "log") return "txt";
  if (ext == "har") return "har";
  return {};
}

class Progress {
 public:
  Progress(bool enabled, uint64_t total) : enabled_(enabled && isatty(STDERR_FILENO)), total_(total) {}
  void update(uint64_t done, bool force = false) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    const int width = 30, fill = static_cast<int>(frac * width);
    fmt::print(stderr, "\rclearcap: export [{}{}] {:3.0f}% {:.1f}/{:.1f} MiB", std::string(fill, '#'),
               std::string(width - fill, ' '), frac * 100, static_cast<double>(done) / 1048576.0,
               static_cast<double>(total_) / 1048576.0);
    shown_ = true;
  }
  void done() {
    if (shown_) fmt::print(stderr, "\n");
  }

 private:
  bool enabled_;
  uint64_t total_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

// The exporter behind the processor: the first failure stops the export.
class ExporterSink : public EventSink {
 public:
  explicit ExporterSink(Exporter& e) : e_(e) {}
  void write(const Event& ev) override {
    if (failed_.load(std::memory_order_relaxed)) return;
    if (auto r = e_.write(ev); !r) {
      error_ = r.error().message;
      failed_.store(true, std::memory_order_release);
    } else {
      ++events_;
    }
  }
  void flush() override {}
  void collect_stats(std::vector<SinkStats>&) const override {}
  // Any thread.
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // After the processor's join().
  const std::string& error() const { return error_; }
  uint64_t events() const { return events_; }

 private:
  Exporter& e_;
  std::atomic<bool> failed_{false};
  std::string error_;  // processor thread until join
  uint64_t events_ = 0;
};

}  // namespace

int run_export_command(const ExportOptions& o) {
  std::string format = o.format.empty() ? format_from_extension(o.output) : o.format;
  if (format.empty()) {
    log("-o {}: cannot tell the format from the extension; use .pcapng, .jsonl, .txt or .har, or pass --format", o.output);
    return 2;
  }
  // Open every input first: a missing file is reported before any output is made.
  std::vector<std::unique_ptr<CaptureReader>> readers;
  uint64_t total = 0;
  for (const auto& in : o.inputs) {
    auto r = CaptureReader::open(in);
    if (!r) {
      log("{}", r.error().message);
      return 2;
    }
    total += (*r)->file_size();
    readers.push_back(std::move(*r));
  }
  // Writing over an input would empty it before it is read.
  if (same_file_as_any(o.output, o.inputs)) {
    log("-o {}: is one of the input files; choose another output path", o.output);
    return 2;
  }
  auto exporter = make_exporter(format, o.output, o.file_mode, CLEARCAP_VERSION);
  if (!exporter) {
    log("{}", exporter.error().message);
    return 2;
  }

  // The live pipeline over the files: the capture-file source merges them
  // by time, the processor tracks streams and hands each event over.
  moodycamel::spsc_sema::LightweightSemaphore wake;
  CaptureFileSource source(std::move(readers), &wake);
  ExporterSink sink(**exporter);
  Processor processor({&source}, sink, Processor::Options{}, &wake);
  Progress progress(o.progress, total);
  processor.start();
  source.start();
  while (!source.finished()) {
    if (sink.failed()) source.request_stop();
    progress.update(source.bytes_done());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  source.join();
  processor.join();
  progress.update(total, true);
  progress.done();
  if (sink.failed()) {
    log("{}", sink.error());
    return 2;
  }
  const uint64_t events = sink.events();
  int rc = 0;
  if (auto r = (*exporter)->finish(); !r) {
    log("{}", r.error().message);
    return 2;
  }
  uint64_t skipped_frames = 0, skipped_records = 0, skipped_bytes = 0;
  for (auto& r : source.readers()) {
    for (const auto& p : r->problems()) log("{}", p);
    skipped_frames += r->skipped_frames();
    skipped_records += r->skipped_records();
    skipped_bytes += r->skipped_bytes();
  }
  log("exported {} events from {} file(s) to {} ({})", events, source.readers().size(), o.output, format);
  for (const auto& n : (*exporter)->notes()) log("{}", n);
  if (processor.gaps())
    log("stream gaps: {} ({} bytes missing: lost at capture time, see the capture's summary)", processor.gaps(),
        processor.gap_bytes());
  if (skipped_frames || skipped_records || skipped_bytes) {
    log("damaged input: {} frames, {} records and {} bytes skipped (everything readable was exported)",
        skipped_frames, skipped_records, skipped_bytes);
    rc = 1;
  }
  return rc;
}

}  // namespace clearcap
