#include "agent/images/image_cache.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/json.h"
#include "agent/runtime/process.h"
#include "common/archive/safe_extract.h"
#include "common/archive/sha256.h"
#include "common/log.h"
#include "common/status_macros.h"

extern "C" char** environ;

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

// The tag ImageCache gives the chosen image in its own copy of index.json (umoci finds
// images only by tag).
constexpr char kUnpackTag[] = "drover";
constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";
// Image archives hold whole OS trees and CUDA libraries: larger caps than code snapshots.
constexpr uint64_t kMaxArchiveBytes = uint64_t{512} << 30;
constexpr uint64_t kMaxLayerBytes = uint64_t{256} << 30;
// index.json, manifests and configs are small; a huge one is not an image.
constexpr uintmax_t kMaxMetadataBytes = 4 << 20;

absl::StatusOr<std::string> ReadMetadata(const std::string& path, absl::string_view what) {
  std::error_code error;
  uintmax_t size = fs::file_size(path, error);
  if (error || !fs::is_regular_file(fs::symlink_status(path, error))) {
    return absl::FailedPreconditionError(absl::StrCat(what, " is missing"));
  }
  if (size > kMaxMetadataBytes) {
    return absl::FailedPreconditionError(absl::StrCat(what, " is larger than 4 MiB"));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!in && !in.eof()) return absl::UnavailableError(absl::StrCat("cannot read ", what));
  return buffer.str();
}

absl::Status WriteFileSynced(const std::string& path, absl::string_view content) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      close(fd);
      return saved == ENOSPC
                 ? absl::ResourceExhaustedError(absl::StrCat("disk full writing ", path))
                 : absl::UnavailableError(
                       absl::StrCat("cannot write ", path, ": ", strerror(saved)));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

// Makes everything written under `dir` durable (one syncfs of its file system: the unpacked
// tree has thousands of files), so that a renamed cache entry is complete after a crash.
absl::Status SyncTree(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return absl::UnavailableError(absl::StrCat("cannot open ", dir, ": ", strerror(errno)));
  int result = syncfs(fd);
  int saved = errno;
  close(fd);
  if (result != 0)
    return absl::UnavailableError(absl::StrCat("syncfs ", dir, ": ", strerror(saved)));
  return absl::OkStatus();
}

void SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  fsync(fd);
  close(fd);
}

std::string BlobPath(const std::string& layout, absl::string_view digest) {
  return absl::StrCat(layout, "/blobs/sha256/", digest.substr(7));
}

// "registry/name:tag@sha256:..." without its tag and digest: the repository to pin a digest on.
std::string RepositoryOf(absl::string_view ref) {
  ref = ref.substr(0, ref.find('@'));
  size_t colon = ref.rfind(':');
  size_t slash = ref.rfind('/');
  if (colon != absl::string_view::npos && (slash == absl::string_view::npos || colon > slash)) {
    ref = ref.substr(0, colon);
  }
  return std::string(ref);
}

// Removes `path` (a partial unpack) and returns `status`.
absl::Status Discard(const std::string& path, absl::Status status) {
  std::error_code error;
  fs::remove_all(path, error);
  return status;
}

}  // namespace

absl::StatusOr<CommandRunner::Result> ProcessRunner::Run(const std::vector<std::string>& argv,
                                                         absl::Duration timeout) {
  if (argv.empty()) return absl::InvalidArgumentError("no program to run");
  absl::StatusOr<ProcessResult> ran = RunProcess(argv, timeout);
  if (!ran.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(ran.status().message(), "; install it on this node"));
  }
  if (ran->timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        argv[0], " did not finish within ", absl::FormatDuration(timeout), "; it was killed"));
  }
  Result result;
  result.exit_code = WIFEXITED(ran->status) ? WEXITSTATUS(ran->status) : -1;
  result.out = std::move(ran->out);
  result.err = std::move(ran->err);
  return result;
}

