// The loss table: the summary, --stats, /metrics and /status show the same
// causes with the same numbers, the headline total includes every output,
// and every BPF loss counter has a row.
#include "core/counters.h"

#include "control/status_text.h"

#include <map>
#include <regex>
#include <set>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

namespace clearcap {
namespace {

// Every cause gets a distinct count (and bytes where the cause has them).
Counters sample() {
  Counters c;
  for (size_t i = 0; i < c.bpf.size(); ++i) c.bpf[i] = 1000 + i;
  c.events = 50;
  c.payload_bytes = 5000;
  c.oversize = 7;
  c.decode_errors = 9;
  c.outputs.push_back(OutputCounters{"stdout", 1, 11, 1100, 0});
  c.outputs.push_back(OutputCounters{"tcp://127.0.0.1:9 \"x\"", 0, 13, 1300, 0});
  return c;
}

std::map<std::string, uint64_t> expected_by_cause(const Counters& c) {
  std::map<std::string, uint64_t> m;
  for (const auto& l : c.losses())
    m[l.output.empty() ? l.cause : l.cause + "/" + l.output] = l.count;
  return m;
}

TEST(Counters, TotalIsEveryRowOutputsIncluded) {
  Counters c = sample();
  uint64_t want = c.oversize + c.decode_errors + 11 + 13;
  for (const auto& k : kernel_loss_causes()) want += c.bpf[static_cast<size_t>(k.records)];
  EXPECT_EQ(c.lost(), want);
  uint64_t bytes = 1100 + 1300;
  for (const auto& k : kernel_loss_causes())
    if (k.bytes >= 0) bytes += c.bpf[static_cast<size_t>(k.bytes)];
  EXPECT_EQ(c.lost_bytes(), bytes);
}

TEST(Counters, EveryBpfLossCounterHasARow) {
  // The activity counters, and bytes counters that belong to a row; any
  // other CC_STAT_* is a loss and must be in the table.
  std::set<int> not_losses = {CC_STAT_EVENTS, CC_STAT_BYTES, CC_STAT_FILTERED, CC_STAT_NO_FD,
                              CC_STAT_KEYS,   CC_STAT_PACKETS, CC_STAT_PACKET_BYTES, CC_STAT_PACKETS_TRUNCATED,
                              CC_STAT_NOT_TLS};
  std::set<int> covered;
  for (const auto& k : kernel_loss_causes()) {
    EXPECT_TRUE(covered.insert(k.records).second) << k.name;
    if (k.bytes >= 0) {
      EXPECT_TRUE(covered.insert(k.bytes).second) << k.name;
    }
  }
  for (int i = 0; i < CC_STAT__COUNT; ++i) {
    if (not_losses.count(i)) continue;
    EXPECT_TRUE(covered.count(i)) << "enum cc_stat " << i << " counts a loss but has no row in core/counters.cpp";
  }
}

TEST(Counters, SummaryListsEveryCauseAndTheTotal) {
  Counters c = sample();
  auto lines = summary_loss_lines(c);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines[0], "losses: " + std::to_string(c.lost()) + " (" + std::to_string(c.lost_bytes()) +
                          " bytes known lost)");
  size_t non_output_rows = 0;
  for (const auto& l : c.losses()) {
    if (!l.output.empty()) continue;  // outputs have their own summary lines
    ++non_output_rows;
    bool found = false;
    for (const auto& line : lines)
      found |= line.rfind("  " + l.text + ": " + std::to_string(l.count) + " " + l.unit, 0) == 0;
    EXPECT_TRUE(found) << l.cause;
  }
  EXPECT_EQ(lines.size(), 1 + non_output_rows);
}

TEST(Counters, OutputLineSaysHowLongTheDestinationHeldAWriteWhenItLostEvents) {
  Counters c;
  c.outputs.push_back(OutputCounters{"/var/cap.jsonl", 0, 2090, 35076468, 0, 840'000'001});
  c.outputs.push_back(OutputCounters{"stdout", 0, 0, 0, 0, 900'000'000});  // slow but nothing lost: no noise
  const auto lines = summary_lines(c, 1.0, {});
  auto line_of = [&](const std::string& prefix) {
    for (const auto& l : lines)
      if (l.rfind(prefix, 0) == 0) return l;
    return std::string();
  };
  EXPECT_EQ(line_of("output /var/cap.jsonl:"),
            "output /var/cap.jsonl: 0 write errors, 35076468 bytes and 2090 events not delivered; longest write 841 ms");
  EXPECT_EQ(line_of("output stdout:"), "output stdout: 0 write errors, 0 bytes and 0 events not delivered");
}

TEST(Counters, MetricsAndStatusCarryTheSameRows) {
  Counters c = sample();
  const auto want = expected_by_cause(c);

  PrometheusText p;
  metrics_losses(p, c);
  std::map<std::string, uint64_t> metrics;
  std::regex re(R"re(clearcap_lost_records_total\{cause="([a-z_]+)"(?:,output="((?:[^"\\]|\\.)*)")?\} (\d+))re");
  const std::string& text = p.text();
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
    std::string key = (*it)[1];
    if ((*it)[2].matched) key += "/" + std::regex_replace((*it)[2].str(), std::regex(R"(\\")"), "\"");
    metrics[key] = std::stoull((*it)[3]);
  }
  EXPECT_EQ(metrics, want);

  std::string json = "{" + losses_json(c) + "}";
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json;
  EXPECT_EQ(uint64_t(doc["lost_records"]), c.lost());
  EXPECT_EQ(uint64_t(doc["lost_bytes"]), c.lost_bytes());
  std::map<std::string, uint64_t> status;
  for (auto [k, v] : simdjson::dom::object(doc["lost_by_cause"])) {
    if (k == "output") {
      for (auto [name, n] : simdjson::dom::object(v)) status["output/" + std::string(name)] = uint64_t(n);
    } else {
      status[std::string(k)] = uint64_t(v);
    }
  }
  EXPECT_EQ(status, want);
}

TEST(Counters, StatsLineNamesNonZeroCausesOnly) {
  Counters c;
  c.events = 10;
  c.bpf[CC_STAT_RINGBUF_FULL] = 4;
  c.outputs.push_back(OutputCounters{"stdout", 0, 2, 20, 0});
  Counters prev;
  std::string line = stats_line(c, prev, 1.0);
  EXPECT_NE(line.find("lost 6"), std::string::npos) << line;
  EXPECT_NE(line.find("ringbuf_full 4"), std::string::npos) << line;
  EXPECT_NE(line.find("output stdout 2"), std::string::npos) << line;
  EXPECT_EQ(line.find("read_fault"), std::string::npos) << line;
}

}  // namespace
}  // namespace clearcap


