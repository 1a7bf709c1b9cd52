// Moving files between the user's machine and droverd's blob store: the code snapshot of
// `drover submit --source` and `drover download` of a job's outputs.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <google/protobuf/struct.pb.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "cli/format.h"
#include "cli/invocation.h"
#include "common/archive/safe_extract.h"
#include "common/archive/snapshot.h"

namespace drover::cli {
namespace {

// BlobService takes at most 1 MiB per upload message.

// Removes a temporary file when the command is done with it, whatever the way out.
class RemoveOnExit {
 public:
  explicit RemoveOnExit(std::string path) : path_(std::move(path)) {}
  ~RemoveOnExit() {
    if (!path_.empty()) unlink(path_.c_str());
  }
  RemoveOnExit(const RemoveOnExit&) = delete;
  RemoveOnExit& operator=(const RemoveOnExit&) = delete;

 private:
  std::string path_;
};

std::string ErrnoText(int error) { return absl::AsciiStrToLower(strerror(error)); }

std::string TempDir(const CliContext& ctx) {
  if (!ctx.temp_dir.empty()) return ctx.temp_dir;
  std::optional<std::string> tmpdir = ctx.getenv("TMPDIR");
  return tmpdir.has_value() && !tmpdir->empty() ? *tmpdir : "/tmp";
}

// The exit code for a snapshot that could not be built: problems of the folder the user
// named are theirs to fix (2), the rest is unexpected (1).
int ExitCodeForSnapshotError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kResourceExhausted:
      return kExitUsage;
    default:
      return kExitInternal;
  }
}

// Writes all of `data` to `fd`.
absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      std::string message = absl::StrCat("cannot write '", path, "': ", ErrnoText(error));
      return error == ENOSPC ? absl::ResourceExhaustedError(message) : absl::InternalError(message);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Regular files below `dir`, not following links.
uint64_t CountFiles(const std::string& dir) {
  uint64_t files = 0;
  std::error_code error;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, error);
       !error && it != std::filesystem::recursive_directory_iterator(); it.increment(error)) {
    if (it->is_regular_file(error) && !it->is_symlink(error)) ++files;
  }
  return files;
}

}  // namespace

std::optional<int> UploadSource(Invocation& inv, DroverClient& client,
                                const std::string& source_dir, std::string* digest) {
  archive::SnapshotOptions options;
  options.temp_dir = TempDir(inv.ctx());
  absl::StatusOr<archive::Snapshot> snapshot = archive::BuildSnapshot(source_dir, options);
  if (!snapshot.ok()) {
    return inv.Fail(ExitCodeForSnapshotError(snapshot.status()),
                    absl::StrCat("--source ", source_dir, ": ", snapshot.status().message()));
  }
  RemoveOnExit remove_archive(snapshot->tar_path);
  // stderr, so that stdout stays just the job id.
  inv.err() << archive::DescribeSnapshot(*snapshot);
  inv.err().flush();
  *digest = snapshot->digest;

  return inv.UploadBlobFile(client, "snapshot", snapshot->tar_path, snapshot->digest,
                            static_cast<int64_t>(snapshot->tar_bytes));
}

