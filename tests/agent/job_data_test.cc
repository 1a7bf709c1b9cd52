// A job's data references on a node: hostpath datastores mounted, downloaded and uploaded,
// and refused with errors that name the datastore. Real folders, no containers.
#include "agent/job_data.h"

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class JobDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = dir_.path() + "/imagenet";
    fs::create_directories(store_ + "/train");
    std::ofstream(store_ + "/train/a.txt") << "sample a\n";
    job_ = dir_.path() + "/job";
    fs::create_directories(job_);
    v1::Datastore* d = assignment_.add_datastores();
    d->set_name("image-net");
    d->set_type(v1::Datastore::HOSTPATH);
    d->set_path(store_);
    d->set_allow_write(true);
  }

  void Arg(const std::string& value) { assignment_.mutable_spec()->add_arguments()->set_value(value); }
  void Ref(const std::string& path, v1::DataReference::Mode mode, bool read_write = false,
           const std::string& datastore = "image-net") {
    v1::DataReference* ref = assignment_.mutable_spec()->add_arguments()->mutable_data();
    ref->set_datastore(datastore);
    ref->set_path(path);
    ref->set_mode(mode);
    ref->set_read_write(read_write);
  }

  testing::TempDir dir_;
  std::string store_;
  std::string job_;
  v1::AssignAttempt assignment_;
};

TEST_F(JobDataTest, ReferencesBecomeContainerPathsInArgumentOrder) {
  Arg("--data");
  Ref("train", v1::DataReference::MOUNT);
  Arg("--copy");
  Ref("train/a.txt", v1::DataReference::DOWNLOAD);
  Arg("--out");
  Ref("results/run1", v1::DataReference::UPLOAD);
  absl::StatusOr<JobData> data = PrepareJobData(assignment_, job_, "n1");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->arguments,
              ::testing::ElementsAre("--data", "/datastores/image-net/train", "--copy",
                                     "/job/data/image-net/train/a.txt", "--out",
                                     "/job/upload/image-net/results/run1"));
  ASSERT_EQ(data->mounts.size(), 1u);
  EXPECT_EQ(data->mounts[0].source, store_);
  EXPECT_EQ(data->mounts[0].destination, "/datastores/image-net");
  EXPECT_TRUE(data->mounts[0].read_only) << "read-only unless asked";
  EXPECT_THAT(data->env, ::testing::ElementsAre("DROVER_DATASTORE_IMAGE_NET=/datastores/image-net"));
  EXPECT_EQ(testing::ReadWholeFile(job_ + "/data/image-net/train/a.txt"), "sample a\n");
  EXPECT_TRUE(fs::is_directory(job_ + "/upload/image-net/results/run1"));

  // What the job leaves in its upload folder reaches the datastore.
  std::ofstream(job_ + "/upload/image-net/results/run1/metrics.json") << "{}\n";
  ASSERT_TRUE(UploadJobData(*data).ok());
  EXPECT_EQ(testing::ReadWholeFile(store_ + "/results/run1/metrics.json"), "{}\n");
}

TEST_F(JobDataTest, ReadWriteMountWhenAnyReferenceAsksAndTheDatastoreAllows) {
  Ref("", v1::DataReference::MOUNT);
  Ref("train", v1::DataReference::MOUNT, /*read_write=*/true);
  absl::StatusOr<JobData> data = PrepareJobData(assignment_, job_, "n1");
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->mounts.size(), 1u);
  EXPECT_FALSE(data->mounts[0].read_only);
  EXPECT_EQ(data->arguments[0], "/datastores/image-net");
}

TEST_F(JobDataTest, RefusalsNameTheDatastoreAndWhatToDo) {
  assignment_.mutable_datastores(0)->set_allow_write(false);
  Ref("out", v1::DataReference::UPLOAD);
  absl::StatusOr<JobData> data = PrepareJobData(assignment_, job_, "n1");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr("datastore 'image-net' is read-only; an administrator can allow writes"));

  assignment_.mutable_spec()->clear_arguments();
  Ref("train", v1::DataReference::MOUNT, false, "gone");
  data = PrepareJobData(assignment_, job_, "n1");
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr("datastore 'gone' is no longer registered"));

  assignment_.mutable_spec()->clear_arguments();
  Ref("../etc", v1::DataReference::MOUNT);
  EXPECT_EQ(PrepareJobData(assignment_, job_, "n1").status().code(),
            absl::StatusCode::kInvalidArgument);

  assignment_.mutable_spec()->clear_arguments();
  Ref("missing.txt", v1::DataReference::DOWNLOAD);
  data = PrepareJobData(assignment_, job_, "n1");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("missing.txt does not exist"));

  assignment_.mutable_spec()->clear_arguments();
  assignment_.mutable_datastores(0)->set_path(dir_.path() + "/not-on-this-node");
  Ref("train", v1::DataReference::MOUNT);
  data = PrepareJobData(assignment_, job_, "n7");
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("does not exist on node n7"));

  v1::Datastore* remote = assignment_.add_datastores();
  remote->set_name("s3");
  remote->set_type(v1::Datastore::RCLONE);
  assignment_.mutable_spec()->clear_arguments();
  Ref("bucket", v1::DataReference::MOUNT, false, "s3");
  data = PrepareJobData(assignment_, job_, "n1");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("cannot mount yet"));
}

}  // namespace
}  // namespace drover::agent
