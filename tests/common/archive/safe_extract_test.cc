#include "common/archive/safe_extract.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/archive/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/archive/archive_test_util.h"

namespace drover::archive {
namespace {

using ::testing::AllOf;
using testing::DescribeTree;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ListDir;
using testing::MakeDirs;
using testing::MakeSymlink;
using testing::RawEntry;
using testing::RawTar;
using testing::ReadFile;
using testing::RunProgram;
using testing::ScratchDir;
using testing::WriteFile;

class SafeExtractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    umask(022);
    // sandbox/ holds the archive, the destination-to-be and a folder an attack would aim
    // at; nothing in it may change except the destination appearing.
    MakeDirs(sandbox());
    WriteFile(sandbox() + "/outside/victim.txt", "untouched");
  }

  std::string sandbox() const { return scratch_ / "sandbox"; }
  std::string dest() const { return sandbox() + "/dest"; }

  std::string WriteArchive(const std::string& bytes) {
    std::string path = scratch_ / ("archive" + std::to_string(++archives_) + ".tar");
    WriteFile(path, bytes);
    return path;
  }

  absl::StatusOr<ExtractResult> Extract(const std::string& bytes,
                                        const ExtractOptions& options = {}) {
    return ExtractTar(WriteArchive(bytes), dest(), options);
  }

  // After a refused extraction: no destination, no temporary folder, the rest untouched.
  void ExpectNothingWritten() {
    EXPECT_THAT(ListDir(sandbox()), ElementsAre("outside"));
    EXPECT_THAT(ListDir(sandbox() + "/outside"), ElementsAre("victim.txt"));
    EXPECT_EQ(ReadFile(sandbox() + "/outside/victim.txt"), "untouched");
  }

  ScratchDir scratch_;
  int archives_ = 0;
};

