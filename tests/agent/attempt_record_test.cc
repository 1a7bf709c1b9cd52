// The records drover-agent keeps of its attempts for the next agent process: written and
// read back, the last report replaced, damaged records dropped, removal.
#include "agent/attempt_record.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

v1::AssignAttempt Assignment(const std::string& job, int64_t epoch) {
  v1::AssignAttempt assignment;
  assignment.mutable_attempt()->set_job_id(job);
  assignment.mutable_attempt()->set_epoch(epoch);
  assignment.set_exec_token("secret");
  assignment.mutable_spec()->set_entry_script("train.py");
  return assignment;
}

TEST(AttemptRecordTest, AssignmentsAndTheirLastReportsAreReadBack) {
  testing::TempDir dir;
  ASSERT_TRUE(SaveAssignment(dir.path(), Assignment("j-1", 1)).ok());
  ASSERT_TRUE(SaveAssignment(dir.path(), Assignment("j-2", 3)).ok());
  v1::AttemptReport report;
  *report.mutable_attempt() = Assignment("j-2", 3).attempt();
  report.set_phase(v1::AttemptReport::READY);
  ASSERT_TRUE(SaveReport(dir.path(), report).ok());
  report.set_phase(v1::AttemptReport::RUNNING);
  report.add_gpus()->set_uuid("GPU-1");
  ASSERT_TRUE(SaveReport(dir.path(), report).ok());

  std::vector<AttemptRecord> records = LoadAttemptRecords(dir.path());
  ASSERT_EQ(records.size(), 2u);
  std::sort(records.begin(), records.end(), [](const AttemptRecord& a, const AttemptRecord& b) {
    return a.assignment.attempt().job_id() < b.assignment.attempt().job_id();
  });
  EXPECT_EQ(records[0].assignment.exec_token(), "secret");
  EXPECT_EQ(records[0].report.phase(), v1::AttemptReport::PREPARING) << "no report yet";
  EXPECT_EQ(records[0].report.attempt().job_id(), "j-1");
  EXPECT_EQ(records[1].assignment.spec().entry_script(), "train.py");
  EXPECT_EQ(records[1].report.phase(), v1::AttemptReport::RUNNING) << "the last one";
  ASSERT_EQ(records[1].report.gpus_size(), 1);

  // The assignment may hold datastore secrets: only root reads it.
  struct stat st;
  ASSERT_EQ(stat(AttemptRecordDir(dir.path(), records[1].assignment.attempt()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_FALSE(fs::exists(AttemptRecordDir(dir.path(), records[1].assignment.attempt()) +
                          "/report.pb.new"));

  RemoveAttemptRecord(dir.path(), records[0].assignment.attempt());
  EXPECT_EQ(LoadAttemptRecords(dir.path()).size(), 1u);
}

TEST(AttemptRecordTest, ADamagedRecordIsDroppedAndAReportWithoutRecordRefused) {
  testing::TempDir dir;
  ASSERT_TRUE(SaveAssignment(dir.path(), Assignment("j-1", 1)).ok());
  std::string broken = dir.path() + "/records/j-9-1";
  fs::create_directories(broken);
  std::ofstream(broken + "/assignment.pb") << "\xff\xff not a message";
  std::vector<AttemptRecord> records = LoadAttemptRecords(dir.path());
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].assignment.attempt().job_id(), "j-1");
  EXPECT_FALSE(fs::exists(broken));

  v1::AttemptReport report;
  report.mutable_attempt()->set_job_id("j-5");
  report.mutable_attempt()->set_epoch(1);
  EXPECT_EQ(SaveReport(dir.path(), report).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(LoadAttemptRecords(dir.path() + "/nowhere").empty());
}

// Intent first: the start is on disk before anything starts, and the next agent reads it.
TEST(AttemptRecordTest, TheStartIntentIsReadBackWithTheRecord) {
  testing::TempDir dir;
  ASSERT_TRUE(SaveAssignment(dir.path(), Assignment("j-1", 1)).ok());
  ASSERT_TRUE(SaveAssignment(dir.path(), Assignment("j-2", 1)).ok());
  ASSERT_TRUE(SaveStartIntent(dir.path(), Assignment("j-2", 1).attempt()).ok());
  std::vector<AttemptRecord> records = LoadAttemptRecords(dir.path());
  ASSERT_EQ(records.size(), 2u);
  for (const AttemptRecord& record : records) {
    EXPECT_EQ(record.start_intended, record.assignment.attempt().job_id() == "j-2")
        << record.assignment.attempt().job_id();
    EXPECT_EQ(record.report.phase(), v1::AttemptReport::PREPARING);
  }
  // Without a record there is nothing to mark, and nothing may start.
  EXPECT_EQ(SaveStartIntent(dir.path(), Assignment("j-3", 1).attempt()).code(),
            absl::StatusCode::kNotFound);
}

TEST(AttemptRecordTest, AStartIntentThatCannotBeWrittenIsAnError) {
  testing::TempDir dir;
  ASSERT_TRUE(SaveAssignment(dir.path(), Assignment("j-1", 1)).ok());
  // A folder where the file would go: the write cannot succeed.
  std::string blocked = AttemptRecordDir(dir.path(), Assignment("j-1", 1).attempt()) + "/start-intended";
  fs::create_directories(blocked + "/x");
  EXPECT_EQ(SaveStartIntent(dir.path(), Assignment("j-1", 1).attempt()).code(),
            absl::StatusCode::kUnavailable);
}

TEST(AttemptRecordTest, AJobIdThatIsNotDroverdsIsRefusedBeforeItBecomesAPath) {
  testing::TempDir dir;
  for (const char* id : {"../x", "j-1/../../etc", "/tmp/x", "j-1/x", "", "j-", "42", "j-01"}) {
    absl::Status saved = SaveAssignment(dir.path(), Assignment(id, 1));
    EXPECT_TRUE(absl::IsInvalidArgument(saved)) << id << ": " << saved;
    EXPECT_THAT(std::string(saved.message()), ::testing::HasSubstr("j-<number>")) << id;
  }
  EXPECT_TRUE(absl::IsInvalidArgument(SaveAssignment(dir.path(), Assignment("j-1", -1))));
  EXPECT_FALSE(fs::exists(dir.path() + "/x-1"));
  EXPECT_FALSE(fs::exists(dir.path() + "/records")) << "nothing created for a refused attempt";
  EXPECT_TRUE(SaveAssignment(dir.path(), Assignment("j-12", 0)).ok());
  EXPECT_TRUE(CheckAttemptRef(Assignment("j-12", 0).attempt()).ok());
}

}  // namespace
}  // namespace drover::agent
