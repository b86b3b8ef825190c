// /metrics text: the exposition format's HELP/TYPE lines, label escaping and
// number forms (promtool checks the real output in the bpf tests).
#include "core/prometheus_text.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace clearcap {
namespace {

TEST(PrometheusText, FamilyAndSamples) {
  PrometheusText p;
  p.family("clearcap_lost_records_total", "counter", "Records lost, by cause.");
  p.sample("clearcap_lost_records_total", {{"cause", "ringbuf_full"}}, uint64_t{3});
  p.sample("clearcap_lost_records_total", {{"cause", "read_fault"}, {"cpu", "1"}}, uint64_t{0});
  p.family("clearcap_events_total", "counter", "Events.");
  p.sample("clearcap_events_total", uint64_t{18446744073709551615ull});
  EXPECT_EQ(p.text(),
            "# HELP clearcap_lost_records_total Records lost, by cause.\n"
            "# TYPE clearcap_lost_records_total counter\n"
            "clearcap_lost_records_total{cause=\"ringbuf_full\"} 3\n"
            "clearcap_lost_records_total{cause=\"read_fault\",cpu=\"1\"} 0\n"
            "# HELP clearcap_events_total Events.\n"
            "# TYPE clearcap_events_total counter\n"
            "clearcap_events_total 18446744073709551615\n");
}

TEST(PrometheusText, EscapesLabelValuesAndHelp) {
  PrometheusText p;
  p.family("m", "gauge", "back\\slash and\nnewline \"quotes stay\"");
  p.sample("m", {{"output", "/tmp/a \"b\"\\c\nd"}}, uint64_t{1});
  EXPECT_EQ(p.text(),
            "# HELP m back\\\\slash and\\nnewline \"quotes stay\"\n"
            "# TYPE m gauge\n"
            "m{output=\"/tmp/a \\\"b\\\"\\\\c\\nd\"} 1\n");
}

TEST(PrometheusText, FloatingPointForms) {
  PrometheusText p;
  p.sample("a", {}, 1.5);
  p.sample("b", {}, std::numeric_limits<double>::infinity());
  p.sample("c", {}, -std::numeric_limits<double>::infinity());
  p.sample("d", {}, std::nan(""));
  EXPECT_EQ(p.text(), "a 1.5\nb +Inf\nc -Inf\nd NaN\n");
}

}  // namespace
}  // namespace clearcap
