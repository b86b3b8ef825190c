// The layout probe against the system's real libssl (no root needed: it
// forks, dlopens the library and runs handshakes): where the socket fd and
// the secrets live, and clear reasons when a file cannot be probed.
#include "modules/tls/key_layout.h"

#include <unistd.h>

#include <gtest/gtest.h>

namespace clearcap {
namespace {

constexpr const char* kSystemLibssl = "/usr/lib/x86_64-linux-gnu/libssl.so.3";

TEST(LayoutProbe, FindsTheSocketFdBehindTheSslObject) {
  if (access(kSystemLibssl, R_OK) != 0) GTEST_SKIP() << kSystemLibssl << " missing (apt-get install libssl3)";
  LibraryLayouts l = learn_library_layouts(kSystemLibssl, false);
  ASSERT_TRUE(l.fd) << l.fd.error().message;
  EXPECT_EQ(l.fd->layout.valid, 1u);
  EXPECT_EQ(l.fd->layout.sock_type, 0x0505);
  // OpenSSL 3.0: the read BIO is the third field of struct ssl_st (after the
  // version and the method); num sits behind the BIO's callbacks.
  EXPECT_EQ(l.fd->layout.rbio_off, 0x10u) << l.fd->summary;
  EXPECT_NE(l.fd->summary.find("rbio=0x10"), std::string::npos) << l.fd->summary;
  EXPECT_FALSE(l.keys) << "keys were not asked for";
}

TEST(LayoutProbe, FdAndKeysInOneProbe) {
  if (access(kSystemLibssl, R_OK) != 0) GTEST_SKIP() << kSystemLibssl << " missing (apt-get install libssl3)";
  LibraryLayouts l = learn_library_layouts(kSystemLibssl, true);
  ASSERT_TRUE(l.fd) << l.fd.error().message;
  ASSERT_TRUE(l.keys) << l.keys.error().message;
  EXPECT_EQ(l.keys->layout.items[CC_KEY_CLIENT_RANDOM].len, 32);
  EXPECT_EQ(l.keys->layout.items[CC_KEY_MASTER].len, 48);
}

TEST(LayoutProbe, AFileThatIsNoLibraryGivesTheReason) {
  LibraryLayouts l = learn_library_layouts("/etc/hostname", true);
  ASSERT_FALSE(l.fd);
  EXPECT_NE(l.fd.error().message.find("dlopen"), std::string::npos) << l.fd.error().message;
  ASSERT_FALSE(l.keys);
  EXPECT_NE(l.keys.error().message.find("dlopen"), std::string::npos) << l.keys.error().message;
}

TEST(LayoutProbe, ALibraryWithoutOpenSslGivesTheReason) {
  // libz: loads fine, has none of the SSL functions.
  const char* libz = "/lib/x86_64-linux-gnu/libz.so.1";
  if (access(libz, R_OK) != 0) GTEST_SKIP() << libz << " missing";
  LibraryLayouts l = learn_library_layouts(libz, true);
  ASSERT_FALSE(l.fd);
  EXPECT_NE(l.fd.error().message.find("SSL_new"), std::string::npos) << l.fd.error().message;
  ASSERT_FALSE(l.keys);
  EXPECT_NE(l.keys.error().message.find("SSL_CTX_new"), std::string::npos) << l.keys.error().message;
}

}  // namespace
}  // namespace clearcap
