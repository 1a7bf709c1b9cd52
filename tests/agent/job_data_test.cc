// A job's data on a node: hostpath and rclone datastores mounted, downloaded and uploaded,
// outputs copied to their targets, and refusals with errors that name the datastore. Real
// folders, real rclone (a WebDAV remote on loopback serving a local folder) and FUSE, no
// containers.
#include "agent/job_data.h"

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

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

  absl::StatusOr<JobData> Prepare(const std::string& node = "n1") {
    return PrepareJobData(assignment_, {.job_dir = job_,
                                        .rclone_dir = dir_.path() + "/rclone",
                                        .mount_dir = dir_.path() + "/mounts",
                                        .node_name = node,
                                        .datastore_roots = Roots()});
  }

  // The test's folder is the allowed root; the "agent's work folder" in it is refused.
  DatastoreRoots Roots() const {
    return {.allowed = {dir_.path()}, .refused = {dir_.path() + "/work"}};
  }

  // An RCLONE datastore `name` of `store_` served over WebDAV on loopback.
  v1::Datastore* AddRemote(const std::string& name, const std::string& path, bool allow_write) {
    if (webdav_ == nullptr) {
      auto server = testing::LoopbackWebdav::Start(store_, dir_.path() + "/webdav.log");
      EXPECT_TRUE(server.ok()) << server.status();
      if (!server.ok()) return nullptr;
      webdav_ = *std::move(server);
    }
    v1::Datastore* remote = assignment_.add_datastores();
    remote->set_name(name);
    remote->set_type(v1::Datastore::RCLONE);
    remote->set_path(path);
    remote->set_allow_write(allow_write);
    for (const auto& [key, value] : webdav_->Options()) {
      (*remote->mutable_rclone_options())[key] = value;
    }
    return remote;
  }

  testing::TempDir dir_;
  std::string store_;
  std::string job_;
  v1::AssignAttempt assignment_;
  std::unique_ptr<testing::LoopbackWebdav> webdav_;
};

TEST_F(JobDataTest, ReferencesBecomeContainerPathsInArgumentOrder) {
  Arg("--data");
  Ref("train", v1::DataReference::MOUNT);
  Arg("--copy");
  Ref("train/a.txt", v1::DataReference::DOWNLOAD);
  Arg("--out");
  Ref("results/run1", v1::DataReference::UPLOAD);
  absl::StatusOr<JobData> data = Prepare("n1");
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

TEST_F(JobDataTest, InputsArePathsInTheEnvironmentAndOneThatIsAlsoAnArgumentIsMadeOnce) {
  Arg("--copy");
  Ref("train/a.txt", v1::DataReference::DOWNLOAD);
  auto input = [this](const std::string& name, const std::string& path,
                      v1::DataReference::Mode mode) {
    v1::DataInput* in = assignment_.mutable_spec()->add_inputs();
    in->set_name(name);
    in->mutable_data()->set_datastore("image-net");
    in->mutable_data()->set_path(path);
    in->mutable_data()->set_mode(mode);
  };
  input("same_file", "train/a.txt", v1::DataReference::DOWNLOAD);
  input("train", "train", v1::DataReference::MOUNT);
  input("results", "results/run2", v1::DataReference::UPLOAD);
  absl::StatusOr<JobData> data = Prepare("n1");
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->arguments,
              ::testing::ElementsAre("--copy", "/job/data/image-net/train/a.txt"));
  EXPECT_THAT(data->env,
              ::testing::ElementsAre("DROVER_INPUT_same_file=/job/data/image-net/train/a.txt",
                                     "DROVER_INPUT_train=/datastores/image-net/train",
                                     "DROVER_INPUT_results=/job/upload/image-net/results/run2",
                                     "DROVER_DATASTORE_IMAGE_NET=/datastores/image-net"));
  EXPECT_EQ(testing::ReadWholeFile(job_ + "/data/image-net/train/a.txt"), "sample a\n");
  EXPECT_TRUE(fs::is_directory(job_ + "/upload/image-net/results/run2"));
  ASSERT_EQ(data->uploads.size(), 1u) << "the upload input is uploaded once";
}