absl::StatusOr<ManifestChoice> ChooseManifest(absl::string_view index_json) {
  absl::StatusOr<Json> index = ParseJson(index_json);
  if (!index.ok() || !index->is_object()) {
    return absl::FailedPreconditionError(
        absl::StrCat("index.json is not a JSON object: ",
                     index.ok() ? "another value" : index.status().message()));
  }
  const Json* manifests = JsonFind(*index, "manifests");
  if (manifests == nullptr || !manifests->is_array() || JsonItems(*manifests).empty()) {
    return absl::FailedPreconditionError("index.json lists no image manifest");
  }
  const Json* chosen = nullptr;
  std::vector<std::string> tags;
  for (const Json& m : JsonItems(*manifests)) {
    const Json* annotations = JsonFind(m, "annotations");
    const Json* name =
        annotations != nullptr ? JsonFind(*annotations, kRefNameAnnotation) : nullptr;
    std::string tag = name != nullptr ? JsonString(*name) : "";
    tags.push_back(tag.empty() ? "(untagged)" : tag);
    if (tag == "latest") chosen = &m;
  }
  if (chosen == nullptr) {
    if (JsonItems(*manifests).size() > 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the archive holds ", JsonItems(*manifests).size(), " images (",
          absl::StrJoin(tags, ", "), ") and none is tagged 'latest'; export one image per archive, for example with "
          "skopeo copy oci:LAYOUT:TAG oci-archive:FILE"));
    }
    chosen = &JsonItems(*manifests)[0];
  }
  const Json* media_type = JsonFind(*chosen, "mediaType");
  std::string type = media_type != nullptr ? JsonString(*media_type) : "";
  if (type == "application/vnd.oci.image.index.v1+json" ||
      type == "application/vnd.docker.distribution.manifest.list.v2+json") {
    return absl::FailedPreconditionError(
        "the archive holds a multi-platform image index; copy a single platform into it, for "
        "example with skopeo copy --override-arch amd64 ... oci-archive:FILE");
  }
  const Json* digest = JsonFind(*chosen, "digest");
  if (digest == nullptr || !archive::IsValidDigest(JsonString(*digest))) {
    return absl::FailedPreconditionError(
        "index.json names a manifest without a valid sha256 digest");
  }
  ManifestChoice choice;
  const Json* annotations = JsonFind(*chosen, "annotations");
  const Json* name =
      annotations != nullptr ? JsonFind(*annotations, kRefNameAnnotation) : nullptr;
  if (name != nullptr) choice.tag = JsonString(*name);
  choice.manifest_digest = JsonString(*digest);
  // Our own copy lists only the chosen image, under a tag we control.
  Json descriptor = *chosen;
  Json own_annotations =
      annotations != nullptr && annotations->is_object() ? *annotations : Json::object();
  own_annotations[kRefNameAnnotation] = kUnpackTag;
  descriptor["annotations"] = std::move(own_annotations);
  Json rewritten = *index;
  rewritten["manifests"] = Json::array({std::move(descriptor)});
  choice.index_for_umoci = DumpJson(rewritten);
  return choice;
}

absl::StatusOr<std::string> ManifestConfigDigest(absl::string_view manifest_json) {
  absl::StatusOr<Json> manifest = ParseJson(manifest_json);
  const Json* config = manifest.ok() ? JsonFind(*manifest, "config") : nullptr;
  const Json* digest = config != nullptr ? JsonFind(*config, "digest") : nullptr;
  if (digest == nullptr || !archive::IsValidDigest(JsonString(*digest))) {
    return absl::FailedPreconditionError(
        "the image manifest names no config blob with a valid sha256 digest");
  }
  return JsonString(*digest);
}

