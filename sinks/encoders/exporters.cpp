#include "sinks/encoders/exporters.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "proto/http/stage.h"
#include "sinks/encoders/json_encoder.h"
#include "sinks/encoders/pcapng_export.h"
#include "sinks/encoders/text_encoder.h"
#include "sinks/transports/output_file.h"

namespace clearcap {

Result<std::unique_ptr<OutFile>> OutFile::create(const std::string& path, mode_t mode) {
  auto fd = open_output_file(path, OpenFile::kReplace, mode);
  if (!fd) return tl::unexpected(fd.error());
  return std::unique_ptr<OutFile>(new OutFile(*fd, path));
}

OutFile::~OutFile() { (void)close(); }

Result<void> OutFile::append(std::string_view bytes) {
  buf_.append(bytes);
  if (buf_.size() >= (1u << 20)) return drain();
  return {};
}

Result<void> OutFile::drain() {
  size_t done = 0;
  while (done < buf_.size()) {
    ssize_t n = ::write(fd_, buf_.data() + done, buf_.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    int err = n < 0 ? errno : EIO;
    buf_.clear();
    return make_error(fmt::format("{}: write failed: {}", path_, std::strerror(err)), err);
  }
  buf_.clear();
  return {};
}

Result<void> OutFile::close() {
  if (fd_ < 0) return {};
  auto r = drain();
  int rc = ::close(fd_);
  fd_ = -1;
  if (!r) return r;
  if (rc != 0) return make_error(fmt::format("{}: close failed: {}", path_, std::strerror(errno)), errno);
  return {};
}

namespace {

// JSON lines and text: the same encoders as the live output, behind the
// same protocol stage (message and exchange events, kinds decided per
// connection), so an export shows what the live run showed.
class EncoderExporter : public Exporter {
 public:
  EncoderExporter(std::unique_ptr<OutFile> out, std::unique_ptr<Encoder> enc)
      : sink_(std::move(out), std::move(enc)), stage_(sink_, {}) {}
  Result<void> write(const Event& ev) override {
    stage_.write(ev);
    return sink_.take_error();
  }
  Result<void> finish() override {
    stage_.finish();
    if (auto r = sink_.take_error(); !r) return r;
    return sink_.out->close();
  }
  std::vector<std::string> notes() const override { return {stage_.summary_line()}; }

 private:
  // What the stage passes on, encoded into the file; the first write error
  // is kept for the exporter to return.
  struct EncodeSink : EventSink {
    EncodeSink(std::unique_ptr<OutFile> o, std::unique_ptr<Encoder> e) : out(std::move(o)), enc(std::move(e)) {}
    void write(const Event& ev) override {
      buf.clear();
      enc->encode(ev, buf);
      if (auto r = out->append(buf); !r && !error) error = r.error();
    }
    void flush() override {}
    void collect_stats(std::vector<SinkStats>&) const override {}
    Result<void> take_error() {
      if (!error) return {};
      auto e = std::move(*error);
      error.reset();
      return tl::unexpected(std::move(e));
    }
    std::unique_ptr<OutFile> out;
    std::unique_ptr<Encoder> enc;
    std::string buf;
    std::optional<Error> error;
  };
  EncodeSink sink_;
  http::Stage stage_;
};

}  // namespace

Result<std::unique_ptr<Exporter>> make_exporter(const std::string& format, const std::string& path, mode_t mode,
                                                const std::string& clearcap_version) {
  if (format != "pcapng" && format != "jsonl" && format != "txt" && format != "har")
    return make_error(fmt::format("export format '{}' is not known; use pcapng, jsonl, txt or har", format), EINVAL);
  auto out = OutFile::create(path, mode);
  if (!out) return tl::unexpected(out.error());
  if (format == "pcapng") return make_pcapng_exporter(std::move(*out), clearcap_version);
  if (format == "har") return make_har_exporter(std::move(*out), clearcap_version);
  if (format == "jsonl")
    return std::unique_ptr<Exporter>(std::make_unique<EncoderExporter>(std::move(*out), std::make_unique<JsonEncoder>(FormatOptions{})));
  return std::unique_ptr<Exporter>(std::make_unique<EncoderExporter>(std::move(*out), std::make_unique<TextEncoder>(FormatOptions{})));
}

}  // namespace clearcap
