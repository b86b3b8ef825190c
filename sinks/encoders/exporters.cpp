#include "sinks/encoders/exporters.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

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

// JSON lines and text: the same encoders as the live output.
class EncoderExporter : public Exporter {
 public:
  EncoderExporter(std::unique_ptr<OutFile> out, std::unique_ptr<Encoder> enc)
      : out_(std::move(out)), enc_(std::move(enc)) {}
  Result<void> write(const Event& ev) override {
    buf_.clear();
    enc_->encode(ev, buf_);
    return out_->append(buf_);
  }
  Result<void> finish() override { return out_->close(); }

 private:
  std::unique_ptr<OutFile> out_;
  std::unique_ptr<Encoder> enc_;
  std::string buf_;
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
