#include "storage/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/errno_status.h"

namespace drover::storage {
namespace {

absl::Status CheckDigest(absl::string_view digest) {
  if (archive::IsValidDigest(digest)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "digest: '", digest, "' is not a digest; write sha256: followed by 64 lowercase hex digits"));
}

void SyncDirectory(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    ::close(fd);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<BlobStore>> BlobStore::Open(std::string root,
                                                           int64_t max_blob_bytes,
                                                           WriteErrorObserver on_write_error,
                                                           const Clock& clock) {
  std::error_code error;
  std::filesystem::create_directories(root + "/sha256", error);
  std::filesystem::create_directories(root + "/tmp", error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot create blob folder '", root, "': ", error.message()));
  }
  // Uploads that a crash interrupted.
  for (const auto& entry : std::filesystem::directory_iterator(root + "/tmp", error)) {
    std::filesystem::remove(entry.path(), error);
  }
  return std::unique_ptr<BlobStore>(
      new BlobStore(std::move(root), max_blob_bytes, std::move(on_write_error), clock));
}

int BlobStore::MarkUsed(const std::string& path) const {
  timespec now = absl::ToTimespec(clock_.Now());
  timespec times[2] = {now, now};
  return ::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW);
}

std::string BlobStore::PathOf(absl::string_view digest) const {
  absl::string_view hex = digest.substr(digest.find(':') + 1);
  return absl::StrCat(root_, "/sha256/", hex);
}

absl::StatusOr<int64_t> BlobStore::Stat(absl::string_view digest) const {
  if (absl::Status s = CheckDigest(digest); !s.ok()) return s;
  // A link or a FIFO planted where a blob belongs (the folder may be shared storage) is no
  // blob: never followed.
  struct stat st {};
  if (::lstat(PathOf(digest).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::NotFoundError(absl::StrCat("blob ", digest, " is not on droverd"));
  }
  return static_cast<int64_t>(st.st_size);
}

absl::StatusOr<std::unique_ptr<BlobStore::Upload>> BlobStore::StartUpload(absl::string_view digest,
                                                                          int64_t size) const {
  if (absl::Status s = CheckDigest(digest); !s.ok()) return s;
  if (size < 0 || size > max_blob_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("size: ", size, " bytes is out of range; droverd takes blobs of up to ",
                                                   max_blob_bytes_, " bytes"));
  }
  std::random_device random;
  std::string temp = absl::StrCat(root_, "/tmp/upload-", random(), random());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0) return health_.Failed(ErrnoStatus(errno, "creating an upload file"));
  return std::unique_ptr<Upload>(new Upload(*this, std::string(digest), size, temp, fd));
}

BlobStore::Upload::~Upload() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

absl::Status BlobStore::Upload::Append(absl::string_view data) {
  if (written_ + static_cast<int64_t>(data.size()) > size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("upload of ", digest_, ": more bytes than the announced size ", size_));
  }
  const char* p = data.data();
  size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return store_.health_.Failed(ErrnoStatus(errno, "writing an upload"));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  hash_.Update(data);
  written_ += static_cast<int64_t>(data.size());
  return absl::OkStatus();
}

absl::StatusOr<bool> BlobStore::Upload::Commit() {
  if (written_ != size_) {
    return absl::InvalidArgumentError(absl::StrCat("upload of ", digest_, ": got ", written_,
                                                   " bytes of the announced ", size_));
  }
  std::string actual = hash_.Finish();
  if (actual != digest_) {
    return absl::InvalidArgumentError(absl::StrCat("upload: the bytes hash to ", actual,
                                                   ", not to the announced ", digest_,
                                                   "; the data was damaged on the way"));
  }
  if (fsync(fd_) != 0) return store_.health_.Failed(ErrnoStatus(errno, "syncing an upload"));
  ::close(fd_);
  fd_ = -1;
  std::string final_path = store_.PathOf(digest_);
  absl::MutexLock lock(&store_.use_mu_);
  struct stat st {};
  if (::lstat(final_path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {  // uploaded meanwhile
    (void)store_.MarkUsed(final_path);
    return false;
  }
  if (::rename(temp_path_.c_str(), final_path.c_str()) != 0) {
    return store_.health_.Failed(ErrnoStatus(errno, "storing an upload"));
  }
  // The file's time is that of its last write; the blob counts as used from its commit.
  (void)store_.MarkUsed(final_path);
  committed_ = true;
  store_.health_.Succeeded();
  SyncDirectory(store_.root_ + "/sha256");
  return true;
}

absl::StatusOr<std::string> BlobStore::Read(absl::string_view digest, int64_t offset,
                                            int64_t max_bytes) const {
  if (absl::Status s = CheckDigest(digest); !s.ok()) return s;
  // Nothing followed, never waiting on a FIFO, a regular file only (see Stat).
  int fd = ::open(PathOf(digest).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  struct stat st {};
  if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
    ::close(fd);
    fd = -1;
  }
  if (fd < 0) return absl::NotFoundError(absl::StrCat("blob ", digest, " is not on droverd"));
  std::string out(static_cast<size_t>(max_bytes), '\0');
  ssize_t n = ::pread(fd, out.data(), out.size(), offset);
  int error = errno;
  ::close(fd);
  if (n < 0) return ErrnoStatus(error, absl::StrCat("reading blob ", digest));
  out.resize(static_cast<size_t>(n));
  return out;
}

absl::Status BlobStore::Touch(absl::string_view digest) const {
  if (absl::Status s = CheckDigest(digest); !s.ok()) return s;
  absl::MutexLock lock(&use_mu_);
  if (MarkUsed(PathOf(digest)) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("blob ", digest, " is not on droverd"));
    return ErrnoStatus(errno, absl::StrCat("marking blob ", digest, " used"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<BlobInfo>> BlobStore::List() const {
  std::string dir = root_ + "/sha256";
  std::error_code error;
  std::vector<BlobInfo> blobs;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    std::string digest = absl::StrCat("sha256:", entry.path().filename().string());
    if (!archive::IsValidDigest(digest)) continue;
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    blobs.push_back(BlobInfo{
        .digest = std::move(digest),
        .size = static_cast<int64_t>(st.st_size),
        .used = absl::TimeFromTimespec(st.st_mtim),
    });
  }
  if (error) {
    return ErrnoStatus(error.value(), absl::StrCat("listing blob folder '", dir, "'"));
  }
  return blobs;
}

absl::StatusOr<bool> BlobStore::RemoveIfUnusedSince(absl::string_view digest,
                                                    absl::Time unused_since) const {
  if (absl::Status s = CheckDigest(digest); !s.ok()) return s;
  std::string path = PathOf(digest);
  absl::MutexLock lock(&use_mu_);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (absl::TimeFromTimespec(st.st_mtim) >= unused_since) return false;
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return false;
    return ErrnoStatus(errno, absl::StrCat("removing blob ", digest));
  }
  return true;
}

}  // namespace drover::storage
