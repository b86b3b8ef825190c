// HTTP/1.x framing on http-parser (Debian libhttp-parser-dev 2.9.4, built
// without HTTP_PARSER_STRICT): the library walks the bytes and calls back;
// this file keeps what a Message needs, enforces the limits, and does what
// the library cannot: finding the next message start after lost bytes or an
// error, and telling responses to HEAD and CONNECT apart.
//
// Three modes. kParse: the bytes go to http-parser in place (no copy).
// kSearch: after a gap or a parse error, the bytes go through a small window
// (at most a start line plus a little, copied) that is searched for a
// message start; once one is found, the window's bytes from there are
// replayed into a fresh http-parser and the rest of the feed is parsed in
// place again. kUpgraded: after a 101, a CONNECT or an Upgrade request,
// nothing is parsed any more.
//
// The search looks for "HTTP/1." anywhere, not only at line starts: a body
// that does not end in a newline (JSON, binary) is followed directly by the
// next message, and on a keep-alive connection whose bodies all look like
// that a line-start rule would never find a message again. A request start
// is " HTTP/1.x" ending a line, looked back from to a target and a method
// http-parser knows (the longest such suffix of the upper-case run before
// the target: "abcGET /" is a GET); a response start is "HTTP/1.x 3DIGIT".
// Both are decided by the stream's bytes alone, never by how they were
// split into feeds, so a message is found the same way whatever the chunks.
//
// A response whose body runs to the connection's end (no Content-Length,
// not chunked: HTTP/1.0 style) never completes here: there is no "closed"
// call. Its body is counted (and kept up to the limit) until gap() hands it
// over as incomplete; a caller that sees the connection close calls gap().
//
// A new parser expects a message start at its first byte (leading blank
// lines aside): anything else is a parse error (kInvalid) and the search
// runs, as after a gap. http-parser has its own header limit, 80 KiB
// (process-wide; not changed here), so Limits::max_header_bytes above that
// still ends at 80 KiB.
#include "proto/http1/parser.h"

#include <http_parser.h>

#include <algorithm>
#include <climits>
#include <string>
#include <string_view>
#include <utility>

namespace clearcap::http1 {

using http::Kind;
using http::Message;
using http::ParseState;

namespace {

constexpr std::string_view kVersionPrefix = "HTTP/1.";
// A request start line the search will find: method to "HTTP/1.x" at most
// this long (servers' default request line limit is 8 KiB). Also the
// longest target looks_like_request() waits for.
constexpr size_t kMaxStartLine = 8 * 1024;
constexpr size_t kMaxMethodToken = 32;  // looks_like_request: any token up to this long
constexpr size_t kSearchPiece = 8 * 1024;  // bytes copied into the window per search step
constexpr size_t kMaxExpected = 1024;
constexpr size_t kKeepHeaderBuffer = 8 * 1024;  // header bytes' buffer kept between messages  // expect_response() notes kept (a dead response direction must not grow them)

// http-parser's methods (the only ones it parses), from its own table.
constexpr std::string_view kMethods[] = {
#define CLEARCAP_METHOD_NAME(num, name, string) #string,
    HTTP_METHOD_MAP(CLEARCAP_METHOD_NAME)
#undef CLEARCAP_METHOD_NAME
};
constexpr size_t kMaxMethodName = [] {
  size_t n = 0;
  for (auto m : kMethods) n = std::max(n, m.size());
  return n;
}();

bool known_method(std::string_view m) {
  for (auto k : kMethods)
    if (k == m) return true;
  return false;
}

bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
bool is_upper_method_char(uint8_t c) { return (c >= 'A' && c <= 'Z') || c == '-'; }
// A request target byte: visible ASCII or obs-text (http-parser, not
// strict, takes bytes >= 0x80 in URLs).
bool is_target_byte(uint8_t c) { return c > 0x20 && c != 0x7f; }
// RFC 9110 tchar.
bool is_tchar(uint8_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

enum class Match { kNo, kMore, kYes };

// "HTTP/1.x SP 3DIGIT" at `a`.
Match response_line_at(std::string_view w, size_t a) {
  static constexpr std::string_view kShape = "HTTP/1.d ddd";
  for (size_t k = 0; k < kShape.size(); ++k) {
    if (a + k >= w.size()) return Match::kMore;
    const auto c = static_cast<uint8_t>(w[a + k]);
    if (kShape[k] == 'd' ? !is_digit(c) : c != static_cast<uint8_t>(kShape[k])) return Match::kNo;
  }
  return Match::kYes;
}

// A request line "METHOD SP target SP HTTP/1.x" CR|LF whose "HTTP/1." is at
// `a`; `start` is where its method begins. Looks back only inside `w`.
Match request_line_at(std::string_view w, size_t a, size_t max_line, size_t& start) {
  if (a + 7 < w.size() && !is_digit(static_cast<uint8_t>(w[a + 7]))) return Match::kNo;
  if (a + 8 < w.size() && w[a + 8] != '\r' && w[a + 8] != '\n') return Match::kNo;
  if (a < 1 || w[a - 1] != ' ') return Match::kNo;
  const size_t target_end = a - 1;
  size_t i = target_end;
  while (i > 0 && is_target_byte(static_cast<uint8_t>(w[i - 1]))) {
    if (a - i > max_line) return Match::kNo;
    --i;
  }
  // An empty target, or one that starts before what is kept (the bytes
  // before were lost, or it is longer than a start line may be).
  if (i == target_end || i == 0 || w[i - 1] != ' ') return Match::kNo;
  const size_t method_end = i - 1;
  size_t j = method_end;
  while (j > 0 && method_end - j < kMaxMethodName && is_upper_method_char(static_cast<uint8_t>(w[j - 1]))) --j;
  for (size_t len = method_end - j; len > 0; --len) {
    if (!known_method(w.substr(method_end - len, len))) continue;
    start = method_end - len;
    if (a - start > max_line) return Match::kNo;
    return a + 9 <= w.size() ? Match::kYes : Match::kMore;
  }
  return Match::kNo;
}

}  // namespace

struct Parser::Impl {
  Impl(Kind k, Limits l) : kind(k), limits(l), max_line(std::min(kMaxStartLine, l.max_header_bytes)) {
    start_parser();
  }

