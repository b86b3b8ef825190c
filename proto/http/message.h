// One HTTP message (request or response, HTTP/1.x or HTTP/2) as the
// protocol layer understood it from a connection's reassembled streams:
// what the outputs render and what pairing matches. Value type.
// Thread: one owner at a time (built on the processor thread, read by the
// encoders during the sink call that carries it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/http/body_decoder.h"

namespace clearcap::http {

// What a parser says about the bytes it was given (partial input is normal).
enum class ParseState : uint8_t {
  kSuccess,        // one or more messages completed (see the parser's output)
  kNeedsMoreData,  // all input consumed, a message is still in progress (or none started)
  kInvalid,        // not this protocol (or broken): the parser searches for the next message start
  kIgnored,        // bytes this parser deliberately does not parse (after an upgrade)
};

enum class Version : uint8_t { kHttp10, kHttp11, kHttp2 };
enum class Kind : uint8_t { kRequest, kResponse };

std::string_view version_name(Version v);  // "HTTP/1.0", "HTTP/1.1", "HTTP/2"

struct Message {
  Version version = Version::kHttp11;
  Kind kind = Kind::kRequest;
  // Request: method and request target ("path" for origin-form; the whole
  // target otherwise). HTTP/2: from :method, :path, :authority, :scheme.
  std::string method, path, authority, scheme;
  // Response: status code and (HTTP/1) reason phrase.
  int status = 0;
  std::string reason;
  uint32_t stream_id = 0;  // HTTP/2; 0 on HTTP/1
  // In wire order, names as sent (HTTP/2: lower case, pseudo-headers
  // included; HTTP/1 trailers of a chunked body appended after the headers).
  std::vector<std::pair<std::string, std::string>> headers;
  // HTTP/2 picked up mid-connection: the header block needed HPACK table
  // entries sent before capture started; `headers` is empty, never guessed.
  bool headers_unknown = false;
  // The body as transferred (transfer coding removed, content coding kept),
  // at most the layer's body limit; body_bytes counts all of it.
  std::string body;
  uint64_t body_bytes = 0;
  bool body_cut = false;       // body holds only the first part of body_bytes
  uint64_t header_bytes = 0;   // start line + headers (HTTP/1) / header block bytes (HTTP/2)
  // Boot-clock ns of the message's first and last byte (the events'
  // ts_ns of the chunks that carried them).
  uint64_t first_ns = 0, last_ns = 0;
  // The message did not end normally: a gap (lost bytes), the connection's
  // end, RST_STREAM, or eviction; what was seen is reported.
  bool incomplete = false;
  // HTTP/1: 101 Switching Protocols or a successful CONNECT: the bytes that
  // follow are not HTTP (WebSocket, a tunnel).
  bool upgrade = false;

  // Set by the stage for display: the body with its Content-Encoding
  // undone (bounded like the body).
  DecodedBody shown;

  // The value of the first header named `name` (case-insensitive), or empty.
  std::string_view header(std::string_view name) const;
};

// A request paired with its response (HTTP/1: in order on the connection;
// HTTP/2: by stream id). Either half may be missing - lost in a gap, given
// up at the pairing bound, or never seen before the connection ended - and
// the exchange is still reported, never silently dropped.
struct Exchange {
  const Message* request = nullptr;
  const Message* response = nullptr;
  // Latency, from the request's last byte to the response's first byte and
  // to its last byte; -1 when a half is missing.
  int64_t wait_ns = -1;
  int64_t total_ns = -1;
};

}  // namespace clearcap::http