TEST_F(JobDataTest, AnInputNameThatIsNoVariableNameIsRefusedByTheAgentToo) {
  // droverd checks input names; the agent does not trust what reaches it.
  for (const std::string& name : {std::string("A=B"), std::string("x\ny"), std::string(""),
                                   std::string("1a"), std::string(64, 'a'),
                                   std::string("a\0b", 3)}) {
    assignment_.mutable_spec()->clear_inputs();
    v1::DataInput* in = assignment_.mutable_spec()->add_inputs();
    in->set_name(name);
    in->mutable_data()->set_datastore("image-net");
    absl::StatusOr<JobData> data = Prepare("n1");
    EXPECT_TRUE(absl::IsInvalidArgument(data.status())) << data.status();
    EXPECT_THAT(data.status().message(), HasSubstr("inputs[0]: name"));
  }
  EXPECT_FALSE(fs::exists(job_ + "/data"));
}

TEST_F(JobDataTest, ReadWriteMountWhenAnyReferenceAsksAndTheDatastoreAllows) {
  Ref("", v1::DataReference::MOUNT);
  Ref("train", v1::DataReference::MOUNT, /*read_write=*/true);
  absl::StatusOr<JobData> data = Prepare("n1");
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->mounts.size(), 1u);
  EXPECT_FALSE(data->mounts[0].read_only);
  EXPECT_EQ(data->arguments[0], "/datastores/image-net");
}

TEST_F(JobDataTest, RefusalsNameTheDatastoreAndWhatToDo) {
  assignment_.mutable_datastores(0)->set_allow_write(false);
  Ref("out", v1::DataReference::UPLOAD);
  absl::StatusOr<JobData> data = Prepare("n1");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr("datastore 'image-net' is read-only; an administrator can allow writes"));

  assignment_.mutable_spec()->clear_arguments();
  Ref("train", v1::DataReference::MOUNT, false, "gone");
  data = Prepare("n1");
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr("datastore 'gone' is no longer registered"));

  assignment_.mutable_spec()->clear_arguments();
  Ref("../etc", v1::DataReference::MOUNT);
  EXPECT_EQ(Prepare("n1").status().code(),
            absl::StatusCode::kInvalidArgument);

  assignment_.mutable_spec()->clear_arguments();
  Ref("missing.txt", v1::DataReference::DOWNLOAD);
  data = Prepare("n1");
  EXPECT_EQ(data.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("missing.txt does not exist"));

  assignment_.mutable_spec()->clear_arguments();
  assignment_.mutable_datastores(0)->set_path(dir_.path() + "/not-on-this-node");
  Ref("train", v1::DataReference::MOUNT);
  data = Prepare("n7");
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("does not exist on node n7"));
}

TEST_F(JobDataTest, OutputsAreCopiedIntoEachTargetAndAReadOnlyOneIsRefused) {
  v1::OutputTarget* target = assignment_.mutable_spec()->add_outputs();
  target->set_datastore("image-net");
  target->set_path("runs/7");
  absl::StatusOr<JobData> data = Prepare();
  ASSERT_TRUE(data.ok()) << data.status();
  fs::create_directories(job_ + "/outputs/ckpt");
  std::ofstream(job_ + "/outputs/ckpt/model.pt") << "weights\n";
  ASSERT_TRUE(UploadJobData(*data).ok());
  EXPECT_EQ(testing::ReadWholeFile(store_ + "/runs/7/ckpt/model.pt"), "weights\n");

  assignment_.mutable_datastores(0)->set_allow_write(false);
  data = Prepare();
  EXPECT_EQ(data.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr("outputs[0]: datastore 'image-net' is read-only"));
}

