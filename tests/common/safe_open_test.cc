#include "common/safe_open.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void Write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

// Each test runs with openat2(2) and with the component walk used where it is missing.
class SafeOpenTest : public ::testing::TestWithParam<bool> {
 protected:
  SafeOpenTest() {
    internal::SetUseOpenat2ForTesting(GetParam());
    char base[] = "/tmp/safe-open-test-XXXXXX";
    dir_ = mkdtemp(base);
    root_ = dir_ + "/root";
    outside_ = dir_ + "/outside";
    fs::create_directories(root_);
    fs::create_directories(outside_);
    Write(outside_ + "/secret", "host secret");
    root_fd_ = open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  }
  ~SafeOpenTest() override {
    close(root_fd_);
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
    internal::SetUseOpenat2ForTesting(true);
  }

  // Runs `open` with a deadline; a fifo that held it is opened by the test so that the test
  // ends either way.
  template <typename F>
  auto WithinSeconds(F open, const std::string& fifo) {
    auto result = std::async(std::launch::async, open);
    bool done = result.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    if (!done) {
      int unblock = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK);  // gives the open a peer
      result.wait();
      ::close(unblock);
    }
    EXPECT_TRUE(done) << "the open of a fifo blocked";
    return result.get();
  }

  std::string dir_, root_, outside_;
  int root_fd_ = -1;
};

INSTANTIATE_TEST_SUITE_P(Resolution, SafeOpenTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Openat2" : "Walk"; });

TEST_P(SafeOpenTest, ReadsARegularFileBelowTheRoot) {
  Write(root_ + "/logs/rank-0.exit", "exit_code=0 signal=0");
  FileKind kind = FileKind::kOther;
  absl::StatusOr<std::string> text = ReadSmallFileBeneath(root_fd_, "logs/rank-0.exit", 64, &kind);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "exit_code=0 signal=0");
  EXPECT_EQ(kind, FileKind::kRegular);
  EXPECT_EQ(*ReadSmallFileBeneath(root_, "./logs//rank-0.exit", 64), "exit_code=0 signal=0");
}

TEST_P(SafeOpenTest, MissingFileIsNotFound) {
  FileKind kind = FileKind::kOther;
  EXPECT_TRUE(absl::IsNotFound(ReadSmallFileBeneath(root_fd_, "logs/x", 64, &kind).status()));
  EXPECT_EQ(kind, FileKind::kMissing);
}

TEST_P(SafeOpenTest, SymlinkAtTheLeafIsNotFollowed) {
  fs::create_directories(root_ + "/logs");
  fs::create_symlink(outside_ + "/secret", root_ + "/logs/rank-9.stdout");
  FileKind kind = FileKind::kOther;
  absl::StatusOr<std::string> text =
      ReadSmallFileBeneath(root_fd_, "logs/rank-9.stdout", 64, &kind);
  EXPECT_TRUE(absl::IsFailedPrecondition(text.status())) << text.status();
  EXPECT_THAT(text.status().message(), HasSubstr("symbolic link"));
  EXPECT_EQ(kind, FileKind::kSymlink);
}

TEST_P(SafeOpenTest, RelativeSymlinkThatStaysInsideIsNotFollowedEither) {
  Write(root_ + "/logs/real", "inside");
  fs::create_symlink("real", root_ + "/logs/link");
  FileKind kind = FileKind::kOther;
  EXPECT_FALSE(OpenBeneath(root_fd_, "logs/link", O_RDONLY, 0, &kind).ok());
  EXPECT_EQ(kind, FileKind::kSymlink);
}

TEST_P(SafeOpenTest, SymlinkInAMiddleComponentIsNotFollowed) {
  fs::create_symlink(outside_, root_ + "/logs");
  FileKind kind = FileKind::kOther;
  absl::StatusOr<std::string> text = ReadSmallFileBeneath(root_fd_, "logs/secret", 64, &kind);
  EXPECT_TRUE(absl::IsFailedPrecondition(text.status())) << text.status();
  EXPECT_THAT(text.status().message(), HasSubstr("'logs' on the way to 'logs/secret'"));
  EXPECT_EQ(kind, FileKind::kSymlink);
}

TEST_P(SafeOpenTest, DotDotAndAbsolutePathsAreRefused) {
  Write(root_ + "/logs/x", "x");
  for (const char* path : {"../outside/secret", "logs/../../outside/secret", "logs/..", "..",
                           "/etc/passwd", ""}) {
    absl::StatusOr<UniqueFd> fd = OpenBeneath(root_fd_, path, O_RDONLY);
    EXPECT_TRUE(absl::IsInvalidArgument(fd.status())) << path << ": " << fd.status();
  }
  std::string nul("logs/x\0y", 8);
  EXPECT_TRUE(absl::IsInvalidArgument(OpenBeneath(root_fd_, nul, O_RDONLY).status()));
}

