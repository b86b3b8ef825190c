#include "proto/http/message.h"

#include <strings.h>

namespace clearcap::http {

std::string_view version_name(Version v) {
  switch (v) {
    case Version::kHttp10: return "HTTP/1.0";
    case Version::kHttp11: return "HTTP/1.1";
    case Version::kHttp2: return "HTTP/2";
  }
  return "HTTP";
}

std::string_view Message::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (n.size() == name.size() && strncasecmp(n.data(), name.data(), n.size()) == 0) return v;
  return {};
}

}  // namespace clearcap::http