// The agent checks a HOSTPATH datastore's real folder again: outside the allowed roots, in
// the agent's work folder, a system folder, or a symlink in a root pointing out of it, and
// nothing at all without roots. Nothing is copied or created for a refused one.
TEST_F(JobDataTest, HostpathDatastoreOutsideTheRootsIsRefusedByItsRealPath) {
  fs::create_directories(dir_.path() + "/work/attempts");
  fs::create_directory_symlink("/etc", dir_.path() + "/etc-link");
  fs::create_directory_symlink(dir_.path() + "/work", dir_.path() + "/work-link");
  Ref("", v1::DataReference::MOUNT);
  Ref("train/a.txt", v1::DataReference::DOWNLOAD);
  struct Case {
    std::string path, says;
  };
  for (const Case& c : std::vector<Case>{
           {"/etc", "'/etc' is in /etc, which is never part of a datastore"},
           {"/proc/self", "is in /proc"},
           {dir_.path() + "/etc-link", "resolves to /etc"},
           {dir_.path() + "/work", "is in " + dir_.path() + "/work"},
           {dir_.path() + "/work-link/attempts", "is in " + dir_.path() + "/work"},
           {"/srv", "is not below an allowed datastore root"},
           {"/tmp", "holds " + dir_.path() + "/work"},
           {dir_.path() + "/imagenet/../../etc", "has a '..' component"},
       }) {
    SCOPED_TRACE(c.path);
    assignment_.mutable_datastores(0)->set_path(c.path);
    absl::StatusOr<JobData> data = Prepare("n3");
    EXPECT_EQ(data.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(data.status().message()), HasSubstr("datastore 'image-net'"));
    EXPECT_THAT(std::string(data.status().message()), HasSubstr(c.says));
  }
  EXPECT_FALSE(fs::exists(job_ + "/data")) << "something was copied";

  assignment_.mutable_datastores(0)->set_path(store_);
  absl::StatusOr<JobData> data =
      PrepareJobData(assignment_, {.job_dir = job_, .node_name = "n3", .datastore_roots = {}});
  EXPECT_EQ(data.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("allows no HOSTPATH datastores"));
}

// A job with a writable datastore planted symlinks in it: a download through one reads no
// host file, outputs through one write no host folder.
TEST_F(JobDataTest, SymlinksPlantedInTheDatastoreLeadNowhere) {
  const std::string outside = dir_.path() + "/outside";
  fs::create_directories(outside);
  std::ofstream(outside + "/shadow") << "host only\n";
  fs::create_directory_symlink(outside, store_ + "/link");
  fs::create_symlink(outside + "/shadow", store_ + "/shadow");
  Ref("link/shadow", v1::DataReference::DOWNLOAD);
  absl::StatusOr<JobData> data = Prepare();
  EXPECT_EQ(data.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr("arguments[0]: datastore 'image-net': link is a symbolic link"));
  assignment_.mutable_spec()->clear_arguments();
  Ref("shadow", v1::DataReference::DOWNLOAD);
  data = Prepare();
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("shadow is a symbolic link"));
  EXPECT_FALSE(fs::exists(job_ + "/data/image-net/shadow"));

  assignment_.mutable_spec()->clear_arguments();
  v1::OutputTarget* target = assignment_.mutable_spec()->add_outputs();
  target->set_datastore("image-net");
  target->set_path("link/run");
  data = Prepare();
  ASSERT_TRUE(data.ok()) << data.status();
  fs::create_directories(job_ + "/outputs");
  std::ofstream(job_ + "/outputs/model.pt") << "weights\n";
  absl::Status uploaded = UploadJobData(*data);
  EXPECT_EQ(uploaded.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(uploaded.message()),
              HasSubstr("uploading to datastore 'image-net': link is a symbolic link"));
  EXPECT_FALSE(fs::exists(outside + "/run")) << "written into a host folder";
}

