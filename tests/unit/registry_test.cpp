// The module registry: every module's declaration is complete and
// consistent, source names reach the events, and the API's library field
// reaches the configuration body parser.
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "clearcap_abi.h"
#include "control/config_body.h"
#include "core/event.h"
#include "core/source_table.h"
#include "modules/registry.h"

namespace clearcap {
namespace {

// Source names are installed once for the whole test binary, as clearcap's
// main does at start-up (text and JSON encoder tests print them).
class RegistryEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { register_module_sources(); }
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new RegistryEnvironment);

TEST(Registry, NamesAliasesAndFieldsAreUniqueAndComplete) {
  std::set<std::string> names, fields, flags;
  std::set<int> sources;
  for (const ModuleInfo* m : modules()) {
    EXPECT_TRUE(names.insert(m->name).second) << m->name;
    for (const auto& a : m->aliases) EXPECT_TRUE(names.insert(a).second) << a;
    EXPECT_TRUE(fields.insert(m->api_path_field).second) << m->api_path_field;
    EXPECT_TRUE(flags.insert(m->library_flag).second) << m->library_flag;
    EXPECT_EQ(m->library->flag, m->library_flag) << m->name;
    ASSERT_FALSE(m->modes.empty());
    EXPECT_EQ(m->modes.front(), "text") << m->name;
    EXPECT_NE(m->load, nullptr) << m->name;
    EXPECT_FALSE(m->sources.empty()) << m->name;
    for (const auto& s : m->sources) EXPECT_TRUE(sources.insert(s.id).second) << m->name << " source " << int(s.id);
  }
  for (const char* want : {"tls", "openssl", "boringssl", "gnutls", "gnu", "nss", "nspr"})
    EXPECT_TRUE(find_module(want)) << want;
  EXPECT_EQ(find_module("gnu")->name, "gnutls");
  EXPECT_EQ(find_module("nspr")->name, "nss");
  EXPECT_EQ(find_module("nope"), nullptr);
}

TEST(Registry, SourcesNameTheModuleAndFunction) {
  EXPECT_EQ(source_info(CC_SRC_SSL_READ_EX).module, "tls");
  EXPECT_EQ(source_info(CC_SRC_SSL_READ_EX).function, "SSL_read_ex");
  EXPECT_EQ(source_info(CC_SRC_GNUTLS_RECV).module, "gnutls");
  EXPECT_EQ(source_info(CC_SRC_GNUTLS_SEND).function, "gnutls_record_send");
  EXPECT_EQ(source_info(CC_SRC_PR_SEND).module, "nss");
  EXPECT_EQ(source_info(CC_SRC_PR_RECV).function, "PR_Recv");
  EXPECT_EQ(source_info(200).module, "unknown");
}

TEST(Registry, EachModulesApiFieldIsItsLibrary) {
  for (const ModuleInfo* m : modules()) {
    const std::string body = "{\"" + m->api_path_field + "\":\"/x/lib.so\"}";
    auto p = parse_config_body(body, m->api_path_field, m->modes);
    ASSERT_TRUE(p) << body;
    ASSERT_TRUE(p->library) << body;
    EXPECT_EQ(*p->library, "/x/lib.so");
    EXPECT_TRUE(p->ignored.empty());
    // Another module's field is not this module's library.
    for (const ModuleInfo* other : modules()) {
      if (other == m) continue;
      auto q = parse_config_body("{\"" + other->api_path_field + "\":\"/y\"}", m->api_path_field, m->modes);
      ASSERT_TRUE(q);
      EXPECT_FALSE(q->library) << m->name << " took " << other->api_path_field;
    }
    // Modes outside the module's are refused.
    auto bad = parse_config_body(R"({"capturemode":"keylog"})", m->api_path_field, m->modes);
    EXPECT_EQ(static_cast<bool>(bad), m->modes.size() > 1) << m->name;
  }
}

}  // namespace
}  // namespace clearcap
