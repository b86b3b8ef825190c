#include "proto/tls13_kdf.h"

#include <cstring>

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace clearcap {

bool tls13_expand_label(std::span<const uint8_t> secret, std::string_view label, std::span<const uint8_t> context,
                        std::span<uint8_t> out) {
  const EVP_MD* md = secret.size() == 32 ? EVP_sha256() : secret.size() == 48 ? EVP_sha384() : nullptr;
  if (!md || out.size() > secret.size() || context.size() > 255 || label.size() > 249) return false;
  // HkdfLabel = uint16 length, opaque label<7..255> = "tls13 " + label,
  // opaque context<0..255>; one HMAC block is enough for L <= hash length.
  uint8_t info[2 + 1 + 255 + 1 + 255 + 1];
  size_t n = 0;
  info[n++] = static_cast<uint8_t>(out.size() >> 8);
  info[n++] = static_cast<uint8_t>(out.size());
  info[n++] = static_cast<uint8_t>(6 + label.size());
  std::memcpy(info + n, "tls13 ", 6);
  n += 6;
  std::memcpy(info + n, label.data(), label.size());
  n += label.size();
  info[n++] = static_cast<uint8_t>(context.size());
  if (!context.empty()) std::memcpy(info + n, context.data(), context.size());
  n += context.size();
  info[n++] = 1;  // HKDF-Expand counter T(1)
  uint8_t mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (!HMAC(md, secret.data(), static_cast<int>(secret.size()), info, n, mac, &mac_len)) return false;
  std::memcpy(out.data(), mac, out.size());
  return true;
}

}  // namespace clearcap
