// The datastore and state-folder attacks of issue 16, against the real droverd and
// drover-agent (runc containers in the host image): host folders outside the
// administrator's roots and rclone options that run commands refused at create; the agent's
// own work folder and a symlink out of a root refused on the node; symlinks a job planted in
// a writable datastore read and write nothing outside it; droverd's state folder private
// when started with umask 022. Root only, except the state folder test.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/archive/sha256.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

v1::Datastore Hostpath(const std::string& name, const std::string& path, bool allow_write) {
  v1::Datastore store;
  store.set_name(name);
  store.set_type(v1::Datastore::HOSTPATH);
  store.set_path(path);
  store.set_allow_write(allow_write);
  return store;
}

grpc::Status Put(v1::AdminService::Stub& admin, const v1::Datastore& store) {
  grpc::ClientContext context;
  v1::PutDatastoreRequest request;
  *request.mutable_datastore() = store;
  v1::Datastore created;
  return admin.PutDatastore(&context, request, &created);
}

class DatastoreSecurityTest : public testing::LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    if (IsSkipped()) return;
    // The host's own files, outside every root: only root may read the secret.
    outside_ = outside_dir_.path();
    std::ofstream(outside_ + "/secret") << "host only\n";
    chmod((outside_ + "/secret").c_str(), 0600);
    data_ = dir_.path() + "/data";
    fs::create_directories(data_ + "/scratch");
    // A read-write datastore the jobs' root (an unprivileged uid in their user namespace)
    // may write, as docs/containers.md asks of an administrator.
    testing::GiveToJobContainers(data_ + "/scratch");
    touched_ = dir_.path() + "/touched";

    StartCluster();
  }

  void TearDown() override {
    if (agents_.empty()) return;
    EXPECT_FALSE(fs::exists(touched_)) << "a command of a datastore ran";
    EXPECT_EQ(testing::ReadWholeFile(outside_ + "/secret"), "host only\n");
    EXPECT_EQ(std::distance(fs::directory_iterator(outside_), fs::directory_iterator()), 1)
        << "something was written into a host folder";
    LocalClusterTest::TearDown();
  }

  // A job running `script` with /bin/sh in the host image; `refs` become $0, $1, ...
  v1::JobSpec Shell(const std::string& script) {
    v1::JobSpec spec;
    spec.set_entry_script("bin/sh");
    spec.add_arguments()->set_value("-c");
    spec.add_arguments()->set_value(script);
    spec.mutable_resources()->set_cpus(1);
    spec.mutable_resources()->set_memory_mib(256);
    return spec;
  }
  static void Ref(v1::JobSpec* spec, const std::string& datastore, const std::string& path,
                  v1::DataReference::Mode mode, bool read_write = false) {
    v1::DataReference* data = spec->add_arguments()->mutable_data();
    data->set_datastore(datastore);
    data->set_path(path);
    data->set_mode(mode);
    data->set_read_write(read_write);
  }
  v1::Job Run(const v1::JobSpec& spec, v1::JobStatus::State state) {
    return WaitFor(Submit(spec), state);
  }

  testing::TempDir outside_dir_;
  std::string outside_, data_, touched_;
};

TEST_F(DatastoreSecurityTest, HostFoldersAndRcloneCommandsAreRefusedAtCreate) {
  grpc::Status status = Put(*admin_, Hostpath("etc", "/etc", /*allow_write=*/true));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("datastore.path: '/etc' is in /etc"));
  EXPECT_THAT(status.error_message(), HasSubstr(dir_.path())) << "the allowed roots are named";
  status = Put(*admin_, Hostpath("proc", "/proc/self", false));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  status = Put(*admin_, Hostpath("state", dir_.path() + "/state", true));
  EXPECT_THAT(status.error_message(), HasSubstr("is in " + dir_.path() + "/state"))
      << "droverd's own state folder";

  v1::Datastore command;
  command.set_name("dav");
  command.set_type(v1::Datastore::RCLONE);
  (*command.mutable_rclone_options())["type"] = "webdav";
  (*command.mutable_rclone_options())["url"] = "http://127.0.0.1:9";
  (*command.mutable_rclone_options())["bearer_token_command"] = "touch " + touched_;
  status = Put(*admin_, command);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("datastore.rclone_options['bearer_token_command']: would make rclone "
                        "run a command on the node"));

  grpc::ClientContext context;
  v1::ListDatastoresResponse listed;
  ASSERT_TRUE(admin_->ListDatastores(&context, v1::ListDatastoresRequest(), &listed).ok());
  EXPECT_EQ(listed.datastores_size(), 0);
}

