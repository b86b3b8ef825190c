// TLS 1.3 key schedule step used to derive handshake traffic secrets that a
// library does not keep. A pure function (value type room: sinks use it too).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace clearcap {

// HKDF-Expand-Label of TLS 1.3 (RFC 8446 7.1) with the hash chosen by the
// secret's length (32: SHA-256, 48: SHA-384). Returns false when the length
// is not one of these or out is longer than the secret.
bool tls13_expand_label(std::span<const uint8_t> secret, std::string_view label, std::span<const uint8_t> context,
                        std::span<uint8_t> out);

}  // namespace clearcap
