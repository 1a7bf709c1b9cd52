// `drover gc`: runs droverd's retention pass now (admins; docs/operations.md#retention),
// through AdminService.CollectGarbage, and says what it removed.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/format.h"
#include "cli/invocation.h"
#include "common/archive/snapshot.h"
#include "google/protobuf/util/time_util.h"

namespace drover::cli {

int GcCommand(Invocation& inv, const std::vector<std::string>& args) {
  bool dry_run = false;
  FlagSet flags(
      "drover gc [flags]",
      "Runs droverd's retention pass now instead of at its next --gc-interval: removes the\n"
      "logs of jobs that ended more than --log-retention ago (their metrics stay), code\n"
      "snapshots and outputs past --snapshot-retention and --outputs-retention, and blobs\n"
      "nothing refers to (unused for --upload-grace). Jobs remember what they lost, so\n"
      "drover logs and drover download say why it is gone. For admins\n"
      "(docs/operations.md#retention).");
  flags.Bool("dry-run", &dry_run, "Only count what the pass would remove");
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client =
      inv.ParseAndConnect(flags, args, "gc",
                          "  drover gc --dry-run\n"
                          "  drover gc\n",
                          &exit_code);
  if (client == nullptr) return exit_code;
  v1::CollectGarbageRequest request;
  request.set_dry_run(dry_run);
  // Not retried: a pass cut short is finished by the next one.
  absl::StatusOr<v1::CollectGarbageResponse> pass = client->CollectGarbage(request);
  if (!pass.ok()) return inv.ServerError(pass.status());
  inv.Print([&] { return MessageToJson(*pass, /*pretty=*/true); },
            [&] {
              using archive::FormatBytes;
              std::string verb = pass->dry_run() ? "would remove" : "removed";
              std::string out = absl::StrCat(
                  verb, " ", pass->blobs_removed(), " blobs (",
                  FormatBytes(static_cast<uint64_t>(pass->blob_bytes_removed())), "); kept ",
                  pass->blobs_kept(), " (",
                  FormatBytes(static_cast<uint64_t>(pass->blob_bytes_kept())), ")\n", verb,
                  " the logs of ", pass->jobs_logs_removed(), " jobs (",
                  FormatBytes(static_cast<uint64_t>(pass->log_bytes_removed())), ")\n",
                  pass->dry_run() ? "would mark " : "marked ", pass->jobs_marked(),
                  " jobs as having lost their snapshot or outputs\n");
              if (pass->jobs_deferred() > 0) {
                absl::StrAppend(&out, pass->jobs_deferred(),
                                " jobs left for the next pass (a pass changes a bounded number)\n");
              }
              absl::StrAppend(&out, "took ",
                              google::protobuf::util::TimeUtil::ToString(pass->took()), "\n");
              return out;
            });
  return kExitOk;
}

}  // namespace drover::cli
