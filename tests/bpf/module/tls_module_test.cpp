// The tls module in process: an OpenSSL client and server on a socket pair,
// SSL_write on one end and SSL_read on the other, through the system
// libssl the probes are attached to.
#include <thread>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "module_fixture.h"
#include "modules/tls/tls_module.h"

namespace clearcap::test {
namespace {

constexpr const char* kLibssl = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

TEST_F(ModuleTest, TlsWriteAndReadAreEachOneExactRecord) {
  open(tls_module(), kLibssl);
  const TestCert cert = make_test_cert();
  auto [cfd, sfd] = socket_pair();
  const std::string request = "ping-tls-" + std::to_string(getpid()) + "\n";
  const std::string reply = "pong-tls-" + std::to_string(getpid()) + "\n";

  std::string server_got;
  std::thread server([&, sfd = sfd] { openssl_serve_once(cert, sfd, reply, &server_got); });
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* c = SSL_new(ctx);
  SSL_set_fd(c, cfd);
  ASSERT_EQ(SSL_connect(c), 1);
  ASSERT_EQ(SSL_write(c, request.data(), static_cast<int>(request.size())), static_cast<int>(request.size()));
  char buf[256];
  int n = SSL_read(c, buf, sizeof(buf));
  server.join();
  ASSERT_EQ(std::string(buf, static_cast<size_t>(std::max(n, 0))), reply);
  EXPECT_EQ(server_got, request);
  SSL_free(c);
  SSL_CTX_free(ctx);

  const auto all = stop();
  const auto req = with_payload(all, request);
  const auto rep = with_payload(all, reply);
  ASSERT_EQ(req.size(), 2u);  // the client's write and the server's read
  ASSERT_EQ(rep.size(), 2u);
  for (const auto& e : {req[0], req[1], rep[0], rep[1]}) {
    EXPECT_EQ(e.module, "tls");
    EXPECT_EQ(e.pid, static_cast<uint32_t>(getpid()));
    EXPECT_EQ(e.seq, 0u);
    EXPECT_EQ(e.call_len, e.payload.size());
  }
  const Seen& cw = req[0].write ? req[0] : req[1];
  const Seen& sr = req[0].write ? req[1] : req[0];
  EXPECT_TRUE(cw.write);
  EXPECT_FALSE(sr.write);
  EXPECT_EQ(cw.payload, request);
  EXPECT_EQ(sr.payload, request);
  // Debian's libssl: hooked at the function SSL_write and SSL_write_ex both
  // call (modules/tls/tls_targets.cpp, place_tls_probes).
  EXPECT_EQ(cw.source, "SSL_write/SSL_write_ex");
  EXPECT_EQ(sr.source, "SSL_read/SSL_read_ex");
  EXPECT_EQ(cw.fd, cfd);
  EXPECT_EQ(sr.fd, sfd);
  EXPECT_NE(cw.conn_id, sr.conn_id);  // one SSL object each
  close(cfd);
  close(sfd);
}

}  // namespace
}  // namespace clearcap::test
