// HTTP messages and exchanges (proto/http/message.h) as people read them:
// the text output, the eCaptureQ payload of a message event, and the
// one-line-per-exchange --http-summary. Shared by the encoders.
// Thread: any (no state).
#pragma once

#include <string>

#include "core/event.h"
#include "proto/http/message.h"

namespace clearcap {

// The body shown for a message: decoded when its Content-Encoding could be
// undone, else the bytes as transferred.
std::string_view display_body(const http::Message& m);
// "decoded", "identity", "cut", "truncated", "error", "unsupported".
std::string_view body_state_name(const http::Message& m);

// A message or exchange event (ev.http / ev.exchange) as text: one of the
// two below.
void render_http_event(const Event& ev, bool hex, std::string& out);

// Start line, headers, blank line, the body when it is text (else a note
// with its size; `hex`: a hexdump -C dump of it).
void render_message(const http::Message& m, bool hex, std::string& out);

// "GET example.com /path -> 200 (wait 1.234 ms, total 2.345 ms, request
// 0+12 B, response 345+6789 B)", with the missing half named.
void render_exchange(const http::Exchange& x, std::string& out);

}  // namespace clearcap