  enum class Mode : uint8_t { kParse, kSearch, kUpgraded };
  enum class Pause : uint8_t { kNone, kBegin, kHeaders };
  // A header's name and value, as offsets into `hbuf` (filled across
  // callbacks and feeds; the strings are built once, at the end).
  struct Span {
    uint32_t name_off = 0, name_len = 0, value_off = 0, value_len = 0;
  };

  const Kind kind;
  const Limits limits;
  const size_t max_line;  // the search's longest request start line
  http_parser hp{};
  Mode mode = Mode::kParse;
  uint64_t stream_off = 0;  // bytes fed so far: the stream offset of the next feed
  uint64_t errors = 0;

  // The feed in progress.
  std::vector<Message>* out = nullptr;
  uint64_t now_ts = 0;
  const char* base = nullptr;  // the bytes handed to http_parser_execute ...
  uint64_t base_off = 0;       // ... and their stream offset
  size_t completed = 0;

  // The message in progress.
  Message msg;
  bool begun = false, headers_done = false, upgrade_done = false;
  Pause pause = Pause::kNone;
  uint64_t begin_off = 0;
  std::string hbuf;
  std::vector<Span> spans;
  size_t spans_built = 0;  // spans already in msg.headers (the rest are trailers)
  bool in_value = false;

  // Responses: HEAD (bit 0) and CONNECT (bit 1) of the requests answered next.
  std::deque<uint8_t> expected;

  // The search.
  std::string window;
  uint64_t window_off = 0;  // stream offset of window[0]
  size_t scan = 0;          // "HTTP/1." before this index were turned down
  bool undecided = false;   // a start line at the window's end waits for its last bytes
  bool searched = false;    // the last feed() ran the search
  std::vector<std::pair<uint64_t, uint64_t>> window_ts;  // (stream offset, ts) where each feed's bytes begin

  static const http_parser_settings& settings() {
    static const http_parser_settings s = [] {
      http_parser_settings st;
      http_parser_settings_init(&st);
      st.on_message_begin = on_message_begin;
      st.on_url = on_url;
      st.on_status = on_status;
      st.on_header_field = on_header_field;
      st.on_header_value = on_header_value;
      st.on_headers_complete = on_headers_complete;
      st.on_body = on_body;
      st.on_message_complete = on_message_complete;
      return st;
    }();
    return s;
  }

