// GET /api/v1/jobs/{id}/outputs and /outputs/{path} (docs/http-api.md): the files of a job's
// uploaded outputs archive, and one file's bytes. Everything is read through droverd's own
// gRPC services with the caller's token (GetJob for the digest, then DownloadBlob naming
// the job), so the ownership rules are gRPC's. The archive is never held whole: it is
// parsed as it streams, by `archive::TarReader` over the download, on a thread of its own
// (the sync gRPC reader blocks); the one file asked for is copied into a nameless file in
// the spool folder and sent from there, once the whole archive matched its digest. At most
// `max_output_reads` run at once, and the files being sent hold at most `spool_max_bytes`
// (SpoolBudget: each reserves the size its header gives before a byte is copied).
//
// Why a copy rather than the member's bytes sent straight from the blob by their offset:
// the archive's digest is checked before the first byte goes out (a damaged blob is an
// error, not a half-sent file), and a slow browser holds a file, not a gRPC stream and a
// thread. The copy is what that costs, bounded by the budget.
#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/sync_stream.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/archive/archive_paths.h"
#include "common/archive/tar_reader.h"
#include "common/grpc_status.h"
#include "common/json.h"
#include "common/log.h"
#include "common/safe_open.h"
#include "server/http/http_api.h"
#include "server/http/http_calls.h"

namespace drover::server::http::internal {
namespace {

// The blob's bytes as DownloadBlob streams them, checked to arrive in order.
class DownloadSource final : public archive::ByteSource {
 public:
  DownloadSource(grpc::ClientReader<v1::DownloadBlobResponse>* reader, std::string what)
      : reader_(reader), what_(std::move(what)) {}

  absl::StatusOr<size_t> Read(char* out, size_t size) override {
    while (pos_ == message_.chunk().size()) {
      if (done_) return 0;
      message_.Clear();
      pos_ = 0;
      if (!reader_->Read(&message_)) {
        done_ = true;
        finished_ = true;
        grpc::Status status = reader_->Finish();
        if (!status.ok()) return FromGrpcStatus(status, what_);
        return 0;
      }
      if (message_.offset() != received_) {
        return absl::DataLossError(absl::StrCat(what_, ": droverd sent bytes from ",
                                                message_.offset(), " after ", received_,
                                                "; try again"));
      }
      received_ += static_cast<int64_t>(message_.chunk().size());
    }
    size_t n = std::min(size, message_.chunk().size() - pos_);
    std::memcpy(out, message_.chunk().data() + pos_, n);
    pos_ += n;
    return n;
  }

  // Whether Finish() was called (the stream ended, well or not).
  bool finished() const { return finished_; }

 private:
  grpc::ClientReader<v1::DownloadBlobResponse>* reader_;
  const std::string what_;
  v1::DownloadBlobResponse message_;
  size_t pos_ = 0;
  int64_t received_ = 0;
  bool done_ = false;
  bool finished_ = false;
};

struct OutputFile {
  std::string path;  // relative to the outputs folder, normalised
  uint64_t size = 0;
};

// One /outputs request, shared by the loop thread and the reading thread: the loop thread
// fills the request part and registers `context` before the thread starts; the thread
// fills the answer part and posts it back before it unregisters `context`.
struct OutputsRead {
  grpc::ClientContext context;
  std::string job_id;
  std::string digest;
  std::string wanted;  // the file asked for; empty: the list
  std::string spool_dir;
  SpoolBudget* budget = nullptr;
  size_t max_listed = 0;
  // The answer:
  absl::Status status;
  bool too_many = false;  // the list has more than `max_listed` files
  bool too_large = false;  // the file is larger than the whole spool budget
  bool spool_full = false;  // the spool budget has no room for the file now
  uint64_t reserved = 0;  // bytes of `budget` this read holds
  std::vector<OutputFile> files;
  UniqueFd spooled;  // the file's bytes, read from offset 0
};

absl::StatusOr<UniqueFd> SpoolFile(const std::string& dir) {
  int fd = open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    std::string path = dir + "/http-output-XXXXXX";
    fd = mkostemp(path.data(), O_CLOEXEC);
    if (fd >= 0) unlink(path.c_str());
  }
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create a file in '", dir,
                                                   "' to send the output from"));
  }
  return UniqueFd(fd);
}

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "cannot copy the output file to send it");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string ContentDisposition(absl::string_view name) {
  // An ASCII fallback without quotes or controls, and the exact name (RFC 6266, 5987).
  std::string fallback;
  std::string encoded;
  for (unsigned char c : name) {
    bool plain = c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '%' && c != ';';
    fallback.push_back(plain ? static_cast<char>(c) : '_');
    if (std::isalnum(c) || c == '.' || c == '-' || c == '_' || c == '~') {
      encoded.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&encoded, absl::StrFormat("%%%02X", c));
    }
  }
  return absl::StrCat("attachment; filename=\"", fallback, "\"; filename*=UTF-8''", encoded);
}

std::string TypeName(char type) {
  switch (type) {
    case '1': return "a hard link";
    case '2': return "a symbolic link";
    case '5': return "a folder";
    default: return "not a regular file";
  }
}

