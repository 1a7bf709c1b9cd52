// Which host folders and rclone remotes an administrator may register as datastores:
// hostile paths and options, each refused with the field and the fix named.
#include "common/datastore_policy.h"

#include <string>

#include "absl/strings/escaping.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

absl::Status Check(const std::string& path, const DatastoreRoots& roots) {
  absl::Status clean = CheckCleanAbsolutePath("datastore.path", path);
  if (!clean.ok()) return clean;
  return CheckHostPathUnderRoots("datastore.path", path, roots);
}

TEST(HostPathPolicyTest, FoldersBelowAnAllowedRootAreAccepted) {
  DatastoreRoots roots{.allowed = {"/srv/data", "/mnt/nfs"}};
  EXPECT_TRUE(Check("/srv/data", roots).ok());
  EXPECT_TRUE(Check("/srv/data/imagenet", roots).ok());
  EXPECT_TRUE(Check("/mnt/nfs/scratch/x.y", roots).ok());
}

TEST(HostPathPolicyTest, FoldersOutsideTheRootsAreRefusedNamingTheRoots) {
  DatastoreRoots roots{.allowed = {"/srv/data", "/mnt/nfs"}};
  for (const std::string path : {"/srv", "/srv/database", "/home/alice", "/tmp", "/mnt"}) {
    SCOPED_TRACE(path);
    absl::Status s = Check(path, roots);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(s), HasSubstr("datastore.path: '" + path +
                                      "' is not below an allowed datastore root (/srv/data, "
                                      "/mnt/nfs)"));
  }
}

TEST(HostPathPolicyTest, WithoutRootsNoHostPathIsAllowed) {
  absl::Status s = Check("/srv/data/imagenet", DatastoreRoots{});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(s), HasSubstr("allows no HOSTPATH datastores"));
  EXPECT_THAT(Message(s), HasSubstr("--datastore-root /srv/data"));
}

TEST(HostPathPolicyTest, SystemAndDroverFoldersAreRefusedEvenBelowARootOfSlash) {
  // A root above them (here a hand-made one: the flag itself refuses "/") changes nothing.
  DatastoreRoots roots{.allowed = {"/"}, .refused = {"/srv/state"}};
  for (const std::string path :
       {"/etc", "/etc/ssl", "/proc", "/proc/self", "/sys/fs", "/dev", "/boot", "/run/secrets",
        "/var/run", "/root/.ssh", "/usr/local", "/var/lib/drover", "/var/lib/drover-agent/x",
        "/var/lib/drover2", "/srv/state", "/srv/state/blobs"}) {
    SCOPED_TRACE(path);
    absl::Status s = Check(path, roots);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(s), HasSubstr("' is in "));
    EXPECT_THAT(Message(s), HasSubstr("never part of a datastore"));
  }
  // Folders that hold one of them would expose it as much.
  for (const std::string path : {"/", "/var", "/var/lib", "/srv"}) {
    SCOPED_TRACE(path);
    absl::Status s = Check(path, roots);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(s), HasSubstr("' holds "));
  }
  EXPECT_TRUE(Check("/var/lib/data", roots).ok());
  EXPECT_TRUE(Check("/srv/data", roots).ok());
  EXPECT_TRUE(Check("/etcetera", roots).ok()) << "a name that only starts like /etc";
}

TEST(HostPathPolicyTest, UncleanAndHostileSpellingsAreRefused) {
  DatastoreRoots roots{.allowed = {"/srv/data"}};
  absl::Status s = Check("/srv/data/../../etc", roots);
  EXPECT_THAT(Message(s), HasSubstr("has a '..' component"));
  s = Check("srv/data", roots);
  EXPECT_THAT(Message(s), HasSubstr("is not absolute"));
  s = Check("/srv//data/./x/", roots);
  EXPECT_THAT(Message(s), HasSubstr("write '/srv/data/x'"));
  s = Check(std::string("/srv/data/x") + '\0' + "/../../etc", roots);
  EXPECT_THAT(Message(s), HasSubstr("contains a NUL byte"));
  s = Check("/srv/data/" + std::string(5000, 'a'), roots);
  EXPECT_THAT(Message(s), HasSubstr("is too long; use at most 1024 bytes"));
  s = Check("", roots);
  EXPECT_THAT(Message(s), HasSubstr("is not absolute"));
}

