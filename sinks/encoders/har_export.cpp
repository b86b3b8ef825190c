// HAR export: HTTP/1.x requests and responses reassembled from the captured
// streams, parsed with the http-parser library (Debian libhttp-parser-dev),
// paired in order on each connection, written as HAR 1.2.
//
// Reassembly: chunks of one connection and direction arrive in `seq` order
// (one thread's calls, merged by time); a chunk that starts past the
// expected offset is a capture gap: the message in progress is abandoned and
// counted, the parser restarts. Overlapping bytes (seen twice) are skipped.
// As in the pcapng export, one process owns a 4-tuple; the other end's
// events are left out (they would duplicate every entry).
#include <http_parser.h>
#include <sys/socket.h>

#include <cstring>
#include <deque>
#include <map>

#include <fmt/format.h>

#include "core/json_text.h"
#include "sinks/encoders/format_util.h"
#include "sinks/encoders/pcapng_export.h"

namespace clearcap {

namespace {

void json_str(std::string& out, std::string_view s) {
  out.push_back('"');
  append_json_escaped(out, s);
  out.push_back('"');
}

void base64(std::string& out, std::string_view in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) | uint8_t(in[i + 2]);
    out += t[v >> 18], out += t[(v >> 12) & 63], out += t[(v >> 6) & 63], out += t[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (i + 1 < in.size()) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += t[v >> 18], out += t[(v >> 12) & 63];
    out += i + 1 < in.size() ? t[(v >> 6) & 63] : '=';
    out += '=';
  }
}

std::string iso_time(uint64_t ns) {
  time_t s = static_cast<time_t>(ns / 1'000'000'000);
  tm t{};
  gmtime_r(&s, &t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                     t.tm_hour, t.tm_min, t.tm_sec, (ns / 1'000'000) % 1000);
}

struct Message {
  bool request = false;
  std::string method, url, status_text;
  int status = 0;
  int major = 1, minor = 1;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  uint64_t start_ns = 0, end_ns = 0;
  uint64_t header_bytes = 0;
};

struct Conn;

struct Dir {
  http_parser parser{};
  Conn* conn = nullptr;
  uint64_t expected = 0;
  bool started = false;
  bool failed = false;  // parser error: ignore this direction until a gap resets it
  bool in_value = false;
  uint64_t now_ns = 0;
  Message msg;
};

struct Conn {
  uint32_t pid = 0;
  uint64_t conn_id = 0;
  std::string server;  // "ip:port" of the server end, for the URL's host when no Host header
  Dir dirs[2];
  std::deque<Message> requests;
  class HarExporter* owner = nullptr;
};

class HarExporter : public Exporter {
 public:
  HarExporter(std::unique_ptr<OutFile> out, std::string version) : out_(std::move(out)), version_(std::move(version)) {
    http_parser_settings_init(&settings_);
    settings_.on_message_begin = [](http_parser* p) {
      Dir* d = static_cast<Dir*>(p->data);
      d->msg = Message{};
      d->msg.start_ns = d->now_ns;
      d->in_value = false;
      return 0;
    };
    settings_.on_url = [](http_parser* p, const char* at, size_t n) {
      static_cast<Dir*>(p->data)->msg.url.append(at, n);
      return 0;
    };
    settings_.on_status = [](http_parser* p, const char* at, size_t n) {
      static_cast<Dir*>(p->data)->msg.status_text.append(at, n);
      return 0;
    };
    settings_.on_header_field = [](http_parser* p, const char* at, size_t n) {
      Dir* d = static_cast<Dir*>(p->data);
      if (d->in_value || d->msg.headers.empty()) d->msg.headers.emplace_back();
      d->in_value = false;
      d->msg.headers.back().first.append(at, n);
      return 0;
    };
    settings_.on_header_value = [](http_parser* p, const char* at, size_t n) {
      Dir* d = static_cast<Dir*>(p->data);
      if (d->msg.headers.empty()) d->msg.headers.emplace_back();
      d->in_value = true;
      d->msg.headers.back().second.append(at, n);
      return 0;
    };
    settings_.on_headers_complete = [](http_parser* p) {
      Dir* d = static_cast<Dir*>(p->data);
      d->msg.request = p->type == HTTP_REQUEST;
      d->msg.method = http_method_str(static_cast<http_method>(p->method));
      d->msg.status = p->status_code;
      d->msg.major = p->http_major;
      d->msg.minor = p->http_minor;
      d->msg.header_bytes = p->nread;
      // A response to HEAD has no body whatever its headers say.
      if (!d->msg.request && !d->conn->requests.empty() && d->conn->requests.front().method == "HEAD") return 1;
      return 0;
    };
    settings_.on_body = [](http_parser* p, const char* at, size_t n) {
      static_cast<Dir*>(p->data)->msg.body.append(at, n);
      return 0;
    };
    settings_.on_message_complete = [](http_parser* p) {
      Dir* d = static_cast<Dir*>(p->data);
      d->msg.end_ns = d->now_ns;
      d->msg.request = p->type == HTTP_REQUEST || (p->type == HTTP_BOTH && d->msg.status == 0);
      d->conn->owner->complete(*d->conn, std::move(d->msg));
      return 0;
    };
  }

  Result<void> write(const Event& ev) override {
    std::string key;
    if (ev.has_tuple()) {
      const uint8_t *a = ev.saddr, *b = ev.daddr;
      uint16_t pa = ev.sport, pb = ev.dport;
      if (std::memcmp(a, b, 16) > 0 || (std::memcmp(a, b, 16) == 0 && pa > pb)) std::swap(a, b), std::swap(pa, pb);
      key.append(reinterpret_cast<const char*>(a), 16).append(reinterpret_cast<const char*>(&pa), 2);
      key.append(reinterpret_cast<const char*>(b), 16).append(reinterpret_cast<const char*>(&pb), 2);
    } else {
      key = fmt::format("pid{}conn{}", ev.pid, ev.conn_id);
    }
    auto it = conns_.find(key);
    if (it == conns_.end()) {
      auto c = std::make_unique<Conn>();
      c->pid = ev.pid;
      c->conn_id = ev.conn_id;
      c->owner = this;
      if (ev.has_tuple()) {
        // The server is the end with the lower port (as in the pcapng export).
        const bool src_server = ev.sport < ev.dport;
        IpText ip(addr_family(ev), src_server ? ev.saddr : ev.daddr);
        c->server = ev.family == AF_INET6 ? fmt::format("[{}]:{}", ip.view(), src_server ? ev.sport : ev.dport)
                                        : fmt::format("{}:{}", ip.view(), src_server ? ev.sport : ev.dport);
      }
      for (Dir& d : c->dirs) {
        d.conn = c.get();
        http_parser_init(&d.parser, HTTP_BOTH);
        d.parser.data = &d;
      }
      it = conns_.emplace(key, std::move(c)).first;
    }
    Conn& c = *it->second;
    if (c.pid != ev.pid || c.conn_id != ev.conn_id) return {};  // the other end of a connection we have
    Dir& d = c.dirs[ev.direction == Direction::kRead ? 1 : 0];
    auto data = as_chars(ev.payload);
    if (d.started && ev.seq < d.expected) {  // bytes seen already
      const uint64_t skip = d.expected - ev.seq;
      if (skip >= data.size()) return {};
      data.remove_prefix(skip);
    } else if (d.started && ev.seq > d.expected) {
      gaps_++;
      if (d.parser.nread > 0 || !d.msg.headers.empty()) abandoned_++;
      http_parser_init(&d.parser, HTTP_BOTH);
      d.parser.data = &d;
      d.failed = false;
    }
    d.started = true;
    d.expected = std::max(d.expected, ev.seq + ev.payload.size());
    if (d.failed) return {};
    d.now_ns = ev.wall_ns;
    size_t n = http_parser_execute(&d.parser, &settings_, data.data(), data.size());
    if (n != data.size() && HTTP_PARSER_ERRNO(&d.parser) != HPE_OK) {
      not_http_++;
      d.failed = true;
    }
    return {};
  }

  void complete(Conn& c, Message m) {
    if (m.request) {
      c.requests.push_back(std::move(m));
      return;
    }
    if (c.requests.empty()) {
      orphan_responses_++;
      return;
    }
    Message req = std::move(c.requests.front());
    c.requests.pop_front();
    entry(c, req, &m);
  }

  Result<void> finish() override {
    for (auto& [k, c] : conns_) {
      // An HTTP/1.0 or close-delimited response ends with the stream.
      for (Dir& d : c->dirs)
        if (!d.failed && d.started) http_parser_execute(&d.parser, &settings_, nullptr, 0);
      while (!c->requests.empty()) {
        entry(*c, c->requests.front(), nullptr);
        c->requests.pop_front();
      }
    }
    std::string doc = "{\"log\":{\"version\":\"1.2\",\"creator\":{\"name\":\"clearcap\",\"version\":";
    json_str(doc, version_);
    doc += "},\"entries\":[";
    doc += entries_;
    doc += "]}}\n";
    if (auto r = out_->append(doc); !r) return r;
    return out_->close();
  }

  std::vector<std::string> notes() const override {
    std::vector<std::string> n{fmt::format("har: {} entries", count_)};
    if (gaps_ || abandoned_)
      n.push_back(fmt::format("har: {} stream gaps; {} HTTP messages cut by them left out", gaps_, abandoned_));
    if (not_http_) n.push_back(fmt::format("har: {} streams are not HTTP/1.x and were left out", not_http_));
    if (orphan_responses_) n.push_back(fmt::format("har: {} responses without their request left out", orphan_responses_));
    return n;
  }

 private:
  void headers(std::string& o, const Message& m) {
    o += "\"headers\":[";
    bool first = true;
    for (const auto& [k, v] : m.headers) {
      if (!first) o += ',';
      first = false;
      o += "{\"name\":";
      json_str(o, k);
      o += ",\"value\":";
      json_str(o, v);
      o += '}';
    }
    o += "]";
  }

  static std::string header(const Message& m, std::string_view name) {
    for (const auto& [k, v] : m.headers)
      if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
    return {};
  }

  void content(std::string& o, const Message& m) {
    std::string mime = header(m, "Content-Type");
    o += "\"content\":{\"size\":" + std::to_string(m.body.size()) + ",\"mimeType\":";
    json_str(o, mime);
    if (is_valid_utf8(m.body)) {
      o += ",\"text\":";
      json_str(o, m.body);
    } else {
      o += ",\"encoding\":\"base64\",\"text\":\"";
      base64(o, m.body);
      o += '"';
    }
    o += '}';
  }

  void entry(const Conn& c, const Message& req, const Message* resp) {
    std::string& o = entries_;
    if (count_++) o += ',';
    std::string url = req.url;
    if (!url.empty() && url[0] == '/') {
      std::string host = header(req, "Host");
      url = "https://" + (host.empty() ? c.server : host) + url;
    }
    const double ms = 1e-6;
    const uint64_t req_end = req.end_ns ? req.end_ns : req.start_ns;
    double send = static_cast<double>(req_end - req.start_ns) * ms;
    double wait = resp && resp->start_ns >= req_end ? static_cast<double>(resp->start_ns - req_end) * ms : 0;
    double receive = resp && resp->end_ns >= resp->start_ns ? static_cast<double>(resp->end_ns - resp->start_ns) * ms : 0;
    o += "{\"startedDateTime\":\"" + iso_time(req.start_ns) + "\"";
    o += fmt::format(",\"time\":{:.3f}", send + wait + receive);
    o += ",\"request\":{\"method\":";
    json_str(o, req.method);
    o += ",\"url\":";
    json_str(o, url);
    o += fmt::format(",\"httpVersion\":\"HTTP/{}.{}\",\"cookies\":[],", req.major, req.minor);
    headers(o, req);
    o += ",\"queryString\":[]";
    if (!req.body.empty()) {
      o += ",\"postData\":{\"mimeType\":";
      json_str(o, header(req, "Content-Type"));
      o += ",\"text\":";
      json_str(o, is_valid_utf8(req.body) ? req.body : std::string("(binary body omitted)"));
      o += '}';
    }
    o += fmt::format(",\"headersSize\":{},\"bodySize\":{}}}", req.header_bytes, req.body.size());
    o += ",\"response\":{";
    if (resp) {
      o += fmt::format("\"status\":{},\"statusText\":", resp->status);
      json_str(o, resp->status_text);
      o += fmt::format(",\"httpVersion\":\"HTTP/{}.{}\",\"cookies\":[],", resp->major, resp->minor);
      headers(o, *resp);
      o += ',';
      content(o, *resp);
      o += ",\"redirectURL\":";
      json_str(o, header(*resp, "Location"));
      o += fmt::format(",\"headersSize\":{},\"bodySize\":{}}}", resp->header_bytes, resp->body.size());
    } else {
      o += "\"status\":0,\"statusText\":\"no response captured\",\"httpVersion\":\"\",\"cookies\":[],\"headers\":[],"
           "\"content\":{\"size\":0,\"mimeType\":\"\"},\"redirectURL\":\"\",\"headersSize\":-1,\"bodySize\":-1}";
    }
    o += ",\"cache\":{}";
    o += fmt::format(",\"timings\":{{\"send\":{:.3f},\"wait\":{:.3f},\"receive\":{:.3f}}}", send, wait, receive);
    o += fmt::format(",\"comment\":\"pid={} conn_id={}\"}}", c.pid, c.conn_id);
  }

  std::unique_ptr<OutFile> out_;
  std::string version_;
  http_parser_settings settings_{};
  std::map<std::string, std::unique_ptr<Conn>> conns_;
  std::string entries_;
  uint64_t count_ = 0, gaps_ = 0, abandoned_ = 0, not_http_ = 0, orphan_responses_ = 0;
};

}  // namespace

std::unique_ptr<Exporter> make_har_exporter(std::unique_ptr<OutFile> out, const std::string& version) {
  return std::make_unique<HarExporter>(std::move(out), version);
}

}  // namespace clearcap