// droverd accepts both (below its root, and it cannot see nodes' files); the agent resolves
// them and refuses: its own work folder, and a symlink in a root leading to /etc.
TEST_F(DatastoreSecurityTest, AgentRefusesItsWorkFolderAndASymlinkOutOfTheRoot) {
  fs::create_directory_symlink("/etc", data_ + "/etc-link");
  ASSERT_TRUE(Put(*admin_, Hostpath("work", work(), true)).ok());
  ASSERT_TRUE(Put(*admin_, Hostpath("etc-link", data_ + "/etc-link", true)).ok());
  struct Case {
    std::string datastore, says;
  };
  for (const Case& c : {Case{"work", "is in " + work()}, Case{"etc-link", "resolves to /etc"}}) {
    SCOPED_TRACE(c.datastore);
    v1::JobSpec spec = Shell("cat $0/shadow $0/attempts/*/record* 2>&1; echo ran");
    Ref(&spec, c.datastore, "", v1::DataReference::MOUNT, /*read_write=*/true);
    v1::Job job = Run(spec, v1::JobStatus::FAILED);
    EXPECT_EQ(job.status().cause(), v1::JobStatus::LAUNCH_FAILED);
    EXPECT_THAT(job.status().message(), HasSubstr("datastore '" + c.datastore + "'"));
    EXPECT_THAT(job.status().message(), HasSubstr(c.says));
    EXPECT_THAT(jobs_->Logs(job.id(), 0), Not(HasSubstr("ran")));
  }
}

// A job with a writable datastore plants symlinks to a host folder and a host-only file;
// later jobs download through them and send outputs through them: nothing of the host is
// read, nothing is written there.
TEST_F(DatastoreSecurityTest, SymlinksPlantedInADatastoreLeadNowhere) {
  ASSERT_TRUE(Put(*admin_, Hostpath("scratch", data_ + "/scratch", true)).ok());
  v1::JobSpec plant = Shell(absl::StrCat("ln -s ", outside_, " $0/link && ln -s ", outside_,
                                         "/secret $0/secret && echo planted"));
  Ref(&plant, "scratch", "", v1::DataReference::MOUNT, /*read_write=*/true);
  v1::Job planted = Run(plant, v1::JobStatus::COMPLETED);
  ASSERT_EQ(jobs_->Logs(planted.id(), 0), "planted\n");
  ASSERT_TRUE(fs::is_symlink(data_ + "/scratch/link"));

  for (const std::string path : {"link/secret", "secret"}) {
    SCOPED_TRACE(path);
    v1::JobSpec read = Shell("cat $0; echo ran");
    Ref(&read, "scratch", path, v1::DataReference::DOWNLOAD);
    v1::Job job = Run(read, v1::JobStatus::FAILED);
    EXPECT_EQ(job.status().cause(), v1::JobStatus::LAUNCH_FAILED);
    EXPECT_THAT(job.status().message(), HasSubstr("datastore 'scratch'"));
    EXPECT_THAT(job.status().message(), HasSubstr("is a symbolic link"));
    EXPECT_THAT(jobs_->Logs(job.id(), 0), Not(HasSubstr("host only")));
  }

  // The whole datastore: the links are not copied.
  v1::JobSpec all = Shell("cat $0/secret $0/link/secret 2>/dev/null || echo unreadable");
  Ref(&all, "scratch", "", v1::DataReference::DOWNLOAD);
  v1::Job job = Run(all, v1::JobStatus::COMPLETED);
  EXPECT_EQ(jobs_->Logs(job.id(), 0), "unreadable\n");

  // An upload and outputs sent through the folder link.
  v1::JobSpec write = Shell("echo weights > /job/outputs/model.pt; echo x > $0/up.txt");
  Ref(&write, "scratch", "link/up", v1::DataReference::UPLOAD);
  v1::OutputTarget* target = write.add_outputs();
  target->set_datastore("scratch");
  target->set_path("link/run");
  job = Run(write, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::DATA_UPLOAD_FAILED);
  EXPECT_THAT(job.status().message(),
              HasSubstr("uploading to datastore 'scratch': link is a symbolic link"));
  EXPECT_FALSE(fs::exists(outside_ + "/up"));
  EXPECT_FALSE(fs::exists(outside_ + "/run"));
}

