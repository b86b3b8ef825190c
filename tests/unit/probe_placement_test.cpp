// Where uprobes sit: the machine-code checks of core/probe_placement on a
// fixture of hand-written wrappers (tests/unit/fixtures), and the tls
// module's placement on that fixture and on the system's libssl.
#include "core/probe_placement.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "core/elf_symbols.h"
#include "modules/tls/tls_targets.h"

namespace clearcap {
namespace {

const std::string kFixture = CLEARCAP_PLACEMENT_FIXTURE;

class Placement : public ::testing::Test {
 protected:
  void SetUp() override {
    auto code = MachineCode::open(kFixture);
    ASSERT_TRUE(code) << code.error().message;
    code_.emplace(std::move(*code));
    auto fns = find_functions(kFixture, {"inner_push", "inner_endbr", "inner_sub", "SSL_read", "SSL_read_ex",
                                         "writes_rsi", "branches_first", "calls_two", "calls_indirect",
                                         "first_call_plt", "tail_jump", "keeps_count"});
    ASSERT_TRUE(fns) << fns.error().message;
    fns_ = std::move(*fns);
    ASSERT_EQ(fns_.size(), 12u);
  }
  FunctionRange fn(const std::string& name) { return fns_.at(name); }
  std::string delegate_error(const std::string& name, const WrapperRule& rule) {
    auto d = code_->delegate(fn(name), rule);
    EXPECT_FALSE(d) << name << " taken for a wrapper of 0x" << std::hex << (d ? *d : 0);
    return d ? std::string() : d.error().message;
  }

  std::optional<MachineCode> code_;
  std::map<std::string, FunctionRange> fns_;
};

TEST_F(Placement, EntryOfAPushIsEmulated) {
  auto e = code_->entry(fn("inner_push").offset);
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_TRUE(e->emulated);
  EXPECT_EQ(e->offset, fn("inner_push").offset);
  EXPECT_EQ(e->text, "push r13");
}

TEST_F(Placement, EntryPastALandingPad) {
  auto e = code_->entry(fn("inner_endbr").offset);
  ASSERT_TRUE(e) << e.error().message;
  EXPECT_TRUE(e->emulated);
  EXPECT_EQ(e->offset, fn("inner_endbr").offset + 4);  // endbr64 is 4 bytes
  EXPECT_EQ(e->text, "push rbp");
}

TEST_F(Placement, EntryOfASubIsSingleStepped) {
  for (const char* name : {"inner_sub", "SSL_read"}) {
    auto e = code_->entry(fn(name).offset);
    ASSERT_TRUE(e) << e.error().message;
    EXPECT_FALSE(e->emulated) << name;
    EXPECT_EQ(e->offset, fn(name).offset) << name;
  }
}

TEST_F(Placement, BothWrapperShapesFindTheirDelegate) {
  auto ex = code_->delegate(fn("SSL_read_ex"), {.passes = {ArgReg::kRdi, ArgReg::kRsi, ArgReg::kRdx, ArgReg::kRcx}});
  ASSERT_TRUE(ex) << ex.error().message;
  EXPECT_EQ(*ex, fn("inner_push").offset);
  auto plain = code_->delegate(fn("SSL_read"), {.passes = {ArgReg::kRdi, ArgReg::kRsi}, .branches_before_call = true});
  ASSERT_TRUE(plain) << plain.error().message;
  EXPECT_EQ(*plain, fn("inner_push").offset);
}

TEST_F(Placement, SSLReadChangesRdxAndBranchesSoTheStrictRuleRefusesIt) {
  EXPECT_NE(delegate_error("SSL_read", {.passes = {ArgReg::kRdi, ArgReg::kRsi}}).find("branches"), std::string::npos);
  EXPECT_NE(delegate_error("SSL_read", {.passes = {ArgReg::kRdx}, .branches_before_call = true}).find("%rdx"),
            std::string::npos);
}

TEST_F(Placement, WhatIsNoThinWrapper) {
  const WrapperRule rule{.passes = {ArgReg::kRdi, ArgReg::kRsi}};
  EXPECT_NE(delegate_error("writes_rsi", rule).find("changes %rsi"), std::string::npos);
  EXPECT_NE(delegate_error("branches_first", rule).find("branches"), std::string::npos);
  EXPECT_NE(delegate_error("calls_two", rule).find("besides"), std::string::npos);
  EXPECT_NE(delegate_error("calls_indirect", rule).find("indirect call"), std::string::npos);
  EXPECT_NE(delegate_error("first_call_plt", rule).find("not a function of this file's .text"), std::string::npos);
  EXPECT_NE(delegate_error("tail_jump", rule).find("jumps out"), std::string::npos);
  EXPECT_NE(delegate_error("keeps_count", {.passes = {ArgReg::kRdi}, .not_read = {ArgReg::kRcx}}).find("reads %rcx"),
            std::string::npos);
  // SSL_read_ex's shape keeps nothing.
  EXPECT_TRUE(code_->delegate(fn("SSL_read_ex"), {.passes = {ArgReg::kRdi}, .not_read = {ArgReg::kRcx}}));
  // An early error branch is fine where the rule allows it.
  EXPECT_TRUE(code_->delegate(fn("branches_first"), {.passes = {ArgReg::kRdi}, .branches_before_call = true}));
}

TEST(TlsPlacement, MovesOnlyThePairWhoseDelegateIsCheaper) {
  TlsTarget t{kFixture, kFixture, {}, {}};
  place_tls_probes(t);
  auto fns = find_functions(kFixture, {"inner_push"});
  ASSERT_TRUE(fns);
  ASSERT_TRUE(t.offsets.count(kSslReadInner));
  EXPECT_EQ(t.offsets.at(kSslReadInner), fns->at("inner_push").offset);
  // The write pair's delegate starts with a sub: no better than SSL_write.
  EXPECT_FALSE(t.offsets.count(kSslWriteInner));
  ASSERT_EQ(t.notes.size(), 2u);
  EXPECT_NE(t.notes[0].find("single-stepped like SSL_write's"), std::string::npos) << t.notes[0];
  EXPECT_NE(t.notes[1].find("at the function both call"), std::string::npos) << t.notes[1];
}

// Debian 12's libssl.so.3 (OpenSSL 3.0): SSL_read/SSL_write start with
// `sub $0x18,%rsp`; ssl_read_internal/ssl_write_internal with a push. The
// measured reason for this code; it fails if a change stops finding them.
TEST(TlsPlacement, SystemLibsslIsHookedWhereCheaper) {
  const std::string lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
  ASSERT_EQ(access(lib.c_str(), R_OK), 0) << lib << " (libssl3, a build dependency) is not installed";
  TlsTarget t{lib, lib, {}, {}};
  place_tls_probes(t);
  EXPECT_TRUE(t.offsets.count(kSslReadInner)) << ::testing::PrintToString(t.notes);
  EXPECT_TRUE(t.offsets.count(kSslWriteInner)) << ::testing::PrintToString(t.notes);
}

}  // namespace
}  // namespace clearcap