  void start_parser() {
    http_parser_init(&hp, kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE);
    hp.data = this;
    // Transfer-Encoding: chunked with a Content-Length: chunked wins (RFC
    // 9112 6.3); an observer takes what the peer will have taken. (A field
    // of Debian's http-parser 2.9.4, from upstream's later e13b274.)
    hp.allow_chunked_length = 1;
  }

  // Between messages (`msg` itself is reset when the next one begins).
  void reset_state() {
    begun = headers_done = in_value = false;
    // Reused from message to message, but one huge header block must not
    // stay on every connection that once saw it.
    if (hbuf.capacity() > kKeepHeaderBuffer) std::string().swap(hbuf);
    hbuf.clear();
    spans.clear();
    spans_built = 0;
  }

  void add_headers(size_t from) {
    for (size_t i = from; i < spans.size(); ++i) {
      const Span& s = spans[i];
      msg.headers.emplace_back(std::string(hbuf, s.name_off, s.name_len), std::string(hbuf, s.value_off, s.value_len));
    }
    spans_built = spans.size();
  }

  // The message in progress, cut short (gap, parse error): handed over when
  // its headers were complete (its trailers so far included), else dropped.
  void abandon(std::vector<Message>& to) {
    if (begun && headers_done) {
      add_headers(spans_built);
      msg.incomplete = true;
      to.push_back(std::move(msg));
    }
    reset_state();
  }

  // Start line and headers (wire bytes) so far within the limit, `end`
  // being where the bytes a callback got end.
  bool header_room(const char* end) const {
    return base_off + static_cast<uint64_t>(end - base) - begin_off <= limits.max_header_bytes;
  }
  // Trailers: what is kept of headers and trailers within the limit.
  bool trailer_room(size_t more) const { return hbuf.size() + more <= limits.max_header_bytes; }

  static Impl& of(http_parser* p) { return *static_cast<Impl*>(p->data); }

  static int on_message_begin(http_parser* p) {
    Impl& m = of(p);
    m.reset_state();
    m.msg = Message{};
    m.begun = true;
    m.msg.kind = m.kind;
    m.msg.first_ns = m.msg.last_ns = m.now_ts;
    // Paused so that run() learns where the message starts (the callback is
    // not told): header_bytes and the header limit count from there.
    m.pause = Pause::kBegin;
    http_parser_pause(p, 1);
    return 0;
  }

  static int on_url(http_parser* p, const char* at, size_t n) {
    Impl& m = of(p);
    if (!m.header_room(at + n)) return 1;
    m.msg.path.append(at, n);
    return 0;
  }

  static int on_status(http_parser* p, const char* at, size_t n) {
    Impl& m = of(p);
    if (!m.header_room(at + n)) return 1;
    m.msg.reason.append(at, n);
    return 0;
  }

  static int on_header_field(http_parser* p, const char* at, size_t n) {
    Impl& m = of(p);
    if (m.headers_done ? !m.trailer_room(n) : !m.header_room(at + n)) return 1;
    if (m.in_value || m.spans.size() == m.spans_built) {
      m.spans.push_back({static_cast<uint32_t>(m.hbuf.size()), 0, 0, 0});
      m.in_value = false;
    }
    m.hbuf.append(at, n);
    m.spans.back().name_len += static_cast<uint32_t>(n);
    return 0;
  }

  static int on_header_value(http_parser* p, const char* at, size_t n) {
    Impl& m = of(p);
    if (m.headers_done ? !m.trailer_room(n) : !m.header_room(at + n)) return 1;
    if (m.spans.size() == m.spans_built) m.spans.push_back({static_cast<uint32_t>(m.hbuf.size()), 0, 0, 0});
    if (!m.in_value) {
      m.in_value = true;
      m.spans.back().value_off = static_cast<uint32_t>(m.hbuf.size());
    }
    m.hbuf.append(at, n);
    m.spans.back().value_len += static_cast<uint32_t>(n);
    return 0;
  }