absl::StatusOr<std::vector<std::string>> ImageConfigEnv(absl::string_view config_json) {
  absl::StatusOr<Json> config = ParseJson(config_json);
  if (!config.ok() || !config->is_object()) {
    return absl::FailedPreconditionError("the image config is not a JSON object");
  }
  std::vector<std::string> env;
  const Json* inner = JsonFind(*config, "config");
  const Json* list = inner != nullptr ? JsonFind(*inner, "Env") : nullptr;
  if (list == nullptr || list->is_null()) return env;
  if (!list->is_array())
    return absl::FailedPreconditionError("the image config's Env is not a list");
  for (const Json& item : JsonItems(*list)) {
    if (!item.is_string() || JsonString(item).find('=') == std::string::npos ||
        JsonString(item).front() == '=') {
      return absl::FailedPreconditionError(
          "the image config's Env has an entry that is not KEY=VALUE");
    }
    env.push_back(JsonString(item));
  }
  return env;
}

std::string ToolMessage(absl::string_view stderr_text) {
  constexpr size_t kMax = 1000;
  std::vector<absl::string_view> lines = absl::StrSplit(stderr_text, '\n', absl::SkipWhitespace());
  // skopeo (logrus): time="..." level=fatal msg="..."
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    size_t at = it->find("msg=\"");
    if (at == absl::string_view::npos) continue;
    std::string message;
    for (size_t i = at + 5; i < it->size(); ++i) {
      char c = (*it)[i];
      if (c == '\\' && i + 1 < it->size()) {
        message.push_back((*it)[++i]);
      } else if (c == '"') {
        break;
      } else {
        message.push_back(c);
      }
    }
    return message.substr(0, kMax);
  }
  // umoci: "   ⨯ tag is not found: latest" (decorations are non-ASCII bytes).
  std::vector<std::string> kept;
  for (absl::string_view line : lines) {
    while (!line.empty() && (absl::ascii_isspace(line.front()) ||
                             static_cast<unsigned char>(line.front()) >= 0x80)) {
      line.remove_prefix(1);
    }
    line = absl::StripTrailingAsciiWhitespace(line);
    if (!line.empty()) kept.emplace_back(line);
  }
  if (kept.size() > 3) kept.erase(kept.begin(), kept.end() - 3);
  return absl::StrJoin(kept, "; ").substr(0, kMax);
}

ImageCache::ImageCache(ImageCacheOptions options, Fetch fetch, CommandRunner& runner)
    : options_(std::move(options)), fetch_(std::move(fetch)), runner_(runner) {
  std::error_code error;
  fs::create_directories(options_.root, error);
  for (const auto& entry : fs::directory_iterator(options_.root, error)) {
    if (absl::StartsWith(entry.path().filename().string(), ".partial-")) {
      std::error_code ignored;
      fs::remove_all(entry.path(), ignored);
    }
  }
}

std::string ImageCache::PathOf(absl::string_view key) const {
  return absl::StrCat(options_.root, "/", key);
}

std::string ImageCache::KeyFor(absl::string_view base) const {
  if (options_.userns.size == 0) return std::string(base);
  return absl::StrCat(base, "-userns-", options_.userns.host_id, "-", options_.userns.size);
}

std::shared_ptr<absl::Mutex> ImageCache::KeyLock(const std::string& key) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<absl::Mutex>& m = key_locks_[key];
  if (m == nullptr) m = std::make_shared<absl::Mutex>();
  return m;
}

absl::StatusOr<std::string> ImageCache::NewPartialDir(const std::string& key) {
  uint64_t n;
  {
    absl::MutexLock lock(&mu_);
    n = next_partial_++;
  }
  std::string partial = absl::StrCat(options_.root, "/.partial-", key, "-", getpid(), "-", n);
  std::error_code error;
  fs::remove_all(partial, error);
  fs::create_directories(partial, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot create ", partial, ": ", error.message()));
  }
  return partial;
}

