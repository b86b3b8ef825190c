// The nss module in process: an NSS client on one end of a loopback TCP
// connection (imported as an NSPR socket under an SSL layer) and an OpenSSL server
// on the other; PR_Write/PR_Read on the SSL descriptor are captured, and a
// plain file written with PR_Write on the same thread is not.
#include <thread>

#include <nspr.h>
#include <nss.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <private/pprio.h>
#include <ssl.h>

#include "module_fixture.h"
#include "modules/nss/nss_module.h"

namespace clearcap::test {
namespace {

constexpr const char* kLibnspr = "/usr/lib/x86_64-linux-gnu/libnspr4.so";

SECStatus accept_any(void*, PRFileDesc*, PRBool, PRBool) { return SECSuccess; }

TEST_F(ModuleTest, NssWriteAndReadOnSslOnlyAreExactRecords) {
  open(nss_module(), kLibnspr);
  const TestCert cert = make_test_cert();
  auto [cfd, sfd] = tcp_pair();
  const std::string request = "ping-nss-" + std::to_string(getpid()) + "\n";
  const std::string reply = "pong-nss-" + std::to_string(getpid()) + "\n";
  const std::string plain = "plain-nss-" + std::to_string(getpid()) + "\n";

  std::string server_got;
  std::thread server([&, sfd = sfd] { openssl_serve_once(cert, sfd, reply, &server_got); });

  ASSERT_EQ(NSS_NoDB_Init(nullptr), SECSuccess);
  NSS_SetDomesticPolicy();
  PRFileDesc* tcp = PR_ImportTCPSocket(cfd);
  ASSERT_NE(tcp, nullptr);
  PRFileDesc* ssl = SSL_ImportFD(nullptr, tcp);
  ASSERT_NE(ssl, nullptr);
  SSL_OptionSet(ssl, SSL_SECURITY, PR_TRUE);
  SSL_OptionSet(ssl, SSL_HANDSHAKE_AS_CLIENT, PR_TRUE);
  SSL_AuthCertificateHook(ssl, accept_any, nullptr);
  SSL_SetURL(ssl, "localhost");
  ASSERT_EQ(SSL_ResetHandshake(ssl, PR_FALSE), SECSuccess);
  if (SSL_ForceHandshake(ssl) != SECSuccess) {
    const char* err = PR_ErrorToName(PR_GetError());
    shutdown(cfd, SHUT_RDWR);
    server.join();
    FAIL() << "NSS handshake failed: " << (err ? err : "?");
  }
  ASSERT_EQ(PR_Write(ssl, request.data(), static_cast<PRInt32>(request.size())), static_cast<PRInt32>(request.size()));
  // Plain-file NSPR I/O on the same thread, inside the TLS session.
  const std::string path = "/tmp/clearcap-nss-module-test-" + std::to_string(getpid());
  PRFileDesc* f = PR_Open(path.c_str(), PR_WRONLY | PR_CREATE_FILE | PR_TRUNCATE, 0600);
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(PR_Write(f, plain.data(), static_cast<PRInt32>(plain.size())), static_cast<PRInt32>(plain.size()));
  PR_Close(f);
  unlink(path.c_str());
  char buf[256];
  PRInt32 n = PR_Read(ssl, buf, sizeof(buf));
  server.join();
  ASSERT_EQ(std::string(buf, static_cast<size_t>(std::max<PRInt32>(n, 0))), reply);
  EXPECT_EQ(server_got, request);
  PR_Close(ssl);  // closes cfd too
  NSS_Shutdown();

  const auto all = stop();
  EXPECT_TRUE(with_payload(all, plain).empty()) << "a plain-file PR_Write was captured";
  const auto req = with_payload(all, request);
  const auto rep = with_payload(all, reply);
  ASSERT_EQ(req.size(), 1u);  // only the NSS end is hooked
  ASSERT_EQ(rep.size(), 1u);
  EXPECT_EQ(req[0].module, "nss");
  EXPECT_EQ(req[0].source, "PR_Write");
  EXPECT_TRUE(req[0].write);
  EXPECT_EQ(req[0].payload, request);
  EXPECT_EQ(req[0].fd, cfd);  // from the descriptor's bottom layer
  EXPECT_EQ(req[0].seq, 0u);
  EXPECT_EQ(rep[0].source, "PR_Read");
  EXPECT_FALSE(rep[0].write);
  EXPECT_EQ(rep[0].payload, reply);
  EXPECT_EQ(rep[0].conn_id, req[0].conn_id);
  close(sfd);
}

}  // namespace
}  // namespace clearcap::test