namespace clearcap {
namespace {

// /metrics and /status render every counter of the one table, with its
// value, whatever it is.
TEST(Counters, MetricsAndStatusRenderEveryTableCounter) {
  Counters c;
  for (size_t i = 0; i < c.bpf.size(); ++i) c.bpf[i] = 1000 + i;
  c.events = 7;
  c.payload_bytes = 8;
  c.gaps = 9;
  c.gap_bytes = 10;
  c.late = 11;
  c.stalls = 12;
  const std::string metrics = metrics_text(c, LiveGauges{});
  const std::string status = counters_json(c);
  for (const auto& k : activity_counters()) {
    const std::string v = std::to_string(k.value(c));
    EXPECT_NE(metrics.find(fmt::format("clearcap_{}_total {}\n", k.name, v)), std::string::npos) << k.name;
    EXPECT_NE(metrics.find(fmt::format("# HELP clearcap_{}_total {}", k.name, k.help)), std::string::npos) << k.name;
    EXPECT_NE(status.find(fmt::format("\"{}\":{},", k.name, v)), std::string::npos) << k.name << "\n" << status;
  }
}

}  // namespace
}  // namespace clearcap

namespace clearcap {
namespace {

// How close the rings came to full is in the summary, /metrics and /status:
// the reason a ring-full loss happened (readers late), or nearly did.
TEST(Counters, RingPeakFillIsShownEverywhere) {
  Counters c;
  c.ring_bytes = 4u << 20;
  c.ring_peak_fill = 3u << 20;
  const auto lines = summary_lines(c, 1.0, {});
  bool found = false;
  for (const auto& l : lines) found |= l.find("; ring peak fill: 75% of 4096 KiB") != std::string::npos;
  EXPECT_TRUE(found);
  EXPECT_NE(metrics_text(c, LiveGauges{}).find("\nclearcap_ring_peak_fill_ratio 0.75\n"), std::string::npos);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  const std::string status = counters_json(c);
  ASSERT_EQ(parser.parse(status).get(doc), simdjson::SUCCESS) << status;
  EXPECT_EQ(uint64_t(doc["ring_bytes"]), c.ring_bytes);
  EXPECT_EQ(uint64_t(doc["ring_peak_fill_bytes"]), c.ring_peak_fill);

  // A capture file has no rings: nothing to say.
  for (const auto& l : summary_lines(Counters{}, 1.0, {})) EXPECT_EQ(l.find("ring peak fill"), std::string::npos);
}

}  // namespace
}  // namespace clearcap