absl::StatusOr<UnpackedImage> ImageCache::Cached(const std::string& key) const {
  std::string dir = PathOf(key);
  std::error_code error;
  if (!fs::is_directory(dir + "/rootfs", error)) return absl::NotFoundError("not cached");
  absl::StatusOr<std::string> text = ReadMetadata(dir + "/image.json", "image.json");
  if (!text.ok()) return absl::NotFoundError("not cached");
  absl::StatusOr<Json> meta = ParseJson(*text);
  if (!meta.ok()) return absl::NotFoundError("not cached");
  UnpackedImage image;
  image.rootfs = dir + "/rootfs";
  image.key = key;
  if (const Json* env = JsonFind(*meta, "env"); env != nullptr) {
    for (const Json& item : JsonItems(*env)) image.env.push_back(JsonString(item));
  }
  return image;
}

absl::StatusOr<UnpackedImage> ImageCache::Get(const std::string& reference,
                                              const std::string& digest, const Progress& progress) {
  if (absl::StartsWith(reference, "docker://")) return GetDocker(reference, progress);
  if (digest.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "image '", reference,
        "' is not registered with droverd any more (deleted after the job was submitted?); "
        "import it again with drover image import"));
  }
  return GetImported(reference, digest, progress);
}

namespace {

// Holds a key lock; says so when another attempt holds it (it is unpacking that image).
class KeyGuard {
 public:
  KeyGuard(std::shared_ptr<absl::Mutex> m, const ImageCache::Progress& progress)
      : m_(std::move(m)) {
    if (!m_->TryLock()) {
      if (progress) progress("UNPACKING_IMAGE");
      m_->Lock();
    }
  }
  ~KeyGuard() { m_->Unlock(); }
  KeyGuard(const KeyGuard&) = delete;
  KeyGuard& operator=(const KeyGuard&) = delete;

 private:
  std::shared_ptr<absl::Mutex> m_;
};

}  // namespace

absl::StatusOr<UnpackedImage> ImageCache::GetImported(const std::string& reference,
                                                      const std::string& digest,
                                                      const Progress& progress) {
  if (!archive::IsValidDigest(digest)) {
    return absl::InvalidArgumentError(
        absl::StrCat("image '", reference, "': droverd sent the malformed digest '", digest, "'"));
  }
  const std::string key = KeyFor(digest.substr(7));
  if (absl::StatusOr<UnpackedImage> cached = Cached(key); cached.ok()) return cached;
  KeyGuard guard(KeyLock(key), progress);
  if (absl::StatusOr<UnpackedImage> cached = Cached(key); cached.ok()) return cached;

  DROVER_ASSIGN_OR_RETURN(std::string partial, NewPartialDir(key));
  absl::Time started = absl::Now();
  if (progress) progress("PULLING_IMAGE");
  std::string archive = partial + "/archive.tar";
  if (absl::Status s = fetch_(digest, archive); !s.ok()) {
    return Discard(
        partial,
        absl::Status(s.code(), absl::StrCat("image '", reference, "': downloading its archive ",
                                            digest, " from droverd: ", s.message())));
  }
  if (progress) progress("UNPACKING_IMAGE");
  absl::StatusOr<archive::ExtractResult> extracted =
      archive::ExtractTar(archive, partial + "/layout",
                          {.max_total_bytes = kMaxArchiveBytes,
                           .max_file_bytes = kMaxLayerBytes,
                           .expected_digest = digest});
  std::error_code error;
  fs::remove(archive, error);
  if (!extracted.ok()) {
    return Discard(partial, absl::Status(extracted.status().code(),
                                         absl::StrCat("image '", reference, "': archive ", digest,
                                                      " refused: ", extracted.status().message())));
  }
  Log(LogLevel::kInfo, "image_downloaded",
      {{"image", reference},
       {"digest", digest},
       {"bytes", extracted->total_bytes},
       {"seconds", absl::ToDoubleSeconds(absl::Now() - started)}});
  return UnpackLayout(key, partial, reference, digest);
}

