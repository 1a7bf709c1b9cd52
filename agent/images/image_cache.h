// ImageCache: the node's cache of unpacked OCI images, the lower layer of every image job's
// container overlay (RuncRuntime gives each container its own copy-on-write layer on top).
// Owned by the Agent and shared by its attempts; each attempt's thread calls Get(), which
// blocks while an image is fetched and unpacked. Thread-safe: concurrent calls for the same
// image wait for one another (one lock per cache key), so an image is unpacked once however
// many attempts need it at the same time; calls for different images run in parallel.
//
// Two sources:
//   - an image imported into droverd (`drover image import`): an `oci-archive` tar (an OCI
//     image layout: `oci-layout`, `index.json`, `blobs/sha256/...`) in droverd's blob
//     store. droverd puts its digest in the assignment; the cache downloads it (`fetch`),
//     extracts it safely (archive::ExtractTar, checking the digest), picks the image in
//     `index.json` and runs `umoci raw unpack`. Cache key: the archive's digest.
//   - "docker://REF": pulled by the node itself with skopeo (the node must reach the
//     registry): `skopeo inspect` gives the manifest digest (skipped when REF pins one with
//     "@sha256:"), then `skopeo copy docker://REF oci:<layout>:drover` and `umoci raw
//     unpack`. Cache key: REF together with that digest, so a moved tag is pulled again.
//
// On disk, under `root` (`<agent work dir>/images`):
//   <key>/rootfs        the unpacked root filesystem, never written after the unpack; with a
//                       user namespace its ids are shifted into the range and <key> ends
//                       in "-userns-HOSTID-SIZE"
//   <key>/image.json    what was unpacked: reference, digest, tag, the image config's Env
//   .partial-<key>-N/   work in progress (archive, layout, rootfs); renamed to <key> only
//                       once complete and synced, removed when the cache is constructed
// A <key> folder therefore always holds a complete image. Nothing is evicted yet.
#ifndef DROVER_AGENT_IMAGES_IMAGE_CACHE_H_
#define DROVER_AGENT_IMAGES_IMAGE_CACHE_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/runtime/container_runtime.h"

namespace drover::agent {

// Runs a helper program (umoci, skopeo) to completion. The seam that unit tests replace.
class CommandRunner {
 public:
  struct Result {
    int exit_code = -1;  // -1 when a signal ended it or it timed out
    std::string out;
    std::string err;
  };
  virtual ~CommandRunner() = default;
  // Runs `argv` (argv[0] looked up in PATH) with stdin from /dev/null and its output
  // captured. FAILED_PRECONDITION when it cannot be started, DEADLINE_EXCEEDED (after
  // killing it) when it runs longer than `timeout`; a non-zero exit is a Result, not an
  // error.
  virtual absl::StatusOr<Result> Run(const std::vector<std::string>& argv,
                                     absl::Duration timeout) = 0;
};

// CommandRunner with real processes (posix_spawnp). It waits for its own child's pid only,
// never waitpid(-1): the agent is a child subreaper whose containers are its children too.
class ProcessRunner final : public CommandRunner {
 public:
  absl::StatusOr<Result> Run(const std::vector<std::string>& argv, absl::Duration timeout) override;
};

// What the cache gives an attempt.
struct UnpackedImage {
  std::string rootfs;            // absolute path of the unpacked root filesystem
  std::vector<std::string> env;  // the image config's Env ("KEY=VALUE"), in its order
  // Its cache key, which names its contents (the archive's digest, or the docker:// ref with
  // its manifest digest): what environments built on it are keyed by.
  std::string key;
};

struct ImageCacheOptions {
  // The cache folder, `<agent work dir>/images`; created when missing. Its path must not
  // contain ',' or ':' (overlay mount options).
  std::string root;
  std::string umoci = "umoci";
  std::string skopeo = "skopeo";
  // Limits for one image: downloading or pulling it, and unpacking it.
  absl::Duration pull_timeout = absl::Minutes(60);
  absl::Duration unpack_timeout = absl::Minutes(60);
  // How long `skopeo inspect` may take to resolve a docker:// tag.
  absl::Duration inspect_timeout = absl::Minutes(2);
  // The containers' user namespace (--userns-range). With one, ids 0..size-1 in the image
  // are unpacked as host ids host_id..host_id+size-1, so that the container's root owns
  // what the image's root owns (its /root, /tmp, /etc ...) and may write it in its own
  // layer. Part of the cache key: an image unpacked for one range is never used with another.
  IdRange userns;
};

class ImageCache {
 public:
  // Downloads blob `digest` ("sha256:...") from droverd into the file `path` (created or
  // truncated). Errors as the blob service gives them (NOT_FOUND, UNAVAILABLE, ...).
  using Fetch = std::function<absl::Status(const std::string& digest, const std::string& path)>;
  // Told what the cache is doing: "PULLING_IMAGE", "UNPACKING_IMAGE" (only when it does
  // that work, or waits for another attempt doing it).
  using Progress = std::function<void(absl::string_view reason)>;

