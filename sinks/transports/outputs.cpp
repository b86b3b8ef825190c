#include "sinks/transports/outputs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "sinks/encoders/text_encoder.h"
#include "sinks/transports/transport.h"

namespace clearcap {

Result<std::unique_ptr<Outputs>> Outputs::create(const OutputOptions& o) {
  std::unique_ptr<Outputs> out(new Outputs());
  out->opts_ = o;
  FormatOptions fopts{o.hex, static_cast<size_t>(o.tsize)};
  std::unique_ptr<Encoder> encoder;
  if (o.format == "json") encoder = std::make_unique<JsonEncoder>(fopts);
  else if (o.format == "text") encoder = std::make_unique<TextEncoder>(fopts);
  else if (o.format == "proto") encoder = std::make_unique<ProtoEncoder>(fopts);
  else return make_error(fmt::format("--format {}: unknown format; use text, json or proto", o.format), EINVAL);

  std::vector<std::string> event_addrs = o.eventaddrs;
  const char* event_flag = "--eventaddr";
  if (event_addrs.empty() && !o.events_elsewhere) {
    event_addrs.push_back(o.logaddr ? *o.logaddr : "stdout");
    event_flag = "--logaddr";
  }

  TransportOptions topts;
  topts.file.max_bytes = o.rotate_mb * 1024 * 1024;
  topts.file.max_age = std::chrono::seconds(o.rotate_seconds);
  topts.file.keep = o.rotate_keep;
  topts.file.mode = o.file_mode;
  topts.ws_binary = o.format != "json";  // JSON lines are UTF-8 text frames
  topts.ws_strip_length_prefix = o.format == "proto";
  AsyncWriter::Options wopts;
  wopts.queue_bytes = o.queue_mb << 20;
  wopts.drain_timeout = o.drain_timeout;

  // One writer per distinct destination (by its parsed identity).
  std::map<std::string, AsyncWriter*> by_key;
  auto writer_for = [&](const std::string& text) -> Result<AsyncWriter*> {
    auto d = parse_destination(text);
    if (!d) return tl::unexpected(d.error());
    std::string key;
    switch (d->kind) {
      case Destination::Kind::kStdout: key = "stdout"; break;
      case Destination::Kind::kStderr: key = "stderr"; break;
      case Destination::Kind::kFile: key = "file:" + d->path; break;
      case Destination::Kind::kTcp: key = fmt::format("tcp:{}:{}", d->host, d->port); break;
      case Destination::Kind::kWebSocket: key = fmt::format("ws:{}:{}{}", d->host, d->port, d->path); break;
    }
    if (auto it = by_key.find(key); it != by_key.end()) return it->second;
    auto transport = make_transport(*d, topts);
    // Files are opened now so that a bad path stops clearcap at start-up
    // with a clear error, rather than being retried forever.
    if (d->kind == Destination::Kind::kFile) {
      if (auto r = transport->connect(); !r) return tl::unexpected(r.error());
    }
    const bool network = transport->is_network();
    out->writers_.push_back(std::make_unique<AsyncWriter>(d->text, std::move(transport), wopts));
    out->network_.push_back(network);
    by_key[key] = out->writers_.back().get();
    return out->writers_.back().get();
  };

  std::vector<AsyncWriter*> event_writers;
  for (const auto& a : event_addrs) {
    auto w = writer_for(a);
    if (!w) return make_error(fmt::format("{}: {}", event_flag, w.error().message), w.error().err);
    if (std::find(event_writers.begin(), event_writers.end(), *w) == event_writers.end()) {
      event_writers.push_back(*w);
      out->event_names_.push_back(a);
    }
  }
  if (o.logaddr) {
    auto w = writer_for(*o.logaddr);
    if (!w) return make_error(fmt::format("--logaddr: {}", w.error().message), w.error().err);
    out->log_writers_.push_back(*w);
    out->log_names_.push_back(*o.logaddr);
  }
  out->sink_ = std::make_unique<FanoutSink>(std::move(encoder), std::move(event_writers));
  for (auto& w : out->writers_) w->start();
  return out;
}

Outputs::~Outputs() { stop(); }

void Outputs::encode_log(std::string_view line, std::string& out) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count());
  if (opts_.format == "json") {
    json_log_.encode_log(ns, line, out);
  } else if (opts_.format == "proto") {
    fill_log_line(line, log_entry_);
    append_delimited(log_entry_, out);
  } else {
    out += "clearcap: ";
    out += line;
    out += '\n';
  }
}

void Outputs::log(std::string_view line) {
  if (log_writers_.empty()) {
    fmt::print(stderr, "clearcap: {}\n", line);
    return;
  }
  std::lock_guard lk(log_mu_);
  log_buf_.clear();
  encode_log(line, log_buf_);
  for (AsyncWriter* w : log_writers_) w->push_log(log_buf_);
}

void Outputs::console(std::string_view line) {
  log(line);
  if (!log_writers_.empty()) fmt::print(stderr, "clearcap: {}\n", line);
}

void Outputs::reopen() {
  for (auto& w : writers_) w->request_reopen();
}

void Outputs::close_events() {
  sink_->flush();
  for (auto& w : writers_) w->begin_close_events();
  for (auto& w : writers_) w->wait_events_closed();
}

void Outputs::abandon() {
  for (auto& w : writers_) w->abandon();
}

std::string Outputs::closed_for_good() const {
  for (const auto& w : writers_)
    if (w->closed_for_good()) return w->name();
  return {};
}

void Outputs::stop() {
  for (auto& w : writers_) w->stop();
}

void Outputs::collect_stats(std::vector<SinkStats>& out) const {
  for (const auto& w : writers_) out.push_back(w->stats());
}

std::string Outputs::describe() const {
  return fmt::format("events -> {} ({}); log -> {}", fmt::join(event_names_, ", "), opts_.format,
                     log_names_.empty() ? std::string("stderr") : fmt::format("{}", fmt::join(log_names_, ", ")));
}

std::vector<Outputs::Extra> Outputs::extras() const {
  std::vector<Extra> out;
  for (size_t i = 0; i < writers_.size(); ++i)
    out.push_back({writers_[i]->name(), network_[i], writers_[i]->connects(), writers_[i]->delivered_events()});
  return out;
}

}  // namespace clearcap
