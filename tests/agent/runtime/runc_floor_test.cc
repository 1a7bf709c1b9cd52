// The runc floor: an agent refuses a runc without the fix for CVE-2024-21626 (upstream
// 1.1.12, or a distribution's backport such as Debian 12's 1.1.5+ds1-1+deb12u1) and says
// what to install; --allow-unpatched-runc lets an administrator vouch for one. Fake runc
// scripts print what real ones print; nothing runs as root.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/runtime/runc_runtime.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::agent {
namespace {

using ::testing::HasSubstr;

std::string Version(const std::string& version, const std::string& commit) {
  return absl::StrCat("runc version ", version, "\ncommit: ", commit,
                      "\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4\n");
}

TEST(RuncFloorTest, FixedUpstreamReleasesAndDebianBackportsAreAccepted) {
  EXPECT_TRUE(CheckRuncHasCve202421626Fix(Version("1.1.12", "v1.1.12-0-g51d5e94")).ok());
  EXPECT_TRUE(CheckRuncHasCve202421626Fix(Version("1.1.13", "v1.1.13-0-g58aa920")).ok());
  EXPECT_TRUE(CheckRuncHasCve202421626Fix(Version("1.2.0", "v1.2.0-0-g0b9fa21")).ok());
  EXPECT_TRUE(CheckRuncHasCve202421626Fix(Version("2.0.0", "")).ok());
  // What this machine's Debian 12 runc prints: the fix is backported.
  EXPECT_TRUE(CheckRuncHasCve202421626Fix(Version("1.1.5+ds1", "1.1.5+ds1-1+deb12u1")).ok());
  EXPECT_TRUE(CheckRuncHasCve202421626Fix(Version("1.1.5+ds1", "1.1.5+ds1-1+deb12u2")).ok());
  EXPECT_TRUE(
      CheckRuncHasCve202421626Fix(Version("1.0.0~rc93+ds1", "1.0.0~rc93+ds1-5+deb11u3")).ok());
}

TEST(RuncFloorTest, VersionsWithoutTheFixAreRefusedSayingWhatToInstall) {
  for (const std::string& text :
       {Version("1.1.5+ds1", "1.1.5+ds1-1"), Version("1.1.11", "v1.1.11-0-g4bccb38"),
        Version("1.0.0~rc93+ds1", "1.0.0~rc93+ds1-5+deb11u2"), Version("1.1.5", "1.1.5+deb12u0"),
        Version("1.0.1", "v1.0.1"), std::string("something else\n"), std::string()}) {
    SCOPED_TRACE(text);
    absl::Status s = CheckRuncHasCve202421626Fix(text);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(s.message()), HasSubstr("CVE-2024-21626"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("1.1.12"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("1.1.5+ds1-1+deb12u1"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("--allow-unpatched-runc"));
  }
}

std::string CrunVersion(const std::string& version) {
  return absl::StrCat("crun version ", version,
                      "\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\nrundir: /run/crun\n"
                      "spec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n");
}

TEST(RuncFloorTest, CrunIsToldApartFromRuncAndNeedsTheFixOfCve202227650) {
  for (const char* version : {"1.4.4", "1.8.1", "1.9", "1.14.4", "2.0"}) {
    SCOPED_TRACE(version);
    OciRuntimeVersion checked = CheckOciRuntimeVersion(CrunVersion(version));
    EXPECT_EQ(checked.kind, OciRuntimeKind::kCrun);
    EXPECT_TRUE(checked.floor.ok()) << checked.floor;
  }
  for (const char* version : {"1.4.3", "1.0", "0.21", "banana"}) {
    SCOPED_TRACE(version);
    OciRuntimeVersion checked = CheckOciRuntimeVersion(CrunVersion(version));
    EXPECT_EQ(checked.kind, OciRuntimeKind::kCrun);
    EXPECT_EQ(checked.floor.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(checked.floor.message()), HasSubstr("CVE-2022-27650"));
    EXPECT_THAT(std::string(checked.floor.message()), HasSubstr("1.4.4"));
    EXPECT_THAT(std::string(checked.floor.message()), HasSubstr("--allow-unpatched-runc"));
  }
  OciRuntimeVersion runc = CheckOciRuntimeVersion(Version("1.1.5+ds1", "1.1.5+ds1-1+deb12u1"));
  EXPECT_EQ(runc.kind, OciRuntimeKind::kRunc);
  EXPECT_TRUE(runc.floor.ok()) << runc.floor;
  EXPECT_EQ(CheckOciRuntimeVersion("something else\n").kind, OciRuntimeKind::kRunc);
  EXPECT_FALSE(CheckOciRuntimeVersion("something else\n").floor.ok());
}

class RuncOpenTest : public ::testing::Test {
 protected:
  // A fake runc that prints `text` for --version (after runc's --root flag).
  std::string FakeRunc(const std::string& text) {
    std::string path = absl::StrCat(dir_, "/runc");
    std::ofstream(path) << "#!/bin/sh\ncat <<'EOF'\n" << text << "EOF\n";
    chmod(path.c_str(), 0755);
    return path;
  }
  void SetUp() override {
    char name[] = "/tmp/runc-floor-XXXXXX";
    ASSERT_NE(mkdtemp(name), nullptr);
    dir_ = name;
  }
  void TearDown() override {
    std::string command = absl::StrCat("rm -rf '", dir_, "'");
    ASSERT_EQ(system(command.c_str()), 0);
  }
  std::string dir_;
};

TEST_F(RuncOpenTest, OldRuncIsRefusedAtStartUnlessAllowed) {
  std::string runc = FakeRunc(Version("1.1.5+ds1", "1.1.5+ds1-1"));
  absl::StatusOr<std::unique_ptr<RuncRuntime>> runtime =
      RuncRuntime::Open({.runc_path = runc, .root_dir = dir_ + "/state"});
  ASSERT_FALSE(runtime.ok());
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(runtime.status().message()), HasSubstr(runc));
  EXPECT_THAT(std::string(runtime.status().message()), HasSubstr("CVE-2024-21626"));

  runtime = RuncRuntime::Open(
      {.runc_path = runc, .root_dir = dir_ + "/state", .allow_unpatched_runc = true});
  EXPECT_TRUE(runtime.ok()) << runtime.status();
}

TEST_F(RuncOpenTest, PatchedRuncOpens) {
  std::string runc = FakeRunc(Version("1.1.5+ds1", "1.1.5+ds1-1+deb12u1"));
  absl::StatusOr<std::unique_ptr<RuncRuntime>> runtime =
      RuncRuntime::Open({.runc_path = runc, .root_dir = dir_ + "/state"});
  EXPECT_TRUE(runtime.ok()) << runtime.status();
}

TEST_F(RuncOpenTest, CrunOpensAndOldCrunIsRefusedUnlessAllowed) {
  std::string crun = FakeRunc(CrunVersion("1.8.1"));
  absl::StatusOr<std::unique_ptr<RuncRuntime>> runtime =
      RuncRuntime::Open({.runc_path = crun, .root_dir = dir_ + "/state"});
  EXPECT_TRUE(runtime.ok()) << runtime.status();

  crun = FakeRunc(CrunVersion("1.4.3"));
  runtime = RuncRuntime::Open({.runc_path = crun, .root_dir = dir_ + "/state"});
  ASSERT_FALSE(runtime.ok());
  EXPECT_EQ(runtime.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(runtime.status().message()), HasSubstr("CVE-2022-27650"));
  runtime = RuncRuntime::Open(
      {.runc_path = crun, .root_dir = dir_ + "/state", .allow_unpatched_runc = true});
  EXPECT_TRUE(runtime.ok()) << runtime.status();
}

}  // namespace
}  // namespace drover::agent