TEST_P(SafeOpenTest, FifoForReadingDoesNotBlockAndIsRefused) {
  fs::create_directories(root_ + "/logs");
  std::string fifo = root_ + "/logs/mpirun.exit";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0666), 0);
  FileKind kind = FileKind::kOther;
  absl::Status status = WithinSeconds(
      [&] { return ReadSmallFileBeneath(root_fd_, "logs/mpirun.exit", 64, &kind).status(); }, fifo);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("fifo"));
  EXPECT_EQ(kind, FileKind::kFifo);
}

TEST_P(SafeOpenTest, FifoForAppendingDoesNotBlockAndIsRefused) {
  fs::create_directories(root_ + "/logs");
  std::string fifo = root_ + "/logs/node-0.system";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0666), 0);
  FileKind kind = FileKind::kOther;
  absl::Status status = WithinSeconds(
      [&] {
        return OpenBeneath(root_fd_, "logs/node-0.system", O_WRONLY | O_CREAT | O_APPEND, 0644,
                           &kind)
            .status();
      },
      fifo);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(kind, FileKind::kFifo);
  // With a reader the open itself succeeds: the check after it still refuses.
  int reader = open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  status = OpenBeneath(root_fd_, "logs/node-0.system", O_WRONLY | O_APPEND, 0, &kind).status();
  close(reader);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(kind, FileKind::kFifo);
}

TEST_P(SafeOpenTest, DeviceIsRefused) {
  std::string device = root_ + "/null";
  ASSERT_EQ(mknod(device.c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << "the tests run as root";
  FileKind kind = FileKind::kOther;
  absl::Status status = ReadSmallFileBeneath(root_fd_, "null", 64, &kind).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(kind, FileKind::kCharDevice);
}

TEST_P(SafeOpenTest, FolderIsNotAFileAndFileIsNotAFolder) {
  Write(root_ + "/logs/x", "x");
  FileKind kind = FileKind::kOther;
  absl::Status status = OpenBeneath(root_fd_, "logs", O_RDONLY, 0, &kind).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(kind, FileKind::kDirectory);
  EXPECT_TRUE(OpenBeneath(root_fd_, "logs", O_RDONLY | O_DIRECTORY).ok());
  status = OpenBeneath(root_fd_, "logs/x", O_RDONLY | O_DIRECTORY, 0, &kind).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(kind, FileKind::kRegular);
  status = OpenBeneath(root_fd_, "logs/x/y", O_RDONLY, 0, &kind).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("not a folder"));
}

TEST_P(SafeOpenTest, SizeCapRefusesALargerFile) {
  Write(root_ + "/big", std::string(100, 'x'));
  EXPECT_TRUE(ReadSmallFileBeneath(root_fd_, "big", 100).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(ReadSmallFileBeneath(root_fd_, "big", 99).status()));
}

TEST_P(SafeOpenTest, CreatesAndAppendsButNeverThroughALink) {
  fs::create_directories(root_ + "/logs");
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<UniqueFd> fd =
        OpenBeneath(root_fd_, "logs/node-0.system", O_WRONLY | O_CREAT | O_APPEND, 0644);
    ASSERT_TRUE(fd.ok()) << fd.status();
    ASSERT_EQ(write(fd->get(), "ab", 2), 2);
    EXPECT_EQ(fcntl(fd->get(), F_GETFL) & O_NONBLOCK, 0) << "blocking again once checked";
  }
  EXPECT_EQ(Slurp(root_ + "/logs/node-0.system"), "abab");
  // A dangling link: nothing is created where it points.
  fs::create_symlink(outside_ + "/created", root_ + "/logs/node-1.system");
  FileKind kind = FileKind::kOther;
  absl::Status status =
      OpenBeneath(root_fd_, "logs/node-1.system", O_WRONLY | O_CREAT | O_APPEND, 0644, &kind)
          .status();
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_EQ(kind, FileKind::kSymlink);
  EXPECT_FALSE(fs::exists(outside_ + "/created"));
  // A link to an existing host file: it is not appended to.
  fs::create_symlink(outside_ + "/secret", root_ + "/logs/node-2.system");
  EXPECT_FALSE(OpenBeneath(root_fd_, "logs/node-2.system", O_WRONLY | O_APPEND).ok());
  EXPECT_EQ(Slurp(outside_ + "/secret"), "host secret");
}

