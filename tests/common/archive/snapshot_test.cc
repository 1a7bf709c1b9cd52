#include "common/archive/snapshot.h"

#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "common/archive/safe_extract.h"
#include "common/archive/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/archive/archive_test_util.h"

namespace drover::archive {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using testing::DescribeTree;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::ListDir;
using testing::MakeDirs;
using testing::MakeSymlink;
using ::testing::Not;
using testing::ReadFile;
using testing::RunProgram;
using testing::ScratchDir;
using testing::SetMtime;
using ::testing::SizeIs;
using testing::WriteFile;

class SnapshotTest : public ::testing::Test {
 protected:
  // Folders made by the test get 0755, as the archive normalises them.
  void SetUp() override { umask(022); }

  // Builds `dir` into a fresh archive under the scratch folder.
  Snapshot Build(const std::string& dir, SnapshotOptions options = {}) {
    if (options.output_path.empty()) {
      options.output_path = scratch_ / ("out" + std::to_string(++builds_) + ".tar");
    }
    absl::StatusOr<Snapshot> snapshot = BuildSnapshot(dir, options);
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    return snapshot.ok() ? *snapshot : Snapshot();
  }

  // The paths archived (as extracted by our extractor), sorted.
  std::vector<std::string> Archived(const Snapshot& snapshot) {
    std::string dest = scratch_ / ("x" + std::to_string(++builds_));
    absl::StatusOr<ExtractResult> result = ExtractTar(snapshot.tar_path, dest);
    EXPECT_TRUE(result.ok()) << result.status();
    std::vector<std::string> paths;
    for (const auto& [path, description] : DescribeTree(dest)) paths.push_back(path);
    return paths;
  }