// Reads the archive as it streams (the reading thread).
absl::Status ReadOutputs(OutputsRead& read, archive::TarReader& tar) {
  const std::string what = absl::StrCat("the outputs of ", read.job_id);
  bool found = false;
  while (true) {
    absl::StatusOr<std::optional<archive::TarEntry>> entry = tar.Next();
    if (!entry.ok()) return entry.status();
    if (!entry->has_value()) break;
    const archive::TarEntry& e = **entry;
    absl::StatusOr<std::string> path = archive::NormalizeEntryPath(e.path);
    if (!path.ok() || path->empty()) continue;  // the archive's root, or a name never written
    if (read.wanted.empty()) {
      if (e.type != '0') continue;
      if (read.files.size() >= read.max_listed) {
        read.too_many = true;
        return absl::ResourceExhaustedError(absl::StrCat(
            what, " have more than ", read.max_listed,
            " files, more than one listing names; use drover download ", read.job_id));
      }
      read.files.push_back({*path, e.size});
      continue;
    }
    if (found || *path != read.wanted) continue;
    if (e.type != '0') {
      return absl::InvalidArgumentError(absl::StrCat("'", read.wanted, "' in ", what, " is ",
                                                     TypeName(e.type),
                                                     ", not a file to download"));
    }
    found = true;
    // The size is the archive's claim: reserved before a byte is copied, and the copy never
    // writes more (a member claiming more than the archive holds fails the read).
    if (!read.budget->Fits(e.size)) {
      read.too_large = true;
      return absl::FailedPreconditionError(absl::StrCat(
          "'", read.wanted, "' is ", e.size, " bytes, more than droverd sends over the web (",
          read.budget->max_bytes(), " bytes, --http-spool-max); use drover download ",
          read.job_id));
    }
    if (!read.budget->Reserve(e.size)) {
      read.spool_full = true;
      return absl::UnavailableError(absl::StrCat(
          "droverd is sending other large output files over the web (its spool is full); try "
          "again in a minute, or use drover download ", read.job_id));
    }
    read.reserved = e.size;
    absl::StatusOr<UniqueFd> fd = SpoolFile(read.spool_dir);
    if (!fd.ok()) return fd.status();
    read.spooled = *std::move(fd);
    absl::Status copied = tar.ReadData(
        [&](absl::string_view piece) { return WriteAll(read.spooled.get(), piece); });
    if (!copied.ok()) return copied;
    // The response sends the file from where it is read next.
    if (lseek(read.spooled.get(), 0, SEEK_SET) != 0) {
      return absl::ErrnoToStatus(errno, "cannot rewind the output file to send it");
    }
  }
  // The whole archive was read: it must be the one the job's status names.
  absl::StatusOr<std::string> digest = tar.DrainAndDigest();
  if (!digest.ok()) return digest.status();
  if (*digest != read.digest) {
    return absl::DataLossError(absl::StrCat(what, " do not match their digest ", read.digest,
                                            "; droverd's copy is damaged"));
  }
  if (!read.wanted.empty() && !found) {
    return absl::NotFoundError(absl::StrCat(read.job_id, " has no output file '",
                                            read.wanted, "'; GET /api/v1/jobs/", read.job_id,
                                            "/outputs lists them"));
  }
  return absl::OkStatus();
}

