// droverd's datastore registry, in-process: AdminService.PutDatastore/ListDatastores/
// DeleteDatastore over gRPC against a real Droverd, the submit checks of data references and
// output targets, and the datastores an assignment carries (read by a scripted agent). What an agent does
// with them is the agent's business.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core.h"
#include "server/droverd.h"
#include "tests/testing/scripted_agent.h"
#include "tests/testing/cluster.h"
#include "tests/testing/test_tls.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using ::drover::testing::ScriptedAgent;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

v1::Datastore Hostpath(const std::string& name, const std::string& path,
                       bool allow_write = false) {
  v1::Datastore datastore;
  datastore.set_name(name);
  datastore.set_type(v1::Datastore::HOSTPATH);
  datastore.set_path(path);
  datastore.set_allow_write(allow_write);
  return datastore;
}

v1::Datastore Rclone(const std::string& name, const std::map<std::string, std::string>& options,
                     const std::vector<std::string>& secret_keys = {},
                     const std::string& path = "") {
  v1::Datastore datastore;
  datastore.set_name(name);
  datastore.set_type(v1::Datastore::RCLONE);
  datastore.set_path(path);
  datastore.mutable_rclone_options()->insert(options.begin(), options.end());
  for (const std::string& key : secret_keys) datastore.add_secret_keys(key);
  return datastore;
}

v1::Argument Data(const std::string& datastore, const std::string& path,
                  v1::DataReference::Mode mode = v1::DataReference::MOUNT,
                  bool read_write = false) {
  v1::Argument argument;
  argument.mutable_data()->set_datastore(datastore);
  argument.mutable_data()->set_path(path);
  argument.mutable_data()->set_mode(mode);
  argument.mutable_data()->set_read_write(read_write);
  return argument;
}

v1::Argument Value(const std::string& value) {
  v1::Argument argument;
  argument.set_value(value);
  return argument;
}

// What droverd would be started with: --datastore-root /data --datastore-root /mnt/nfs.
DatastoreRoots Roots(const std::string& state_dir = "/var/lib/drover") {
  return {.allowed = {"/data", "/mnt/nfs"}, .refused = {state_dir}};
}

class DatastoreRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    DroverdOptions options{.listen = "127.0.0.1:0", .state_dir = dir_.path(),
       .bootstrap_admin_token = testing::TestAdminToken()};
    options.tick = absl::Milliseconds(50);
    options.core.datastore_roots = Roots();
    auto started = Droverd::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    droverd_ = *std::move(started);
    channel_ = testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate());
    jobs_ = v1::JobService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  grpc::Status Put(const v1::Datastore& datastore, bool replace = false,
                   v1::Datastore* out = nullptr) {
    grpc::ClientContext context;
    v1::PutDatastoreRequest request;
    *request.mutable_datastore() = datastore;
    request.set_replace(replace);
    v1::Datastore response;
    grpc::Status status = admin_->PutDatastore(&context, request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  std::vector<v1::Datastore> List() {
    grpc::ClientContext context;
    v1::ListDatastoresResponse response;
    EXPECT_TRUE(admin_->ListDatastores(&context, v1::ListDatastoresRequest(), &response).ok());
    return {response.datastores().begin(), response.datastores().end()};
  }

  grpc::Status Delete(const std::string& name) {
    grpc::ClientContext context;
    v1::DeleteDatastoreRequest request;
    request.set_name(name);
    v1::DeleteDatastoreResponse response;
    return admin_->DeleteDatastore(&context, request, &response);
  }

  // `outputs`: datastore name -> folder.
  grpc::Status Submit(const std::vector<v1::Argument>& arguments, std::string* id = nullptr,
                      const std::vector<std::pair<std::string, std::string>>& outputs = {}) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->mutable_resources()->set_cpus(1);
    for (const v1::Argument& argument : arguments) *request.mutable_spec()->add_arguments() = argument;
    for (const auto& [datastore, path] : outputs) {
      v1::OutputTarget* target = request.mutable_spec()->add_outputs();
      target->set_datastore(datastore);
      target->set_path(path);
    }
    v1::SubmitJobResponse response;
    grpc::Status status = jobs_->SubmitJob(&context, request, &response);
    if (id != nullptr) *id = response.job().id();
    return status;
  }

  testing::TempDir dir_;
  std::unique_ptr<Droverd> droverd_;
  std::shared_ptr<grpc::Channel> channel_;
  // A channel with a node certificate for `node` from droverd's own CA.
  std::shared_ptr<grpc::Channel> NodeChannel(const std::string& node) {
    return testing::NodeChannel(droverd_->address(), droverd_->ca_certificate(),
                                droverd_->cluster_ca(), node);
  }
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

TEST_F(DatastoreRegistryTest, RegisteredDatastoresAreListedWithCredentialsMaskedAcrossARestart) {
  v1::Datastore put;
  grpc::Status status = Put(Hostpath("imagenet", "/data/imagenet"), false, &put);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(put.name(), "imagenet");
  EXPECT_EQ(put.path(), "/data/imagenet");
  EXPECT_GT(put.create_time().seconds(), 0);

  status = Put(Rclone("results",
                      {{"type", "s3"},
                       {"endpoint", "http://minio:9000"},
                       {"access_key_id", "drover"},
                       {"secret_access_key", "s3cr3t"},
                       {"account", "team-a"},
                       {"sas_url", "https://x?sig=1"},
                       {"session_token", "tok"},
                       {"pass", "pw"}},
                      {"account"}, "bucket/prefix"),
               false, &put);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // Not even the answer to the put shows a credential back.
  EXPECT_EQ(put.rclone_options().at("secret_access_key"), "***");

  for (int round = 0; round < 2; ++round) {
    std::vector<v1::Datastore> datastores = List();
    ASSERT_EQ(datastores.size(), 2u);
    EXPECT_EQ(datastores[0].name(), "imagenet");
    EXPECT_EQ(datastores[0].type(), v1::Datastore::HOSTPATH);
    const v1::Datastore& results = datastores[1];
    EXPECT_EQ(results.name(), "results");
    EXPECT_EQ(results.path(), "bucket/prefix");
    const auto& options = results.rclone_options();
    EXPECT_EQ(options.at("type"), "s3");
    EXPECT_EQ(options.at("endpoint"), "http://minio:9000");
    for (const char* secret :
         {"access_key_id", "secret_access_key", "account", "sas_url", "session_token", "pass"}) {
      EXPECT_EQ(options.at(secret), "***") << secret;
    }
    droverd_.reset();
    Start();
  }
}

TEST_F(DatastoreRegistryTest, ATakenNameIsRefusedUnlessReplacedAndDeleteRemovesIt) {
  ASSERT_TRUE(Put(Hostpath("data", "/data/a")).ok());
  grpc::Status taken = Put(Hostpath("data", "/data/b"));
  EXPECT_EQ(taken.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(taken.error_message(),
              HasSubstr("datastore 'data' already exists (hostpath /data/a); set replace"));
  ASSERT_EQ(List().size(), 1u);
  EXPECT_EQ(List()[0].path(), "/data/a");

  grpc::Status replaced = Put(Hostpath("data", "/data/b", /*allow_write=*/true), true);
  ASSERT_TRUE(replaced.ok()) << replaced.error_message();
  ASSERT_EQ(List().size(), 1u);
  EXPECT_EQ(List()[0].path(), "/data/b");
  EXPECT_TRUE(List()[0].allow_write());

  ASSERT_TRUE(Delete("data").ok());
  EXPECT_TRUE(List().empty());
  grpc::Status again = Delete("data");
  EXPECT_EQ(again.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(again.error_message(), HasSubstr("datastore 'data' is not registered"));
  droverd_.reset();
  Start();
  EXPECT_TRUE(List().empty());
}

TEST_F(DatastoreRegistryTest, InvalidDatastoresAreRefusedNamingTheField) {
  struct Case {
    v1::Datastore datastore;
    std::string message;
  };
  v1::Datastore untyped = Hostpath("data", "/data");
  untyped.set_type(v1::Datastore::TYPE_UNSPECIFIED);
  for (const Case& c : std::vector<Case>{
           {Hostpath("", "/data"), "datastore.name: is empty"},
           {Hostpath("Data", "/data"), "datastore.name: 'Data' has the character 'D'"},
           {Hostpath("-data", "/data"), "datastore.name: '-data' does not start with a letter"},
           {Hostpath(std::string(64, 'a'), "/data"), "datastore.name: 64 characters is too long"},
           {untyped, "datastore.type: required; use HOSTPATH"},
           {Hostpath("data", ""), "datastore.path: required for type HOSTPATH"},
           {Hostpath("data", "data/x"), "datastore.path: 'data/x' is not absolute"},
           {Hostpath("data", "/data/../etc"), "datastore.path: '/data/../etc' has a '..'"},
           {Hostpath("data", "/data//x/./y/"),
            "datastore.path: '/data//x/./y/' is not a clean path; write '/data/x/y'"},
           {Hostpath("data", "/"), "datastore.path: '/' is the nodes' whole file system"},
           {Rclone("s3", {{"endpoint", "http://x"}}),
            "datastore.rclone_options['type']: required for type RCLONE"},
           {Rclone("s3", {{"type", "s3"}, {"Access-Key", "x"}}),
            "datastore.rclone_options['Access-Key']: the key must be 1-64 characters of "
            "[a-z0-9_]"},
           {Rclone("s3", {{"type", "s3"}, {"endpoint", "http://x\n[other]"}}),
            "datastore.rclone_options['endpoint']: the value has a line break"},
           {Rclone("s3", {{"type", "s3"}}, {}, "/bucket"),
            "datastore.path: '/bucket' is absolute; use a path relative to the datastore"},
           {Rclone("s3", {{"type", "s3"}}, {}, "bucket/../other"),
            "datastore.path: 'bucket/../other' has a '..' component"},
           {Rclone("s3", {{"type", "s3"}}, {"secret_access_key"}),
            "datastore.secret_keys[0]: 'secret_access_key' is not a key of rclone_options"},
       }) {
    grpc::Status status = Put(c.datastore);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.message;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  v1::Datastore hostpath_with_options = Hostpath("data", "/data");
  (*hostpath_with_options.mutable_rclone_options())["type"] = "s3";
  grpc::Status status = Put(hostpath_with_options);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("datastore.rclone_options: apply to type RCLONE"));
  EXPECT_TRUE(List().empty());
}

// What the audit registered: system folders, the state folder, escapes from a root, and
// rclone options that run commands or read the node's files. Each refused at create with
// the field named; nothing stored.
TEST_F(DatastoreRegistryTest, HostileDatastoresAreRefusedAtCreate) {
  struct Case {
    v1::Datastore datastore;
    std::string message;
  };
  v1::Datastore http_write = Rclone("web", {{"type", "http"}, {"url", "https://h"}});
  http_write.set_allow_write(true);
  for (const Case& c : std::vector<Case>{
           {Hostpath("etc", "/etc", true), "datastore.path: '/etc' is in /etc, which is never part"},
           {Hostpath("proc", "/proc/self"), "datastore.path: '/proc/self' is in /proc"},
           {Hostpath("escape", "/data/../../etc"), "datastore.path: '/data/../../etc' has a '..'"},
           {Hostpath("huge", "/data/" + std::string(4096, 'x')), "is too long"},
           {Hostpath("nul", std::string("/data/x") + '\0' + "y"), "contains a NUL byte"},
           {Hostpath("nfs", "/mnt"), "'/mnt' is not below an allowed datastore root (/data, "
                                     "/mnt/nfs)"},
           {Rclone("dav", {{"type", "webdav"}, {"url", "http://h"},
                           {"bearer_token_command", "touch /tmp/x"}}),
            "datastore.rclone_options['bearer_token_command']: would make rclone run a command"},
           {Rclone("loc", {{"type", "local"}}),
            "datastore.rclone_options['type']: 'local' is not an allowed backend"},
           {Rclone("ali", {{"type", "alias"}, {"remote", "/etc"}}),
            "datastore.rclone_options['type']: 'alias' is not an allowed backend"},
           {Rclone("s3", {{"type", "s3"}, {"endpoint", ":local:/etc"}}),
            "datastore.rclone_options['endpoint']: names an on-the-fly 'local' remote"},
           {Rclone("ssh", {{"type", "sftp"}, {"host", "h"}, {"ssh", "ssh h"}}),
            "datastore.rclone_options['ssh']: would make rclone run a command"},
           {Rclone("key", {{"type", "sftp"}, {"host", "h"}, {"key_file", "/root/.ssh/id_rsa"}}),
            "datastore.rclone_options['key_file']: would make rclone read a file of the node"},
           {http_write, "datastore.rclone_options['type']: http is read-only"},
       }) {
    grpc::Status status = Put(c.datastore);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.message;
    EXPECT_THAT(status.error_message(), HasSubstr(c.message));
  }
  EXPECT_TRUE(List().empty());
}

TEST(CheckDatastoreTest, SystemFoldersAndTheStateFolderAreRefusedEvenBelowARoot) {
  DatastoreRoots roots = {.allowed = {"/var"}, .refused = {"/var/state"}};
  for (const std::string path : {"/var/lib/drover", "/var/lib/drover/blobs", "/var/run/x",
                                 "/var/state", "/var/state/drover.db", "/var", "/var/lib"}) {
    absl::Status s = scheduler::CheckDatastore(Hostpath("x", path), roots);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_THAT(std::string(s.message()), HasSubstr("never part of a datastore")) << path;
  }
  EXPECT_TRUE(scheduler::CheckDatastore(Hostpath("x", "/var/data"), roots).ok());
  absl::Status none = scheduler::CheckDatastore(Hostpath("x", "/data/x"), DatastoreRoots{});
  EXPECT_THAT(std::string(none.message()), HasSubstr("allows no HOSTPATH datastores"));
}

TEST_F(DatastoreRegistryTest, SubmitRefusesAReferenceToAnUnknownDatastore) {
  ASSERT_TRUE(Put(Hostpath("imagenet", "/data/imagenet")).ok());
  grpc::Status status = Submit({Value("--data"), Data("imagenet", "train"), Value("--out"),
                                Data("nope", "x", v1::DataReference::DOWNLOAD)});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("spec.arguments[3].data.datastore: 'nope' is not a registered "
                        "datastore; drover datastore list shows them"));
  EXPECT_TRUE(Submit({Value("--data"), Data("imagenet", "train")}).ok());
}

TEST_F(DatastoreRegistryTest, SubmitRefusesWritesToAReadOnlyDatastore) {
  ASSERT_TRUE(Put(Hostpath("ro", "/data/ro")).ok());
  ASSERT_TRUE(Put(Hostpath("rw", "/data/rw", /*allow_write=*/true)).ok());

  grpc::Status upload = Submit({Data("ro", "out", v1::DataReference::UPLOAD)});
  EXPECT_EQ(upload.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(upload.error_message(),
              HasSubstr("spec.arguments[0].data: datastore 'ro' is read-only, so the job "
                        "cannot upload to it; an administrator can allow writes"));
  grpc::Status mount = Submit({Value("x"), Data("ro", "", v1::DataReference::MOUNT, true)});
  EXPECT_EQ(mount.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(mount.error_message(),
              HasSubstr("spec.arguments[1].data: datastore 'ro' is read-only, so it cannot be "
                        "mounted writable"));

  EXPECT_TRUE(Submit({Data("ro", "in"), Data("ro", "in", v1::DataReference::DOWNLOAD)}).ok());
  EXPECT_TRUE(Submit({Data("rw", "out", v1::DataReference::UPLOAD),
                      Data("rw", "", v1::DataReference::MOUNT, true)})
                  .ok());
}

TEST_F(DatastoreRegistryTest, SubmitRefusesOutputsToAnUnknownOrReadOnlyDatastore) {
  ASSERT_TRUE(Put(Hostpath("ro", "/data/ro")).ok());
  ASSERT_TRUE(Put(Hostpath("rw", "/data/rw", /*allow_write=*/true)).ok());
  grpc::Status unknown = Submit({}, nullptr, {{"rw", "runs/1"}, {"nope", "runs/1"}});
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(unknown.error_message(),
              HasSubstr("spec.outputs[1].datastore: 'nope' is not a registered datastore; "
                        "drover datastore list shows them"));
  grpc::Status read_only = Submit({}, nullptr, {{"ro", "runs/1"}});
  EXPECT_EQ(read_only.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(read_only.error_message(),
              HasSubstr("spec.outputs[0]: datastore 'ro' is read-only, so the job cannot upload "
                        "its outputs to it; an administrator can allow writes"));
  EXPECT_TRUE(Submit({Data("ro", "in")}, nullptr, {{"rw", "runs/1"}}).ok());
}

TEST_F(DatastoreRegistryTest, AssignmentCarriesTheJobsDatastoresWithCredentials) {
  ASSERT_TRUE(Put(Rclone("results",
                         {{"type", "s3"}, {"secret_access_key", "first"}, {"region", "eu"}},
                         {"region"}, "bucket"),
                  false)
                  .ok());
  ASSERT_TRUE(Put(Hostpath("imagenet", "/data/imagenet")).ok());
  ASSERT_TRUE(Put(Hostpath("unrelated", "/data/other")).ok());
  ASSERT_TRUE(Put(Hostpath("outputs", "/data/outputs", /*allow_write=*/true)).ok());
  ScriptedAgent agent(NodeChannel("n1"), "n1");

  std::string id;
  ASSERT_TRUE(Submit({Data("imagenet", "train"), Data("imagenet", "val"),
                      Data("results", "", v1::DataReference::DOWNLOAD)},
                     &id, {{"outputs", "runs/1"}})
                  .ok());
  v1::AssignAttempt assign = agent.Next(v1::SchedulerMessage::kAssign).assign();
  EXPECT_EQ(assign.attempt().job_id(), id);
  std::map<std::string, v1::Datastore> got;
  for (const v1::Datastore& datastore : assign.datastores()) got[datastore.name()] = datastore;
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got["outputs"].path(), "/data/outputs") << "an output target's datastore";
  EXPECT_EQ(got["imagenet"].path(), "/data/imagenet");
  EXPECT_EQ(got["results"].rclone_options().at("secret_access_key"), "first");
  EXPECT_EQ(got["results"].rclone_options().at("region"), "eu");
  EXPECT_THAT(got["results"].secret_keys(), UnorderedElementsAre("region"));

  // A change reaches the next assignment.
  ASSERT_TRUE(Put(Rclone("results", {{"type", "s3"}, {"secret_access_key", "second"}}), true)
                  .ok());
  ASSERT_TRUE(Submit({Data("results", "")}, &id).ok());
  assign = agent.Next(v1::SchedulerMessage::kAssign).assign();
  EXPECT_EQ(assign.attempt().job_id(), id);
  ASSERT_EQ(assign.datastores_size(), 1);
  EXPECT_EQ(assign.datastores(0).rclone_options().at("secret_access_key"), "second");

  ASSERT_TRUE(Submit({Value("plain")}, &id).ok());
  assign = agent.Next(v1::SchedulerMessage::kAssign).assign();
  EXPECT_EQ(assign.attempt().job_id(), id);
  EXPECT_EQ(assign.datastores_size(), 0);
}

TEST_F(DatastoreRegistryTest, ADatastoreDeletedBeforeTheAssignmentIsLeftOutOfIt) {
  ASSERT_TRUE(Put(Hostpath("imagenet", "/data/imagenet")).ok());
  ASSERT_TRUE(Put(Hostpath("gone", "/data/gone")).ok());
  std::string id;
  ASSERT_TRUE(Submit({Data("imagenet", ""), Data("gone", "")}, &id).ok());
  ASSERT_TRUE(Delete("gone").ok());
  // Restarted in between: the registry comes back from the state database.
  droverd_.reset();
  Start();
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  v1::AssignAttempt assign = agent.Next(v1::SchedulerMessage::kAssign).assign();
  EXPECT_EQ(assign.attempt().job_id(), id);
  ASSERT_EQ(assign.datastores_size(), 1);
  EXPECT_EQ(assign.datastores(0).name(), "imagenet");
}

TEST(CheckDatastoreTest, AcceptsWhatAdminsRegister) {
  EXPECT_TRUE(scheduler::CheckDatastore(Hostpath("imagenet", "/data/imagenet"), Roots()).ok());
  EXPECT_TRUE(scheduler::CheckDatastore(Hostpath("a_b-1", "/mnt/nfs/x.y"), Roots()).ok());
  EXPECT_TRUE(scheduler::CheckDatastore(Rclone("s3", {{"type", "s3"}}), Roots()).ok());
  EXPECT_TRUE(scheduler::CheckDatastore(Rclone("az", {{"type", "azureblob"}, {"account", "a"}}, {"account"},
                                    "container/prefix"),
                             Roots())
                  .ok());
}

TEST(MaskCredentialsTest, MasksListedKeysAndKeysThatLookLikeCredentials) {
  v1::Datastore datastore = Rclone("s3",
                                   {{"type", "s3"},
                                    {"provider", "Minio"},
                                    {"user", "me"},
                                    {"client_secret", "x"},
                                    {"bearer_token", "x"},
                                    {"key_file", "x"}},
                                   {"user"});
  v1::Datastore masked = scheduler::MaskCredentials(datastore);
  EXPECT_EQ(masked.rclone_options().at("type"), "s3");
  EXPECT_EQ(masked.rclone_options().at("provider"), "Minio");
  for (const char* key : {"user", "client_secret", "bearer_token", "key_file"}) {
    EXPECT_EQ(masked.rclone_options().at(key), "***") << key;
    EXPECT_TRUE(scheduler::IsCredentialKey(datastore, key)) << key;
  }
  EXPECT_TRUE(scheduler::IsCredentialKey(datastore, "Storage_SAS"));
  EXPECT_FALSE(scheduler::IsCredentialKey(datastore, "endpoint"));
}

}  // namespace
}  // namespace drover::server