TEST_P(SafeOpenTest, TruncatesOnlyRegularFiles) {
  Write(root_ + "/f", "old contents");
  absl::StatusOr<UniqueFd> fd = OpenBeneath(root_fd_, "f", O_WRONLY | O_TRUNC);
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(Slurp(root_ + "/f"), "");
}

TEST_P(SafeOpenTest, ListsEntriesWithWhatTheyAre) {
  Write(root_ + "/logs/rank-0.stdout", "abc");
  fs::create_directories(root_ + "/logs/sub");
  fs::create_symlink(outside_ + "/secret", root_ + "/logs/rank-9.stdout");
  ASSERT_EQ(mkfifo((root_ + "/logs/mpirun.exit").c_str(), 0666), 0);
  absl::StatusOr<std::vector<BeneathEntry>> entries = ListBeneath(root_fd_, "logs");
  ASSERT_TRUE(entries.ok()) << entries.status();
  std::vector<std::string> seen;
  for (const BeneathEntry& e : *entries) {
    seen.push_back(absl::StrCat(e.name, ":", FileKindName(e.kind), ":", e.size));
  }
  EXPECT_THAT(seen, ElementsAre("mpirun.exit:fifo:0", "rank-0.stdout:regular:3",
                                "rank-9.stdout:symlink:0", "sub:directory:0"));
  // A linked folder is not listed.
  fs::create_symlink(outside_, root_ + "/outputs");
  EXPECT_TRUE(absl::IsFailedPrecondition(ListBeneath(root_fd_, "outputs").status()));
  EXPECT_TRUE(ListBeneath(root_, "").ok());
}

TEST_P(SafeOpenTest, MakesFoldersButNotThroughALink) {
  ASSERT_TRUE(MakeFoldersBeneath(root_fd_, "a/b/c").ok());
  EXPECT_TRUE(fs::is_directory(root_ + "/a/b/c"));
  ASSERT_TRUE(MakeFoldersBeneath(root_fd_, "a/b/c").ok()) << "existing folders are fine";
  fs::create_symlink(outside_, root_ + "/a/link");
  absl::Status status = MakeFoldersBeneath(root_fd_, "a/link/d");
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_FALSE(fs::exists(outside_ + "/d"));
}

