// The protocol stage over arbitrary connections: the input is a script of
// data events - each a header byte (direction, connection, a gap or an
// overlap before it) and a length byte, then that many payload bytes - fed
// to the stage, which detects, parses (HTTP/1, HTTP/2), pairs and decodes
// bodies. Invariants: no crash or sanitizer report, every message and
// exchange handed on is well formed, bodies within the limit, and finish()
// reports everything left.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "proto/http/stage.h"

using namespace clearcap;

namespace {

class Check : public EventSink {
 public:
  size_t body_max = 0;
  void write(const Event& ev) override {
    if (ev.http) {
      if (ev.http->body.size() > body_max) std::abort();
      if (ev.http->shown.text.size() > body_max) std::abort();
      if (ev.http->body.size() > ev.http->body_bytes) std::abort();
    }
    if (ev.exchange) {
      if (!ev.exchange->request && !ev.exchange->response) std::abort();
      if (ev.exchange->request && ev.exchange->response && ev.exchange->total_ns < ev.exchange->wait_ns) std::abort();
    }
  }
  void flush() override {}
  void collect_stats(std::vector<SinkStats>&) const override {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Check sink;
  http::Stage::Options o;
  o.body_max = 512;
  o.max_connections = 4;
  o.max_pending = 8;
  sink.body_max = o.body_max;
  http::Stage stage(sink, o);
  static const uint8_t kAddr[16] = {127, 0, 0, 1};
  uint64_t seq[4][2] = {};
  uint64_t ts = 1000;
  size_t i = 0;
  while (i + 2 <= size) {
    const uint8_t h = data[i], len = data[i + 1];
    i += 2;
    const size_t n = std::min<size_t>(len, size - i);
    const int side = h & 1;
    const int conn = (h >> 1) & 3;
    uint64_t& s = seq[conn][side];
    if (h & 0x10) s += 1 + (h >> 5);                 // a gap
    else if ((h & 0x20) && s > 3) s -= 3;            // an overlap
    Event ev;
    ev.record_type = CC_REC_DATA;
    ev.conn_id = uint64_t(conn) + 1;
    ev.direction = side ? Direction::kRead : Direction::kWrite;
    ev.seq = s;
    ev.boot_ns = ts;
    ev.wall_ns = ts + 1'000'000'000;
    ev.family = 2;
    ev.flags = CC_FLAG_HAS_TUPLE;
    ev.saddr = kAddr;
    ev.daddr = kAddr;
    ev.comm = "fuzz";
    ev.payload = std::span<const uint8_t>(data + i, n);
    stage.write(ev);
    s += n;
    ts += 1000;
    i += n;
  }
  stage.finish();
  return 0;
}
