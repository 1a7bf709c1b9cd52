#include "server/blob_service.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"

namespace drover::server {
namespace {

constexpr int64_t kChunkBytes = 1 << 20;

// Who holds what an upload stores: the user, or for a node the owner of the job whose
// outputs it uploads.
struct Holder {
  std::string user;          // "" : nobody (droverd's local admin socket has no quota)
  std::string holds_phrase;  // for the quota's message
};

absl::StatusOr<Holder> HolderOf(storage::Store& store, const Core& core, const Caller& caller,
                                const v1::UploadBlobRequest::Header& header) {
  if (caller.kind == Caller::Kind::kLocalAdmin) return Holder{};
  if (caller.kind != Caller::Kind::kNode) {
    return Holder{.user = caller.name, .holds_phrase = "you hold"};
  }
  if (header.job_id().empty()) {
    return absl::InvalidArgumentError(
        "header.job_id: required of a node; name the job whose outputs this is");
  }
  if (!core.RunsPartOf(caller.name, header.job_id())) {
    // The id is the node's word: shown short and printable, never echoed whole.
    const std::string shown = absl::CHexEscape(header.job_id().substr(0, 80));
    Log(LogLevel::kWarning, "blob_upload_refused", {{"node", caller.name}, {"job", shown}});
    return absl::PermissionDeniedError(
        absl::StrCat("node '", caller.name, "' runs no part of job '", shown,
                     "' now; a node uploads only the outputs of attempts it runs"));
  }
  absl::StatusOr<v1::Job> job = store.GetJob(header.job_id());
  if (!job.ok()) return job.status();
  if (job->owner() == kLocalSocketOwner) return Holder{};
  return Holder{.user = job->owner(),
                .holds_phrase = absl::StrCat("user '", job->owner(), "', who owns job '",
                                             job->id(), "', holds")};
}

class UploadReactor final : public grpc::ServerReadReactor<v1::UploadBlobRequest> {
 public:
  UploadReactor(storage::BlobStore& blobs, storage::Store& store, const Core& core,
                BlobQuota& quota, ServerMetrics* metrics, Caller caller,
                v1::UploadBlobResponse* response)
      : blobs_(blobs), store_(store), core_(core), quota_(quota), metrics_(metrics),
        caller_(std::move(caller)), response_(response) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client finished sending
      if (upload_ == nullptr) {
        Answer(absl::InvalidArgumentError(
            "header: required; the first message of an upload names the digest and size"));
        return;
      }
      absl::StatusOr<bool> created = upload_->Commit();
      if (created.ok()) {
        response_->set_digest(digest_);
        response_->set_size(size_);
        response_->set_created(*created);
        Log(LogLevel::kInfo, "blob_uploaded",
            {{"digest", digest_}, {"bytes", size_}, {"created", *created}, {"by", caller_.name},
             {"holder", holder_.user}});
      }
      if (!created.ok() || holder_.user.empty()) {
        Answer(created.status());
        return;
      }
      // The holder may download it again (a snapshot they submit with) and it counts
      // against their quota; the reservation goes once this is stored (OnDone).
      store_.AddBlobUploader(digest_, holder_.user, size_,
                             [this](absl::Status status) { Answer(status); });
      return;
    }
    absl::Status status;
    if (upload_ == nullptr) {
      status = Start();
    } else if (in_.has_header()) {
      status = absl::InvalidArgumentError("header: sent twice; send it only first");
    } else if (static_cast<int64_t>(in_.chunk().size()) > kChunkBytes) {
      status = absl::InvalidArgumentError(absl::StrCat(
          "chunk: ", in_.chunk().size(), " bytes is too large; send at most 1 MiB per message"));
    } else {
      status = upload_->Append(in_.chunk());
    }
    if (!status.ok()) {
      upload_.reset();
      Answer(status);
      return;
    }
    StartRead(&in_);
  }

  void OnDone() override { delete this; }

 private:
  // Ends the call. The upload's bytes stop counting as in progress first: once the holder is
  // recorded they count as held, and the client may start its next upload as soon as it has
  // the answer, before OnDone.
  void Answer(const absl::Status& status) {
    reservation_.Release();
    Finish(ToGrpcStatus(status));
  }

