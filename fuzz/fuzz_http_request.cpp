// Bytes from a client of the configuration API through Boost.Beast's
// request parser, set up as control/api_server.cpp sets up its own (headers
// 8 KiB, bodies 64 KiB, string body) and read the way bhttp::async_read reads
// (bhttp::read over a stream that hands the bytes over in pieces), request
// after request while the connection stays open. The limits are private to
// api_server.cpp, so they are repeated here: keep the two in step.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace {

namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace net = boost::asio;

constexpr size_t kHeaderLimit = 8 * 1024;  // as api_server.cpp
constexpr size_t kBodyLimit = 64 * 1024;   // as api_server.cpp

// A SyncReadStream over the input: each read_some returns at most `piece`
// bytes (a socket rarely hands over a whole request at once), then EOF.
class InputStream {
 public:
  InputStream(const uint8_t* data, size_t size, size_t piece) : data_(data), size_(size), piece_(piece) {}

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
    if (pos_ == size_) {
      ec = net::error::eof;
      return 0;
    }
    ec = {};
    const size_t n = std::min(piece_, size_ - pos_);
    const size_t copied = net::buffer_copy(buffers, net::const_buffer(data_ + pos_, n));
    pos_ += copied;
    return copied;
  }
  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  const uint8_t* data_;
  size_t size_, pos_ = 0, piece_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte chooses how the bytes arrive: 1 to 256 at a time.
  InputStream stream(data + 1, size - 1, size_t{data[0]} + 1);
  beast::flat_buffer buf;
  size_t sum = 0;
  for (int requests = 0; requests < 64; ++requests) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    beast::error_code ec;
    bhttp::read(stream, buf, parser, ec);
    if (ec) break;  // the server answers 400/413 or closes: the connection ends
    // What the server takes from a request before the handler runs.
    auto& req = parser.get();
    sum += req.method_string().size() + req.target().size() + req.body().size() +
           req[bhttp::field::authorization].size();
    if (!req.keep_alive()) break;
  }
  volatile size_t keep = sum;
  (void)keep;
  return 0;
}