// RCLONE datastores the node refuses, whatever droverd let through: the option is named,
// no config is written and nothing runs.
TEST_F(JobDataTest, RcloneOptionsThatReachTheNodeAreRefusedBeforeTheConfigIsWritten) {
  const std::string touched = dir_.path() + "/touched";
  struct Case {
    std::map<std::string, std::string> options;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {{{"type", "webdav"}, {"url", "http://127.0.0.1:9"},
             {"bearer_token_command", "touch " + touched}},
            "rclone_options['bearer_token_command']: would make rclone run a command"},
           {{{"type", "local"}}, "rclone_options['type']: 'local' is not an allowed backend"},
           {{{"type", "alias"}, {"remote", "/etc"}},
            "rclone_options['type']: 'alias' is not an allowed backend"},
           {{{"type", "s3"}, {"endpoint", ":local:/etc"}}, "rclone_options['endpoint']"},
           {{{"type", "sftp"}, {"host", "h"}, {"ssh", "touch " + touched}},
            "rclone_options['ssh']: would make rclone run a command"},
           {{{"type", "sftp"}, {"host", "h"}, {"key_file", "/root/.ssh/id_rsa"}},
            "rclone_options['key_file']: would make rclone read a file of the node"},
       }) {
    SCOPED_TRACE(c.says);
    assignment_.clear_datastores();
    v1::Datastore* remote = assignment_.add_datastores();
    remote->set_name("remote");
    remote->set_type(v1::Datastore::RCLONE);
    remote->mutable_rclone_options()->insert(c.options.begin(), c.options.end());
    assignment_.mutable_spec()->clear_arguments();
    Ref("x", v1::DataReference::DOWNLOAD, false, "remote");
    absl::StatusOr<JobData> data = Prepare("n2");
    EXPECT_EQ(data.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(data.status().message()),
                HasSubstr("arguments[0]: datastore 'remote': " + c.says));
    EXPECT_FALSE(fs::exists(dir_.path() + "/rclone/rclone.conf"));
  }
  EXPECT_FALSE(fs::exists(touched)) << "rclone ran the command";
}

// An rclone datastore (WebDAV serving a local folder): downloads and uploads go through
// `rclone copyto`, the config holds no more than the datastores the job uses.
TEST_F(JobDataTest, RcloneDatastoreIsDownloadedUploadedAndReceivesOutputs) {
  ASSERT_NE(AddRemote("remote", "inside", /*allow_write=*/true), nullptr);
  fs::create_directories(store_ + "/inside/train");
  std::ofstream(store_ + "/inside/train/b.txt") << "sample b\n";
  Ref("train/b.txt", v1::DataReference::DOWNLOAD, false, "remote");
  Ref("train", v1::DataReference::DOWNLOAD, false, "remote");
  Ref("runs/1", v1::DataReference::UPLOAD, false, "remote");
  v1::OutputTarget* target = assignment_.mutable_spec()->add_outputs();
  target->set_datastore("remote");
  target->set_path("outputs/1");
  absl::StatusOr<JobData> data = Prepare();
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(data->arguments,
              ::testing::ElementsAre("/job/data/remote/train/b.txt", "/job/data/remote/train",
                                     "/job/upload/remote/runs/1"));
  EXPECT_EQ(testing::ReadWholeFile(job_ + "/data/remote/train/b.txt"), "sample b\n");
  std::string config = testing::ReadWholeFile(dir_.path() + "/rclone/rclone.conf");
  EXPECT_THAT(config, HasSubstr("[remote]\ntype = webdav\nurl = " + webdav_->url() +
                                "\nvendor = other\n"));
  EXPECT_THAT(config, ::testing::Not(HasSubstr("image-net"))) << "a hostpath datastore";

  std::ofstream(job_ + "/upload/remote/runs/1/result.txt") << "result\n";
  fs::create_directories(job_ + "/outputs");
  std::ofstream(job_ + "/outputs/model.pt") << "weights\n";
  ASSERT_TRUE(UploadJobData(*data).ok());
  EXPECT_EQ(testing::ReadWholeFile(store_ + "/inside/runs/1/result.txt"), "result\n");
  EXPECT_EQ(testing::ReadWholeFile(store_ + "/inside/outputs/1/model.pt"), "weights\n");
  EXPECT_TRUE(ReleaseJobData(*data).ok());
  EXPECT_FALSE(fs::exists(dir_.path() + "/rclone/rclone.conf")) << "the config is removed";

  // What rclone says when the path is not there, with the argument and datastore named.
  assignment_.mutable_spec()->clear_arguments();
  assignment_.mutable_spec()->clear_outputs();
  Ref("missing", v1::DataReference::DOWNLOAD, false, "remote");
  data = Prepare();
  EXPECT_EQ(data.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(data.status().message()),
              HasSubstr("arguments[0]: datastore 'remote': copying remote:inside/missing to"));
  EXPECT_THAT(std::string(data.status().message()), HasSubstr("directory not found"));
}

