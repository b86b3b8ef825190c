#include "sinks/output_set.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

namespace clearcap {

namespace {

// Hands every event to two sinks. Thread: as EventSink.
class TeeSink : public EventSink {
 public:
  TeeSink(EventSink& a, EventSink& b) : a_(a), b_(b) {}
  void write(const Event& ev) override {
    a_.write(ev);
    b_.write(ev);
  }
  void flush() override {
    a_.flush();
    b_.flush();
  }
  void set_format(const FormatOptions& opts) override {
    a_.set_format(opts);
    b_.set_format(opts);
  }
  // Each sink's stats are collected by its owner (OutputSet).
  void collect_stats(std::vector<SinkStats>&) const override {}

 private:
  EventSink& a_;
  EventSink& b_;
};

}  // namespace

Result<std::unique_ptr<OutputSet>> OutputSet::create(OutputOptions opts, const std::string& mode,
                                                     const std::string& capture_file) {
  std::unique_ptr<OutputSet> self(new OutputSet());
  // -w and -m keylog have sinks of their own: events then go to
  // --eventaddr only when given.
  opts.events_elsewhere = !capture_file.empty() || mode == "keylog";
  // The rotation of the event files applies to every file output (rotated
  // and reopened on each output's writer thread).
  self->rotation_.max_bytes = opts.rotate_mb * 1024 * 1024;
  self->rotation_.max_age = std::chrono::seconds(opts.rotate_seconds);
  self->rotation_.keep = opts.rotate_keep;
  self->rotation_.mode = opts.file_mode;
  auto o = Outputs::create(opts);
  if (!o) return tl::unexpected(o.error());
  self->outputs_ = std::move(*o);
  self->opts_ = opts;
  self->rebuild();
  return self;
}

void OutputSet::rebuild() {
  tees_.clear();
  auto tee = [&](EventSink& a, EventSink& b) {
    tees_.push_back(std::make_unique<TeeSink>(a, b));
    return tees_.back().get();
  };
  // -w: events go to the capture file, and to the event outputs only when
  // some were given. Packets (-m pcap) are for the pcapng only.
  const bool outputs_take = !record_ || (outputs_->has_event_outputs() && !pcap_mode_);
  EventSink* events = nullptr;
  if (outputs_take && ecq_) events = tee(outputs_->sink(), *ecq_);
  else if (outputs_take) events = &outputs_->sink();
  else if (ecq_) events = ecq_.get();
  // Parsing runs only when something shows events.
  if (events && opts_.http && !pcap_mode_) {
    events_.to = events;
    if (!stage_) {
      http::Stage::Options so;
      so.summary_only = opts_.http_summary;
      so.body_max = opts_.http_body_max;
      stage_ = std::make_unique<http::Stage>(events_, so);
    }
    events = stage_.get();
  } else {
    stage_.reset();  // nothing shows events (-w alone, -m keylog, -m pcap): no parsing, no http: line
  }
  if (record_ && events) sink_ = tee(*record_, *events);
  else sink_ = record_ ? record_.get() : events;
  front_.to = sink_;
}

OutputSet::~OutputSet() { close(); }

void OutputSet::close() {
  if (ecq_) ecq_->stop();
  if (outputs_) outputs_->stop();
}

Result<void> OutputSet::add_record(Record r) {
  const bool pcap_mode = r.mode == "pcap";
  if (pcap_mode) {
    if (r.keylog_given) {
      auto k = KeylogSink::open(r.keylog_file, rotation_);
      if (!k) return tl::unexpected(k.error());
      pcap_keys_ = std::move(*k);
      keylog_ = pcap_keys_.get();
    }
    PcapSink::Options popts = r.pcap;
    popts.path = r.capture_file;
    popts.userappl = "clearcap " + r.version;
    auto p = PcapSink::open(popts, std::move(r.filter), pcap_keys_.get(), rotation_);
    if (!p) return tl::unexpected(p.error());
    pcap_ = p->get();
    record_ = std::move(*p);
  } else if (r.mode == "keylog") {
    auto k = KeylogSink::open(r.keylog_file, rotation_);
    if (!k) return tl::unexpected(k.error());
    keylog_ = k->get();
    record_ = std::move(*k);
  } else if (!r.capture_file.empty()) {
    zstd_level_ = r.zstd_level;
    CaptureFileSink::Options wopts;
    wopts.level = r.zstd_level;
    wopts.clearcap_version = r.version;
    // --output-queue-mb raises -w's queue too (1 MiB batches, preallocated:
    // half of it, as the writer's fallback to stored frames keeps up), never
    // below its own default of 16.
    wopts.buffers = std::max<size_t>(wopts.buffers, opts_.queue_mb / 2);
    auto w = CaptureFileSink::open_rotating(r.capture_file, rotation_, wopts);
    if (!w) return tl::unexpected(w.error());
    capture_file_ = w->get();
    record_ = std::move(*w);
  }
  pcap_mode_ = pcap_mode;
  rebuild();
  return {};
}

Result<void> OutputSet::add_ecaptureq(EcaptureqServer::Options opts) {
  auto server = EcaptureqServer::start(std::move(opts));
  if (!server) return tl::unexpected(server.error());
  ecq_ = std::move(*server);
  rebuild();
  return {};
}

void OutputSet::reopen() {
  outputs_->reopen();
  if (capture_file_) capture_file_->request_reopen();
  if (keylog_) keylog_->request_reopen();
  if (pcap_) pcap_->request_reopen();
}

void OutputSet::finish() {
  if (finished_) return;
  finished_ = true;
  if (stage_) stage_->finish();  // messages in progress and unanswered requests, reported
  sink_->flush();
  if (capture_file_) capture_file_->finish();  // last frame compressed and written, file closed
  outputs_->close_events();
  if (pcap_) pcap_->finish();      // held connections written (counted as missed), file closed
  if (keylog_) keylog_->finish();  // queued key lines written, file closed
}

void OutputSet::abandon() {
  outputs_->abandon();
  if (pcap_) pcap_->abandon();
  if (keylog_) keylog_->abandon();
}

void OutputSet::collect_stats(std::vector<SinkStats>& out) const {
  if (record_) record_->collect_stats(out);  // capture file, key log or pcapng
  if (pcap_keys_) pcap_keys_->collect_stats(out);
  outputs_->collect_stats(out);
  if (ecq_) ecq_->collect_stats(out);
}

std::vector<std::string> OutputSet::summary_lines(uint64_t truncated) const {
  std::vector<std::string> out;
  if (stage_) out.push_back(stage_->summary_line());
  if (keylog_)
    out.push_back(fmt::format(
        "keys: {} handshakes written to {} ({} duplicates of a written client random, {} incomplete)",
        keylog_->handshakes(), keylog_->path(), keylog_->duplicates(), keylog_->incomplete()));
  if (pcap_) {
    auto c = pcap_->counters();
    out.push_back(fmt::format("packets: {} written to {}, {} left out by the filter expression (applied in "
                              "userspace), {} cut to the snap length",
                              c.packets, pcap_->path(), c.filtered, truncated));
    out.push_back(fmt::format("pcap keys: {} Decryption Secrets Blocks, {} duplicate key records (other end), {} "
                              "unusable; TLS connections held for keys: {}, written without keys (grace period over "
                              "or limit): {} ({} packets)",
                              c.secrets_blocks, c.duplicate_keys, c.unusable_keys, c.held_connections,
                              c.missed_connections, c.missed_packets));
    if (c.secrets_not_replayed)
      out.push_back(fmt::format("pcap keys not repeated at the start of rotated files (beyond the newest {}): {}",
                                PcapSink::kMaxReplayedSecrets, c.secrets_not_replayed));
  }
  return out;
}

std::vector<std::string> OutputSet::delivery_lines() const {
  std::vector<std::string> out;
  if (capture_file_)
    out.push_back(fmt::format("capture file: {} frames, {} of them compressed at a faster level than --zstd-level "
                              "{} and {} stored uncompressed because compression fell behind",
                              capture_file_->frames_written(), capture_file_->frames_faster(), zstd_level_,
                              capture_file_->frames_stored()));
  for (const auto& x : outputs_->extras())
    if (x.network)
      out.push_back(fmt::format("output {}: {} records delivered, {} connection(s) made", x.name, x.delivered,
                                x.connects));
  return out;
}

}  // namespace clearcap
