// The clearcap capture file (.ccap): constants and the header, shared by the
// writer (CaptureFileSink) and the reader (CaptureReader).
// Byte layout: docs/capture-format.md. Every frame is a zstd frame (data) or a
// zstd skippable frame (metadata), so the whole file is valid zstd.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"

namespace clearcap::capfile {

inline constexpr uint16_t kFormatVersion = 1;

// zstd skippable frames: magic 0x184D2A5? + u32 LE size + payload. We use
// three of the sixteen magics so that a reader can tell metadata apart
// without parsing the payload.
inline constexpr uint32_t kHeaderMagic = 0x184D2A50;  // file header, first frame
inline constexpr uint32_t kBatchMagic = 0x184D2A51;   // describes the zstd frame that follows
inline constexpr uint32_t kZstdMagic = 0xFD2FB528;    // an ordinary zstd frame

// First 8 bytes of the header payload.
inline constexpr char kHeaderTag[8] = {'C', 'L', 'R', 'C', 'A', 'P', '0', '1'};

// Upper bounds a reader enforces before allocating: a header or batch
// descriptor larger than this, or a batch that claims more, is corrupt.
inline constexpr uint32_t kMaxHeaderPayload = 64 * 1024;
inline constexpr uint64_t kMaxBatchBytes = 256ull * 1024 * 1024;

struct Header {
  uint16_t format_version = kFormatVersion;
  uint16_t abi_version = 0;       // CC_ABI_VERSION of the writer
  uint64_t start_wall_ns = 0;     // capture start, Unix epoch ns
  int64_t boot_to_wall_ns = 0;    // wall = boot + this, at capture start
  std::string host;
  std::string kernel;             // uname -r
  std::string clearcap_version;
};

// Descriptor of one batch (payload of a kBatchMagic frame, fixed 40 bytes).
// It precedes its zstd frame so a reader knows the frame's exact size (and
// can skip a corrupt frame and continue) and the clock offset in effect for
// every record of the batch (it can drift, NTP; a new batch starts when it
// changes).
struct BatchInfo {
  uint32_t records = 0;
  uint32_t compressed_bytes = 0;    // size of the zstd frame that follows
  uint64_t uncompressed_bytes = 0;  // its content size
  int64_t boot_to_wall_ns = 0;
  uint64_t first_boot_ns = 0;
  uint64_t last_boot_ns = 0;
};
inline constexpr uint32_t kBatchInfoSize = 40;

// Inside a batch: per record, u32 LE length then the record bytes exactly as
// the kernel wrote them (struct cc_data_event + payload).
inline constexpr size_t kRecordPrefix = 4;

// Appends the whole skippable frame (magic, size, payload).
void append_header_frame(const Header& h, std::vector<uint8_t>& out);
void append_batch_frame(const BatchInfo& b, std::vector<uint8_t>& out);
// Appends `data` as a zstd frame of raw (stored) blocks: valid zstd that
// any decoder reads, made at the cost of a copy. The writer's last resort
// when compression falls behind the capture.
void append_stored_zstd_frame(std::span<const uint8_t> data, std::vector<uint8_t>& out);
// Its size for `n` bytes of content.
size_t stored_zstd_frame_size(size_t n);
// Parse the payload (without magic and size).
Result<Header> parse_header(std::span<const uint8_t> payload);
Result<BatchInfo> parse_batch_info(std::span<const uint8_t> payload);

// The header of a capture starting now on this machine.
Header local_header(int64_t boot_to_wall_ns, const std::string& clearcap_version);

}  // namespace clearcap::capfile
