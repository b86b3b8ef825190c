// HAR export: the exchanges the protocol layer (proto/http/stage.h) pairs
// from the captured streams - HTTP/1.x and HTTP/2 - written as HAR 1.2.
// The same stage as the live outputs does the parsing, pairing and body
// decoding; this file only lays the exchanges out as HAR entries.
//
// As in the pcapng export, one process owns a 4-tuple: the other end's
// events of the same connection are left out (they would duplicate every
// entry).
#include <sys/socket.h>

#include <cstring>
#include <map>

#include <fmt/format.h>

#include "core/json_text.h"
#include "proto/http/stage.h"
#include "sinks/encoders/format_util.h"
#include "sinks/encoders/http_render.h"
#include "sinks/encoders/pcapng_export.h"

namespace clearcap {

namespace {

void json_str(std::string& out, std::string_view s) {
  out.push_back('"');
  append_json_escaped(out, s);
  out.push_back('"');
}

std::string iso_time(uint64_t ns) {
  time_t s = static_cast<time_t>(ns / 1'000'000'000);
  tm t{};
  gmtime_r(&s, &t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                     t.tm_hour, t.tm_min, t.tm_sec, (ns / 1'000'000) % 1000);
}

class HarExporter : public Exporter {
 public:
  HarExporter(std::unique_ptr<OutFile> out, std::string version)
      : out_(std::move(out)), version_(std::move(version)), sink_(this), stage_(sink_, summary_options()) {}

  Result<void> write(const Event& ev) override {
    if (ev.record_type != CC_REC_DATA) return {};
    // One process per 4-tuple: the first seen owns it.
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
    auto [it, fresh] = owners_.try_emplace(key, Owner{ev.pid, ev.conn_id, {}});
    if (fresh && ev.has_tuple()) {
      // The server is the end with the lower port (as in the pcapng export).
      const bool src_server = ev.sport < ev.dport;
      IpText ip(addr_family(ev), src_server ? ev.saddr : ev.daddr);
      it->second.server = ev.family == AF_INET6 ? fmt::format("[{}]:{}", ip.view(), src_server ? ev.sport : ev.dport)
                                              : fmt::format("{}:{}", ip.view(), src_server ? ev.sport : ev.dport);
      servers_[ev.conn_id] = it->second.server;
    }
    if (it->second.pid != ev.pid || it->second.conn_id != ev.conn_id) return {};
    stage_.write(ev);
    return {};
  }

  Result<void> finish() override {
    stage_.finish();
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
    if (no_request_) n.push_back(fmt::format("har: {} responses without their request left out", no_request_));
    n.push_back(stage_.summary_line());
    return n;
  }

 private:
  struct Owner {
    uint32_t pid;
    uint64_t conn_id;
    std::string server;
  };

  static http::Stage::Options summary_options() {
    http::Stage::Options o;
    o.summary_only = true;  // exchanges are all a HAR holds ...
    o.keep_bodies = true;   // ... with both bodies, decoded
    return o;
  }

  // What the stage passes on: only exchanges (summary mode).
  struct ExchangeSink : EventSink {
    explicit ExchangeSink(HarExporter* o) : owner(o) {}
    void write(const Event& ev) override { owner->on_exchange(ev); }
    void flush() override {}
    void collect_stats(std::vector<SinkStats>&) const override {}
    HarExporter* owner;
  };

  void on_exchange(const Event& ev) {
    if (!ev.exchange) return;
    const http::Exchange& x = *ev.exchange;
    if (!x.request) {
      ++no_request_;
      return;
    }
    entry(ev, *x.request, x.response);
  }

  void headers(std::string& o, const http::Message& m) {
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

  // HAR's content is the decoded body (Content-Encoding undone).
  void content(std::string& o, const http::Message& m) {
    const std::string_view text = display_body(m);
    o += "\"content\":{\"size\":" + std::to_string(text.size()) + ",\"mimeType\":";
    json_str(o, m.header("content-type"));
    if (is_valid_utf8(text)) {
      o += ",\"text\":";
      json_str(o, text);
    } else {
      o += ",\"encoding\":\"base64\",\"text\":\"";
      append_base64(o, text);
      o += '"';
    }
    o += '}';
  }

  void entry(const Event& ev, const http::Message& req, const http::Message* resp) {
    std::string& o = entries_;
    if (count_++) o += ',';
    const int64_t wall_offset = int64_t(ev.wall_ns) - int64_t(ev.boot_ns);
    auto wall = [&](uint64_t boot) { return uint64_t(int64_t(boot) + wall_offset); };
    std::string url = req.path;
    if (!url.empty() && url[0] == '/') {
      std::string host(req.authority);
      if (host.empty()) host = servers_[ev.conn_id];
      url = (req.scheme.empty() ? "https" : req.scheme) + "://" + host + url;
    }
    const double ms = 1e-6;
    const uint64_t req_end = req.last_ns ? req.last_ns : req.first_ns;
    const double send = static_cast<double>(req_end - req.first_ns) * ms;
    const double wait = resp && resp->first_ns >= req_end ? static_cast<double>(resp->first_ns - req_end) * ms : 0;
    const double receive =
        resp && resp->last_ns >= resp->first_ns ? static_cast<double>(resp->last_ns - resp->first_ns) * ms : 0;
    o += "{\"startedDateTime\":\"" + iso_time(wall(req.first_ns)) + "\"";
    o += fmt::format(",\"time\":{:.3f}", send + wait + receive);
    o += ",\"request\":{\"method\":";
    json_str(o, req.method);
    o += ",\"url\":";
    json_str(o, url);
    o += ",\"httpVersion\":\"" + std::string(http::version_name(req.version)) + "\",\"cookies\":[],";
    headers(o, req);
    o += ",\"queryString\":[]";
    if (req.body_bytes > 0) {
      o += ",\"postData\":{\"mimeType\":";
      json_str(o, req.header("content-type"));
      o += ",\"text\":";
      const std::string_view body = display_body(req);
      json_str(o, is_valid_utf8(body) ? body : std::string_view("(binary body omitted)"));
      o += '}';
    }
    o += fmt::format(",\"headersSize\":{},\"bodySize\":{}}}", req.header_bytes, req.body_bytes);
    o += ",\"response\":{";
    if (resp) {
      o += fmt::format("\"status\":{},\"statusText\":", resp->status);
      json_str(o, resp->reason);
      o += ",\"httpVersion\":\"" + std::string(http::version_name(resp->version)) + "\",\"cookies\":[],";
      headers(o, *resp);
      o += ',';
      content(o, *resp);
      o += ",\"redirectURL\":";
      json_str(o, resp->header("location"));
      o += fmt::format(",\"headersSize\":{},\"bodySize\":{}}}", resp->header_bytes, resp->body_bytes);
    } else {
      o += "\"status\":0,\"statusText\":\"no response captured\",\"httpVersion\":\"\",\"cookies\":[],\"headers\":[],"
           "\"content\":{\"size\":0,\"mimeType\":\"\"},\"redirectURL\":\"\",\"headersSize\":-1,\"bodySize\":-1}";
    }
    o += ",\"cache\":{}";
    o += fmt::format(",\"timings\":{{\"send\":{:.3f},\"wait\":{:.3f},\"receive\":{:.3f}}}", send, wait, receive);
    o += fmt::format(",\"comment\":\"pid={} conn_id={}{}\"}}", ev.pid, ev.conn_id,
                     req.stream_id ? fmt::format(" stream={}", req.stream_id) : std::string());
  }

  std::unique_ptr<OutFile> out_;
  std::string version_;
  std::map<std::string, Owner> owners_;
  std::map<uint64_t, std::string> servers_;  // conn_id -> "ip:port" of the server end
  ExchangeSink sink_;
  http::Stage stage_;
  std::string entries_;
  uint64_t count_ = 0, no_request_ = 0;
};

}  // namespace

std::unique_ptr<Exporter> make_har_exporter(std::unique_ptr<OutFile> out, const std::string& version) {
  return std::make_unique<HarExporter>(std::move(out), version);
}

}  // namespace clearcap