  // The first message: who will hold the blob, their quota, then the upload.
  absl::Status Start() {
    if (!in_.has_header()) {
      return absl::InvalidArgumentError(
          "header: required; the first message of an upload names the digest and size");
    }
    digest_ = in_.header().digest();
    size_ = in_.header().size();
    absl::StatusOr<Holder> holder = HolderOf(store_, core_, caller_, in_.header());
    if (!holder.ok()) return holder.status();
    holder_ = *std::move(holder);
    // The store checks the size first (not negative, not past --max-blob-bytes).
    absl::StatusOr<std::unique_ptr<storage::BlobStore::Upload>> upload =
        blobs_.StartUpload(digest_, size_);
    if (!upload.ok()) return upload.status();
    upload_ = *std::move(upload);
    if (!holder_.user.empty()) {
      absl::StatusOr<BlobQuota::Reservation> reserved =
          quota_.Reserve(holder_.user, digest_, size_, holder_.holds_phrase);
      if (!reserved.ok()) {
        if (absl::IsResourceExhausted(reserved.status())) {
          Log(LogLevel::kWarning, "blob_quota_refused",
              {{"user", holder_.user}, {"by", caller_.name}, {"bytes", size_}});
          if (metrics_ != nullptr) metrics_->blob_quota_refusals.With({}).Increment();
        }
        return reserved.status();
      }
      reservation_ = *std::move(reserved);
    }
    return absl::OkStatus();
  }

  storage::BlobStore& blobs_;
  storage::Store& store_;
  const Core& core_;
  BlobQuota& quota_;
  ServerMetrics* const metrics_;
  const Caller caller_;
  v1::UploadBlobResponse* response_;
  v1::UploadBlobRequest in_;
  Holder holder_;
  BlobQuota::Reservation reservation_;
  std::unique_ptr<storage::BlobStore::Upload> upload_;
  std::string digest_;
  int64_t size_ = 0;
};

class DownloadReactor final : public grpc::ServerWriteReactor<v1::DownloadBlobResponse> {
 public:
  DownloadReactor(storage::BlobStore& blobs, const v1::DownloadBlobRequest& request)
      : blobs_(blobs), digest_(request.digest()), offset_(request.offset()) {
    absl::StatusOr<int64_t> size = blobs_.Stat(digest_);
    if (!size.ok()) {
      Finish(ToGrpcStatus(size.status()));
      return;
    }
    size_ = *size;
    if (offset_ < 0 || offset_ > size_) {
      Finish(ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("offset: ", offset_, " is outside the blob (", size_, " bytes)"))));
      return;
    }
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "download stream broken"));
      return;
    }
    Next();
  }

  void OnDone() override { delete this; }

 private:
  void Next() {
    if (offset_ >= size_ && sent_any_) {
      Finish(grpc::Status::OK);
      return;
    }
    absl::StatusOr<std::string> data = blobs_.Read(digest_, offset_, kChunkBytes);
    if (!data.ok()) {
      Finish(ToGrpcStatus(data.status()));
      return;
    }
    out_.set_offset(offset_);
    out_.set_size(size_);
    offset_ += static_cast<int64_t>(data->size());
    out_.set_chunk(*std::move(data));
    sent_any_ = true;  // an empty blob still gets one message with its size
    StartWrite(&out_);
  }

  storage::BlobStore& blobs_;
  const std::string digest_;
  int64_t offset_;
  int64_t size_ = 0;
  bool sent_any_ = false;
  v1::DownloadBlobResponse out_;
};

// Whether `caller` may check or upload blobs: a node only while it runs an attempt (its
// outputs); PERMISSION_DENIED otherwise.
absl::Status CanCheckOrUpload(const Core& core, const Caller& caller) {
  if (caller.kind != Caller::Kind::kNode || core.RunsAnAttempt(caller.name)) {
    return absl::OkStatus();
  }
  Log(LogLevel::kWarning, "blob_call_refused", {{"node", caller.name}, {"reason", "no_attempt"}});
  return absl::PermissionDeniedError(absl::StrCat(
      "node '", caller.name,
      "' runs no attempt now; a node checks and uploads blobs (a job's outputs) only while "
      "it runs one"));
}

// Whether `caller` may download blob `digest` (see blob_service.h); PERMISSION_DENIED
// saying what to do otherwise.
absl::Status CanDownload(storage::Store& store, const Core& core, const Caller& caller,
                         const v1::DownloadBlobRequest& request) {
  if (caller.is_admin()) return absl::OkStatus();
  if (caller.kind == Caller::Kind::kNode) {
    // What the attempts it runs need (their snapshot, their image), by digest: the agent's
    // image cache fetches an image once for every attempt that needs it, so the request
    // need not name the job.
    if (!core.JobReadingBlob(caller.name, request.digest()).empty()) return absl::OkStatus();
    Log(LogLevel::kWarning, "blob_download_refused",
        {{"node", caller.name}, {"digest", absl::CHexEscape(request.digest().substr(0, 80))},
         {"job", absl::CHexEscape(request.job_id().substr(0, 80))}});
    return absl::PermissionDeniedError(absl::StrCat(
        "blob ", request.digest(), " is neither the code snapshot nor the image of an attempt",
        request.job_id().empty() ? "" : absl::StrCat(" (job '", request.job_id(), "')"),
        " that node '", caller.name,
        "' runs now; a node downloads only what the attempts placed on it need"));
  }
  absl::StatusOr<bool> uploaded = store.IsBlobUploader(request.digest(), caller.name);
  if (!uploaded.ok()) return uploaded.status();
  if (*uploaded) return absl::OkStatus();
  if (request.job_id().empty()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "blob ", request.digest(),
        " was not uploaded by you; name the job it belongs to (job_id) to download its "
        "snapshot or outputs"));
  }
  absl::StatusOr<v1::Job> job = store.GetJob(request.job_id());
  if (!job.ok()) return job.status();
  if (absl::Status allowed = CanReadJob(caller, *job); !allowed.ok()) return allowed;
  if (request.digest() != job->spec().source_snapshot() &&
      request.digest() != job->status().outputs_digest()) {
    return absl::PermissionDeniedError(absl::StrCat("blob ", request.digest(),
                                                    " is neither the snapshot nor the outputs "
                                                    "of job '", job->id(), "'"));
  }
  return absl::OkStatus();
}