TEST_F(SafeExtractTest, ExtractsAPlainArchive) {
  std::string bytes = RawTar()
                          .Dir("./")
                          .Dir("./src/")
                          .File("./src/main.py", "print(1)\n")
                          .File("./run.sh", "#!/bin/sh\n", 0750)
                          .File("deep/implicit/folders.txt", "x")  // no folder entries
                          .Symlink("src/link.py", "main.py")
                          .Symlink("deep/implicit/up", "../../src")
                          .HardLink("src/hard.py", "./src/main.py")
                          .Dir("readonly/", 0555)
                          .File("readonly/inside.txt", "y", 0444)
                          .Finish();
  absl::StatusOr<ExtractResult> result = Extract(bytes);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->digest, Sha256Digest(bytes));
  EXPECT_EQ(result->entry_count, 9u);
  EXPECT_EQ(result->total_bytes, 9u + 10u + 1u + 1u);
  std::string h = Sha256Digest("print(1)\n");
  EXPECT_EQ(DescribeTree(dest()),
            (std::map<std::string, std::string>{
                {"deep", "dir 0755"},
                {"deep/implicit", "dir 0755"},
                {"deep/implicit/folders.txt", "file 0644 " + Sha256Digest("x")},
                {"deep/implicit/up", "link -> ../../src"},
                {"readonly", "dir 0555"},
                {"readonly/inside.txt", "file 0444 " + Sha256Digest("y")},
                {"run.sh", "file 0750 " + Sha256Digest("#!/bin/sh\n")},
                {"src", "dir 0755"},
                {"src/hard.py", "file 0644 " + h},
                {"src/link.py", "link -> main.py"},
                {"src/main.py", "file 0644 " + h},
            }));
  struct stat a, b;
  ASSERT_EQ(stat((dest() + "/src/main.py").c_str(), &a), 0);
  ASSERT_EQ(stat((dest() + "/src/hard.py").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_THAT(ListDir(sandbox()), ElementsAre("dest", "outside"));  // no temporary left
}

TEST_F(SafeExtractTest, DropsSetuidSetgidAndStickyBits) {
  absl::StatusOr<ExtractResult> result = Extract(
      RawTar().File("suid", "x", 04755).File("sgid", "x", 02755).Dir("tmp/", 01777).Finish());
  ASSERT_TRUE(result.ok()) << result.status();
  auto tree = DescribeTree(dest());
  EXPECT_EQ(tree["suid"], "file 0755 " + Sha256Digest("x"));
  EXPECT_EQ(tree["sgid"], "file 0755 " + Sha256Digest("x"));
  EXPECT_EQ(tree["tmp"], "dir 0777");
}

struct HostileCase {
  const char* name;
  std::string archive;
  absl::StatusCode code;
  std::vector<std::string> message_parts;  // each must appear in the error
};

std::vector<HostileCase> HostileCases() {
  std::string nul_path = std::string("a\0b", 3);
  return {
      {"absolute path",
       RawTar().File("/tmp/evil", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'/tmp/evil'", "absolute"}},
      {"dot-dot",
       RawTar().File("../evil", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'../evil'", "'..'"}},
      {"dot-dot in the middle",
       RawTar().File("a/../../outside/victim.txt", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'a/../../outside/victim.txt'", "'..'"}},
      {"dot-dot folder",
       RawTar().Dir("ok/").Dir("ok/../../x/").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'ok/../../x/'"}},
      {"absolute symlink",
       RawTar().Symlink("etc", "/etc").File("etc/passwd", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'etc'", "'/etc'", "outside"}},
      {"symlink up and out",
       RawTar().Symlink("out", "../outside").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'out'", "'../outside'"}},
      {"nested symlink up and out",
       RawTar().Symlink("a/b/l", "../../..").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'a/b/l'"}},
      {"symlink chain through a link",
       RawTar().Symlink("d/up", "..").Symlink("escape", "d/up/..").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'escape'", "'d/up/..'"}},
      {"writing through a symlink inside the tree",
       RawTar().Dir("real/").Symlink("a", "real").File("a/passwd", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'a/passwd'", "'a' is a symbolic link"}},
      {"writing below a file",
       RawTar().File("a", "x").File("a/b", "y").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'a/b'", "'a' is not a folder"}},
      {"file replaced by a symlink",
       RawTar().File("x", "1").Symlink("x", "y").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'x'", "twice"}},
      {"file twice",
       RawTar().File("x", "1").File("x", "2").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'x'", "twice"}},
      {"hard link to an absolute path",
       RawTar().HardLink("h", "/etc/passwd").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'h'", "absolute"}},
      {"hard link up and out",
       RawTar().HardLink("h", "../outside/victim.txt").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'h'", "'..'"}},
      {"hard link to something not extracted",
       RawTar().HardLink("h", "outside/victim.txt").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'h'", "not a regular file extracted earlier"}},
      {"hard link to a symlink",
       RawTar().Symlink("l", "x").HardLink("h", "l").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'h'", "not a regular file"}},
      {"character device",
       RawTar().Add({.name = "tty", .type = '3'}).Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'tty'", "device"}},
      {"block device",
       RawTar().Add({.name = "sda", .type = '4'}).Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'sda'", "device"}},
      {"fifo",
       RawTar().Add({.name = "pipe", .type = '6'}).Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'pipe'", "fifo"}},
      {"unknown type",
       RawTar().Add({.name = "odd", .type = 'Z'}).Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'odd'", "unsupported entry type 'Z'"}},
      {"gnu sparse",
       RawTar().Add({.name = "sparse", .type = 'S'}).Finish(),
       absl::StatusCode::kInvalidArgument,
       {"sparse"}},
      {"pax path overriding a harmless name",
       RawTar().Pax({{"path", "../../evil"}}).File("harmless.txt", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'../../evil'"}},
      {"pax linkpath escaping",
       RawTar().Pax({{"linkpath", "/etc/shadow"}}).Symlink("l", "fine").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'l'", "'/etc/shadow'"}},
      {"pax path with a NUL byte",
       RawTar().Pax({{"path", nul_path}}).File("harmless.txt", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"NUL"}},
      {"gnu long name escaping",
       RawTar().GnuLongName("../" + std::string(150, 'n')).File("short", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'../nnnn", "'..'"}},
      {"empty name",
       RawTar().File("", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"empty name"}},
      {"entry naming the root",
       RawTar().File("./", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'./'", "destination folder itself"}},
      {"component too long",
       RawTar()
           .Pax({{"path", std::string(90, 'a') + "/" + std::string(300, 'b')}})
           .File("short", "x")
           .Finish(),
       absl::StatusCode::kInvalidArgument,
       {"limit 255"}},
      {"bad entry after good ones",
       RawTar().Dir("src/").File("src/a.py", "x").File("src/b.py", "y").File("/abs", "z").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"'/abs'"}},
      {"truncated data",
       RawTar().File("big", std::string(2000, 'x')).Finish().substr(0, 1024),
       absl::StatusCode::kDataLoss,
       {"truncated"}},
      {"no end marker",
       RawTar().File("a", "x").Finish(/*terminate=*/false),
       absl::StatusCode::kDataLoss,
       {"end-of-archive"}},
      {"bad checksum",
       [] {
         std::string bytes = RawTar().File("a", "x").Finish();
         bytes[0] = 'b';
         return bytes;
       }(),
       absl::StatusCode::kInvalidArgument,
       {"checksum"}},
      {"gzip",
       std::string("\x1f\x8b\x08\x00", 4) + std::string(1020, '\0'),
       absl::StatusCode::kInvalidArgument,
       {"gzip"}},
      {"huge pax header",
       RawTar().Add({.name = "PaxHeader", .type = 'x', .size_override = 1 << 30}).Finish(),
       absl::StatusCode::kInvalidArgument,
       {"pax header"}},
      {"malformed pax record",
       RawTar().Add({.name = "p", .type = 'x', .data = "99 path=x\n"}).File("a", "x").Finish(),
       absl::StatusCode::kInvalidArgument,
       {"malformed pax"}},
  };
}

TEST_F(SafeExtractTest, RefusesHostileArchivesNamingTheEntryAndWritesNothing) {
  for (const HostileCase& c : HostileCases()) {
    SCOPED_TRACE(c.name);
    absl::StatusOr<ExtractResult> result = Extract(c.archive);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), c.code) << result.status();
    for (const std::string& part : c.message_parts) {
      EXPECT_THAT(std::string(result.status().message()), HasSubstr(part));
    }
    ExpectNothingWritten();
  }
}

TEST_F(SafeExtractTest, AcceptsLinksThatStayInside) {
  absl::StatusOr<ExtractResult> result = Extract(RawTar()
                                                     .File("lib/x.py", "x")
                                                     .Symlink("a/b/l", "../../lib/x.py")
                                                     .Symlink("a/self", ".")
                                                     .Symlink("a/dotted", "./b/../b")
                                                     .Finish());
  // "./b/../b" has '..' after a name: refused even though it would resolve inside.
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(std::string(result.status().message()), HasSubstr("'a/dotted'"));

  result = Extract(RawTar()
                       .File("lib/x.py", "x")
                       .Symlink("a/b/l", "../../lib/x.py")
                       .Symlink("a/self", ".")
                       .Symlink("a/dangling", "nowhere")
                       .Finish());
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(ReadFile(dest() + "/a/b/l"), "x");
}

TEST_F(SafeExtractTest, EnforcesLimits) {
  std::string bytes = RawTar()
                          .File("a", std::string(600, 'a'))
                          .File("b", std::string(600, 'b'))
                          .File("c", std::string(10, 'c'))
                          .Finish();
  absl::StatusOr<ExtractResult> per_file = Extract(bytes, {.max_file_bytes = 500});
  ASSERT_FALSE(per_file.ok());
  EXPECT_EQ(per_file.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(per_file.status().message()),
              AllOf(HasSubstr("'a'"), HasSubstr("per file")));
  ExpectNothingWritten();

  absl::StatusOr<ExtractResult> total = Extract(bytes, {.max_total_bytes = 1000});
  ASSERT_FALSE(total.ok());
  EXPECT_EQ(total.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(total.status().message()), HasSubstr("'b'"));
  ExpectNothingWritten();

  absl::StatusOr<ExtractResult> entries = Extract(bytes, {.max_entries = 2});
  ASSERT_FALSE(entries.ok());
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(entries.status().message()), HasSubstr("'c'"));
  ExpectNothingWritten();

  ASSERT_TRUE(
      Extract(bytes, {.max_total_bytes = 1210, .max_file_bytes = 600, .max_entries = 3}).ok());
}

TEST_F(SafeExtractTest, ChecksTheExpectedDigest) {
  std::string bytes = RawTar().File("a", "x").Finish();
  std::string wrong = Sha256Digest("something else");
  absl::StatusOr<ExtractResult> result = Extract(bytes, {.expected_digest = wrong});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(wrong));
  ExpectNothingWritten();

  result = Extract(bytes, {.expected_digest = "sha256:nope"});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);

  // Trailing bytes after the end marker count too: the digest is of the whole file.
  std::string padded = bytes + std::string(8192, '\0');
  result = Extract(padded, {.expected_digest = Sha256Digest(padded), .sync_to_disk = true});
  ASSERT_TRUE(result.ok()) << result.status();
}

TEST_F(SafeExtractTest, RefusesAnExistingDestinationAndCreatesMissingParents) {
  MakeDirs(dest());
  absl::StatusOr<ExtractResult> result = Extract(RawTar().File("a", "x").Finish());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(ListDir(sandbox()), ElementsAre("dest", "outside"));

  std::string nested = sandbox() + "/cache/snapshots/abc/";
  result = ExtractTar(WriteArchive(RawTar().File("a", "x").Finish()), nested);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(ReadFile(nested + "a"), "x");

  result = ExtractTar(WriteArchive(RawTar().Finish()), scratch_ / "empty");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->entry_count, 0u);

  result = ExtractTar(scratch_ / "missing.tar", scratch_ / "never");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SafeExtractTest, ReadsPaxSizesBase256SizesAndRepeatedFolders) {
  // A base-256 size field (GNU's form for files of 8 GiB and more), here for 5 bytes.
  std::string header = RawTar::Header({.name = "b256", .data = "hello"});
  std::memset(header.data() + 124, 0, 12);
  header[124] = static_cast<char>(0x80);
  header[135] = 5;
  std::memset(header.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : header) sum += c;
  std::string checksum = absl::StrFormat("%06o", sum);
  std::memcpy(header.data() + 148, checksum.c_str(), 7);
  std::string b256 = header + "hello" + std::string(507, '\0');

  std::string bytes = RawTar()
                          .Pax({{"size", "6"}})
                          .Add({.name = "pax_sized", .data = "sized!", .size_override = 0})
                          .Bytes(b256)
                          .Dir("d/")
                          .File("d/x", "x")
                          .Dir("d/", 0700)  // the same folder again: allowed, last mode wins
                          .Add({.name = "old/", .type = '\0', .mode = 0755})  // v7 folder
                          .Finish();
  absl::StatusOr<ExtractResult> result = Extract(bytes);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(ReadFile(dest() + "/pax_sized"), "sized!");
  EXPECT_EQ(ReadFile(dest() + "/b256"), "hello");
  auto tree = DescribeTree(dest());
  EXPECT_EQ(tree["d"], "dir 0700");
  EXPECT_EQ(tree["old"], "dir 0755");
}

// Archives made by GNU tar in its three formats, with long names, links and hard links.
TEST_F(SafeExtractTest, ExtractsGnuTarArchives) {
  std::string src = scratch_ / "src";
  // Up to 255 bytes fit ustar's prefix + name; longer names need gnu or pax.
  std::string medium = std::string(60, 'm') + "/" + std::string(90, 'n') + "/file.txt";
  std::string longer = std::string(120, 'l') + "/" + std::string(200, 'o') + "/file.txt";
  WriteFile(src + "/main.py", "print('hi')\n");
  WriteFile(src + "/bin/run", "#!/bin/sh\n", 0755);
  WriteFile(src + "/private.txt", "p", 0600);
  WriteFile(src + "/" + medium, "medium");
  MakeSymlink("../main.py", src + "/bin/main_link.py");
  MakeDirs(src + "/empty");
  ASSERT_EQ(link((src + "/main.py").c_str(), (src + "/hard.py").c_str()), 0);

  for (const char* format : {"ustar", "gnu", "pax"}) {
    SCOPED_TRACE(format);
    std::string format_src = scratch_ / (std::string("src-") + format);
    ASSERT_EQ(RunProgram({"cp", "-a", src, format_src}), 0);
    if (std::string(format) != "ustar") {
      WriteFile(format_src + "/" + longer, "longer");
      MakeSymlink(std::string(150, 't'), format_src + "/long_target_link");
    }
    std::string archive = scratch_ / (std::string(format) + ".tar");
    std::string out;
    ASSERT_EQ(RunProgram(
                  {"tar", "--format=" + std::string(format), "-cf", archive, "-C", format_src, "."},
                  &out),
              0)
        << out;
    std::string dest = scratch_ / (std::string("dest-") + format);
    absl::StatusOr<ExtractResult> result = ExtractTar(archive, dest);
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(DescribeTree(dest), DescribeTree(format_src));
    struct stat a, b;
    ASSERT_EQ(stat((dest + "/main.py").c_str(), &a), 0);
    ASSERT_EQ(stat((dest + "/hard.py").c_str(), &b), 0);
    EXPECT_EQ(a.st_ino, b.st_ino);
  }
}

}  // namespace
}  // namespace drover::archive
