// PeerAccess and ConnectionLimits: who may use clearcap's servers, decided
// without a network (the peer-uid lookup is exercised by the eCaptureQ
// server tests and tests/bpf/test_security.py).
#include "core/peer_access.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace clearcap {
namespace {

PeerAccess make(std::string token = {}, std::string host = "127.0.0.1") {
  auto a = PeerAccess::create({"--listen", std::move(token), {4242}, std::move(host), 28256});
  EXPECT_TRUE(a) << (a ? "" : a.error().message);
  return std::move(*a);
}

TEST(PeerAccess, HostMustBeLoopbackWithoutToken) {
  const PeerAccess a = make();
  for (const char* ok : {"127.0.0.1:28256", "localhost:28256", "LOCALHOST:1", "[::1]:28256", "127.0.0.1", ""})
    EXPECT_FALSE(a.check_headers(ok, "")) << ok;
  for (const char* bad : {"evil.example:28256", "127.0.0.1.evil.example:28256", "10.0.0.5:28256"})
    EXPECT_TRUE(a.check_headers(bad, "")) << bad;
  // With a token the Host is not checked (a rebinding page cannot send the token).
  EXPECT_FALSE(make("s3cret-token").check_headers("lb1.internal:28256", ""));
}

TEST(PeerAccess, OnlySameOriginIsServed) {
  for (const PeerAccess& a : {make(), make("s3cret-token")}) {
    EXPECT_FALSE(a.check_headers("127.0.0.1:28256", "http://127.0.0.1:28256"));
    EXPECT_TRUE(a.check_headers("127.0.0.1:28256", "https://evil.example"));
    EXPECT_TRUE(a.check_headers("127.0.0.1:28256", "null"));
    EXPECT_TRUE(a.check_headers("127.0.0.1:28256", "http://127.0.0.1:28257"));
    EXPECT_TRUE(a.check_headers("", "http://127.0.0.1:28256")) << "no Host to compare with";
  }
}

TEST(PeerAccess, TokenComparison) {
  const PeerAccess a = make("s3cret-token");
  EXPECT_TRUE(a.token_ok("Bearer s3cret-token"));
  EXPECT_TRUE(a.token_ok("", "s3cret-token"));
  EXPECT_FALSE(a.token_ok("Bearer s3cret-tokeN"));
  EXPECT_FALSE(a.token_ok("Bearer s3cret-token "));
  EXPECT_FALSE(a.token_ok("s3cret-token"));
  EXPECT_FALSE(a.token_ok(""));
  EXPECT_TRUE(make().token_ok("")) << "no token configured";
}

TEST(PeerAccess, AllowedUidsAndBindingBeyondLoopback) {
  const PeerAccess a = make();
  EXPECT_EQ(a.allowed_uids().front(), 0u);
  EXPECT_NE(std::find(a.allowed_uids().begin(), a.allowed_uids().end(), getuid()), a.allowed_uids().end());
  EXPECT_EQ(a.allowed_uids().back(), 4242u);
  for (const char* host : {"0.0.0.0", "::", "10.0.0.5"}) {
    auto r = PeerAccess::create({"--listen", "", {}, host, 1});
    ASSERT_FALSE(r) << host;
    EXPECT_NE(r.error().message.find("needs a token"), std::string::npos);
    EXPECT_TRUE(PeerAccess::create({"--listen", "s3cret-token", {}, host, 1}));
  }
}

TEST(ConnectionLimits, TotalAndPerPeer) {
  ConnectionLimits l(3, 2);
  auto a1 = l.admit("uid 1000");
  auto a2 = l.admit("uid 1000");
  EXPECT_TRUE(a1 && a2);
  EXPECT_FALSE(l.admit("uid 1000")) << "per peer";
  auto b1 = l.admit("uid 0");
  EXPECT_TRUE(b1);
  EXPECT_FALSE(l.admit("uid 0")) << "in total";
  EXPECT_EQ(l.open(), 3u);
  a1.reset();
  EXPECT_TRUE(l.admit("uid 0")) << "a closed connection frees its place";
}

TEST(LoadToken, FileEnvironmentArgv) {
  char tmpl[] = "/tmp/clearcap-token-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string file = std::string(tmpl) + "/token";
  std::ofstream(file) << "s3cret-token\nignored second line\n";
  chmod(file.c_str(), 0644);
  auto r = load_token({"--listen-token", "", file, "CLEARCAP_TEST_TOKEN"});
  ASSERT_FALSE(r) << "readable by others";
  EXPECT_NE(r.error().message.find("chmod 600"), std::string::npos);
  chmod(file.c_str(), 0600);
  EXPECT_EQ(*load_token({"--listen-token", "argv-token-1", file, "CLEARCAP_TEST_TOKEN"}), "s3cret-token");
  setenv("CLEARCAP_TEST_TOKEN", "env-token-123", 1);
  EXPECT_EQ(*load_token({"--listen-token", "argv-token-1", "", "CLEARCAP_TEST_TOKEN"}), "env-token-123");
  unsetenv("CLEARCAP_TEST_TOKEN");
  EXPECT_EQ(*load_token({"--listen-token", "argv-token-1", "", "CLEARCAP_TEST_TOKEN"}), "argv-token-1");
  EXPECT_EQ(*load_token({"--listen-token", "", "", "CLEARCAP_TEST_TOKEN"}), "");
  EXPECT_FALSE(load_token({"--listen-token", "short", "", ""}));
  EXPECT_FALSE(load_token({"--listen-token", "has a space", "", ""}));
  EXPECT_FALSE(load_token({"--listen-token", std::string("nul\0inside-x", 12), "", ""}));
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace clearcap