// For a blob that is not there, asked for as job `request.job_id`'s snapshot or outputs: a
// NOT_FOUND saying when retention removed it, when the job says so; OK otherwise.
absl::Status RemovedByRetention(storage::Store& store, const v1::DownloadBlobRequest& request) {
  if (request.job_id().empty()) return absl::OkStatus();
  absl::StatusOr<v1::Job> job = store.GetJob(request.job_id());
  if (!job.ok()) return absl::OkStatus();
  const v1::JobStatus& status = job->status();
  bool outputs = request.digest() == status.outputs_digest();
  bool snapshot = request.digest() == job->spec().source_snapshot();
  const google::protobuf::Timestamp* removed =
      outputs && status.has_outputs_removed_time()     ? &status.outputs_removed_time()
      : snapshot && status.has_snapshot_removed_time() ? &status.snapshot_removed_time()
                                                       : nullptr;
  if (removed == nullptr) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat(
      "the ", outputs ? "outputs" : "code snapshot", " of job '", job->id(), "' were removed on ",
      google::protobuf::util::TimeUtil::ToString(*removed),
      " by droverd's retention of ended jobs' ",
      outputs ? "outputs (--outputs-retention" : "snapshots (--snapshot-retention",
      ", docs/operations.md#retention)"));
}

}  // namespace

grpc::ServerUnaryReactor* BlobServiceImpl::StatBlob(grpc::CallbackServerContext* context,
                                                    const v1::StatBlobRequest* request,
                                                    v1::StatBlobResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.BlobService/StatBlob");
  absl::Status allowed = caller.ok() ? CanCheckOrUpload(core_, *caller) : caller.status();
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  // A user learns only of blobs they hold (see blob_service.h); nodes and admins of any.
  if (caller->kind == Caller::Kind::kUser && !caller->is_admin()) {
    absl::StatusOr<bool> held = store_.IsBlobUploader(request->digest(), caller->name);
    if (!held.ok()) {
      reactor->Finish(ToGrpcStatus(held.status()));
      return reactor;
    }
    if (!*held) {
      response->set_present(false);
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
  }
  absl::StatusOr<int64_t> size = blobs_.Stat(request->digest());
  // Found: the caller is about to use it (submit with it, skip its upload), so retention
  // keeps it from now for its grace time.
  absl::Status used = size.ok() ? blobs_.Touch(request->digest()) : size.status();
  if (used.ok()) {
    response->set_present(true);
    response->set_size(*size);
    reactor->Finish(grpc::Status::OK);
  } else if (absl::IsNotFound(used)) {
    response->set_present(false);
    reactor->Finish(grpc::Status::OK);
  } else {
    reactor->Finish(ToGrpcStatus(used));
  }
  return reactor;
}

grpc::ServerReadReactor<v1::UploadBlobRequest>* BlobServiceImpl::UploadBlob(
    grpc::CallbackServerContext* context, v1::UploadBlobResponse* response) {
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.BlobService/UploadBlob");
  absl::Status allowed = caller.ok() ? CanCheckOrUpload(core_, *caller) : caller.status();
  if (!allowed.ok()) {
    return new RefusedReadReactor<v1::UploadBlobRequest>(ToGrpcStatus(allowed));
  }
  return new UploadReactor(blobs_, store_, core_, quota_, metrics_, *std::move(caller), response);
}

grpc::ServerWriteReactor<v1::DownloadBlobResponse>* BlobServiceImpl::DownloadBlob(
    grpc::CallbackServerContext* context, const v1::DownloadBlobRequest* request) {
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.BlobService/DownloadBlob");
  absl::Status allowed =
      caller.ok() ? CanDownload(store_, core_, *caller, *request) : caller.status();
  if (allowed.ok() && absl::IsNotFound(blobs_.Stat(request->digest()).status())) {
    allowed = RemovedByRetention(store_, *request);
  }
  if (!allowed.ok()) {
    return new RefusedWriteReactor<v1::DownloadBlobResponse>(ToGrpcStatus(allowed));
  }
  return new DownloadReactor(blobs_, *request);
}

}  // namespace drover::server
