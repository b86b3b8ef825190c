// Library discovery over a fake /proc tree (DiscoveryOptions::proc_root):
// each module's LibrarySpec finds its library mapped by a process (through
// /proc/PID/root, as for containers), with that process's pid, skips files
// that are named like the library but lack its functions (with a note), and
// reports a missing process as such.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "core/library_discovery.h"
#include "modules/gnutls/gnutls_module.h"
#include "modules/nss/nss_module.h"
#include "modules/tls/tls_module.h"

namespace fs = std::filesystem;

namespace clearcap {
namespace {

constexpr const char* kSystemLibssl = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
constexpr const char* kSystemGnutls = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30";

class FakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("clearcap-fakeproc-" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Process `pid` maps the given files (copied into its root from the host
  // paths; `as` is the path the process sees).
  void process(int pid, const std::vector<std::pair<std::string, std::string>>& files) {
    fs::path dir = root_ / std::to_string(pid);
    fs::create_directories(dir / "root");
    std::ofstream maps(dir / "maps");
    unsigned long addr = 0x7f0000000000;
    for (const auto& [host, as] : files) {
      fs::path inside = dir / "root" / fs::path(as).relative_path();
      fs::create_directories(inside.parent_path());
      if (host.empty()) {
        std::ofstream(inside) << "not an ELF file";
      } else {
        fs::copy_file(host, inside);
      }
      struct stat st {};
      stat(inside.c_str(), &st);
      maps << std::hex << addr << "-" << addr + 0x1000 << std::dec << " r-xp 00000000 08:01 " << st.st_ino << " "
           << as << "\n";
      addr += 0x10000;
    }
    maps << "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n";
  }
  DiscoveryOptions opts(std::vector<int> pids) {
    DiscoveryOptions o;
    o.pids = std::move(pids);
    o.proc_root = root_.string();
    return o;
  }

  fs::path root_;
};

TEST_F(FakeProc, EachModuleFindsItsLibraryInTheProcessThatMapsIt) {
  process(4242, {{kSystemLibssl, "/opt/app/lib/libssl.so.3"}, {"", "/opt/app/lib/libssl.so.9"}});
  process(4343, {{kSystemGnutls, "/usr/lib/libgnutls.so.30"}});

  auto tls = discover_targets(*tls_module().library, opts({4242}));
  ASSERT_TRUE(tls) << tls.error().message;
  ASSERT_EQ(tls->targets.size(), 1u);
  EXPECT_EQ(tls->targets[0].display, "/opt/app/lib/libssl.so.3");
  EXPECT_EQ(tls->targets[0].path, (root_ / "4242/root/opt/app/lib/libssl.so.3").string());
  EXPECT_EQ(tls->targets[0].pids, std::vector<int>{4242});
  EXPECT_TRUE(tls->targets[0].offsets.count("SSL_write"));
  EXPECT_TRUE(tls->targets[0].offsets.count("SSL_read"));
  // Named like a libssl but no ELF: skipped, with a note saying why.
  ASSERT_EQ(tls->notes.size(), 1u);
  EXPECT_NE(tls->notes[0].find("libssl.so.9"), std::string::npos) << tls->notes[0];

  auto gnutls = discover_targets(*gnutls_module().library, opts({4343}));
  ASSERT_TRUE(gnutls) << gnutls.error().message;
  ASSERT_EQ(gnutls->targets.size(), 1u);
  EXPECT_EQ(gnutls->targets[0].display, "/usr/lib/libgnutls.so.30");
  EXPECT_TRUE(gnutls->targets[0].offsets.count("gnutls_record_recv"));
  EXPECT_TRUE(gnutls->targets[0].offsets.count("gnutls_record_send2"));

  // A process without the library: a clear error of kind "not found".
  auto none = discover_targets(*nss_module().library, opts({4242}));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().kind, ErrorKind::kNotFound);
  EXPECT_NE(none.error().message.find("--nspr"), std::string::npos) << none.error().message;
}

TEST_F(FakeProc, MissingProcessAndBadPathHaveTheirKinds) {
  auto gone = discover_targets(*tls_module().library, opts({999999}));
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, ErrorKind::kExited);

  DiscoveryOptions o = opts({});
  o.library = (root_ / "nope.so").string();
  auto missing = discover_targets(*gnutls_module().library, o);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ErrorKind::kNotFound);

  o.library = kSystemGnutls;  // a real file, but not OpenSSL
  auto wrong = discover_targets(*tls_module().library, o);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().kind, ErrorKind::kNotFound);
  EXPECT_NE(wrong.error().message.find("SSL_write"), std::string::npos) << wrong.error().message;
}

}  // namespace
}  // namespace clearcap