  // Returns 0 (a body as the headers say), 1 (no body) or 2 (no body, and
  // the connection is not HTTP any more), as http-parser defines.
  static int on_headers_complete(http_parser* p) {
    Impl& m = of(p);
    if (p->http_major != 1) return -1;  // HTTP/0.9 ("GET /" alone), "HTTP/2.0": not this parser's
    Message& msg = m.msg;
    msg.version = p->http_minor == 0 ? http::Version::kHttp10 : http::Version::kHttp11;
    msg.headers.reserve(m.spans.size());
    m.add_headers(0);
    m.in_value = false;
    m.headers_done = true;
    int ret = 0;
    if (m.kind == Kind::kRequest) {
      msg.method = http_method_str(static_cast<http_method>(p->method));
      msg.authority = msg.header("Host");
      if (msg.authority.empty() && p->method == HTTP_CONNECT) msg.authority = msg.path;
    } else {
      msg.status = static_cast<int>(p->status_code);
      bool head = false, connect = false;
      // Interim (1xx) responses come before the final one to the same request.
      if ((msg.status >= 200 || msg.status == 101) && !m.expected.empty()) {
        head = m.expected.front() & 1;
        connect = m.expected.front() & 2;
        m.expected.pop_front();
      }
      if (msg.status == 101 || (connect && msg.status / 100 == 2)) {
        ret = 2;
      } else if (msg.status / 100 == 1 || msg.status == 204 || msg.status == 304 || head) {
        ret = 1;  // no body, whatever Content-Length says
      }
    }
    // One allocation for a Content-Length body, never more than is kept.
    if (ret == 0 && !(p->flags & F_CHUNKED) && (p->flags & F_CONTENTLENGTH) && p->content_length != ULLONG_MAX)
      msg.body.reserve(static_cast<size_t>(std::min<uint64_t>(p->content_length, m.limits.max_body_bytes)));
    // Paused so that run() learns where the headers end.
    m.pause = Pause::kHeaders;
    http_parser_pause(p, 1);
    return ret;
  }

  static int on_body(http_parser* p, const char* at, size_t n) {
    Impl& m = of(p);
    Message& msg = m.msg;
    msg.body_bytes += n;
    const size_t room = m.limits.max_body_bytes - std::min(m.limits.max_body_bytes, msg.body.size());
    if (n > room) msg.body_cut = true;
    msg.body.append(at, std::min(n, room));
    return 0;
  }

  static int on_message_complete(http_parser* p) {
    Impl& m = of(p);
    m.add_headers(m.spans_built);  // trailers
    m.msg.last_ns = m.now_ts;
    m.msg.upgrade = p->upgrade;
    m.upgrade_done = p->upgrade;  // for good: run() stops parsing
    m.out->push_back(std::move(m.msg));
    ++m.completed;
    m.reset_state();
    return 0;
  }

  // Runs http-parser over `n` bytes at `p` (stream offset `off`). Returns
  // the bytes used: all of them, or, on a parse error (`failed`), those up
  // to where the search must go on. After an upgrade, mode is kUpgraded.
  size_t run(const char* p, size_t n, uint64_t off, bool& failed) {
    base = p;
    base_off = off;
    size_t pos = 0;
    while (pos < n) {
      const size_t k = http_parser_execute(&hp, &settings(), p + pos, n - pos);
      pos += k;
      if (begun) msg.last_ns = now_ts;
      const auto err = HTTP_PARSER_ERRNO(&hp);
      if (err == HPE_PAUSED) {
        http_parser_pause(&hp, 0);
        if (pause == Pause::kBegin) {
          begin_off = off + pos - 1;  // message_begin consumed the message's first byte
        } else if (pause == Pause::kHeaders) {
          // The final LF is not consumed yet: the headers end after it.
          msg.header_bytes = off + pos + 1 - begin_off;
          if (msg.header_bytes > limits.max_header_bytes) {
            headers_done = false;  // over the limit: dropped, not handed over
            return fail(pos, n, failed);
          }
        }
        pause = Pause::kNone;
        continue;
      }
      if (err != HPE_OK) return fail(pos, n, failed);
      if (upgrade_done) {
        mode = Mode::kUpgraded;
        return n;
      }
      if (k == 0) return fail(pos, n, failed);  // cannot happen; never loop on it
    }
    return pos;
  }

