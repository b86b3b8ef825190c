#include "sinks/keylog.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "proto/tls13_kdf.h"

namespace clearcap {

namespace {

void append_hex(std::string& out, const uint8_t* b, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[b[i] >> 4]);
    out.push_back(kHex[b[i] & 15]);
  }
}

bool all_zero(const uint8_t* b, size_t n) {
  return std::all_of(b, b + n, [](uint8_t x) { return x == 0; });
}

// One write per handshake (not batches of them), so that rotation by size
// happens between handshakes: a few handshakes a second at most.
class KeylogTransport : public FileTransport {
 public:
  using FileTransport::FileTransport;
  bool is_stream() const override { return false; }
};

}  // namespace

KeylogFormat format_keylog(const cc_keys_event& k, std::string& out, std::string& client_random) {
  auto has = [&](int item) { return (k.present >> item) & 1u; };
  const uint8_t* cr = k.items[CC_KEY_CLIENT_RANDOM];
  if (!has(CC_KEY_CLIENT_RANDOM) || all_zero(cr, 32)) return KeylogFormat::kInvalid;
  client_random.assign(reinterpret_cast<const char*>(cr), 32);

  int32_t version = 0;
  if (has(CC_KEY_VERSION)) std::memcpy(&version, k.items[CC_KEY_VERSION], 4);
  else if (has(CC_KEY_CLIENT_APP_TRAFFIC) && !all_zero(k.items[CC_KEY_CLIENT_APP_TRAFFIC], 32)) version = 0x0304;

  auto line = [&](const char* label, const uint8_t* secret, size_t n) {
    out += label;
    out.push_back(' ');
    append_hex(out, cr, 32);
    out.push_back(' ');
    append_hex(out, secret, n);
    out.push_back('\n');
  };

  if (version != 0x0304) {
    // TLS 1.2 and earlier: the 48-byte master secret.
    if (!has(CC_KEY_MASTER) || all_zero(k.items[CC_KEY_MASTER], 48)) return KeylogFormat::kIncomplete;
    line("CLIENT_RANDOM", k.items[CC_KEY_MASTER], 48);
    return KeylogFormat::kTls12;
  }

  // TLS 1.3: secrets are as long as the suite's hash. The library zero-fills
  // its 64-byte arrays, so a SHA-256 secret read as 48 bytes ends in 16 zero
  // bytes (the probe checks this holds for the library, see key_layout.cpp).
  const uint8_t* cats = k.items[CC_KEY_CLIENT_APP_TRAFFIC];
  size_t hl = all_zero(cats + 32, 16) ? 32 : 48;
  bool complete = true;
  uint8_t derived[2][48];
  const uint8_t* hs[2] = {nullptr, nullptr};
  const int direct[2] = {CC_KEY_CLIENT_HS_TRAFFIC, CC_KEY_SERVER_HS_TRAFFIC};
  const char* labels[2] = {"c hs traffic", "s hs traffic"};
  for (int i = 0; i < 2; ++i) {
    if (has(direct[i]) && !all_zero(k.items[direct[i]], hl)) {
      hs[i] = k.items[direct[i]];
    } else if (has(CC_KEY_HANDSHAKE_SECRET) && has(CC_KEY_HANDSHAKE_HASH) &&
               !all_zero(k.items[CC_KEY_HANDSHAKE_SECRET], hl) &&
               tls13_expand_label({k.items[CC_KEY_HANDSHAKE_SECRET], hl}, labels[i],
                                  {k.items[CC_KEY_HANDSHAKE_HASH], hl}, {derived[i], hl})) {
      hs[i] = derived[i];
    }
  }
  struct {
    const char* label;
    const uint8_t* secret;
  } lines[] = {{"CLIENT_HANDSHAKE_TRAFFIC_SECRET", hs[0]},
               {"SERVER_HANDSHAKE_TRAFFIC_SECRET", hs[1]},
               {"CLIENT_TRAFFIC_SECRET_0", has(CC_KEY_CLIENT_APP_TRAFFIC) ? cats : nullptr},
               {"SERVER_TRAFFIC_SECRET_0", has(CC_KEY_SERVER_APP_TRAFFIC) ? k.items[CC_KEY_SERVER_APP_TRAFFIC] : nullptr},
               {"EXPORTER_SECRET", has(CC_KEY_EXPORTER) ? k.items[CC_KEY_EXPORTER] : nullptr}};
  for (const auto& l : lines) {
    if (!l.secret || all_zero(l.secret, hl)) {
      complete = false;
      continue;
    }
    line(l.label, l.secret, hl);
  }
  return complete ? KeylogFormat::kTls13 : KeylogFormat::kIncomplete;
}

Result<std::unique_ptr<KeylogSink>> KeylogSink::open(const std::string& path, RotatingFile::Options rotation) {
  // rotation.mode (0600 unless --file-mode) narrows an existing file too;
  // a key log of another user is refused (output_file.h).
  rotation.header = nullptr;
  auto transport = std::make_unique<KeylogTransport>(path, std::move(rotation));
  if (auto r = transport->connect(); !r)
    return make_error(fmt::format("cannot open the key log file: {} (pass another path with -k)", r.error().message),
                      r.error().err);
  auto writer = std::make_unique<AsyncWriter>(path, std::move(transport), AsyncWriter::Options{});
  writer->start();
  return std::unique_ptr<KeylogSink>(new KeylogSink(std::move(writer), path));
}

KeylogSink::~KeylogSink() { finish(); }

void KeylogSink::finish() { writer_->stop(); }

void KeylogSink::flush() { writer_->wake(); }

bool KeylogSink::seen(const std::string& client_random) {
  if (seen_set_.count(client_random)) return true;
  if (seen_order_.size() >= kDedupEntries) {
    seen_set_.erase(seen_order_.front());
    seen_order_.pop_front();
  }
  seen_set_.insert(client_random);
  seen_order_.push_back(client_random);
  return false;
}

// Runs once per handshake, not per byte: the small allocations of the dedup
// set are acceptable here.
void KeylogSink::write(const Event& ev) {
  if (ev.record_type != CC_REC_KEYS || ev.record.size() < sizeof(cc_keys_event)) return;
  cc_keys_event k;
  std::memcpy(&k, ev.record.data(), sizeof(k));
  line_buf_.clear();
  KeylogFormat f = format_keylog(k, line_buf_, cr_buf_);
  if (f == KeylogFormat::kInvalid) {
    incomplete_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (seen(cr_buf_)) {
    duplicates_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (f == KeylogFormat::kIncomplete) incomplete_.fetch_add(1, std::memory_order_relaxed);
  // One record per handshake: its lines stay together in one file. The
  // writer is woken at once (a handshake, not a byte stream) so a reader
  // sees the keys as soon as the handshake is done.
  if (!writer_->push(line_buf_)) return;  // counted by the writer
  writer_->wake();
}

void KeylogSink::collect_stats(std::vector<SinkStats>& out) const {
  SinkStats st = writer_->stats();
  st.name = path_;
  out.push_back(st);
}

}  // namespace clearcap