TEST_F(JobDataTest, RcloneMountIsBoundAndReleased) {
  if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
    GTEST_SKIP() << "FUSE mounts need root and /dev/fuse";
  }
  ASSERT_NE(AddRemote("remote", "train", /*allow_write=*/false), nullptr);
  Ref("", v1::DataReference::MOUNT, false, "remote");
  std::vector<std::string> reasons;
  absl::StatusOr<JobData> data =
      PrepareJobData(assignment_, {.job_dir = job_,
                                   .rclone_dir = dir_.path() + "/rclone",
                                   .mount_dir = dir_.path() + "/mounts",
                                   .node_name = "n1",
                                   .datastore_roots = Roots(),
                                   .report = [&](const std::string& r) { reasons.push_back(r); }});
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_THAT(reasons, ::testing::ElementsAre("MOUNTING datastore=remote"));
  ASSERT_EQ(data->mounts.size(), 1u);
  EXPECT_EQ(data->mounts[0].source, dir_.path() + "/mounts/remote");
  EXPECT_EQ(data->mounts[0].destination, "/datastores/remote");
  EXPECT_TRUE(data->mounts[0].read_only);
  EXPECT_EQ(testing::ReadWholeFile(dir_.path() + "/mounts/remote/a.txt"), "sample a\n");
  EXPECT_TRUE(ReleaseJobData(*data).ok());
  EXPECT_THAT(testing::ReadWholeFile("/proc/self/mountinfo"),
              ::testing::Not(HasSubstr(dir_.path())));
  EXPECT_FALSE(fs::exists(dir_.path() + "/mounts")) << "mount points are removed";
}

