#include "sinks/encoders/http_render.h"

#include <fmt/format.h>

#include "sinks/encoders/format_util.h"

namespace clearcap {

namespace {

bool printable(std::string_view s) {
  if (!is_valid_utf8(s)) return false;
  for (const char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f) return false;
  }
  return true;
}

// Header names and values come from the traced program: no control bytes
// reach a terminal.
void append_clean(std::string& out, std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    out.push_back(c < 0x20 || c == 0x7f ? '?' : ch);
  }
}

std::string ms(int64_t ns) { return fmt::format("{:.3f} ms", double(ns) / 1e6); }

}  // namespace

std::string_view display_body(const http::Message& m) {
  using S = http::DecodedBody::Status;
  switch (m.shown.status) {
    case S::kDecoded:
    case S::kCut:
      return m.shown.text;
    case S::kIdentity:  // not decoded (no Content-Encoding): the bytes themselves
      return m.shown.text.empty() ? std::string_view(m.body) : std::string_view(m.shown.text);
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

void render_message(const http::Message& m, bool hex, std::string& out) {
  const bool h2 = m.version == http::Version::kHttp2;
  if (m.kind == http::Kind::kRequest) {
    out += m.method.empty() ? "?" : "";
    append_clean(out, m.method);
    out += ' ';
    if (h2 && !m.authority.empty()) {
      append_clean(out, m.scheme.empty() ? "https" : m.scheme);
      out += "://";
      append_clean(out, m.authority);
    }
    append_clean(out, m.path);
    out += ' ';
    out += http::version_name(m.version);
  } else {
    out += http::version_name(m.version);
    out += fmt::format(" {}", m.status);
    if (!m.reason.empty()) {
      out += ' ';
      append_clean(out, m.reason);
    }
  }
  if (h2) out += fmt::format(" (stream {})", m.stream_id);
  if (m.incomplete) out += " (incomplete)";
  out += '\n';
  if (m.headers_unknown) out += "(headers not decodable: HPACK state from before capture started)\n";
  for (const auto& [n, v] : m.headers) {
    if (h2 && n.starts_with(':')) continue;  // shown in the start line
    append_clean(out, n);
    out += ": ";
    append_clean(out, v);
    out += '\n';
  }
  out += '\n';
  if (m.body_bytes == 0) return;
  const std::string_view body = display_body(m);
  const std::string_view enc = m.header("content-encoding");
  if (!enc.empty()) {
    out += fmt::format("[body: {} bytes, Content-Encoding ", m.body_bytes);
    append_clean(out, enc);
    out += fmt::format(" {}]\n", body_state_name(m));
  }
  if (!hex && printable(body)) {
    out += body;
    if (!body.empty() && body.back() != '\n') out += '\n';
  } else if (hex) {
    std::string dump;
    LineWriter w(dump);
    append_hex_dump(w, {reinterpret_cast<const uint8_t*>(body.data()), body.size()});
    w.finish();
    out += dump;
  } else {
    out += fmt::format("[binary body: {} bytes shown in hex with --hex]\n", body.size());
  }
  if (m.body_cut || m.shown.status == http::DecodedBody::Status::kCut)
    out += fmt::format("[body cut: {} bytes kept of {} (--http-body-max)]\n", m.body.size(), m.body_bytes);
}

void render_exchange(const http::Exchange& x, std::string& out) {
  const http::Message* rq = x.request;
  const http::Message* rs = x.response;
  if (rq) {
    append_clean(out, rq->method);
    out += ' ';
    append_clean(out, rq->authority.empty() ? std::string_view("-") : std::string_view(rq->authority));
    out += ' ';
    append_clean(out, rq->path);
  } else {
    out += "(request not seen)";
  }
  out += " -> ";
  if (rs) out += fmt::format("{}", rs->status);
  else out += "(no response)";
  const http::Message* any = rq ? rq : rs;
  out += fmt::format(" {}", http::version_name(any->version));
  if (any->version == http::Version::kHttp2) out += fmt::format(" stream {}", any->stream_id);
  if (x.wait_ns >= 0) out += fmt::format(" wait {} total {}", ms(x.wait_ns), ms(x.total_ns));
  out += fmt::format(" request {}+{} B", rq ? rq->header_bytes : 0, rq ? rq->body_bytes : 0);
  out += fmt::format(" response {}+{} B", rs ? rs->header_bytes : 0, rs ? rs->body_bytes : 0);
  if ((rq && rq->incomplete) || (rs && rs->incomplete)) out += " (incomplete)";
}

}  // namespace clearcap
