// JSON string escaping for the cold paths (API responses, /status, HAR).
// The per-event encoders in sinks/ have their own vectorised escaper.
// Header-only: used from core/, sinks/ and tools/ alike.
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

namespace clearcap {

// Appends `s` escaped for use inside a JSON string (no quotes added).
inline void append_json_escaped(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out.push_back(static_cast<char>(c));
    }
  }
}

// `s` escaped for use inside a JSON string (no quotes added).
inline std::string json_escape(std::string_view s) {
  std::string out;
  append_json_escaped(out, s);
  return out;
}

}  // namespace clearcap
