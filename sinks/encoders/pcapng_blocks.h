// pcapng block writers (draft-ietf-opsawg-pcapng), shared by `clearcap
// export` (synthesized TCP) and `-m pcap` (captured packets with keys).
// Every function appends one complete block (or option) to `out`, in host
// byte order as the Section Header's byte-order magic declares. Options and
// bodies are padded to 4 bytes; block total lengths are written at both ends.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace clearcap::pcapng {

constexpr uint32_t kSectionHeader = 0x0A0D0D0A;
constexpr uint32_t kInterfaceDescription = 0x00000001;
constexpr uint32_t kEnhancedPacket = 0x00000006;
constexpr uint32_t kDecryptionSecrets = 0x0000000A;
constexpr uint32_t kSecretsTls = 0x544c534b;  // 'TLSK': NSS key log lines

constexpr uint16_t kLinktypeEthernet = 1;
constexpr uint16_t kLinktypeRaw = 101;  // IPv4 or IPv6 by version nibble

// epb_flags direction bits (pcapng EPB flags word, bits 0-1).
constexpr uint32_t kEpbInbound = 1;
constexpr uint32_t kEpbOutbound = 2;

// One option (code, length, value, padding).
void put_option(std::string& out, uint16_t code, std::string_view value);
// Section Header Block with shb_userappl.
void put_shb(std::string& out, std::string_view userappl);
// Interface Description Block: if_name (when not empty) and if_tsresol 10^-9.
void put_idb(std::string& out, uint16_t linktype, uint32_t snaplen, std::string_view if_name);
// Enhanced Packet Block, timestamp in ns (the IDB's if_tsresol 9); comment
// (opt_comment) and epb_flags are written when non-empty / non-zero.
void put_epb(std::string& out, uint32_t interface_id, uint64_t ts_ns, std::span<const uint8_t> data,
             uint32_t orig_len, std::string_view comment = {}, uint32_t epb_flags = 0);
// Decryption Secrets Block: secrets type, length, data padded to 4, no options.
void put_dsb(std::string& out, uint32_t secrets_type, std::string_view secrets);

}  // namespace clearcap::pcapng
