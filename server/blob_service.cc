#include "server/blob_service.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "server/grpc_status.h"

namespace drover::server {
namespace {

constexpr int64_t kChunkBytes = 1 << 20;

class UploadReactor final : public grpc::ServerReadReactor<v1::UploadBlobRequest> {
 public:
  UploadReactor(storage::BlobStore& blobs, storage::Store& store, Caller caller,
                v1::UploadBlobResponse* response)
      : blobs_(blobs), store_(store), caller_(std::move(caller)), response_(response) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client finished sending
      if (upload_ == nullptr) {
        Finish(ToGrpcStatus(absl::InvalidArgumentError(
            "header: required; the first message of an upload names the digest and size")));
        return;
      }
      absl::StatusOr<bool> created = upload_->Commit();
      if (created.ok()) {
        response_->set_digest(digest_);
        response_->set_size(size_);
        response_->set_created(*created);
        Log(LogLevel::kInfo, "blob_uploaded",
            {{"digest", digest_}, {"bytes", size_}, {"created", *created}, {"by", caller_.name}});
      }
      if (!created.ok() || caller_.kind == Caller::Kind::kNode) {
        Finish(ToGrpcStatus(created.status()));
        return;
      }
      // The uploader may download it again (a snapshot they submit with).
      store_.AddBlobUploader(digest_, caller_.name,
                             [this](absl::Status status) { Finish(ToGrpcStatus(status)); });
      return;
    }
    absl::Status status;
    if (upload_ == nullptr) {
      if (!in_.has_header()) {
        status = absl::InvalidArgumentError(
            "header: required; the first message of an upload names the digest and size");
      } else {
        digest_ = in_.header().digest();
        size_ = in_.header().size();
        absl::StatusOr<std::unique_ptr<storage::BlobStore::Upload>> upload =
            blobs_.StartUpload(digest_, size_);
        if (upload.ok()) {
          upload_ = *std::move(upload);
        } else {
          status = upload.status();
        }
      }
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
      Finish(ToGrpcStatus(status));
      return;
    }
    StartRead(&in_);
  }

  void OnDone() override { delete this; }

 private:
  storage::BlobStore& blobs_;
  storage::Store& store_;
  const Caller caller_;
  v1::UploadBlobResponse* response_;
  v1::UploadBlobRequest in_;
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
  absl::StatusOr<int64_t> size = blobs_.Stat(request->digest());
  if (size.ok()) {
    response->set_present(true);
    response->set_size(*size);
    reactor->Finish(grpc::Status::OK);
  } else if (absl::IsNotFound(size.status())) {
    response->set_present(false);
    reactor->Finish(grpc::Status::OK);
  } else {
    reactor->Finish(ToGrpcStatus(size.status()));
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
  return new UploadReactor(blobs_, store_, *std::move(caller), response);
}

grpc::ServerWriteReactor<v1::DownloadBlobResponse>* BlobServiceImpl::DownloadBlob(
    grpc::CallbackServerContext* context, const v1::DownloadBlobRequest* request) {
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.BlobService/DownloadBlob");
  absl::Status allowed =
      caller.ok() ? CanDownload(store_, core_, *caller, *request) : caller.status();
  if (!allowed.ok()) {
    return new RefusedWriteReactor<v1::DownloadBlobResponse>(ToGrpcStatus(allowed));
  }
  return new DownloadReactor(blobs_, *request);
}

}  // namespace drover::server
