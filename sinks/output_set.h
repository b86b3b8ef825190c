// Every output of one capture run, owned in one place: the event and log
// destinations (Outputs: stdout, files, tcp, ws), the run's record file
// (-w capture file, -m keylog key log, -m pcap pcapng with its optional key
// log), and the eCaptureQ server; sink() hands each event to all of them.
// What is lost at any of them is in collect_stats() (the summary's
// headline counts it).
// Thread: create()/add_*()/finish() on the owning thread before and after
// the processor runs; sink() is driven by the processor thread; reopen(),
// collect_stats() and the accessors from any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/event_sink.h"
#include "core/result.h"
#include "sinks/capture_file/capture_writer.h"
#include "sinks/ecaptureq/ecaptureq_server.h"
#include "sinks/keylog.h"
#include "sinks/transports/outputs.h"
#include "sinks/packet_filter.h"
#include "sinks/pcap_sink.h"
#include "proto/http/stage.h"

namespace clearcap {

class OutputSet {
 public:
  // The run's record file, by capture mode.
  struct Record {
    std::string mode = "text";  // text (with -w: capture file) | keylog | pcap
    std::string capture_file;   // -w (pcap: the pcapng)
    int zstd_level = 1;
    std::string keylog_file;    // -k
    bool keylog_given = false;  // pcap: keys also to -k
    PcapSink::Options pcap;     // pcap: interface, link type, snap length
    std::unique_ptr<PacketFilter> filter;
    std::string version;        // clearcap's, for file headers
  };

  // Outputs first: a bad destination stops the run before any probe is
  // attached.
  static Result<std::unique_ptr<OutputSet>> create(OutputOptions opts, const std::string& mode,
                                                    const std::string& capture_file);
  ~OutputSet();

  Result<void> add_record(Record r);
  Result<void> add_ecaptureq(EcaptureqServer::Options opts);

  // The one sink of the run: stable from create() on (the session may hold
  // it before add_record()/add_ecaptureq(), which must come before the
  // processor starts).
  EventSink& sink() { return front_; }
  Outputs& outputs() { return *outputs_; }
  KeylogSink* keylog() const { return keylog_; }
  PcapSink* pcap() const { return pcap_; }
  CaptureFileSink* capture_file() const { return capture_file_; }
  EcaptureqServer* ecaptureq() const { return ecq_.get(); }

  // SIGHUP: every file output reopens.
  void reopen();
  // After the processor delivered its last event: every writer delivers
  // what it holds (or counts what it could not), files are closed.
  void finish();
  // After the summary: the eCaptureQ server and every writer deliver what
  // is left (log lines) and stop. Idempotent; the destructor calls it.
  void close();
  // The process ends without waiting for finish() to return: every writer's
  // unsent records count as lost in collect_stats() (AsyncWriter::abandon).
  // Any thread, while finish() may be running.
  void abandon();
  void collect_stats(std::vector<SinkStats>& out) const;
  // The record file's summary lines (keys written, packets); `truncated` is
  // the kernel's count of packets cut to the snap length.
  std::vector<std::string> summary_lines(uint64_t truncated) const;
  // The protocol stage's counters, when it ran.
  const http::Stage* http_stage() const { return stage_.get(); }
  // After the summary: the capture file's frames, network outputs' deliveries.
  std::vector<std::string> delivery_lines() const;

 private:
  OutputSet() = default;
  // Forwards to the head of the tee chain in force.
  class Front : public EventSink {
   public:
    EventSink* to = nullptr;
    void write(const Event& ev) override { to->write(ev); }
    void flush() override { to->flush(); }
    void set_format(const FormatOptions& opts) override { to->set_format(opts); }
    void collect_stats(std::vector<SinkStats>&) const override {}
  };
  Front front_;
  std::unique_ptr<Outputs> outputs_;
  std::unique_ptr<EventSink> record_;
  std::unique_ptr<KeylogSink> pcap_keys_;  // -m pcap with -k
  KeylogSink* keylog_ = nullptr;
  PcapSink* pcap_ = nullptr;
  CaptureFileSink* capture_file_ = nullptr;
  std::unique_ptr<EcaptureqServer> ecq_;
  std::vector<std::unique_ptr<EventSink>> tees_;
  EventSink* sink_ = nullptr;  // head of the chain; front_ forwards to it
  // The protocol stage in front of the event outputs and the eCaptureQ
  // server (never the record file: it keeps the raw records), when they
  // exist and --no-http is not given; events_ forwards what it passes on.
  std::unique_ptr<http::Stage> stage_;
  Front events_;
  OutputOptions opts_;
  bool pcap_mode_ = false;
  // Builds the chain from what exists: record file, event outputs, server.
  void rebuild();
  RotatingFile::Options rotation_;
  bool finished_ = false;
  int zstd_level_ = 1;
};

}  // namespace clearcap