TEST_P(SafeOpenTest, CopiesFilesAndFoldersAndLeavesOutLinksAndSpecialFiles) {
  Write(root_ + "/out/model.bin", "weights");
  Write(root_ + "/out/sub/notes.txt", "notes");
  fs::create_symlink("/", root_ + "/out/root");
  fs::create_symlink(outside_ + "/secret", root_ + "/out/sub/secret");
  ASSERT_EQ(mkfifo((root_ + "/out/pipe").c_str(), 0666), 0);
  std::string store = dir_ + "/store";
  fs::create_directories(store);
  int store_fd = open(store.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  std::vector<std::string> skipped;
  absl::Status copied = CopyBeneath(root_fd_, "out", store_fd, "run/1", &skipped);
  ASSERT_TRUE(copied.ok()) << copied;
  EXPECT_EQ(Slurp(store + "/run/1/model.bin"), "weights");
  EXPECT_EQ(Slurp(store + "/run/1/sub/notes.txt"), "notes");
  EXPECT_FALSE(fs::exists(fs::symlink_status(store + "/run/1/root")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(store + "/run/1/sub/secret")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(store + "/run/1/pipe")));
  EXPECT_THAT(skipped, ElementsAre("out/pipe (fifo)", "out/root (symlink)",
                                   "out/sub/secret (symlink)"));
  // A single file, replacing one of the same name.
  Write(root_ + "/out/model.bin", "better weights");
  ASSERT_TRUE(CopyBeneath(root_fd_, "out/model.bin", store_fd, "run/1/model.bin").ok());
  EXPECT_EQ(Slurp(store + "/run/1/model.bin"), "better weights");
  // A source that is itself a link is refused.
  EXPECT_TRUE(absl::IsFailedPrecondition(CopyBeneath(root_fd_, "out/root", store_fd, "x")));
  close(store_fd);
}

TEST_P(SafeOpenTest, CopyNeverWritesThroughALinkAtTheDestination) {
  Write(root_ + "/out/secret", "from the job");
  Write(root_ + "/out/dir/f", "from the job");
  std::string store = dir_ + "/store";
  fs::create_directories(store + "/run");
  fs::create_symlink(outside_ + "/secret", store + "/run/secret");  // planted by another job
  fs::create_symlink(outside_, store + "/run/dir");
  int store_fd = open(store.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  absl::Status copied = CopyBeneath(root_fd_, "out", store_fd, "run");
  EXPECT_TRUE(absl::IsFailedPrecondition(copied)) << copied;
  EXPECT_EQ(Slurp(outside_ + "/secret"), "host secret");
  EXPECT_FALSE(fs::exists(outside_ + "/f"));
  // And a destination folder that is a link.
  fs::create_symlink(outside_, store + "/elsewhere");
  copied = CopyBeneath(root_fd_, "out", store_fd, "elsewhere/run");
  EXPECT_TRUE(absl::IsFailedPrecondition(copied)) << copied;
  EXPECT_FALSE(fs::exists(outside_ + "/run"));
  close(store_fd);
}

TEST(FileKindTest, NamesAreTheLogFieldValues) {
  EXPECT_EQ(FileKindName(FileKind::kSymlink), "symlink");
  EXPECT_EQ(FileKindName(FileKind::kFifo), "fifo");
  EXPECT_EQ(FileKindName(FileKind::kCharDevice), "char_device");
  EXPECT_EQ(KindOfMode(S_IFSOCK | 0600), FileKind::kSocket);
}

TEST(IsBeneathPathTest, AcceptsOnlyRelativePathsWithoutDotDot) {
  EXPECT_TRUE(IsBeneathPath("logs/rank-0.stdout"));
  EXPECT_TRUE(IsBeneathPath("./a//b"));
  EXPECT_TRUE(IsBeneathPath("..a/b.."));
  EXPECT_FALSE(IsBeneathPath("a/../b"));
  EXPECT_FALSE(IsBeneathPath("/a"));
  EXPECT_FALSE(IsBeneathPath(""));
}

TEST_P(SafeOpenTest, ReplaceFileNeverWritesThroughALinkAndKeepsItsMode) {
  const std::string target = root_ + "/target";
  std::ofstream(target) << "keep\n";
  const std::string path = root_ + "/file";
  ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0);
  ASSERT_TRUE(ReplaceFile(path, "secret\n", 0600).ok());
  EXPECT_EQ(Slurp(target), "keep\n");
  EXPECT_EQ(Slurp(path), "secret\n");
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_P(SafeOpenTest, AnUnsyncedReplaceIsAsCarefulAsASyncedOne) {
  for (FileSync sync : {FileSync::kSynced, FileSync::kUnsynced}) {
    const std::string target = root_ + "/target";
    std::ofstream(target) << "keep\n";
    const std::string path = root_ + "/file";
    ASSERT_EQ(symlink(target.c_str(), path.c_str()), 0);
    // A leftover temporary planted as a link is not written through either.
    ASSERT_EQ(symlink(target.c_str(), (path + ".new").c_str()), 0);
    ASSERT_TRUE(ReplaceFile(path, "secret\n", 0600, sync).ok());
    EXPECT_EQ(Slurp(target), "keep\n");
    EXPECT_EQ(Slurp(path), "secret\n");
    ASSERT_TRUE(ReplaceFile(path, "second\n", 0640, sync).ok());
    EXPECT_EQ(Slurp(path), "second\n");
    struct stat st;
    ASSERT_EQ(lstat(path.c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0640u);
    EXPECT_FALSE(std::filesystem::exists(path + ".new"));
    // A folder where the file goes: UNAVAILABLE naming it, nothing left behind.
    const std::string dir = root_ + "/dir";
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    ASSERT_EQ(mkdir((dir + "/sub").c_str(), 0700), 0);
    absl::Status refused = ReplaceFile(dir, "x", 0600, sync);
    EXPECT_TRUE(absl::IsUnavailable(refused)) << refused;
    EXPECT_THAT(refused.message(), HasSubstr(dir));
    EXPECT_FALSE(std::filesystem::exists(dir + ".new"));
    std::filesystem::remove_all(dir);
    std::filesystem::remove(path);
    std::filesystem::remove(target);
  }
}

TEST_P(SafeOpenTest, ReadSmallFileFollowsLinksButReadsOnlyASmallRegularFile) {
  std::ofstream(root_ + "/plain") << "text\n";
  ASSERT_EQ(symlink((root_ + "/plain").c_str(), (root_ + "/link").c_str()), 0);
  EXPECT_EQ(ReadSmallFile(root_ + "/link", 100).value_or("?"), "text\n");
  ASSERT_EQ(mkfifo((root_ + "/fifo").c_str(), 0600), 0);
  EXPECT_TRUE(absl::IsFailedPrecondition(ReadSmallFile(root_ + "/fifo", 100).status()));
  EXPECT_TRUE(absl::IsResourceExhausted(ReadSmallFile(root_ + "/plain", 3).status()));
  EXPECT_FALSE(ReadSmallFile(root_ + "/missing", 100).ok());
}

}  // namespace
}  // namespace drover