  ScratchDir scratch_;
  int builds_ = 0;
};

// A small project, created in the order given, with the given mtime and file mode.
void MakeProject(const std::string& root, bool reverse, int64_t mtime, mode_t file_mode) {
  std::vector<std::pair<std::string, std::string>> files = {
      {"train.py", "print('train')\n"},
      {"lib/model.py", "class Model: pass\n"},
      {"lib/util/io.py", "def read(): pass\n"},
      {"data/small.csv", "a,b\n1,2\n"},
      {"README.md", "# project\n"},
  };
  if (reverse) std::reverse(files.begin(), files.end());
  for (const auto& [path, contents] : files) WriteFile(root + "/" + path, contents, file_mode);
  WriteFile(root + "/run.sh", "#!/bin/sh\n", 0755);
  MakeDirs(root + "/empty");
  MakeSymlink("lib/model.py", root + "/model_link.py");
  for (const char* path :
       {"train.py", "lib/model.py", "lib/util/io.py", "data/small.csv", "README.md", "run.sh",
        "lib", "lib/util", "data", "empty", "model_link.py", ""}) {
    SetMtime(root + "/" + path, mtime);
  }
}

TEST_F(SnapshotTest, SameContentsGiveByteIdenticalArchives) {
  std::string a = scratch_ / "a";
  std::string b = scratch_ / "b";
  MakeProject(a, /*reverse=*/false, 1'000'000'000, 0644);
  MakeProject(b, /*reverse=*/true, 1'700'000'000, 0600);  // other order, times, umask

  Snapshot first = Build(a);
  Snapshot again = Build(a);
  Snapshot other = Build(b);
  EXPECT_TRUE(IsValidDigest(first.digest)) << first.digest;
  EXPECT_EQ(first.digest, again.digest);
  EXPECT_EQ(first.digest, other.digest);
  EXPECT_EQ(ReadFile(first.tar_path), ReadFile(other.tar_path));
  EXPECT_EQ(*Sha256File(first.tar_path), first.digest);
  EXPECT_EQ(first.tar_bytes, ReadFile(first.tar_path).size());
  EXPECT_EQ(first.entry_count, 11u);  // 6 files, 4 folders, 1 link
  EXPECT_EQ(first.file_count, 6u);

  // Touching a file's time changes nothing; changing a byte or a mode does.
  SetMtime(a + "/train.py", 42);
  EXPECT_EQ(Build(a).digest, first.digest);
  WriteFile(a + "/train.py", "print('trains')\n");
  EXPECT_NE(Build(a).digest, first.digest);
  WriteFile(b + "/train.py", "print('train')\n", 0700);
  EXPECT_NE(Build(b).digest, first.digest);
}

TEST_F(SnapshotTest, ArchiveIsSortedWithFixedMetadataAndReadableByGnuTar) {
  std::string src = scratch_ / "src";
  MakeProject(src, false, 1'234'567'890, 0664);
  Snapshot snapshot = Build(src);
  std::string listing;
  ASSERT_EQ(
      RunProgram({"tar", "--numeric-owner", "--full-time", "-tvf", snapshot.tar_path}, &listing), 0)
      << listing;
  EXPECT_EQ(listing,
            "-rw-r--r-- 0/0              10 1970-01-01 00:00:00 README.md\n"
            "drwxr-xr-x 0/0               0 1970-01-01 00:00:00 data/\n"
            "-rw-r--r-- 0/0               8 1970-01-01 00:00:00 data/small.csv\n"
            "drwxr-xr-x 0/0               0 1970-01-01 00:00:00 empty/\n"
            "drwxr-xr-x 0/0               0 1970-01-01 00:00:00 lib/\n"
            "-rw-r--r-- 0/0              18 1970-01-01 00:00:00 lib/model.py\n"
            "drwxr-xr-x 0/0               0 1970-01-01 00:00:00 lib/util/\n"
            "-rw-r--r-- 0/0              17 1970-01-01 00:00:00 lib/util/io.py\n"
            "lrwxrwxrwx 0/0               0 1970-01-01 00:00:00 model_link.py -> lib/model.py\n"
            "-rwxr-xr-x 0/0              10 1970-01-01 00:00:00 run.sh\n"
            "-rw-r--r-- 0/0              15 1970-01-01 00:00:00 train.py\n");
}

TEST_F(SnapshotTest, RoundTripGivesTheSameTree) {
  std::string src = scratch_ / "src";
  MakeProject(src, false, 1'234'567'890, 0644);
  // Long names and link targets need pax headers.
  std::string long_dir = std::string(120, 'd');
  std::string long_name = long_dir + "/" + std::string(200, 'f') + ".py";
  WriteFile(src + "/" + long_name, "long\n");
  MakeSymlink(long_name, src + "/long_link");
  MakeSymlink("../train.py", src + "/lib/up_link.py");
  MakeSymlink("util", src + "/lib/util_link");
  WriteFile(src + "/bin/tool", std::string(100000, 'b'), 0755);
  WriteFile(src + "/weird name\twith tab and ünïcode", "x");

  Snapshot snapshot = Build(src);
  std::string ours = scratch_ / "ours";
  absl::StatusOr<ExtractResult> result =
      ExtractTar(snapshot.tar_path, ours, {.expected_digest = snapshot.digest});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->digest, snapshot.digest);
  EXPECT_EQ(result->entry_count, snapshot.entry_count);
  EXPECT_EQ(result->total_bytes, snapshot.content_bytes);
  std::map<std::string, std::string> expected = DescribeTree(src);
  EXPECT_EQ(DescribeTree(ours), expected);

  // GNU tar reads the same tree out of it.
  std::string gnu = scratch_ / "gnu";
  MakeDirs(gnu);
  std::string out;
  ASSERT_EQ(RunProgram({"tar", "-xf", snapshot.tar_path, "-C", gnu}, &out), 0) << out;
  EXPECT_EQ(out, "");  // no warnings either
  EXPECT_EQ(DescribeTree(gnu), expected);
}

TEST_F(SnapshotTest, GitignoreIsAppliedWithNestedFilesAndGitIsLeftOut) {
  std::string src = scratch_ / "src";
  WriteFile(src + "/.gitignore", "*.pyc\n/build/\ncheckpoints/\n");
  WriteFile(src + "/main.py", "x");
  WriteFile(src + "/main.pyc", "x");
  WriteFile(src + "/build/out.o", "x");
  WriteFile(src + "/lib/build/keep.py", "x");  // "/build/" is anchored at the root
  WriteFile(src + "/lib/checkpoints/c.pt", "x");
  WriteFile(src + "/lib/.gitignore", "!special.pyc\n");
  WriteFile(src + "/lib/special.pyc", "x");
  WriteFile(src + "/lib/other.pyc", "x");
  WriteFile(src + "/.git/HEAD", "ref: refs/heads/main\n");
  WriteFile(src + "/vendor/sub/.git", "gitdir: ../../.git/modules/sub\n");  // a submodule
  WriteFile(src + "/vendor/sub/code.py", "x");

  Snapshot snapshot = Build(src);
  EXPECT_THAT(snapshot.ignore_files, ElementsAre(".gitignore", "lib/.gitignore"));
  EXPECT_EQ(snapshot.ignored_count, 6u);  // main.pyc build checkpoints other.pyc .git x2
  EXPECT_THAT(Archived(snapshot), ElementsAre(".gitignore", "lib", "lib/.gitignore", "lib/build",
                                              "lib/build/keep.py", "lib/special.pyc", "main.py",
                                              "vendor", "vendor/sub", "vendor/sub/code.py"));
}

TEST_F(SnapshotTest, DroverignoreReplacesGitignore) {
  std::string src = scratch_ / "src";
  WriteFile(src + "/.gitignore", "data/\n*.log\n");
  WriteFile(src + "/.droverignore", "*.log\n!keep.log\n");
  WriteFile(src + "/sub/.gitignore", "*\n");  // not read: .droverignore files rule
  WriteFile(src + "/sub/.droverignore", "x.py\n");
  WriteFile(src + "/sub/x.py", "x");
  WriteFile(src + "/sub/y.py", "y");
  WriteFile(src + "/data/train.csv", "1,2\n");
  WriteFile(src + "/a.log", "x");
  WriteFile(src + "/keep.log", "x");

  Snapshot snapshot = Build(src);
  EXPECT_THAT(snapshot.ignore_files, ElementsAre(".droverignore", "sub/.droverignore"));
  EXPECT_THAT(Archived(snapshot),
              ElementsAre(".droverignore", ".gitignore", "data", "data/train.csv", "keep.log",
                          "sub", "sub/.droverignore", "sub/.gitignore", "sub/y.py"));
}

TEST_F(SnapshotTest, OutputsModeArchivesEverything) {
  std::string src = scratch_ / "outputs";
  WriteFile(src + "/.gitignore", "*\n");
  WriteFile(src + "/.git/x", "x");
  WriteFile(src + "/model.pt", "weights");
  Snapshot snapshot = Build(src, {.use_ignore_files = false});
  EXPECT_THAT(snapshot.ignore_files, IsEmpty());
  EXPECT_THAT(Archived(snapshot), ElementsAre(".git", ".git/x", ".gitignore", "model.pt"));
}

TEST_F(SnapshotTest, ReportsLargestFilesAndFoldersAndWarnsAboveThreshold) {
  std::string src = scratch_ / "src";
  WriteFile(src + "/data/big.bin", std::string(5000, 'x'));
  WriteFile(src + "/data/raw/huge.bin", std::string(8000, 'x'));
  WriteFile(src + "/model/weights.pt", std::string(3000, 'x'));
  WriteFile(src + "/train.py", std::string(100, 'x'));
  WriteFile(src + "/empty.txt", "");

  Snapshot quiet = Build(src);
  EXPECT_THAT(quiet.warnings, IsEmpty());
  EXPECT_EQ(quiet.content_bytes, 16100u);

  Snapshot snapshot = Build(src, {.warn_bytes = 10000, .largest_count = 3});
  ASSERT_THAT(snapshot.largest_files, SizeIs(3));
  EXPECT_EQ(snapshot.largest_files[0].path, "data/raw/huge.bin");
  EXPECT_EQ(snapshot.largest_files[0].bytes, 8000u);
  EXPECT_EQ(snapshot.largest_files[1].path, "data/big.bin");
  EXPECT_EQ(snapshot.largest_files[2].path, "model/weights.pt");
  ASSERT_THAT(snapshot.largest_folders, SizeIs(3));
  EXPECT_EQ(snapshot.largest_folders[0].path, "data");
  EXPECT_EQ(snapshot.largest_folders[0].bytes, 13000u);
  EXPECT_EQ(snapshot.largest_folders[1].path, "data/raw");
  EXPECT_EQ(snapshot.largest_folders[2].path, "model");
  ASSERT_THAT(snapshot.warnings, SizeIs(1));
  EXPECT_THAT(snapshot.warnings[0],
              AllOf(HasSubstr("15.7 KiB"), HasSubstr("data/raw/huge.bin (7.8 KiB)"),
                    HasSubstr(".droverignore")));

  std::string report = DescribeSnapshot(snapshot);
  EXPECT_THAT(report,
              AllOf(HasSubstr(snapshot.digest), HasSubstr("5 files"), HasSubstr("largest files:"),
                    HasSubstr("data/raw/huge.bin"), HasSubstr("largest folders:"),
                    HasSubstr("data/\n"), HasSubstr("warning: snapshot holds")));
}

TEST_F(SnapshotTest, HardCapsFailBeforeWritingAndLeaveNoArchive) {
  std::string src = scratch_ / "src";
  WriteFile(src + "/data/huge.bin", std::string(8000, 'x'));
  WriteFile(src + "/a.py", "x");
  std::string out = scratch_ / "capped.tar";

  absl::StatusOr<Snapshot> total =
      BuildSnapshot(src, {.output_path = out, .max_total_bytes = 5000});
  ASSERT_FALSE(total.ok());
  EXPECT_EQ(total.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(total.status().message()),
              AllOf(HasSubstr("above the limit of 4.9 KiB"), HasSubstr("data/huge.bin"),
                    HasSubstr(".droverignore")));
  EXPECT_NE(access(out.c_str(), F_OK), 0);

  absl::StatusOr<Snapshot> per_file =
      BuildSnapshot(src, {.output_path = out, .max_file_bytes = 5000});
  ASSERT_FALSE(per_file.ok());
  EXPECT_EQ(per_file.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(per_file.status().message()), HasSubstr("'data/huge.bin'"));

  absl::StatusOr<Snapshot> entries = BuildSnapshot(src, {.output_path = out, .max_entries = 2});
  ASSERT_FALSE(entries.ok());
  EXPECT_EQ(entries.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(access(out.c_str(), F_OK), 0);
}

TEST_F(SnapshotTest, LinksLeavingTheFolderAndSpecialFilesAreSkippedWithWarnings) {
  std::string src = scratch_ / "src";
  WriteFile(src + "/main.py", "x");
  MakeSymlink("/etc/passwd", src + "/abs");
  MakeSymlink("../outside", src + "/up");
  MakeSymlink("sub/../../x", src + "/sneaky");
  MakeSymlink("../main.py", src + "/sub/ok");
  ASSERT_EQ(mkfifo((src + "/pipe").c_str(), 0644), 0);

  Snapshot snapshot = Build(src);
  EXPECT_THAT(Archived(snapshot), ElementsAre("main.py", "sub", "sub/ok"));
  ASSERT_THAT(snapshot.warnings, SizeIs(4));
  EXPECT_THAT(snapshot.warnings,
              Contains(AllOf(HasSubstr("'abs' -> '/etc/passwd'"), HasSubstr("skipped"))));
  EXPECT_THAT(snapshot.warnings, Contains(HasSubstr("'up' -> '../outside'")));
  EXPECT_THAT(snapshot.warnings, Contains(HasSubstr("'sneaky'")));
  EXPECT_THAT(snapshot.warnings, Contains(AllOf(HasSubstr("'pipe'"), HasSubstr("fifo"))));

  absl::StatusOr<Snapshot> strict = BuildSnapshot(
      src, {.output_path = scratch_ / "strict.tar", .fail_on_outside_symlinks = true});
  ASSERT_FALSE(strict.ok());
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(strict.status().message()), HasSubstr("'abs' -> '/etc/passwd'"));
}

TEST_F(SnapshotTest, ArchiveWrittenInsideTheFolderIsNotArchivedItself) {
  std::string src = scratch_ / "src";
  WriteFile(src + "/main.py", "x");
  WriteFile(src + "/snap.tar", "old contents from an earlier run");
  Snapshot snapshot = Build(src, {.output_path = src + "/snap.tar"});
  EXPECT_THAT(Archived(snapshot), ElementsAre("main.py"));
}

TEST_F(SnapshotTest, DefaultOutputIsATemporaryFile) {
  std::string src = scratch_ / "src";
  WriteFile(src + "/main.py", "x");
  std::string temp = scratch_ / "tmp";
  MakeDirs(temp);
  absl::StatusOr<Snapshot> snapshot = BuildSnapshot(src, {.temp_dir = temp});
  ASSERT_TRUE(snapshot.ok()) << snapshot.status();
  EXPECT_THAT(snapshot->tar_path, HasSubstr(temp + "/drover-snapshot-"));
  EXPECT_THAT(ListDir(temp), SizeIs(1));
}

TEST_F(SnapshotTest, MissingOrUnreadableSourcesAreNamed) {
  absl::StatusOr<Snapshot> missing = BuildSnapshot(scratch_ / "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("nope"));

  WriteFile(scratch_ / "file", "x");
  absl::StatusOr<Snapshot> file = BuildSnapshot(scratch_ / "file");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);

  if (geteuid() != 0) {  // root reads everything
    std::string src = scratch_ / "src";
    WriteFile(src + "/secret/key", "x");
    chmod((src + "/secret").c_str(), 0);
    absl::StatusOr<Snapshot> denied = BuildSnapshot(src, {.output_path = scratch_ / "d.tar"});
    ASSERT_FALSE(denied.ok());
    EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(std::string(denied.status().message()), HasSubstr("'secret'"));
  }
}

TEST(FormatBytesTest, UsesBinaryUnits) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(100 << 20), "100 MiB");
  EXPECT_EQ(FormatBytes(uint64_t{5} << 30), "5 GiB");
}

}  // namespace
}  // namespace drover::archive
