#include "sinks/capture_file/capture_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <zstd.h>

namespace clearcap {

namespace {
uint32_t le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
bool is_skippable(uint32_t magic) { return (magic & 0xFFFFFFF0u) == 0x184D2A50u; }
}  // namespace

Result<std::unique_ptr<CaptureReader>> CaptureReader::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)), errno);
  struct stat st{};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = errno ? errno : EINVAL;
    ::close(fd);
    return make_error(fmt::format("{}: not a regular file", path), err);
  }
  std::unique_ptr<CaptureReader> r(new CaptureReader(fd, path, static_cast<uint64_t>(st.st_size)));
  std::vector<uint8_t> head;
  if (!r->read_at(0, 8, head) || le32(head.data()) != capfile::kHeaderMagic)
    return make_error(fmt::format("{}: not a clearcap capture file (no clearcap header at offset 0); capture files "
                                  "are written by clearcap tls -w FILE",
                                  path),
                      EINVAL);
  const uint32_t n = le32(head.data() + 4);
  std::vector<uint8_t> payload;
  if (n > capfile::kMaxHeaderPayload || !r->read_at(8, n, payload))
    return make_error(fmt::format("{}: offset 0: the clearcap header is cut short or corrupt", path), EINVAL);
  auto h = capfile::parse_header(payload);
  if (!h) return make_error(fmt::format("{}: offset 0: {}", path, h.error().message), h.error().err);
  r->header_ = std::move(*h);
  r->pos_ = 8 + n;
  return r;
}

CaptureReader::CaptureReader(int fd, std::string path, uint64_t size)
    : fd_(fd), path_(std::move(path)), size_(size), dctx_(ZSTD_createDCtx()) {}

CaptureReader::~CaptureReader() {
  ::close(fd_);
  ZSTD_freeDCtx(static_cast<ZSTD_DCtx*>(dctx_));
}

bool CaptureReader::read_at(uint64_t off, size_t n, std::vector<uint8_t>& out) {
  out.resize(n);
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd_, out.data() + done, n - done, static_cast<off_t>(off + done));
    if (r > 0) {
      done += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    return false;  // end of file (cut short) or read error
  }
  return true;
}

void CaptureReader::problem(uint64_t offset, const std::string& what) {
  problems_.push_back(fmt::format("{}: offset {}: {}", path_, offset, what));
}

bool CaptureReader::load_batch() {
  while (!done_) {
    if (pos_ >= size_) {
      done_ = true;
      return false;
    }
    const uint64_t at = pos_;
    if (size_ - at < 8 || !read_at(at, 8, scratch_)) {
      problem(at, fmt::format("file ends inside a frame header ({} trailing bytes skipped; the capture was cut short)",
                              size_ - at));
      skipped_bytes_ += size_ - at;
      done_ = true;
      return false;
    }
    const uint32_t magic = le32(scratch_.data());
    const uint32_t len = le32(scratch_.data() + 4);
    if (magic == capfile::kBatchMagic) {
      if (len != capfile::kBatchInfoSize) {
        problem(at, fmt::format("batch descriptor of {} bytes is corrupt; the rest of the file ({} bytes) is skipped",
                                len, size_ - at));
        skipped_bytes_ += size_ - at;
        done_ = true;
        return false;
      }
      if (size_ - at - 8 < len || !read_at(at + 8, len, scratch_)) {
        problem(at, fmt::format("file ends inside a batch descriptor ({} trailing bytes skipped; the capture was cut short)",
                                size_ - at));
        skipped_bytes_ += size_ - at;
        done_ = true;
        return false;
      }
      auto info = capfile::parse_batch_info(scratch_);
      if (!info) {
        problem(at, info.error().message + fmt::format("; the rest of the file ({} bytes) is skipped", size_ - at));
        skipped_bytes_ += size_ - at;
        done_ = true;
        return false;
      }
      const uint64_t data_at = at + 8 + len;
      if (size_ - data_at < info->compressed_bytes || !read_at(data_at, info->compressed_bytes, compressed_)) {
        problem(at, fmt::format("file ends inside a frame of {} records ({} bytes skipped; the capture was cut short)",
                                info->records, size_ - at));
        skipped_bytes_ += size_ - at;
        skipped_records_ += info->records;
        skipped_frames_++;
        done_ = true;
        return false;
      }
      pos_ = data_at + info->compressed_bytes;
      content_.resize(info->uncompressed_bytes);
      size_t n = ZSTD_decompressDCtx(static_cast<ZSTD_DCtx*>(dctx_), content_.data(), content_.size(),
                                     compressed_.data(), compressed_.size());
      if (ZSTD_isError(n) || n != info->uncompressed_bytes) {
        problem(data_at, fmt::format("corrupt frame of {} records ({}); skipped",
                                     info->records,
                                     ZSTD_isError(n) ? ZSTD_getErrorName(n) : "content shorter than its descriptor says"));
        skipped_bytes_ += pos_ - at;
        skipped_records_ += info->records;
        skipped_frames_++;
        // What did decompress (all of it, when only the checksum is wrong)
        // is not to be read: next() would take it for the current batch.
        content_.clear();
        continue;
      }
      batch_ = *info;
      batch_offset_ = at;
      rec_pos_ = 0;
      frames_++;
      return true;
    }
    if (is_skippable(magic)) {
      // A header (files joined with cat, or a rotated file's own) or a frame
      // type from a later writer: skip over it.
      if (size_ - at - 8 < len) {
        problem(at, fmt::format("file ends inside a metadata frame ({} trailing bytes skipped)", size_ - at));
        skipped_bytes_ += size_ - at;
        done_ = true;
        return false;
      }
      if (magic == capfile::kHeaderMagic && len <= capfile::kMaxHeaderPayload && read_at(at + 8, len, scratch_)) {
        if (auto h = capfile::parse_header(scratch_); h) header_ = std::move(*h);
      }
      pos_ = at + 8 + len;
      continue;
    }
    problem(at, fmt::format("not a clearcap frame (magic 0x{:08x}); the rest of the file ({} bytes) is skipped", magic,
                            size_ - at));
    skipped_bytes_ += size_ - at;
    done_ = true;
  }
  return false;
}

bool CaptureReader::next(Event& ev) {
  while (true) {
    if (rec_pos_ >= content_.size() || content_.empty()) {
      content_.clear();
      if (!load_batch()) return false;
      continue;
    }
    const size_t left = content_.size() - rec_pos_;
    uint32_t len = 0;
    if (left >= capfile::kRecordPrefix) std::memcpy(&len, content_.data() + rec_pos_, 4);
    if (left < capfile::kRecordPrefix || len > left - capfile::kRecordPrefix) {
      // A frame that decompressed with a good checksum but bad framing was
      // written by a broken writer: count and drop the rest of the frame.
      problem(batch_offset_, fmt::format("record framing broken at byte {} of the frame; rest of the frame skipped",
                                         rec_pos_));
      skipped_records_++;
      rec_pos_ = content_.size();
      continue;
    }
    auto rec = std::span<const uint8_t>(content_).subspan(rec_pos_ + capfile::kRecordPrefix, len);
    rec_pos_ += capfile::kRecordPrefix + len;
    if (decode_record(rec, ev) != DecodeStatus::kSuccess) {
      skipped_records_++;
      continue;
    }
    ev.wall_ns = ev.boot_ns + static_cast<uint64_t>(batch_.boot_to_wall_ns);
    records_++;
    return true;
  }
}

}  // namespace clearcap
