// The protocol layer's hot paths (issue targets, on the processor thread of
// a busy load balancer): HTTP/1 framing (headers + bodies, Content-Length
// and chunked), HTTP/2 frames with HPACK, body decoding, request/response
// pairing in the stage, and the processor's events/s with the stage on.
// Fixed inputs; bytes/s and items/s as Google Benchmark reports them.
#include <benchmark/benchmark.h>
#include <zlib.h>

#include <memory>
#include <string>
#include <vector>

#include "proto/http/body_decoder.h"
#include "proto/http/stage.h"
#include "proto/http1/parser.h"
#include "proto/http2/session.h"
#include "../tests/unit/http2_wire.h"
#include "../tests/unit/test_record.h"
#include "bench_data.h"
#include "bench_merge.h"

namespace clearcap {
namespace {

using bench::printable_payload;

// A response as nginx sends it: ~250 bytes of headers, then the body.
std::string response(size_t body, bool chunked) {
  std::string h =
      "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Fri, 27 Nov 2026 22:19:17 GMT\r\n"
      "Content-Type: text/plain\r\nLast-Modified: Fri, 27 Nov 2026 22:19:15 GMT\r\nConnection: keep-alive\r\n"
      "ETag: \"6b0a01e3-352\"\r\nAccept-Ranges: bytes\r\n";
  const std::string b = printable_payload(body, 7);
  if (!chunked) return h + "Content-Length: " + std::to_string(body) + "\r\n\r\n" + b;
  h += "Transfer-Encoding: chunked\r\n\r\n";
  for (size_t off = 0; off < b.size(); off += 8192) {
    const size_t n = std::min<size_t>(8192, b.size() - off);
    char len[16];
    snprintf(len, sizeof(len), "%zx\r\n", n);
    h += len + b.substr(off, n) + "\r\n";
  }
  return h + "0\r\n\r\n";
}

// Many responses back to back, fed in 16 KiB pieces (an SSL_read's worth).
void http1_bench(benchmark::State& state, bool chunked) {
  const size_t body = static_cast<size_t>(state.range(0));
  std::string stream;
  size_t n = 0;
  while (stream.size() < (4u << 20)) {
    stream += response(body, chunked);
    ++n;
  }
  const auto* p = reinterpret_cast<const uint8_t*>(stream.data());
  std::vector<http::Message> out;
  for (auto _ : state) {
    http1::Parser parser(http::Kind::kResponse);
    for (size_t off = 0; off < stream.size(); off += 16384) {
      parser.feed({p + off, std::min<size_t>(16384, stream.size() - off)}, 1, out);
      out.clear();
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(stream.size()));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
void BM_Http1_ContentLength(benchmark::State& state) { http1_bench(state, false); }
void BM_Http1_Chunked(benchmark::State& state) { http1_bench(state, true); }
BENCHMARK(BM_Http1_ContentLength)->Arg(0)->Arg(1024)->Arg(65536);
BENCHMARK(BM_Http1_Chunked)->Arg(1024)->Arg(65536);

// The server side of an HTTP/2 connection: per stream a HEADERS block (its
// HPACK state carried from stream to stream) and the body in 16 KiB DATA
// frames.
void BM_Http2_FramesAndHpack(benchmark::State& state) {
  const size_t body = static_cast<size_t>(state.range(0));
  test::HpackEncoder enc;
  test::Bytes server;
  size_t n = 0;
  const std::string b = printable_payload(body, 9);
  for (uint32_t id = 1; server.size() < (4u << 20); id += 2, ++n) {
    test::append(server, test::h2_frame(http2::FrameType::kHeaders, http2::flags::kEndHeaders, id,
                                        enc.block({{":status", "200"},
                                                   {"server", "nginx/1.22.1"},
                                                   {"date", "Fri, 27 Nov 2026 22:19:17 GMT"},
                                                   {"content-type", "text/plain"},
                                                   {"content-length", std::to_string(body)},
                                                   {"etag", "\"6b0a01e3-" + std::to_string(id) + "\""}})));
    for (size_t off = 0; off < body || off == 0; off += 16384) {
      const size_t k = std::min<size_t>(16384, body - off);
      test::append(server, test::h2_frame(http2::FrameType::kData, off + k >= body ? http2::flags::kEndStream : 0, id,
                                          test::Bytes(b.begin() + off, b.begin() + off + k)));
      if (body == 0) break;
    }
  }
  std::vector<http::Message> out;
  for (auto _ : state) {
    http2::Session s(false);
    for (size_t off = 0; off < server.size(); off += 16384) {
      s.feed(1, {server.data() + off, std::min<size_t>(16384, server.size() - off)}, 1, out);
      out.clear();
    }
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(server.size()));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_Http2_FramesAndHpack)->Arg(0)->Arg(1024)->Arg(65536);

void BM_BodyDecode_Gzip(benchmark::State& state) {
  const std::string text = [] {
    std::string s;
    while (s.size() < 65536) s += "<tr><td>row</td><td>some repeated html-like text</td></tr>\n";
    return s.substr(0, 65536);
  }();
  std::string gz(compressBound(text.size()) + 64, '\0');
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  z.next_in = (Bytef*)text.data();
  z.avail_in = text.size();
  z.next_out = (Bytef*)gz.data();
  z.avail_out = gz.size();
  deflate(&z, Z_FINISH);
  gz.resize(z.total_out);
  deflateEnd(&z);
  for (auto _ : state) benchmark::DoNotOptimize(http::decode_body("gzip", gz, 65536));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_BodyDecode_Gzip);

class CountExchanges : public EventSink {
 public:
  void write(const Event& ev) override { n += ev.exchange != nullptr; }
  void flush() override {}
  void collect_stats(std::vector<SinkStats>&) const override {}
  uint64_t n = 0;
};

// Request and response events of one keep-alive connection through the
// stage: detection once, parse, message events, pairing, exchange events.
void BM_Stage_Http1Exchanges(benchmark::State& state) {
  const std::string req = "GET /index.html HTTP/1.1\r\nHost: example.test\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
  const std::string resp = response(612, false);
  test::TestRecord rq, rs;
  rq.ipv4("127.0.0.1", 40000, "127.0.0.1", 443);
  rs.ipv4("127.0.0.1", 443, "127.0.0.1", 40000);
  rq.with_payload(req);
  rs.with_payload(resp);
  rs.raw.direction = CC_DIR_READ;
  Event q = rq.event(), s = rs.event();
  CountExchanges sink;
  http::Stage stage(sink, {});
  uint64_t seq_q = 0, seq_s = 0;
  for (auto _ : state) {
    q.seq = seq_q;
    s.seq = seq_s;
    stage.write(q);
    stage.write(s);
    seq_q += req.size();
    seq_s += resp.size();
  }
  state.SetItemsProcessed(static_cast<int64_t>(sink.n));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(req.size() + resp.size()));
}
BENCHMARK(BM_Stage_Http1Exchanges);

// The processor's merge with the stage on: two sources of 256-byte records
// of 64 HTTP/1 connections, each a request line, then a response whose
// body arrives in 256-byte records (the parser frames every byte).
void BM_Processor_WithStage(benchmark::State& state) {
  const size_t per_source = 100'000;
  const size_t rec = 256 - sizeof(cc_data_event);
  std::vector<std::vector<uint8_t>> recs[2];
  for (int src = 0; src < 2; ++src) {
    for (size_t i = 0; i < per_source; ++i) {
      const uint64_t conn = 1 + src * 64 + i % 64;
      const uint64_t k = i / 64;  // this connection's k-th record
      test::TestRecord r;
      r.raw.ts_ns = 2 * i + src;
      r.raw.conn_id = conn;
      r.ipv4("127.0.0.1", 40000, "127.0.0.1", 443);
      if (k == 0) {
        std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n";
        head.resize(rec, 'x');
        r.with_payload(head);
      } else {
        r.with_payload(printable_payload(rec, 42));
      }
      r.raw.direction = CC_DIR_READ;
      r.raw.seq = k * rec;
      recs[src].push_back(r.bytes());
    }
  }
  for (auto _ : state) {
    bench::CountingSink sink;
    http::Stage stage(sink, {});
    bench::merge_once(state, recs[0], recs[1], stage);
    benchmark::DoNotOptimize(sink.bytes);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(2 * per_source));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(2 * per_source * 256));
}
BENCHMARK(BM_Processor_WithStage)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace clearcap