TEST(DatastoreRootFlagTest, RefusesSlashSystemFoldersAndDroverState) {
  EXPECT_TRUE(CheckDatastoreRoot("--datastore-root", "/srv/data").ok());
  EXPECT_TRUE(CheckDatastoreRoot("--datastore-root", "/var").ok())
      << "a root above a refused folder: what is inside is still refused";
  for (const std::string root :
       {"/", "/etc", "/proc/self", "/var/lib/drover", "/var/lib/drover-agent/data", "srv",
        "/srv/../etc", "/srv/"}) {
    SCOPED_TRACE(root);
    absl::Status s = CheckDatastoreRoot("--datastore-root", root);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(s), HasSubstr("--datastore-root: "));
  }
}

absl::Status Rclone(std::map<std::string, std::string> options, bool allow_write = false) {
  return CheckRcloneRemote("datastore.rclone_options", options, allow_write);
}

TEST(RclonePolicyTest, NetworkBackendsWithInlineCredentialsAreAccepted) {
  EXPECT_TRUE(Rclone({{"type", "s3"}, {"access_key_id", "a"}, {"secret_access_key", "b"},
                      {"endpoint", "http://minio:9000"}, {"env_auth", "false"}},
                     true)
                  .ok());
  EXPECT_TRUE(Rclone({{"type", "sftp"}, {"host", "h"}, {"key_pem", "-----BEGIN..."}}).ok());
  EXPECT_TRUE(Rclone({{"type", "webdav"}, {"url", "http://h:80"}, {"pass", "x"}}, true).ok());
  EXPECT_TRUE(Rclone({{"type", "google cloud storage"}}).ok());
  EXPECT_TRUE(Rclone({{"type", "http"}, {"url", "https://h/x"}}).ok());
}

TEST(RclonePolicyTest, BackendsThatReachTheNodesFilesAreRefused) {
  for (const std::string type : {"local", "alias", "union", "combine", "crypt", "memory",
                                  "cache", "chunker", "hasher", "Local", "nonsense"}) {
    SCOPED_TRACE(type);
    absl::Status s = Rclone({{"type", type}, {"remote", "/etc"}});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(s), HasSubstr("datastore.rclone_options['type']: '" + type +
                                      "' is not an allowed backend"));
    EXPECT_THAT(Message(s), HasSubstr("use one of azureblob, b2,"));
  }
  absl::Status s = Rclone({{"type", "http"}, {"url", "https://h"}}, /*allow_write=*/true);
  EXPECT_THAT(Message(s), HasSubstr("http is read-only"));
}

TEST(RclonePolicyTest, OptionsThatRunCommandsOrReadNodeFilesAreRefusedByName) {
  struct Case {
    std::string type, key, value, says;
  };
  for (const Case& c : std::vector<Case>{
           {"webdav", "bearer_token_command", "touch /tmp/pwned", "run a command on the node"},
           {"sftp", "password_command", "cat /etc/shadow", "run a command on the node"},
           {"sftp", "command", "x", "run a command on the node"},
           {"sftp", "ssh", "ssh -o ProxyCommand=touch\\ /tmp/x h", "run a command on the node"},
           {"sftp", "server_command", "x", "run a command on the node"},
           {"sftp", "key_file", "/root/.ssh/id_rsa", "read a file of the node"},
           {"sftp", "pubkey_file", "/root/.ssh/id_rsa.pub", "read a file of the node"},
           {"sftp", "known_hosts_file", "/root/.ssh/known_hosts", "read a file of the node"},
           {"sftp", "key_use_agent", "true", "the node's own credentials"},
           {"s3", "shared_credentials_file", "/root/.aws/credentials", "read a file of the node"},
           {"s3", "env_auth", "true", "the node's own credentials"},
           {"drive", "service_account_file", "/etc/sa.json", "read a file of the node"},
           {"azureblob", "use_msi", "true", "the node's own credentials"},
           {"webdav", "unix_socket", "/run/docker.sock", "read a file of the node"},
           {"s3", "endpoint", ":local:/etc", "on-the-fly 'local' remote"},
           {"s3", "endpoint", "x:alias,remote=/:y", "on-the-fly 'alias' remote"},
           {"s3", "endpoint", "http://h\n[evil]\ntype = local", "a line break or NUL byte"},
           {"s3", "x\n[evil]\ntype", "local", "not an option name"},
       }) {
    SCOPED_TRACE(c.key);
    absl::Status s = Rclone({{"type", c.type}, {c.key, c.value}});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(s),
                HasSubstr("datastore.rclone_options['" + absl::CHexEscape(c.key) + "']: "));
    EXPECT_THAT(Message(s), HasSubstr(c.says));
    if (c.value.size() > 5) {
      EXPECT_THAT(Message(s), Not(HasSubstr(c.value))) << "a value is never repeated";
    }
  }
}

}  // namespace
}  // namespace drover
