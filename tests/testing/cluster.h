// Helpers for tests that talk to a real droverd (and agents) over gRPC: ports, blobs, node
// readiness, jobs. Used from one test thread.
#ifndef DROVER_TESTS_TESTING_CLUSTER_H_
#define DROVER_TESTS_TESTING_CLUSTER_H_

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pki/pki.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"

namespace drover::testing {

// TestAdminToken() (test_tls.h), here so that default arguments can name it.
std::string TestAdminTokenValue();

// A channel to droverd at `address` over TLS, trusting the CA certificate in `ca_file`
// (empty: the test CA, test_tls.h), whose calls carry the user token `token` (by default
// the test admin token, test_tls.h; empty: none). gRPC target names work too.
std::shared_ptr<grpc::Channel> TlsChannel(const std::string& address,
                                          const std::string& ca_file = "",
                                          const std::string& token = TestAdminTokenValue());
// A channel over TLS trusting the CA certificate `ca_pem` (an in-process droverd's own),
// with the user token `token` (by default the test admin token).
std::shared_ptr<grpc::Channel> TlsChannelTrusting(const std::string& address,
                                                  const std::string& ca_pem,
                                                  const std::string& token = TestAdminTokenValue());
// A channel over TLS trusting `ca_pem` and presenting a new node certificate for `node`
// from `ca` (an in-process droverd's cluster CA, or the test CA): what an agent of that
// node connects with.
std::shared_ptr<grpc::Channel> NodeChannel(const std::string& address, const std::string& ca_pem,
                                           const pki::KeyAndCertificate& ca,
                                           const std::string& node);
// A node channel to a DroverdProcess serving the test CA's certificate.
std::shared_ptr<grpc::Channel> TestNodeChannel(const std::string& address, const std::string& node);
// The credentials of TlsChannelTrusting, for channels with arguments of their own.
std::shared_ptr<grpc::ChannelCredentials> TlsCredentialsTrusting(const std::string& ca_pem);
// The credentials of TlsChannel, for channels with arguments of their own.
std::shared_ptr<grpc::ChannelCredentials> TlsCredentials(
    const std::string& ca_file = "", const std::string& token = TestAdminTokenValue());

// A whole file's bytes; empty when it cannot be read.
std::string ReadWholeFile(const std::string& path);

// A TCP port on 127.0.0.1 that was free a moment ago (for a droverd that must keep its
// address across restarts).
int FreeLoopbackPort();

// `rclone serve webdav FOLDER` on 127.0.0.1 at a free port: a network remote for tests of
// RCLONE datastores on one machine (an agent refuses rclone backends that reach the node's
// own files, such as `alias` and `local`). Killed and reaped on destruction.
class LoopbackWebdav {
 public:
  // Starts the server (its output to `log_path`) and waits up to 30 s until it listens.
  static absl::StatusOr<std::unique_ptr<LoopbackWebdav>> Start(const std::string& folder,
                                                               const std::string& log_path);
  ~LoopbackWebdav();
  LoopbackWebdav(const LoopbackWebdav&) = delete;
  LoopbackWebdav& operator=(const LoopbackWebdav&) = delete;

  // "http://127.0.0.1:PORT".
  const std::string& url() const { return url_; }
  // The rclone options of a datastore on it.
  std::map<std::string, std::string> Options() const {
    return {{"type", "webdav"}, {"url", url_}, {"vendor", "other"}};
  }

 private:
  LoopbackWebdav(pid_t pid, std::string url) : pid_(pid), url_(std::move(url)) {}
  pid_t pid_;
  std::string url_;
};

// Polls until droverd lists `count` nodes, all READY. DEADLINE_EXCEEDED after `timeout`.
// drover-agent's default --userns-range puts a job container's root at this host uid.
inline constexpr uint32_t kJobRootUid = 100000;
// Gives `dir` and everything below it to kJobRootUid, as docs/containers.md asks of a
// read-write HOSTPATH datastore: what an administrator does so that jobs may write there.
void GiveToJobContainers(const std::string& dir);

absl::Status WaitForReadyNodes(v1::AdminService::Stub& admin, int count, absl::Duration timeout);

// Registers a HOSTPATH datastore `name` on the folder `root` of every node; the error of
// PutDatastore when droverd refuses it.
absl::Status CreateHostpathDatastore(v1::AdminService::Stub& admin, const std::string& name,
                                     const std::string& root, bool allow_write);

// Uploads the file at `path` as a blob and returns its digest.
absl::StatusOr<std::string> UploadBlobFile(v1::BlobService::Stub& blobs, const std::string& path);

// A blob's bytes.
absl::StatusOr<std::string> DownloadBlob(v1::BlobService::Stub& blobs, const std::string& digest);

// droverd's JobService as an e2e test uses it: submit, poll, read logs. Unexpected errors
// are test failures (gtest), so tests read as the steps a user takes.
class JobClient {
 public:
  explicit JobClient(std::shared_ptr<grpc::Channel> channel)
      : jobs_(v1::JobService::NewStub(std::move(channel))) {}

  v1::JobService::Stub& stub() { return *jobs_; }
  // SubmitJob; the new job's id.
  std::string Submit(const v1::JobSpec& spec);
  v1::Job Get(const std::string& id);
  // Polls until the job is in `state`; gives up early when it ended in another one. On
  // failure the test fails with the job's status and `context()` (daemon logs, say).
  v1::Job WaitFor(const std::string& id, v1::JobStatus::State state, absl::Duration timeout,
                  const std::function<std::string()>& context = nullptr);
  // Everything droverd stored of one stream: of `rank`, or of every rank with rank -1.
  std::string Logs(const std::string& id, int rank, v1::LogStream stream = v1::STDOUT);

 private:
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_CLUSTER_H_
