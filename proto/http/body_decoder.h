// Content-Encoding decoding of HTTP bodies for display: gzip, deflate (zlib
// or raw, as servers send both), br (libbrotli) and zstd (libzstd), each
// from Debian's archive; a list ("gzip, br") is undone right to left.
//
// Bounded: at most `max_out` decoded bytes are produced (a decompression
// bomb stops there, reported as cut), and a truncated or corrupt input
// yields what decoded before the error, reported as such. Never throws.
// Thread: any (no shared state).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace clearcap::http {

struct DecodedBody {
  enum class Status {
    kIdentity,     // no (or "identity") coding: `text` is the input, up to max_out
    kDecoded,      // fully decoded
    kCut,          // decoding stopped at max_out
    kTruncated,    // the input ended before the coded stream did (a body cut by the body limit, or a gap)
    kError,        // corrupt input; `text` holds what decoded before the error
    kUnsupported,  // a coding this build does not know (`text` empty)
  };
  Status status = Status::kIdentity;
  std::string text;
};

// `encoding`: the Content-Encoding header's value as sent (case-insensitive,
// comma-separated, surrounding spaces allowed).
DecodedBody decode_body(std::string_view encoding, std::string_view body, size_t max_out);

}  // namespace clearcap::http
