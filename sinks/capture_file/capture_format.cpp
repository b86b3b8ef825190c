#include "sinks/capture_file/capture_format.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "clearcap_abi.h"
#include "core/boot_clock.h"

namespace clearcap::capfile {

namespace {

// Little-endian on every platform clearcap runs on (x86-64, arm64); the
// format is defined little-endian so a big-endian port would swap here.
template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

void put_str(std::vector<uint8_t>& out, const std::string& s) {
  const size_t n = std::min<size_t>(s.size(), 4096);
  put<uint16_t>(out, static_cast<uint16_t>(n));
  out.insert(out.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
}

class Cursor {
 public:
  explicit Cursor(std::span<const uint8_t> b) : b_(b) {}
  template <typename T>
  bool get(T* v) {
    if (b_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool get_str(std::string* s) {
    uint16_t n;
    if (!get(&n) || b_.size() - pos_ < n) return false;
    s->assign(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return true;
  }

 private:
  std::span<const uint8_t> b_;
  size_t pos_ = 0;
};

void begin_skippable(std::vector<uint8_t>& out, uint32_t magic, size_t* size_at) {
  put<uint32_t>(out, magic);
  *size_at = out.size();
  put<uint32_t>(out, 0);
}

void end_skippable(std::vector<uint8_t>& out, size_t size_at) {
  const uint32_t size = static_cast<uint32_t>(out.size() - size_at - 4);
  std::memcpy(out.data() + size_at, &size, 4);
}

}  // namespace

void append_header_frame(const Header& h, std::vector<uint8_t>& out) {
  size_t at;
  begin_skippable(out, kHeaderMagic, &at);
  out.insert(out.end(), std::begin(kHeaderTag), std::end(kHeaderTag));
  put<uint16_t>(out, h.format_version);
  put<uint16_t>(out, h.abi_version);
  put<uint32_t>(out, 0);  // reserved flags
  put<uint64_t>(out, h.start_wall_ns);
  put<int64_t>(out, h.boot_to_wall_ns);
  put_str(out, h.host);
  put_str(out, h.kernel);
  put_str(out, h.clearcap_version);
  end_skippable(out, at);
}

void append_batch_frame(const BatchInfo& b, std::vector<uint8_t>& out) {
  size_t at;
  begin_skippable(out, kBatchMagic, &at);
  put<uint32_t>(out, b.records);
  put<uint32_t>(out, b.compressed_bytes);
  put<uint64_t>(out, b.uncompressed_bytes);
  put<int64_t>(out, b.boot_to_wall_ns);
  put<uint64_t>(out, b.first_boot_ns);
  put<uint64_t>(out, b.last_boot_ns);
  end_skippable(out, at);
}

namespace {
// RFC 8878: a block holds at most 128 KiB; a frame of one segment needs no
// window descriptor.
constexpr size_t kZstdMaxBlock = 128 * 1024;
constexpr size_t kStoredFrameHeader = 4 + 1 + 8;  // magic, descriptor, 8-byte content size
}  // namespace

size_t stored_zstd_frame_size(size_t n) {
  const size_t blocks = n == 0 ? 1 : (n + kZstdMaxBlock - 1) / kZstdMaxBlock;
  return kStoredFrameHeader + blocks * 3 + n;
}

void append_stored_zstd_frame(std::span<const uint8_t> data, std::vector<uint8_t>& out) {
  put<uint32_t>(out, kZstdMagic);
  // Frame_Header_Descriptor: 8-byte Frame_Content_Size (0b11 << 6), Single_Segment (1 << 5), no checksum, no dictionary.
  out.push_back(0xE0);
  put<uint64_t>(out, data.size());
  size_t at = 0;
  do {
    const size_t n = std::min(kZstdMaxBlock, data.size() - at);
    const bool last = at + n == data.size();
    // Block_Header (3 bytes LE): Last_Block, Block_Type 0 (Raw_Block), Block_Size.
    const uint32_t bh = static_cast<uint32_t>(n << 3) | (last ? 1u : 0u);
    out.push_back(static_cast<uint8_t>(bh));
    out.push_back(static_cast<uint8_t>(bh >> 8));
    out.push_back(static_cast<uint8_t>(bh >> 16));
    out.insert(out.end(), data.begin() + static_cast<std::ptrdiff_t>(at),
               data.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  } while (at < data.size());
}

Result<Header> parse_header(std::span<const uint8_t> payload) {
  if (payload.size() < sizeof(kHeaderTag) || std::memcmp(payload.data(), kHeaderTag, sizeof(kHeaderTag)) != 0)
    return make_error("not a clearcap capture file (header tag missing)", EINVAL);
  Cursor c(payload.subspan(sizeof(kHeaderTag)));
  Header h;
  uint32_t flags;
  if (!c.get(&h.format_version) || !c.get(&h.abi_version) || !c.get(&flags) || !c.get(&h.start_wall_ns) ||
      !c.get(&h.boot_to_wall_ns) || !c.get_str(&h.host) || !c.get_str(&h.kernel) || !c.get_str(&h.clearcap_version))
    return make_error("capture file header is cut short", EINVAL);
  if (h.format_version != kFormatVersion)
    return make_error(fmt::format("capture file format version {} is not supported (this clearcap reads version {}); "
                                  "use the clearcap that wrote it",
                                  h.format_version, kFormatVersion),
                      ENOTSUP);
  if (h.abi_version != CC_ABI_VERSION)
    return make_error(fmt::format("capture file records use ABI version {} (this clearcap decodes version {})",
                                  h.abi_version, CC_ABI_VERSION),
                      ENOTSUP);
  return h;
}

Result<BatchInfo> parse_batch_info(std::span<const uint8_t> payload) {
  if (payload.size() != kBatchInfoSize)
    return make_error(fmt::format("batch descriptor has {} bytes, expected {}", payload.size(), kBatchInfoSize),
                      EINVAL);
  Cursor c(payload);
  BatchInfo b;
  c.get(&b.records);
  c.get(&b.compressed_bytes);
  c.get(&b.uncompressed_bytes);
  c.get(&b.boot_to_wall_ns);
  c.get(&b.first_boot_ns);
  c.get(&b.last_boot_ns);
  if (b.uncompressed_bytes > kMaxBatchBytes || b.compressed_bytes > kMaxBatchBytes + (kMaxBatchBytes >> 7) + 1024)
    return make_error(fmt::format("batch descriptor claims {} bytes ({} compressed), more than any writer produces",
                                  b.uncompressed_bytes, b.compressed_bytes),
                      EINVAL);
  return b;
}

Header local_header(int64_t boot_to_wall_ns, const std::string& clearcap_version) {
  Header h;
  h.abi_version = CC_ABI_VERSION;
  h.start_wall_ns = BootClock::now_wall_ns();
  h.boot_to_wall_ns = boot_to_wall_ns;
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) h.host = host;
  utsname u{};
  if (uname(&u) == 0) h.kernel = u.release;
  h.clearcap_version = clearcap_version;
  return h;
}

}  // namespace clearcap::capfile