TEST_F(JobDataTest, RcloneMountLeftByAStoppingAgentIsTakenOverByTheNextOne) {
  if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
    GTEST_SKIP() << "FUSE mounts need root and /dev/fuse";
  }
  ASSERT_NE(AddRemote("remote", "train", /*allow_write=*/true), nullptr);
  Ref("", v1::DataReference::MOUNT, /*read_write=*/true, "remote");
  const std::string records = dir_.path() + "/records";
  fs::create_directories(records);
  JobDataContext context = {.job_dir = job_,
                            .rclone_dir = dir_.path() + "/rclone",
                            .mount_dir = dir_.path() + "/mounts",
                            .record_dir = records,
                            .node_name = "n1",
                            .datastore_roots = Roots()};
  const std::string mountpoint = dir_.path() + "/mounts/remote";
  {
    absl::StatusOr<JobData> data = PrepareJobData(assignment_, context);
    ASSERT_TRUE(data.ok()) << data.status();
    std::ofstream(mountpoint + "/first.txt") << "first life\n";
    LeaveJobData(*data);
  }
  EXPECT_THAT(testing::ReadWholeFile("/proc/self/mountinfo"), HasSubstr(mountpoint))
      << "the mount went with the agent";
  EXPECT_TRUE(fs::exists(dir_.path() + "/rclone/rclone.conf"));

  context.recovering = true;
  absl::StatusOr<JobData> data = PrepareJobData(assignment_, context);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->mounts.size(), 1u);
  EXPECT_EQ(data->mounts[0].source, mountpoint);
  EXPECT_FALSE(data->mounts[0].read_only);
  EXPECT_EQ(testing::ReadWholeFile(mountpoint + "/first.txt"), "first life\n");
  std::ofstream(mountpoint + "/second.txt") << "second life\n";
  const pid_t rclone = data->rclone->mounts[0]->pid();
  EXPECT_TRUE(ReleaseJobData(*data).ok());
  EXPECT_EQ(testing::ReadWholeFile(store_ + "/train/first.txt"), "first life\n");
  EXPECT_EQ(testing::ReadWholeFile(store_ + "/train/second.txt"), "second life\n");
  EXPECT_THAT(testing::ReadWholeFile("/proc/self/mountinfo"), ::testing::Not(HasSubstr(dir_.path())));
  EXPECT_FALSE(fs::exists(dir_.path() + "/mounts")) << "mount points are removed";
  EXPECT_FALSE(fs::exists(dir_.path() + "/rclone/rclone.conf"));
  waitpid(rclone, nullptr, 0);  // this test is the parent the agent's rclone would lose
}

TEST_F(JobDataTest, RcloneMountOfAnEarlierLifeIsEndedBeforeTheAttemptMountsAgain) {
  if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) {
    GTEST_SKIP() << "FUSE mounts need root and /dev/fuse";
  }
  ASSERT_NE(AddRemote("remote", "train", /*allow_write=*/false), nullptr);
  Ref("", v1::DataReference::MOUNT, false, "remote");
  fs::create_directories(dir_.path() + "/records");
  JobDataContext context = {.job_dir = job_,
                            .rclone_dir = dir_.path() + "/rclone",
                            .mount_dir = dir_.path() + "/mounts",
                            .record_dir = dir_.path() + "/records",
                            .node_name = "n1",
                            .datastore_roots = Roots()};
  pid_t earlier = 0;
  {
    // The agent left it while the attempt was still preparing: it is prepared again.
    absl::StatusOr<JobData> data = PrepareJobData(assignment_, context);
    ASSERT_TRUE(data.ok()) << data.status();
    earlier = data->rclone->mounts[0]->pid();
    LeaveJobData(*data);
  }
  absl::StatusOr<JobData> data = PrepareJobData(assignment_, context);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(waitpid(earlier, nullptr, 0), earlier) << "the earlier rclone was not ended";
  EXPECT_NE(data->rclone->mounts[0]->pid(), earlier);
  EXPECT_EQ(testing::ReadWholeFile(dir_.path() + "/mounts/remote/a.txt"), "sample a\n");
  std::string mountinfo = testing::ReadWholeFile("/proc/self/mountinfo");
  size_t first = mountinfo.find(dir_.path() + "/mounts/remote");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(mountinfo.find(dir_.path() + "/mounts/remote", first + 1), std::string::npos)
      << "mounted twice";
  EXPECT_TRUE(ReleaseJobData(*data).ok());
  EXPECT_THAT(testing::ReadWholeFile("/proc/self/mountinfo"), ::testing::Not(HasSubstr(dir_.path())));
}

TEST_F(JobDataTest, ADatastoreNameThatCouldLeaveItsFolderIsRefused) {
  for (const char* name : {"..", "a/../../x", "", "A", ".hidden"}) {
    assignment_.mutable_datastores(0)->set_name(name);
    assignment_.mutable_spec()->clear_arguments();
    Ref("train", v1::DataReference::DOWNLOAD, false, name);
    absl::StatusOr<JobData> data = Prepare();
    EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument) << name;
  }
  EXPECT_FALSE(fs::exists(job_ + "/data"));
}

}  // namespace
}  // namespace drover::agent