  // Removes leftovers of unpacks an earlier agent process did not finish.
  ImageCache(ImageCacheOptions options, Fetch fetch, CommandRunner& runner);

  // The unpacked image for a job's `environment.image` (`reference`, never "host") and, for
  // an imported image, the archive `digest` droverd assigned. Blocks until it is on disk.
  // Errors, each naming the image and saying what to do:
  //   FAILED_PRECONDITION  an imported image without a digest (no longer registered), an
  //                        archive that is not an OCI image layout or holds several images
  //                        with none tagged "latest", umoci or skopeo failing (their message
  //                        included) or missing;
  //   DATA_LOSS            the downloaded archive does not match its digest;
  //   INVALID_ARGUMENT     a hostile archive (an entry leaving the folder, a device file);
  //   UNAVAILABLE, NOT_FOUND, ... from `fetch`; RESOURCE_EXHAUSTED when the disk is full.
  absl::StatusOr<UnpackedImage> Get(const std::string& reference, const std::string& digest,
                                    const Progress& progress);

  // Where the image with cache key `key` lives: `<root>/<key>`.
  std::string PathOf(absl::string_view key) const;

 private:
  // The lock of one cache key, created on first use.
  std::shared_ptr<absl::Mutex> KeyLock(const std::string& key);
  // With the key's lock held: the cached image if complete, else NOT_FOUND.
  absl::StatusOr<UnpackedImage> Cached(const std::string& key) const;
  absl::StatusOr<UnpackedImage> GetImported(const std::string& reference, const std::string& digest,
                                            const Progress& progress);
  absl::StatusOr<UnpackedImage> GetDocker(const std::string& reference, const Progress& progress);
  // Unpacks the OCI layout in `partial`/layout into `partial`/rootfs, writes image.json and
  // moves `partial` to `<root>/<key>`. Removes `partial` on failure.
  absl::StatusOr<UnpackedImage> UnpackLayout(const std::string& key, const std::string& partial,
                                             const std::string& reference,
                                             const std::string& digest);
  absl::StatusOr<std::string> NewPartialDir(const std::string& key);
  // The cache key of an image whose contents `base` names, for this cache's id mapping.
  std::string KeyFor(absl::string_view base) const;

  const ImageCacheOptions options_;
  const Fetch fetch_;
  CommandRunner& runner_;

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<absl::Mutex>> key_locks_ ABSL_GUARDED_BY(mu_);
  uint64_t next_partial_ ABSL_GUARDED_BY(mu_) = 0;
};

// The image a layout's `index.json` offers, as ImageCache picks it: the only manifest, else
// the one tagged "latest". Pure; exposed for tests.
struct ManifestChoice {
  std::string tag;              // its `org.opencontainers.image.ref.name`; empty: untagged
  std::string manifest_digest;  // "sha256:..." of the image manifest
  // index.json for umoci, which finds images only by tag: the chosen manifest alone,
  // tagged "drover" (skopeo's oci-archive may carry no tag at all).
  std::string index_for_umoci;
};
// FAILED_PRECONDITION for malformed JSON, no manifest, an image index (multi-platform)
// instead of an image manifest, or several images with none tagged "latest".
absl::StatusOr<ManifestChoice> ChooseManifest(absl::string_view index_json);

// The config blob digest named by an image manifest. FAILED_PRECONDITION when malformed.
absl::StatusOr<std::string> ManifestConfigDigest(absl::string_view manifest_json);
// The `config.Env` list of an OCI image config (empty when it has none).
// FAILED_PRECONDITION when malformed.
absl::StatusOr<std::vector<std::string>> ImageConfigEnv(absl::string_view config_json);

// The useful part of a helper's stderr: logrus-style `msg="..."` of skopeo's fatal line
// unescaped, else umoci's lines without their decoration, else the last non-empty lines;
// at most about 1000 characters.
std::string ToolMessage(absl::string_view stderr_text);

}  // namespace drover::agent

#endif  // DROVER_AGENT_IMAGES_IMAGE_CACHE_H_
