#include "sinks/encoders/pcapng_blocks.h"

namespace clearcap::pcapng {

namespace {

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
size_t padded(size_t n) { return (n + 3) & ~size_t{3}; }
void pad4(std::string& out, size_t n) { out.append(padded(n) - n, '\0'); }

// Wraps `body` (already 4-byte padded) as a block.
void put_block(std::string& out, uint32_t type, std::string_view body) {
  const uint32_t total = static_cast<uint32_t>(12 + body.size());
  put(out, type);
  put(out, total);
  out.append(body);
  put(out, total);
}

}  // namespace

void put_option(std::string& out, uint16_t code, std::string_view value) {
  put<uint16_t>(out, code);
  put<uint16_t>(out, static_cast<uint16_t>(value.size()));
  out.append(value);
  pad4(out, value.size());
}

void put_shb(std::string& out, std::string_view userappl) {
  std::string body;
  put<uint32_t>(body, 0x1A2B3C4D);  // byte-order magic
  put<uint16_t>(body, 1);           // version 1.0
  put<uint16_t>(body, 0);
  put<int64_t>(body, -1);           // section length: not given
  put_option(body, 4, userappl);    // shb_userappl
  put<uint32_t>(body, 0);           // opt_endofopt
  put_block(out, kSectionHeader, body);
}

void put_idb(std::string& out, uint16_t linktype, uint32_t snaplen, std::string_view if_name) {
  std::string body;
  put<uint16_t>(body, linktype);
  put<uint16_t>(body, 0);
  put<uint32_t>(body, snaplen);
  if (!if_name.empty()) put_option(body, 2, if_name);  // if_name
  put_option(body, 9, std::string_view("\x09", 1));    // if_tsresol: 10^-9 s
  put<uint32_t>(body, 0);
  put_block(out, kInterfaceDescription, body);
}

// Written in place (no body copy): it runs once per packet.
void put_epb(std::string& out, uint32_t interface_id, uint64_t ts_ns, std::span<const uint8_t> data,
             uint32_t orig_len, std::string_view comment, uint32_t epb_flags) {
  size_t opts = 0;
  if (!comment.empty()) opts += 4 + padded(comment.size());
  if (epb_flags) opts += 8;
  if (opts) opts += 4;  // opt_endofopt
  const uint32_t total = static_cast<uint32_t>(12 + 20 + padded(data.size()) + opts);
  put(out, kEnhancedPacket);
  put(out, total);
  put<uint32_t>(out, interface_id);
  put<uint32_t>(out, static_cast<uint32_t>(ts_ns >> 32));
  put<uint32_t>(out, static_cast<uint32_t>(ts_ns));
  put<uint32_t>(out, static_cast<uint32_t>(data.size()));
  put<uint32_t>(out, orig_len);
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  pad4(out, data.size());
  if (!comment.empty()) put_option(out, 1, comment);  // opt_comment
  if (epb_flags) {
    put<uint16_t>(out, 2);  // epb_flags
    put<uint16_t>(out, 4);
    put<uint32_t>(out, epb_flags);
  }
  if (opts) put<uint32_t>(out, 0);
  put(out, total);
}

void put_dsb(std::string& out, uint32_t secrets_type, std::string_view secrets) {
  const uint32_t total = static_cast<uint32_t>(12 + 8 + padded(secrets.size()));
  put(out, kDecryptionSecrets);
  put(out, total);
  put<uint32_t>(out, secrets_type);
  put<uint32_t>(out, static_cast<uint32_t>(secrets.size()));
  out.append(secrets);
  pad4(out, secrets.size());
  put(out, total);
}

}  // namespace clearcap::pcapng