// The reading thread's body.
void ReadOnThread(HttpGateway::Loop& loop, std::shared_ptr<OutputsRead> read,
                  std::shared_ptr<Exchange> exchange, std::shared_ptr<ApiRequest> request) {
  v1::DownloadBlobRequest download;
  download.set_digest(read->digest);
  download.set_job_id(read->job_id);  // droverd lets the job's readers download its outputs
  std::unique_ptr<grpc::ClientReader<v1::DownloadBlobResponse>> reader =
      loop.blobs->DownloadBlob(&read->context, download);
  std::string what = absl::StrCat("the outputs of ", read->job_id);
  auto owned_source = std::make_unique<DownloadSource>(reader.get(), what);
  DownloadSource* source = owned_source.get();
  std::unique_ptr<archive::TarReader> tar =
      archive::TarReader::FromSource(std::move(owned_source), what);
  read->status = ReadOutputs(*read, *tar);
  if (!source->finished()) {  // stopped early: end the stream
    read->context.TryCancel();
    (void)reader->Finish();
  }
  tar.reset();
  reader.reset();
  grpc::ClientContext* context = &read->context;
  asio::post(loop.io, [&loop, read, exchange, request] {
    --loop.output_reads;
    if (!read->status.ok()) {
      loop.spool.Release(read->reserved);
      Log(LogLevel::kDebug, "http_outputs_failed",
          {{"job", read->job_id}, {"error", std::string(read->status.message())}});
      if (absl::IsUnauthenticated(read->status) && request->session.has_value()) {
        loop.sessions.EndToken(request->token);
      }
      int code = read->too_many || read->too_large ? 413 : HttpStatusOf(read->status.code());
      StringResponse response = ErrorResponse(code, read->status);
      if (read->spool_full) response.set(bhttp::field::retry_after, "30");
      return exchange->Respond(std::move(response));
    }
    if (read->wanted.empty()) {
      std::sort(read->files.begin(), read->files.end(),
                [](const OutputFile& a, const OutputFile& b) { return a.path < b.path; });
      Json::array_t files;
      for (const OutputFile& file : read->files) {
        Json::object_t entry;
        entry["path"] = Json(file.path);
        entry["size"] = Json(absl::StrCat(file.size));  // int64 as protobuf's JSON writes it
        files.push_back(Json(std::move(entry)));
      }
      Json::object_t body;
      body["files"] = Json(std::move(files));
      StringResponse response = JsonResponse(DumpJson(Json(std::move(body))));
      response.set(bhttp::field::cache_control, "no-store");
      return exchange->Respond(std::move(response));
    }
    beast::error_code ec;
    FileResponse response;
    beast::file file;
    file.native_handle(read->spooled.release());
    response.body().reset(std::move(file), ec);
    if (ec) {
      loop.spool.Release(read->reserved);
      return exchange->Respond(ErrorResponse(
          500, absl::InternalError(absl::StrCat("cannot send '", read->wanted, "': ",
                                                ec.message()))));
    }
    response.result(bhttp::status::ok);
    response.set(bhttp::field::content_type, "application/octet-stream");
    response.set(bhttp::field::content_disposition,
                 ContentDisposition(read->wanted.substr(read->wanted.rfind('/') + 1)));
    response.set(bhttp::field::cache_control, "no-store");
    exchange->RespondFile(std::move(response),
                          [&loop, bytes = read->reserved] { loop.spool.Release(bytes); });
  });
  loop.calls.Remove(context);  // after the post: ~HttpGateway waits for this
}

// The output path asked for, normalised; INVALID_ARGUMENT naming it for "..", NUL, an
// absolute or empty path.
absl::StatusOr<std::string> WantedPath(const std::string& raw) {
  if (raw.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("the output path has a NUL byte");
  }
  for (absl::string_view part : absl::StrSplit(raw, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat(
          "output path '", archive::PrintableName(raw), "' has a '..' component; name a file "
          "as GET /api/v1/jobs/{id}/outputs lists it"));
    }
  }
  absl::StatusOr<std::string> path = archive::NormalizeEntryPath(raw);
  if (!path.ok() || path->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output path '", archive::PrintableName(raw), "' is not a file path",
        path.ok() ? "" : absl::StrCat(": ", path.status().message())));
  }
  return path;
}

}  // namespace

void ServeOutputs(HttpGateway::Loop& loop, std::shared_ptr<Exchange> exchange,
                  std::shared_ptr<ApiRequest> request) {
  auto read = std::make_shared<OutputsRead>();
  read->job_id = request->route.job_id;
  read->spool_dir = loop.options.spool_dir;
  read->budget = &loop.spool;
  read->max_listed = loop.limits.max_listed_outputs;
  if (request->route.route == Route::kJobOutputFile) {
    absl::StatusOr<std::string> wanted = WantedPath(request->route.file_path);
    if (!wanted.ok()) {
      return exchange->Respond(ErrorResponse(HttpStatusOf(wanted.status().code()),
                                             wanted.status()));
    }
    read->wanted = *std::move(wanted);
  }
  if (loop.output_reads >= loop.limits.max_output_reads) {
    absl::Status busy = absl::ResourceExhaustedError(
        "droverd is reading other job outputs for the web; try again in a moment");
    return exchange->Respond(ErrorResponse(HttpStatusOf(busy.code()), busy));
  }
  ++loop.output_reads;
  v1::GetJobRequest get;
  get.set_job_id(read->job_id);
  CallUnary<v1::GetJobRequest, v1::Job>(
      loop, request->token, std::move(get),
      [&loop](auto* context, auto* req, auto* resp, auto done) {
        loop.jobs->async()->GetJob(context, req, resp, std::move(done));
      },
      [&loop, exchange, request, read](const grpc::Status& status, v1::Job& job) {
        if (!status.ok()) {
          --loop.output_reads;
          return ReplyStatus(loop, *request, *exchange, status);
        }
        read->digest = job.status().outputs_digest();
        if (read->digest.empty()) {
          --loop.output_reads;
          absl::Status none = absl::NotFoundError(absl::StrCat(
              read->job_id, " has no outputs",
              job.status().has_outputs_removed_time() ? ": retention removed them"
                                                      : " (yet): they are uploaded when it ends, "
                                                        "if its outputs folder has files"));
          return exchange->Respond(ErrorResponse(404, none));
        }
        Authorize(loop, read->context, request->token);
        if (!loop.calls.Add(&read->context, [read] { read->context.TryCancel(); })) {
          --loop.output_reads;
          absl::Status stopping = absl::UnavailableError("droverd is stopping");
          return exchange->Respond(ErrorResponse(503, stopping));
        }
        std::thread(ReadOnThread, std::ref(loop), read, exchange, request).detach();
      });
}

}  // namespace drover::server::http::internal
