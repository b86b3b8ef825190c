// The configuration API's body parser: strict JSON (code 4), typed fields
// (code 5 naming the field), nothing applied from an invalid body.
#include "control/config_body.h"

#include <gtest/gtest.h>

#include "control/api_server.h"

namespace clearcap {
namespace {

ApiError error_of(std::string_view body) {
  auto r = parse_config_body(body);
  EXPECT_FALSE(r.has_value()) << body;
  return r ? ApiError{ApiCode::kOk, ""} : r.error();
}

TEST(ConfigBody, FullBodyIsParsed) {
  auto r = parse_config_body(
      R"({"pid":12,"pids":[13,12],"uid":33,"cgroup_path":"/sys/fs/cgroup/x","is_hex":true,"truncate_size":256,)"
      R"("opensslpath":"/usr/lib/libssl.so.3","capturemode":"text","per_cpu_map_size":4096})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r->pids, (std::vector<int>{12, 13}));
  EXPECT_EQ(*r->uid, 33u);
  EXPECT_EQ(*r->cgroup_path, "/sys/fs/cgroup/x");
  EXPECT_TRUE(*r->hex);
  EXPECT_EQ(*r->truncate, 256u);
  EXPECT_EQ(*r->library, "/usr/lib/libssl.so.3");
  EXPECT_EQ(*r->mode, "text");
  EXPECT_EQ(*r->per_cpu_map_size, 4096u);
  EXPECT_TRUE(r->ignored.empty());
}

TEST(ConfigBody, NulAndControlCharactersInStringsAreRefused) {
  // JSON escapes reach the parsed string: a NUL would cut the path short
  // where the kernel reads it ("/lib/x.so\0junk" attaches to /lib/x.so).
  for (const char* body : {R"({"opensslpath":"/usr/lib/libssl.so.3\u0000/evil"})",
                           R"({"cgroup_path":"system.slice\nx"})", R"({"pcapfile":"a\tb"})",
                           R"({"keylogfile":"k\u001b[31m"})"}) {
    const ApiError e = error_of(body);
    EXPECT_EQ(e.code, ApiCode::kValidationFailed) << body;
    EXPECT_NE(e.message.find("character"), std::string::npos) << e.message;
  }
  EXPECT_NE(error_of(R"({"opensslpath":"/a\u0000b"})").message.find("NUL"), std::string::npos);
}

TEST(ConfigBody, FieldsLeftOutStayUnset) {
  auto r = parse_config_body(R"({"truncate_size":0})");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->pids);
  EXPECT_FALSE(r->uid);
  EXPECT_FALSE(r->hex);
  EXPECT_FALSE(r->library);
  EXPECT_EQ(*r->truncate, 0u);
}

TEST(ConfigBody, ZeroPidMeansEveryProcess) {
  auto r = parse_config_body(R"({"pid":0})");
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->pids);
  EXPECT_TRUE(r->pids->empty());
  r = parse_config_body(R"({"uids":[0]})");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r->uid, 0u);
}

TEST(ConfigBody, UnknownFieldsAreListedNotApplied) {
  auto r = parse_config_body(R"({"debug":true,"btf":0,"pid":7})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->ignored, (std::vector<std::string>{"debug", "btf"}));
}

TEST(ConfigBody, UndecodableIsCode4) {
  for (std::string_view body : {"", "{", "{bad}", "[1,2]", "\"x\"", "{\"pid\":1,}", "{\"pid\":01}", "nul",
                                "{\"pid\":1} trailing", "\xff\xfe"}) {
    EXPECT_EQ(error_of(body).code, ApiCode::kDecodeFailed) << body;
  }
}

TEST(ConfigBody, WrongTypesAreCode5NamingTheField) {
  struct Case {
    std::string_view body, field;
  } cases[] = {
      {R"({"pid":"12"})", "'pid'"},
      {R"({"pid":-1})", "'pid'"},
      {R"({"pid":1.5})", "'pid'"},
      {R"({"pid":99999999})", "'pid'"},
      {R"({"pids":[1,"x"]})", "'pids[1]'"},
      {R"({"pids":3})", "'pids'"},
      {R"({"uid":4294967296})", "'uid'"},
      {R"({"uids":[1,2]})", "'uids'"},
      {R"({"is_hex":1})", "'is_hex'"},
      {R"({"truncate_size":true})", "'truncate_size'"},
      {R"({"opensslpath":5})", "'opensslpath'"},
      {R"({"cgroup_path":null})", "'cgroup_path'"},
      {R"({"capturemode":"bogus"})", "'capturemode'"},
      {R"({"capturemode":"text","capture_mode":"text"})", "'capture_mode'"},
      {R"({"pid":1,"pid":2})", "'pid'"},
  };
  for (const auto& c : cases) {
    ApiError e = error_of(c.body);
    EXPECT_EQ(e.code, ApiCode::kValidationFailed) << c.body << ": " << e.message;
    EXPECT_NE(e.message.find(c.field), std::string::npos) << c.body << ": " << e.message;
  }
}

TEST(ApiBody, ExactShapeAndEscaping) {
  EXPECT_EQ(api_body(0, "tls", "RespOK"), R"({"code":0,"module_type":"tls","msg":"RespOK","data":null})");
  EXPECT_EQ(api_body(5, "tls", "a \"b\"\\\n"), R"({"code":5,"module_type":"tls","msg":"a \"b\"\\\n","data":null})");
}

TEST(ListenAddr, Forms) {
  auto a = parse_listen_addr("127.0.0.1:28256");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 28256);
  a = parse_listen_addr(":8080");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");  // loopback unless told otherwise
  a = parse_listen_addr("http://[::1]:9/");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->port, 9);
  a = parse_listen_addr("localhost:1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  for (std::string_view bad : {"", "8080x", "host", "host:", "host:65536", "[::1]8080", "h:-1"})
    EXPECT_FALSE(parse_listen_addr(bad)) << bad;
}

}  // namespace
}  // namespace clearcap