// droverd started by hand with umask 022 over a state folder an older droverd left 0755:
// the folder ends 0700, every file in it (database, WAL, blobs, what was there) 0600.
// Every regular file under `root` whose bytes contain `needle`.
std::vector<std::string> FilesHolding(const std::string& root, const std::string& needle) {
  std::vector<std::string> found;
  std::error_code error;
  fs::recursive_directory_iterator it(root, error);
  for (; !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (!it->is_regular_file(error) || it->path().filename() == "admin.sock") continue;
    if (absl::StrContains(testing::ReadWholeFile(it->path().string()), needle)) {
      found.push_back(it->path().string());
    }
  }
  return found;
}

TEST_F(DatastoreSecurityTest, SecretsAreSealedInTheStateFolderAndOpenOnlyWithTheirKey) {
  const std::string kPassword = "pw-5d41402abc4b2a76e1";
  const std::string kToken = "tok-7f3c9e1d2b8a6f40aa";
  v1::Datastore remote;
  remote.set_name("remote");
  remote.set_type(v1::Datastore::RCLONE);
  remote.set_path("bucket");
  (*remote.mutable_rclone_options())["type"] = "webdav";
  (*remote.mutable_rclone_options())["url"] = "http://127.0.0.1:9/dav";
  (*remote.mutable_rclone_options())["user"] = "alice";
  (*remote.mutable_rclone_options())["pass"] = kPassword;
  grpc::Status put = Put(*admin_, remote);
  ASSERT_TRUE(put.ok()) << put.error_message();
  // The job gets its secret value (it prints only its hash, so that logs hold no copy).
  v1::JobSpec spec = Shell("printf %s \"$API_TOKEN\" | sha256sum");
  (*spec.mutable_environment()->mutable_env())["API_TOKEN"] = kToken;
  spec.mutable_environment()->add_secret_env("API_TOKEN");
  v1::Job job = Run(spec, v1::JobStatus::COMPLETED);
  EXPECT_THAT(jobs_->Logs(job.id(), 0), HasSubstr(archive::Sha256Digest(kToken).substr(7)));

  // Stopped at once, WAL and all: no file of droverd's state holds either value in clear.
  const std::string state = dir_.path() + "/state";
  StopDroverd(SIGKILL);
  EXPECT_THAT(FilesHolding(state, kPassword), ::testing::IsEmpty());
  EXPECT_THAT(FilesHolding(state, kToken), ::testing::IsEmpty());
  struct stat key {};
  ASSERT_EQ(stat((state + "/secrets.key").c_str(), &key), 0);
  EXPECT_EQ(key.st_mode & 0777, 0600u);

  // With another key droverd refuses to start and says which key it needs.
  const std::string other_key = dir_.path() + "/other.key";
  {
    std::ofstream(other_key) << std::string(64, 'a') << "\n";
    chmod(other_key.c_str(), 0600);
  }
  auto refused = testing::DroverdProcess::Start(
      state, {"--datastore-root", dir_.path(), "--secrets-key", other_key});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("sealed with secrets key"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("--secrets-key"));
  // A key others may read is refused before anything is read.
  chmod(other_key.c_str(), 0644);
  refused = testing::DroverdProcess::Start(
      state, {"--datastore-root", dir_.path(), "--secrets-key", other_key});
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("chmod 600"));

  // With its own key it starts, and answers the credential as *** as before.
  StartDroverd();
  ASSERT_FALSE(HasFatalFailure());
  grpc::ClientContext context;
  v1::ListDatastoresResponse listed;
  grpc::Status status = admin_->ListDatastores(&context, v1::ListDatastoresRequest(), &listed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(listed.datastores_size(), 1);
  EXPECT_EQ(listed.datastores(0).rclone_options().at("pass"), "***");
  EXPECT_EQ(listed.datastores(0).rclone_options().at("user"), "alice");
}

