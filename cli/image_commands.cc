#include "cli/image_commands.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/format.h"
#include "cli/invocation.h"
#include "common/archive/snapshot.h"
#include "common/archive/tar_reader.h"
#include "scheduler/admin_checks.h"

namespace drover::cli {
namespace {

// BlobService takes at most 1 MiB per upload message.

constexpr absl::string_view kMakeOne =
    "make one with 'skopeo copy docker://IMAGE oci-archive:FILE' or 'tar -C LAYOUT -cf FILE .' "
    "(see docs/images.md)";

// "sha256:3d9f2889d678" for tables.
std::string ShortDigest(absl::string_view digest) {
  return std::string(digest.substr(0, std::min<size_t>(digest.size(), 19)));
}

int ImportAction(Invocation& inv, const std::vector<std::string>& args) {
  bool replace = false;
  FlagSet flags("drover image import [flags] NAME FILE",
                "Imports an OCI image: uploads FILE, an oci-archive (an uncompressed tar of an\n"
                "OCI image layout), into droverd unless it has it already, and registers NAME\n"
                "for it. Jobs then run in it with 'drover submit --image NAME'. A NAME bound to\n"
                "another archive is refused (exit code 5) unless --replace is given; attempts\n"
                "placed from then on use the new one. Prints NAME, IMPORTED (or REPLACED,\n"
                "UNCHANGED), the archive's digest and size.");
  flags.Bool("replace", &replace, "Rebind NAME if it names another archive");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done =
          inv.Parse(flags, args, &positional, /*interspersed=*/true,
                    "  skopeo copy docker://pytorch/pytorch:2.1.0-cuda12.1-cudnn8-runtime \\\n"
                    "      oci-archive:pytorch.tar\n"
                    "  drover image import pytorch:2.1 pytorch.tar\n"
                    "  drover submit --image pytorch:2.1 --source . train.py\n"
                    "  drover image import team/train:1.0 train.tar --replace\n")) {
    return *done;
  }
  if (positional.size() != 2 || positional[0].empty() || positional[1].empty()) {
    return inv.Fail(kExitUsage, absl::StrCat(positional.size() > 2 ? "too many arguments"
                                                                   : "missing NAME or FILE",
                                             "; usage: drover image import NAME FILE"));
  }
  const std::string& name = positional[0];
  const std::string& path = positional[1];
  if (absl::Status s = CheckImageName(name); !s.ok()) return inv.Usage(s);
  absl::StatusOr<OciArchive> archive = CheckOciArchive(path);
  if (!archive.ok()) {
    return inv.Fail(absl::IsInternal(archive.status()) ? kExitInternal : kExitUsage,
                    archive.status().message());
  }

  inv.WillStream();
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  // PutImage creates or replaces; look first, so that a typo does not silently change the
  // image that queued jobs of that name will run in.
  absl::StatusOr<v1::ListImagesResponse> list =
      inv.WithRetry([&] { return client->ListImages(v1::ListImagesRequest()); });
  if (!list.ok()) return inv.ServerError(list.status());
  std::string verb = "IMPORTED";
  for (const v1::Image& existing : list->images()) {
    if (existing.name() != name) continue;
    if (existing.digest() == archive->digest) {
      verb = "UNCHANGED";
    } else if (!replace) {
      return inv.Fail(
          kExitConflict,
          absl::StrCat("image '", name, "' already names archive ", ShortDigest(existing.digest()),
                       "... (", archive::FormatBytes(static_cast<uint64_t>(existing.size())),
                       "); pass --replace to rebind it to ", path));
    } else {
      verb = "REPLACED";
    }
  }
  if (auto done = inv.UploadBlobFile(*client, "image archive", path, archive->digest,
                                     archive->size)) {
    return *done;
  }
  v1::PutImageRequest request;
  request.mutable_image()->set_name(name);
  request.mutable_image()->set_digest(archive->digest);
  // Binding a name is idempotent: a repeat after UNAVAILABLE changes nothing more.
  absl::StatusOr<v1::Image> stored = inv.WithRetry([&] { return client->PutImage(request); });
  if (!stored.ok()) return inv.ServerError(stored.status());
  inv.Print([&] { return MessageToJson(*stored, /*pretty=*/true); },
            [&] {
              return absl::StrCat(stored->name(), " ", verb, " ", stored->digest(), " (",
                                  archive::FormatBytes(static_cast<uint64_t>(stored->size())),
                                  ")\n");
            });
  return kExitOk;
}

int ListAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover image list [flags]",
                "Lists the images imported into droverd: NAME (what jobs write as --image),\n"
                "DIGEST (of the archive), SIZE and IMPORTED (age). With --output json: a JSON\n"
                "array of images.");
  return inv.RunRead(
      flags, args, "image list",
      "  drover image list\n"
      "  drover image list --output json | jq -r '.[].name'\n",
      [](DroverClient& client) { return client.ListImages(v1::ListImagesRequest()); },
      [&](const v1::ListImagesResponse& list) {
        std::vector<v1::Image> images(list.images().begin(), list.images().end());
        inv.PrintList(images, [&] { return FormatImageTable(images, inv.ctx().now()); });
      });
}

int DeleteAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover image delete [flags] NAME",
                "Removes an image name. Running jobs keep their image; queued jobs that use\n"
                "the name fail to launch once placed. The archive stays in droverd's blob\n"
                "store. An unknown name gives exit code 4.");
  return inv.RunDeleteByName(flags, args, "image delete",
                             "  drover image delete team/train:1.0\n", /*retry=*/false,
                             [](DroverClient& client, const std::string& name) {
                               v1::DeleteImageRequest request;
                               request.set_name(name);
                               return client.DeleteImage(request).status();
                             });
}

}  // namespace

absl::StatusOr<OciArchive> CheckOciArchive(const std::string& path) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) {
    int error = errno;
    std::string message = absl::StrCat("'", path, "': ", absl::AsciiStrToLower(strerror(error)));
    return error == EACCES ? absl::PermissionDeniedError(message) : absl::NotFoundError(message);
  }
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a file; ", kMakeOne));
  }
  absl::StatusOr<std::unique_ptr<archive::TarReader>> reader = archive::TarReader::Open(path);
  if (!reader.ok()) return reader.status();
  bool has_layout = false;
  bool has_index = false;
  while (true) {
    absl::StatusOr<std::optional<archive::TarEntry>> entry = (*reader)->Next();
    if (!entry.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' is not an OCI archive (", entry.status().message(),
                       "); it must be an uncompressed tar; ", kMakeOne));
    }
    if (!entry->has_value()) break;
    absl::string_view name = (*entry)->path;
    while (absl::ConsumePrefix(&name, "./")) {
    }
    bool file = (*entry)->type == '0';
    has_layout = has_layout || (file && name == "oci-layout");
    has_index = has_index || (file && name == "index.json");
  }
  if (!has_layout || !has_index) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", path, "' is a tar but not an OCI image layout (no ",
                     !has_layout ? "oci-layout" : "index.json", " file at its root); ", kMakeOne));
  }
  absl::StatusOr<std::string> digest = (*reader)->DrainAndDigest();
  if (!digest.ok()) return digest.status();
  return OciArchive{.digest = *digest, .size = static_cast<int64_t>(info.st_size)};
}

absl::Status CheckImageName(absl::string_view name) {
  return scheduler::CheckImageName("NAME", name);
}

std::string FormatImageTable(const std::vector<v1::Image>& images, absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "DIGEST", "SIZE", "IMPORTED"});
  for (const v1::Image& image : images) {
    absl::Time created = absl::FromUnixSeconds(image.create_time().seconds());
    rows.push_back({image.name(), ShortDigest(image.digest()),
                    archive::FormatBytes(static_cast<uint64_t>(image.size())),
                    image.has_create_time() ? FormatAge(now - created) + " ago" : "-"});
  }
  return FormatTable(rows);
}

int ImageCommand(Invocation& inv, const std::vector<std::string>& args) {
  return RunActions(inv, "image",
                    "Manages the OCI images jobs run in (for administrators): archives imported\n"
                    "into droverd, named for 'drover submit --image NAME'. Jobs may also use\n"
                    "'host' (the node's own OS) or 'docker://REF' (pulled by the nodes).",
                    {{"import", "Upload an oci-archive and name it", ImportAction},
                     {"list", "List the imported images", ListAction},
                     {"delete", "Remove an image name", DeleteAction}},
                    "  drover image import team/train:1.0 train.tar\n"
                    "  drover image list\n"
                    "  drover image delete team/train:1.0\n",
                    args);
}

}  // namespace drover::cli
