#include "storage/write_health.h"

#include <sqlite3.h>

#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/sqlite_db.h"

namespace drover::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class WriteHealthTest : public ::testing::Test {
 protected:
  std::vector<std::string> seen_;
  WriteHealth health_{"database", "/var/lib/drover",
                      [this](absl::string_view store, WriteError kind) {
                        seen_.push_back(absl::StrCat(store, "/", WriteErrorName(kind)));
                      }};
};

TEST_F(WriteHealthTest, FullDiskIsResourceExhaustedNamingTheFolderAndTheFix) {
  for (const absl::Status& error :
       {ErrnoStatus(ENOSPC, "writing /var/lib/drover/logs/j-1/1/rank-0.stdout"),
        ErrnoStatus(EDQUOT, "writing x"), SqliteError(SQLITE_FULL, "committing")}) {
    absl::Status described = health_.Failed(error);
    EXPECT_EQ(described.code(), absl::StatusCode::kResourceExhausted) << described;
    EXPECT_THAT(std::string(described.message()), HasSubstr("state disk is full"));
    EXPECT_THAT(std::string(described.message()),
                HasSubstr("free space on the file system of /var/lib/drover"));
    EXPECT_THAT(std::string(described.message()), HasSubstr(error.message()));
  }
  EXPECT_THAT(seen_, ElementsAre("database/disk_full", "database/disk_full", "database/disk_full"));
}

TEST_F(WriteHealthTest, IoErrorIsUnavailableNamingTheFolder) {
  for (const absl::Status& error : {ErrnoStatus(EIO, "syncing x"),
                                    SqliteError(SQLITE_IOERR_FSYNC, "committing"),
                                    SqliteError(SQLITE_IOERR_WRITE, "committing")}) {
    absl::Status described = health_.Failed(error);
    EXPECT_EQ(described.code(), absl::StatusCode::kUnavailable) << described;
    EXPECT_THAT(std::string(described.message()),
                HasSubstr("check the disk holding /var/lib/drover"));
  }
  EXPECT_THAT(seen_, ElementsAre("database/io_error", "database/io_error", "database/io_error"));
}

TEST_F(WriteHealthTest, ErrorsThatAreNotTheDisksPassUnchangedAndUncounted) {
  absl::Status conflict = absl::AbortedError("job 'j-1' changed");
  EXPECT_EQ(health_.Failed(conflict), conflict);
  EXPECT_EQ(health_.Failed(SqliteError(SQLITE_CONSTRAINT, "inserting")).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(seen_.empty());
  EXPECT_FALSE(health_.failing());
}

TEST_F(WriteHealthTest, FailingUntilAWriteGoesThrough) {
  EXPECT_FALSE(health_.failing());
  (void)health_.Failed(ErrnoStatus(ENOSPC, "writing x"), 3);
  EXPECT_TRUE(health_.failing());
  EXPECT_EQ(seen_.size(), 3u);  // one per refused write of the batch
  health_.Succeeded();
  EXPECT_FALSE(health_.failing());
}

}  // namespace
}  // namespace drover::storage