// droverd alone (runs anywhere), its state folder made by the test first.
class StateFolderTest : public testing::LocalClusterTest {
 protected:
  StateFolderTest() : LocalClusterTest(/*needs_root=*/false) {}
};

TEST_F(StateFolderTest, IsPrivateWhateverTheUmaskAndOthersMayNotWriteIt) {
  const testing::TempDir& dir = dir_;
  const std::string state = dir.path() + "/state";
  fs::create_directories(state + "/old");
  std::ofstream(state + "/old/left.txt") << "left by an older droverd\n";
  chmod(state.c_str(), 0755);
  chmod((state + "/old").c_str(), 0755);
  chmod((state + "/old/left.txt").c_str(), 0644);
  mode_t saved = umask(022);
  StartCluster({.agents = 0, .droverd_files_dir = dir.path() + "/files", .datastore_root = false});
  umask(saved);
  ASSERT_FALSE(HasFatalFailure());
  std::ofstream(dir.path() + "/blob") << "some snapshot\n";
  ASSERT_TRUE(testing::UploadBlobFile(*blobs_, dir.path() + "/blob").ok());
  v1::Datastore s3;
  s3.set_name("s3");
  s3.set_type(v1::Datastore::RCLONE);
  (*s3.mutable_rclone_options())["type"] = "s3";
  (*s3.mutable_rclone_options())["secret_access_key"] = "secret";
  ASSERT_TRUE(Put(*admin_, s3).ok());
  // Stopped before the walk below: a running droverd creates and removes files there (its
  // journal, a blob's temporary file), which the walk would race.
  StopDroverd(SIGKILL);

  struct stat st;
  ASSERT_EQ(stat(state.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(state)) {
    ASSERT_EQ(lstat(entry.path().c_str(), &st), 0);
    if (S_ISLNK(st.st_mode)) continue;
    EXPECT_EQ(st.st_mode & 077, 0u) << entry.path() << " is readable by others: mode "
                                    << std::oct << (st.st_mode & 07777);
    if (S_ISREG(st.st_mode)) ++files;
  }
  EXPECT_GE(files, 3) << "drover.db, its WAL and a blob at least";
  // SQLite keeps the state in drover.db there; with DROVER_TEST_STORE=postgres it is on the
  // PostgreSQL server and the folder holds no database.
  EXPECT_EQ(fs::exists(state + "/drover.db"), !testing::StateOnPostgres());

  // A folder others may write: someone may have changed what droverd would trust.
  chmod(state.c_str(), 0777);
  auto droverd = testing::DroverdProcess::Start(state, {}, dir.path() + "/files");
  ASSERT_FALSE(droverd.ok());
  EXPECT_THAT(std::string(droverd.status().message()),
              HasSubstr("the state folder " + state + " has mode 0777"));
  EXPECT_THAT(std::string(droverd.status().message()), HasSubstr("chmod 700"));
}

}  // namespace
}  // namespace drover
