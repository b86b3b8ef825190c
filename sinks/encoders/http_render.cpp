#include "sinks/encoders/http_render.h"

#include <fmt/format.h>

#include "sinks/encoders/format_util.h"

namespace clearcap {

namespace {

std::string ms(int64_t ns) { return fmt::format("{:.3f} ms", double(ns) / 1e6); }

}  // namespace

std::string_view display_body(const http::Message& m) {
  using S = http::DecodedBody::Status;
  switch (m.shown.status) {
    case S::kDecoded:
    case S::kCut:
      return m.shown.text;
    case S::kIdentity:  // not decoded (no Content-Encoding): the bytes themselves
    case S::kTruncated:
    case S::kError:
      return m.shown.text.empty() ? std::string_view(m.body) : std::string_view(m.shown.text);
    case S::kUnsupported:
      return m.body;
  }
  return m.body;
}

std::string_view body_state_name(const http::Message& m) {
  using S = http::DecodedBody::Status;
  switch (m.shown.status) {
    case S::kIdentity: return "identity";
    case S::kDecoded: return "decoded";
    case S::kCut: return "cut";
    case S::kTruncated: return "truncated";
    case S::kError: return "error";
    case S::kUnsupported: return "unsupported";
  }
  return "identity";
}

void render_http_event(const Event& ev, bool hex, std::string& out) {
  if (ev.http) render_message(*ev.http, hex, out);
  else if (ev.exchange) render_exchange(*ev.exchange, out);
}

void render_message(const http::Message& m, bool hex, std::string& out) {
  LineWriter w(out);
  const bool h2 = m.version == http::Version::kHttp2;
  if (m.kind == http::Kind::kRequest) {
    w.put(m.method.empty() ? "?" : "");
    append_sanitized(w, m.method);
    w.put(' ');
    if (h2 && !m.authority.empty()) {
      append_sanitized(w, m.scheme.empty() ? "https" : m.scheme);
      w.put("://");
      append_sanitized(w, m.authority);
    }
    append_sanitized(w, m.path);
    w.put(' ');
    w.put(http::version_name(m.version));
  } else {
    w.put(http::version_name(m.version));
    w.put(fmt::format(" {}", m.status));
    if (!m.reason.empty()) {
      w.put(' ');
      append_sanitized(w, m.reason);
    }
  }
  if (h2) w.put(fmt::format(" (stream {})", m.stream_id));
  if (m.incomplete) w.put(" (incomplete)");
  w.put('\n');
  if (m.headers_unknown) w.put("(headers not decodable: HPACK state from before capture started)\n");
  for (const auto& [n, v] : m.headers) {
    if (h2 && n.starts_with(':')) continue;  // shown in the start line
    append_sanitized(w, n);
    w.put(": ");
    append_sanitized(w, v);
    w.put('\n');
  }
  w.put('\n');
  if (m.body_bytes > 0) {
    const std::string_view body = display_body(m);
    const std::string_view enc = m.header("content-encoding");
    if (!enc.empty()) {
      w.put(fmt::format("[body: {} bytes, Content-Encoding ", m.body_bytes));
      append_sanitized(w, enc);
      w.put(fmt::format(" {}]\n", body_state_name(m)));
    }
    if (hex) {
      append_hex_dump(w, {reinterpret_cast<const uint8_t*>(body.data()), body.size()});
    } else if (is_printable_text(body)) {
      w.put(body);
      if (!body.empty() && body.back() != '\n') w.put('\n');
    } else {
      w.put(fmt::format("[binary body: {} bytes shown in hex with --hex]\n", body.size()));
    }
    if (m.body_cut || m.shown.status == http::DecodedBody::Status::kCut)
      w.put(fmt::format("[body cut: {} bytes kept of {} (--http-body-max)]\n", m.body.size(), m.body_bytes));
  }
  w.finish();
}

void render_exchange(const http::Exchange& x, std::string& out) {
  LineWriter w(out);
  const http::Message* rq = x.request;
  const http::Message* rs = x.response;
  if (rq) {
    append_sanitized(w, rq->method);
    w.put(' ');
    append_sanitized(w, rq->authority.empty() ? std::string_view("-") : std::string_view(rq->authority));
    w.put(' ');
    append_sanitized(w, rq->path);
  } else {
    w.put("(request not seen)");
  }
  w.put(" -> ");
  w.put(rs ? fmt::format("{}", rs->status) : std::string("(no response)"));
  const http::Message* any = rq ? rq : rs;
  w.put(fmt::format(" {}", http::version_name(any->version)));
  if (any->version == http::Version::kHttp2) w.put(fmt::format(" stream {}", any->stream_id));
  if (x.wait_ns >= 0) w.put(fmt::format(" wait {} total {}", ms(x.wait_ns), ms(x.total_ns)));
  w.put(fmt::format(" request {}+{} B", rq ? rq->header_bytes : 0, rq ? rq->body_bytes : 0));
  w.put(fmt::format(" response {}+{} B", rs ? rs->header_bytes : 0, rs ? rs->body_bytes : 0));
  if ((rq && rq->incomplete) || (rs && rs->incomplete)) w.put(" (incomplete)");
  w.finish();
}

}  // namespace clearcap