int DownloadCommand(Invocation& inv, const std::vector<std::string>& args) {
  std::string dest;
  FlagSet flags("drover download [flags] JOB",
                "Fetches the files a job wrote to its outputs folder ($DROVER_OUTPUT_DIR),\n"
                "which droverd keeps once the job ended, into a new folder, and prints how\n"
                "many files and bytes it wrote. The folder must not exist yet (exit code 2\n"
                "if it does): nothing is ever overwritten. A job without outputs (still\n"
                "running, or it wrote none) gives exit code 5.");
  flags.String("dest", &dest, "Folder to create for the outputs (default: ./JOB-outputs)", "DIR");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover download j-42                   # into ./j-42-outputs\n"
                            "  drover download j-42 --dest results/run-7\n")) {
    return *done;
  }
  std::string job_id;
  if (auto done = TakeJobId(inv, "download", positional, &job_id)) return *done;
  bool default_dest = dest.empty();
  if (default_dest) dest = absl::StrCat(job_id, "-outputs");
  struct stat info;
  if (lstat(dest.c_str(), &info) == 0) {
    return inv.Fail(kExitUsage,
                    absl::StrCat(default_dest ? "" : "--dest: ", "'", dest,
                                 "' already exists; remove it, or name a new folder with --dest"));
  }

  inv.WillStream();
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  absl::StatusOr<v1::Job> job = inv.WithRetry([&] { return client->GetJob(get); });
  if (!job.ok()) return inv.ServerError(job.status());
  const v1::JobStatus& status = job->status();
  if (status.outputs_digest().empty()) {
    if (!IsTerminal(status.state())) {
      return inv.Fail(kExitConflict,
                      absl::StrCat(job_id, " is ", StateName(status.state()),
                                   "; its outputs are uploaded when it ends ('drover watch ",
                                   job_id, "' waits for that)"));
    }
    return inv.Fail(kExitConflict,
                    absl::StrCat(job_id, " has no outputs: it ended ", StateName(status.state()),
                                 " without files in its outputs folder ($DROVER_OUTPUT_DIR)"));
  }
  const std::string& digest = status.outputs_digest();

  std::string temp_path = absl::StrCat(TempDir(inv.ctx()), "/drover-download-XXXXXX");
  int fd = mkstemp(temp_path.data());
  if (fd < 0) {
    return inv.Fail(kExitInternal, absl::StrCat("cannot create a temporary file in ",
                                                TempDir(inv.ctx()), ": ", ErrnoText(errno),
                                                "; set TMPDIR to a writable folder"));
  }
  RemoveOnExit remove_temp(temp_path);
  int64_t written = 0;
  int64_t size = status.outputs_size();
  v1::DownloadBlobRequest request;
  request.set_digest(digest);
  request.set_job_id(job_id);  // droverd lets the job's readers download its outputs
  size_t retries = 0;
  while (true) {
    // A broken download goes on from the last byte written.
    request.set_offset(written);
    absl::Status result = client->DownloadBlob(request, [&](const v1::DownloadBlobResponse& chunk) {
      size = chunk.size();
      absl::string_view data = chunk.chunk();
      if (chunk.offset() > written) {
        return absl::DataLossError(absl::StrCat("droverd sent bytes from ", chunk.offset(),
                                                " after ", written, "; run drover download again"));
      }
      int64_t skip = written - chunk.offset();
      if (skip >= static_cast<int64_t>(data.size())) return absl::OkStatus();
      data.remove_prefix(static_cast<size_t>(skip));
      if (absl::Status s = WriteAll(fd, data, temp_path); !s.ok()) return s;
      written += static_cast<int64_t>(data.size());
      retries = 0;
      return absl::OkStatus();
    });
    if (result.ok()) break;
    absl::Span<const absl::Duration> delays =
        written > 0 ? absl::MakeConstSpan(kReconnectDelays) : absl::MakeConstSpan(kRetryDelays);
    if (result.code() != absl::StatusCode::kUnavailable || retries >= delays.size()) {
      close(fd);
      return inv.ServerError(result);
    }
    inv.Pause(delays[retries++]);
  }
  if (close(fd) != 0) {
    return inv.Fail(kExitInternal, absl::StrCat("cannot write '", temp_path, "': ", ErrnoText(errno)));
  }
  if (written != size) {
    return inv.Fail(kExitUnavailable,
                    absl::StrCat("the download of ", job_id, "'s outputs ended after ", written,
                                 " of ", size, " bytes; run drover download again"));
  }

  archive::ExtractOptions extract;
  extract.expected_digest = digest;
  absl::StatusOr<archive::ExtractResult> extracted = archive::ExtractTar(temp_path, dest, extract);
  if (!extracted.ok()) {
    return inv.Fail(absl::IsAlreadyExists(extracted.status()) ? kExitUsage : kExitInternal,
                    absl::StrCat("cannot extract the outputs of ", job_id, " into '", dest,
                                 "': ", extracted.status().message()));
  }
  uint64_t files = CountFiles(dest);
  inv.Print(
      [&] {
        google::protobuf::Struct result;
        auto& fields = *result.mutable_fields();
        fields["job_id"].set_string_value(job_id);
        fields["dest"].set_string_value(dest);
        fields["digest"].set_string_value(digest);
        fields["files"].set_number_value(static_cast<double>(files));
        fields["bytes"].set_number_value(static_cast<double>(extracted->total_bytes));
        return MessageToJson(result, /*pretty=*/true);
      },
      [&] {
        return absl::StrCat("wrote ", files, files == 1 ? " file (" : " files (",
                            archive::FormatBytes(extracted->total_bytes), ") to ", dest, "\n");
      });
  return kExitOk;
}

}  // namespace drover::cli