absl::StatusOr<UnpackedImage> ImageCache::GetDocker(const std::string& reference,
                                                    const Progress& progress) {
  absl::string_view ref = reference;
  absl::ConsumePrefix(&ref, "docker://");
  if (ref.empty()) return absl::InvalidArgumentError("image 'docker://' names no image");
  auto skopeo_failed = [&](absl::string_view what, const absl::StatusOr<CommandRunner::Result>& r) {
    std::string why = r.ok() ? ToolMessage(r->err) : std::string(r.status().message());
    if (why.empty() && r.ok()) why = absl::StrCat("exit code ", r->exit_code);
    return absl::FailedPreconditionError(absl::StrCat(
        "image '", reference, "': ", what, " failed: ", why,
        "; the node must reach the registry (or import the image with drover image import)"));
  };
  std::string digest;
  bool pulling_said = false;
  if (size_t at = ref.find('@'); at != absl::string_view::npos) {
    digest = std::string(ref.substr(at + 1));
  } else {
    // A tag may move: resolve it now, and cache by what it names today.
    if (progress) progress("PULLING_IMAGE");
    pulling_said = true;
    absl::StatusOr<CommandRunner::Result> inspected =
        runner_.Run({options_.skopeo, "inspect", "--no-tags", "--format", "{{.Digest}}",
                     absl::StrCat("docker://", ref)},
                    options_.inspect_timeout);
    if (!inspected.ok() || inspected->exit_code != 0) {
      return skopeo_failed("skopeo inspect", inspected);
    }
    digest = std::string(absl::StripAsciiWhitespace(inspected->out));
  }
  if (!archive::IsValidDigest(digest)) {
    return absl::FailedPreconditionError(
        absl::StrCat("image '", reference, "': the registry gave the unusable digest '", digest,
                     "'; pin one with docker://NAME@sha256:<64 hex digits>"));
  }
  const std::string key = KeyFor(
      absl::StrCat("docker-", archive::Sha256Digest(absl::StrCat(ref, "\n", digest)).substr(7)));
  if (absl::StatusOr<UnpackedImage> cached = Cached(key); cached.ok()) return cached;
  KeyGuard guard(KeyLock(key), progress);
  if (absl::StatusOr<UnpackedImage> cached = Cached(key); cached.ok()) return cached;

  DROVER_ASSIGN_OR_RETURN(std::string partial, NewPartialDir(key));
  if (progress && !pulling_said) progress("PULLING_IMAGE");
  absl::Time started = absl::Now();
  std::error_code error;
  fs::create_directories(partial + "/tmp", error);
  // Pinned to the digest, so that what is cached is what the key says.
  absl::StatusOr<CommandRunner::Result> copied =
      runner_.Run({options_.skopeo, "--tmpdir", partial + "/tmp", "copy",
                   absl::StrCat("docker://", RepositoryOf(ref), "@", digest),
                   absl::StrCat("oci:", partial, "/layout:", kUnpackTag)},
                  options_.pull_timeout);
  if (!copied.ok() || copied->exit_code != 0) {
    return Discard(partial, skopeo_failed("skopeo copy", copied));
  }
  fs::remove_all(partial + "/tmp", error);
  Log(LogLevel::kInfo, "image_pulled",
      {{"image", reference},
       {"digest", digest},
       {"seconds", absl::ToDoubleSeconds(absl::Now() - started)}});
  if (progress) progress("UNPACKING_IMAGE");
  return UnpackLayout(key, partial, reference, digest);
}