  // A parse error at `pos`: the message in progress is given up and the
  // search goes on from the error. When no message had begun, the byte at
  // `pos` is where one would have started: skip it, or a start that
  // http-parser turns down would be found again forever.
  size_t fail(size_t pos, size_t n, bool& failed) {
    failed = true;
    ++errors;
    const bool skip = !begun && pos < n;
    abandon(*out);
    pause = Pause::kNone;
    start_parser();
    return pos + (skip ? 1 : 0);
  }

  void enter_search(uint64_t off) {
    mode = Mode::kSearch;
    window.clear();
    window_ts.clear();
    window_off = off;
    scan = 0;
    undecided = false;
  }

  void leave_search() {
    // Searches are rare: give their memory back.
    std::string().swap(window);
    std::vector<std::pair<uint64_t, uint64_t>>().swap(window_ts);
    scan = 0;
    undecided = false;
  }

  void drop_window_front(size_t cut) {
    window.erase(0, cut);
    window_off += cut;
    scan = scan > cut ? scan - cut : 0;
    size_t first = 0;
    while (first + 1 < window_ts.size() && window_ts[first + 1].first <= window_off) ++first;
    window_ts.erase(window_ts.begin(), window_ts.begin() + static_cast<std::ptrdiff_t>(first));
  }

  // The window index where a message starts, or npos.
  size_t find_start() {
    const std::string_view w = window;
    undecided = false;
    for (;;) {
      const size_t a = w.find(kVersionPrefix, scan);
      if (a == std::string_view::npos) {
        // A "HTTP/1." cut by the window's end is looked at again.
        if (w.size() > kVersionPrefix.size()) scan = std::max(scan, w.size() - kVersionPrefix.size());
        return std::string_view::npos;
      }
      size_t start = a;
      const Match r = kind == Kind::kRequest ? request_line_at(w, a, max_line, start) : response_line_at(w, a);
      if (r == Match::kYes) return start;
      if (r == Match::kMore) {
        scan = a;
        undecided = true;
        return std::string_view::npos;
      }
      scan = a + 1;
    }
  }

