// The gnutls module in process: a GnuTLS client and server on a socket
// pair (X.509, TLS 1.3), gnutls_record_send on one end and
// gnutls_record_recv on the other.
#include <thread>

#include <gnutls/gnutls.h>

#include "module_fixture.h"
#include "modules/gnutls/gnutls_module.h"

namespace clearcap::test {
namespace {

constexpr const char* kLibgnutls = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30";

TEST_F(ModuleTest, GnutlsSendAndRecvAreEachOneExactRecord) {
  open(gnutls_module(), kLibgnutls);
  const TestCert cert = make_test_cert();
  auto [cfd, sfd] = socket_pair();
  const std::string request = "ping-gnutls-" + std::to_string(getpid()) + "\n";
  const std::string reply = "pong-gnutls-" + std::to_string(getpid()) + "\n";

  gnutls_certificate_credentials_t scred, ccred;
  gnutls_certificate_allocate_credentials(&scred);
  gnutls_certificate_allocate_credentials(&ccred);
  gnutls_datum_t c{reinterpret_cast<unsigned char*>(const_cast<char*>(cert.cert_pem.data())),
                   static_cast<unsigned>(cert.cert_pem.size())};
  gnutls_datum_t k{reinterpret_cast<unsigned char*>(const_cast<char*>(cert.key_pem.data())),
                   static_cast<unsigned>(cert.key_pem.size())};
  ASSERT_EQ(gnutls_certificate_set_x509_key_mem(scred, &c, &k, GNUTLS_X509_FMT_PEM), 0);

  std::string server_got;
  std::thread server([&, sfd = sfd] {
    gnutls_session_t s;
    gnutls_init(&s, GNUTLS_SERVER);
    gnutls_set_default_priority(s);
    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, scred);
    gnutls_transport_set_int(s, sfd);
    int rc;
    do rc = gnutls_handshake(s); while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc == 0) {
      char buf[256];
      ssize_t n = gnutls_record_recv(s, buf, sizeof(buf));
      if (n > 0) server_got.assign(buf, static_cast<size_t>(n));
      gnutls_record_send(s, reply.data(), reply.size());
    }
    gnutls_deinit(s);
  });
  gnutls_session_t s;
  gnutls_init(&s, GNUTLS_CLIENT);
  gnutls_set_default_priority(s);
  gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, ccred);
  gnutls_transport_set_int(s, cfd);
  int rc;
  do rc = gnutls_handshake(s); while (rc < 0 && !gnutls_error_is_fatal(rc));
  ASSERT_EQ(rc, 0) << gnutls_strerror(rc);
  ASSERT_EQ(gnutls_record_send(s, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  char buf[256];
  ssize_t n = gnutls_record_recv(s, buf, sizeof(buf));
  server.join();
  ASSERT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))), reply);
  EXPECT_EQ(server_got, request);
  gnutls_deinit(s);
  gnutls_certificate_free_credentials(scred);
  gnutls_certificate_free_credentials(ccred);

  const auto all = stop();
  const auto req = with_payload(all, request);
  const auto rep = with_payload(all, reply);
  ASSERT_EQ(req.size(), 2u);  // the client's send and the server's recv, each once
  ASSERT_EQ(rep.size(), 2u);
  for (const auto& e : {req[0], req[1], rep[0], rep[1]}) {
    EXPECT_EQ(e.module, "gnutls");
    EXPECT_EQ(e.pid, static_cast<uint32_t>(getpid()));
    EXPECT_EQ(e.seq, 0u);
  }
  const Seen& cw = req[0].write ? req[0] : req[1];
  const Seen& sr = req[0].write ? req[1] : req[0];
  EXPECT_EQ(cw.payload, request);
  EXPECT_EQ(sr.payload, request);
  EXPECT_EQ(cw.source, "gnutls_record_send");
  EXPECT_EQ(sr.source, "gnutls_record_recv");
  // gnutls_transport_set_int named the sockets.
  EXPECT_EQ(cw.fd, cfd);
  EXPECT_EQ(sr.fd, sfd);
  close(cfd);
  close(sfd);
}

}  // namespace
}  // namespace clearcap::test