absl::StatusOr<UnpackedImage> ImageCache::UnpackLayout(const std::string& key,
                                                       const std::string& partial,
                                                       const std::string& reference,
                                                       const std::string& digest) {
  const std::string layout = partial + "/layout";
  auto fail = [&](absl::StatusCode code, absl::string_view why) {
    return Discard(partial, absl::Status(code, absl::StrCat("image '", reference, "': ", why)));
  };
  std::error_code error;
  if (!fs::is_regular_file(fs::symlink_status(layout + "/oci-layout", error))) {
    return fail(absl::StatusCode::kFailedPrecondition,
                "the archive is not an OCI image layout (no oci-layout file); make it with "
                "skopeo copy ... oci-archive:FILE, or tar an umoci layout folder");
  }
  absl::StatusOr<std::string> index_text = ReadMetadata(layout + "/index.json", "index.json");
  if (!index_text.ok()) return fail(index_text.status().code(), index_text.status().message());
  absl::StatusOr<ManifestChoice> choice = ChooseManifest(*index_text);
  if (!choice.ok()) return fail(choice.status().code(), choice.status().message());
  absl::StatusOr<std::string> manifest =
      ReadMetadata(BlobPath(layout, choice->manifest_digest), "the image manifest blob");
  if (!manifest.ok()) return fail(manifest.status().code(), manifest.status().message());
  absl::StatusOr<std::string> config_digest = ManifestConfigDigest(*manifest);
  if (!config_digest.ok())
    return fail(config_digest.status().code(), config_digest.status().message());
  absl::StatusOr<std::string> config =
      ReadMetadata(BlobPath(layout, *config_digest), "the image config blob");
  if (!config.ok()) return fail(config.status().code(), config.status().message());
  absl::StatusOr<std::vector<std::string>> env = ImageConfigEnv(*config);
  if (!env.ok()) return fail(env.status().code(), env.status().message());
  if (absl::Status s = WriteFileSynced(layout + "/index.json", choice->index_for_umoci); !s.ok()) {
    return fail(s.code(), s.message());
  }

  absl::Time started = absl::Now();
  std::vector<std::string> argv = {options_.umoci, "raw", "unpack"};
  if (options_.userns.size > 0) {
    // umoci maps "container:host:size"; an owner outside the range fails the unpack.
    const std::string map =
        absl::StrCat("0:", options_.userns.host_id, ":", options_.userns.size);
    argv.insert(argv.end(), {"--uid-map", map, "--gid-map", map});
  }
  argv.insert(argv.end(),
              {"--image", absl::StrCat(layout, ":", kUnpackTag), partial + "/rootfs"});
  absl::StatusOr<CommandRunner::Result> unpacked = runner_.Run(argv, options_.unpack_timeout);
  if (!unpacked.ok()) return fail(unpacked.status().code(), unpacked.status().message());
  if (unpacked->exit_code != 0) {
    std::string why = ToolMessage(unpacked->err);
    return fail(absl::StatusCode::kFailedPrecondition,
                absl::StrCat("umoci raw unpack failed: ",
                             why.empty() ? absl::StrCat("exit code ", unpacked->exit_code) : why));
  }
  fs::remove_all(layout, error);

  Json meta = Json::object();
  meta["reference"] = reference;
  meta["digest"] = digest;
  meta["tag"] = choice->tag;
  meta["manifest"] = choice->manifest_digest;
  meta["env"] = Json(*env);
  if (absl::Status s = WriteFileSynced(partial + "/image.json", DumpJson(meta, 2)); !s.ok()) {
    return fail(s.code(), s.message());
  }
  if (absl::Status s = SyncTree(partial); !s.ok()) return fail(s.code(), s.message());
  const std::string final_dir = PathOf(key);
  if (rename(partial.c_str(), final_dir.c_str()) != 0) {
    int saved = errno;
    // Another agent process on this work folder finished first: use its copy.
    if (absl::StatusOr<UnpackedImage> cached = Cached(key); cached.ok()) {
      Discard(partial, absl::OkStatus()).IgnoreError();
      return cached;
    }
    return fail(absl::StatusCode::kUnavailable, absl::StrCat("cannot move the unpacked image to ",
                                                             final_dir, ": ", strerror(saved)));
  }
  SyncDir(options_.root);
  Log(LogLevel::kInfo, "image_unpacked",
      {{"image", reference},
       {"digest", digest},
       {"key", key},
       {"seconds", absl::ToDoubleSeconds(absl::Now() - started)}});
  return UnpackedImage{.rootfs = final_dir + "/rootfs", .env = *std::move(env), .key = key};
}

}  // namespace drover::agent