  // Search mode: takes up to kSearchPiece bytes of `d` (stream offset
  // `off`) into the window and looks for a message start; from one, the
  // window is replayed into http-parser (each feed's bytes with its ts).
  // Returns the bytes of `d` taken.
  size_t search(const char* d, size_t n, uint64_t off, bool& failed) {
    const size_t take = std::min(n, kSearchPiece);
    window.append(d, take);
    if (window_ts.empty() || window_ts.back().second != now_ts) window_ts.emplace_back(off, now_ts);
    const uint64_t feed_ts = now_ts;
    for (;;) {
      const size_t s = find_start();
      if (s == std::string_view::npos) {
        // Keep a start line's worth (and a little) for a start that ends in
        // the next bytes.
        const size_t keep = max_line + 64;
        if (window.size() > keep) drop_window_front(window.size() - keep);
        return take;
      }
      start_parser();
      mode = Mode::kParse;
      size_t from = s;
      bool f = false;
      size_t seg = 0;
      while (from < window.size() && mode == Mode::kParse && !f) {
        const uint64_t at = window_off + from;
        while (seg + 1 < window_ts.size() && window_ts[seg + 1].first <= at) ++seg;
        const size_t end = seg + 1 < window_ts.size() ? static_cast<size_t>(window_ts[seg + 1].first - window_off)
                                                      : window.size();
        now_ts = window_ts[seg].second;
        from += run(window.data() + from, end - from, at, f);
      }
      now_ts = feed_ts;
      if (!f) {
        leave_search();
        return take;
      }
      failed = true;
      mode = Mode::kSearch;
      drop_window_front(from);
      scan = 0;
    }
  }
};

Parser::Parser(Kind kind, Limits limits) : impl_(std::make_unique<Impl>(kind, limits)) {}
Parser::~Parser() = default;
Parser::Parser(Parser&&) noexcept = default;
Parser& Parser::operator=(Parser&&) noexcept = default;

ParseState Parser::feed(std::span<const uint8_t> bytes, uint64_t ts_ns, std::vector<Message>& out) {
  Impl& m = *impl_;
  const uint64_t off = m.stream_off;
  const size_t n = bytes.size();
  m.stream_off += n;
  if (m.mode == Impl::Mode::kUpgraded) return ParseState::kIgnored;
  m.out = &out;
  m.now_ts = ts_ns;
  m.completed = 0;
  m.searched = m.mode == Impl::Mode::kSearch;
  bool failed = false;
  const char* d = reinterpret_cast<const char*>(bytes.data());
  size_t pos = 0;
  while (pos < n && m.mode != Impl::Mode::kUpgraded) {
    if (m.mode == Impl::Mode::kSearch) {
      pos += m.search(d + pos, n - pos, off + pos, failed);
      continue;
    }
    bool f = false;
    pos += m.run(d + pos, n - pos, off + pos, f);
    if (f) {
      failed = true;
      m.searched = true;
      m.enter_search(off + pos);
    }
  }
  m.out = nullptr;
  if (failed) return ParseState::kInvalid;
  return m.completed > 0 ? ParseState::kSuccess : ParseState::kNeedsMoreData;
}

void Parser::gap(std::vector<Message>& out) {
  Impl& m = *impl_;
  if (m.mode == Impl::Mode::kUpgraded) return;
  if (m.mode == Impl::Mode::kParse && m.begun) ++m.errors;
  m.abandon(out);
  m.pause = Impl::Pause::kNone;
  m.start_parser();
  m.enter_search(m.stream_off);
}

void Parser::expect_response(bool head, bool connect) {
  Impl& m = *impl_;
  if (m.kind != Kind::kResponse || m.expected.size() >= kMaxExpected) return;
  m.expected.push_back(static_cast<uint8_t>((head ? 1 : 0) | (connect ? 2 : 0)));
}

bool Parser::in_message() const {
  const Impl& m = *impl_;
  return (m.mode == Impl::Mode::kParse && m.begun) || (m.mode == Impl::Mode::kSearch && m.undecided);
}

bool Parser::upgraded() const { return impl_->mode == Impl::Mode::kUpgraded; }

void Parser::decline_upgrade() {
  Impl& m = *impl_;
  if (m.mode != Impl::Mode::kUpgraded) return;
  m.begun = m.headers_done = m.upgrade_done = false;
  m.pause = Impl::Pause::kNone;
  m.start_parser();
  m.enter_search(m.stream_off);
}

bool Parser::searched() const { return impl_->searched; }

uint64_t Parser::parse_errors() const { return impl_->errors; }

ParseState looks_like_request(std::span<const uint8_t> b) {
  const size_t n = b.size();
  size_t i = 0;
  for (; i < n && is_tchar(b[i]); ++i)
    if (i >= kMaxMethodToken) return ParseState::kInvalid;
  if (i == n) return ParseState::kNeedsMoreData;
  if (i == 0 || b[i] != ' ') return ParseState::kInvalid;
  const size_t target = ++i;
  for (; i < n && is_target_byte(b[i]); ++i)
    if (i - target >= kMaxStartLine) return ParseState::kInvalid;
  if (i == n) return ParseState::kNeedsMoreData;
  if (i == target || b[i] != ' ') return ParseState::kInvalid;
  ++i;
  // The version, so that "PRI * HTTP/2.0" (HTTP/2's preface) and line
  // protocols ("EHLO host", "SET key value") are not taken for HTTP/1.
  for (size_t k = 0; k <= kVersionPrefix.size(); ++k, ++i) {
    if (i == n) return ParseState::kNeedsMoreData;
    const bool ok = k < kVersionPrefix.size() ? b[i] == static_cast<uint8_t>(kVersionPrefix[k]) : is_digit(b[i]);
    if (!ok) return ParseState::kInvalid;
  }
  return ParseState::kSuccess;
}

ParseState looks_like_response(std::span<const uint8_t> b) {
  const std::string_view w(reinterpret_cast<const char*>(b.data()), b.size());
  switch (response_line_at(w, 0)) {
    case Match::kYes: return ParseState::kSuccess;
    case Match::kMore: return ParseState::kNeedsMoreData;
    case Match::kNo: break;
  }
  return ParseState::kInvalid;
}

}  // namespace clearcap::http1
