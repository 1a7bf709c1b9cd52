#include "cli/submit_spec.h"

#include <limits>
#include <utility>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/algorithm/container.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace drover::cli {
namespace {

constexpr absl::string_view kDataPrefix = "ds://";

constexpr absl::string_view kDataSyntax = "ds://DATASTORE/PATH[?mode=mount|download|upload][&rw=true]";

// `what` names the text ("argument 'ds://...'"); `hint` ends the message.
absl::Status BadReference(absl::string_view what, absl::string_view problem,
                          absl::string_view hint) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", problem, "; ", hint));
}

absl::Status BadArgument(absl::string_view text, absl::string_view problem) {
  return BadReference(absl::StrCat("argument '", text, "'"), problem,
                      absl::StrCat("write ", kDataSyntax, ", or \\ds://... for the literal text"));
}

// `text` starts with ds://; `bad` makes the error for a problem with it.
absl::StatusOr<v1::DataReference> ParseDataReference(
    absl::string_view text, absl::FunctionRef<absl::Status(absl::string_view)> bad) {
  absl::string_view rest = text.substr(kDataPrefix.size());
  absl::string_view query;
  if (size_t q = rest.find('?'); q != absl::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  v1::DataReference ref;
  size_t slash = rest.find('/');
  ref.set_datastore(std::string(rest.substr(0, slash)));
  if (slash != absl::string_view::npos) ref.set_path(std::string(rest.substr(slash + 1)));
  if (ref.datastore().empty()) return bad("no datastore name");
  bool mode_set = false;
  for (absl::string_view option : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(option, absl::MaxSplits('=', 1));
    std::string key = absl::AsciiStrToLower(kv.first);
    std::string value = absl::AsciiStrToLower(kv.second);
    if (key == "mode") {
      if (value == "mount") {
        ref.set_mode(v1::DataReference::MOUNT);
      } else if (value == "download") {
        ref.set_mode(v1::DataReference::DOWNLOAD);
      } else if (value == "upload") {
        ref.set_mode(v1::DataReference::UPLOAD);
      } else {
        return bad(absl::StrCat("mode '", kv.second, "' is not one of mount, download, upload"));
      }
      mode_set = true;
    } else if (key == "rw") {
      if (value.empty() || value == "true" || value == "1" || value == "yes") {
        ref.set_read_write(true);
      } else if (value == "false" || value == "0" || value == "no") {
        ref.set_read_write(false);
      } else {
        return bad(absl::StrCat("rw '", kv.second, "' is not true or false"));
      }
    } else {
      return bad(absl::StrCat("unknown option '", kv.first, "'"));
    }
  }
  if (!mode_set) ref.set_mode(v1::DataReference::MOUNT);
  if (ref.read_write() && ref.mode() != v1::DataReference::MOUNT) {
    return bad("rw=true applies to mode=mount only");
  }
  return ref;
}

// "KEY=VALUE" split at the first '='; `value` is nullopt without one.
std::pair<std::string, std::optional<std::string>> SplitAssignment(absl::string_view text) {
  size_t eq = text.find('=');
  if (eq == absl::string_view::npos) return {std::string(text), std::nullopt};
  return {std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
}

// Registers an int32 flag: FlagSet::Int parses int64, and a silent wrap-around would turn
// --nodes 4294967297 into 1.
void Int32Flag(FlagSet* flags, absl::string_view name, int32_t* target, std::string help) {
  flags->Custom(
      name,
      [target, name = std::string(name)](absl::string_view v) -> absl::Status {
        int64_t value = 0;
        if (!absl::SimpleAtoi(v, &value)) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, ": '", v, "' is not a whole number"));
        }
        if (value < std::numeric_limits<int32_t>::min() || value > std::numeric_limits<int32_t>::max()) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, ": ", v, " is far out of range"));
        }
        *target = static_cast<int32_t>(value);
        return absl::OkStatus();
      },
      std::move(help), "N");
}

void SizeFlag(FlagSet* flags, absl::string_view name, int64_t* target, std::string help) {
  flags->Custom(
      name, [target](absl::string_view v) { return ParseMib(v, target); }, std::move(help),
      "SIZE");
}

}  // namespace

absl::StatusOr<v1::Argument> ParseArgument(absl::string_view text) {
  v1::Argument argument;
  if (absl::StartsWith(text, kDataPrefix)) {
    DROVER_ASSIGN_OR_RETURN(
        *argument.mutable_data(),
        ParseDataReference(text, [text](absl::string_view problem) {
          return BadArgument(text, problem);
        }));
    return argument;
  }
  // `\ds://x` is the literal `ds://x`; `\\ds://x` the literal `\ds://x`, and so on.
  absl::string_view unescaped = text;
  while (absl::ConsumePrefix(&unescaped, "\\")) {
  }
  if (unescaped.size() < text.size() && absl::StartsWith(unescaped, kDataPrefix)) {
    argument.set_value(std::string(text.substr(1)));
  } else {
    argument.set_value(std::string(text));
  }
  return argument;
}

std::string FormatArgument(const v1::Argument& argument) {
  if (!argument.has_data()) {
    absl::string_view value = argument.value();
    absl::string_view unescaped = value;
    while (absl::ConsumePrefix(&unescaped, "\\")) {
    }
    if (absl::StartsWith(unescaped, kDataPrefix)) return absl::StrCat("\\", value);
    return std::string(value);
  }
  return FormatDataReference(argument.data());
}

std::string FormatDataReference(const v1::DataReference& ref) {
  std::string out = absl::StrCat(kDataPrefix, ref.datastore());
  if (!ref.path().empty()) absl::StrAppend(&out, "/", ref.path());
  std::vector<std::string> options;
  if (ref.mode() == v1::DataReference::DOWNLOAD) options.push_back("mode=download");
  if (ref.mode() == v1::DataReference::UPLOAD) options.push_back("mode=upload");
  if (ref.read_write()) options.push_back("rw=true");
  if (!options.empty()) absl::StrAppend(&out, "?", absl::StrJoin(options, "&"));
  return out;
}

absl::StatusOr<v1::DataInput> ParseInput(absl::string_view text) {
  auto bad = [text](absl::string_view problem) {
    return BadReference(absl::StrCat("input '", text, "'"), problem,
                        absl::StrCat("write NAME=", kDataSyntax,
                                     " (the job finds the path in $DROVER_INPUT_NAME)"));
  };
  size_t equals = text.find('=');
  if (equals == absl::string_view::npos || equals == 0) return bad("has no NAME=");
  absl::string_view reference = text.substr(equals + 1);
  if (!absl::StartsWith(reference, kDataPrefix)) return bad("the data does not start with ds://");
  v1::DataInput input;
  input.set_name(std::string(text.substr(0, equals)));
  DROVER_ASSIGN_OR_RETURN(*input.mutable_data(), ParseDataReference(reference, bad));
  return input;
}

absl::StatusOr<v1::OutputTarget> ParseOutputTarget(absl::string_view text) {
  auto bad = [text](absl::string_view problem) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output target '", text, "': ", problem, "; write ds://DATASTORE/PATH (PATH: the folder "
        "in the datastore that receives the job's outputs)"));
  };
  absl::string_view rest = text;
  if (!absl::ConsumePrefix(&rest, kDataPrefix)) return bad("does not start with ds://");
  if (absl::StrContains(rest, '?')) return bad("takes no options");
  v1::OutputTarget target;
  size_t slash = rest.find('/');
  target.set_datastore(std::string(rest.substr(0, slash)));
  if (slash != absl::string_view::npos) target.set_path(std::string(rest.substr(slash + 1)));
  if (target.datastore().empty()) return bad("no datastore name");
  if (target.path().empty()) return bad("no folder");
  return target;
}

namespace {

// Replaces each string in the list `field` of the JSON object `fields` by the JSON form of
// the message `parse` makes of it; whether one was replaced. INVALID_ARGUMENT naming the
// entry ("arguments[1]: ...") when `parse` fails.
template <typename Message>
absl::StatusOr<bool> ExpandStrings(
    google::protobuf::Map<std::string, google::protobuf::Value>* fields, const std::string& field,
    const std::function<absl::StatusOr<Message>(absl::string_view)>& parse) {
  auto list = fields->find(field);
  if (list == fields->end() || !list->second.has_list_value()) return false;
  bool changed = false;
  auto* items = list->second.mutable_list_value()->mutable_values();
  for (int i = 0; i < items->size(); ++i) {
    google::protobuf::Value& item = (*items)[i];
    if (item.kind_case() != google::protobuf::Value::kStringValue) continue;
    absl::StatusOr<Message> message = parse(item.string_value());
    if (!message.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: ", message.status().message()));
    }
    std::string text;
    google::protobuf::Value parsed;
    if (!google::protobuf::util::MessageToJsonString(*message, &text).ok() ||
        !google::protobuf::util::JsonStringToMessage(text, &parsed).ok()) {
      return absl::InternalError(absl::StrCat(field, "[", i, "]: cannot convert"));
    }
    item = std::move(parsed);
    changed = true;
  }
  return changed;
}

// `json` with every string in its top-level "arguments" list replaced by the Argument that
// ParseArgument makes of it ("ds://imagenet/train" -> {"data": {...}}, "--lr" ->
// {"value": "--lr"}), and every string in "outputs" by its OutputTarget; nullopt when there
// is no such string. INVALID_ARGUMENT naming the entry for a malformed ds:// string.
absl::StatusOr<std::optional<std::string>> ExpandStringArguments(absl::string_view json) {
  google::protobuf::Value root;
  if (!google::protobuf::util::JsonStringToMessage(
           google::protobuf::StringPiece(json.data(), json.size()), &root)
           .ok() ||
      !root.has_struct_value()) {
    return std::nullopt;
  }
  auto* fields = root.mutable_struct_value()->mutable_fields();
  DROVER_ASSIGN_OR_RETURN(bool arguments,
                          ExpandStrings<v1::Argument>(fields, "arguments", ParseArgument));
  DROVER_ASSIGN_OR_RETURN(bool outputs,
                          ExpandStrings<v1::OutputTarget>(fields, "outputs", ParseOutputTarget));
  if (!arguments && !outputs) return std::nullopt;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(root, &out).ok()) return std::nullopt;
  return out;
}

absl::StatusOr<v1::JobSpec> ParseJobSpecJsonStrict(absl::string_view json) {
  google::protobuf::util::JsonParseOptions options;
  options.case_insensitive_enum_parsing = true;
  v1::JobSpec spec;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &spec, options);
  if (!status.ok()) {
    std::string message(status.message().data(), status.message().size());
    return absl::InvalidArgumentError(message);
  }
  return spec;
}

}  // namespace

absl::StatusOr<v1::JobSpec> ParseJobSpecJson(absl::string_view json) {
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJsonStrict(json);
  if (spec.ok()) return spec;
  // Only a file that does not parse as it is goes through the generic JSON tree, whose
  // numbers are doubles: the plain form keeps every 64-bit number exact.
  absl::StatusOr<std::optional<std::string>> expanded = ExpandStringArguments(json);
  if (!expanded.ok()) return expanded.status();
  if (!expanded->has_value()) return spec;
  return ParseJobSpecJsonStrict(**expanded);
}

absl::StatusOr<v1::ArraySpec> ParseArrayFlag(absl::string_view text) {
  v1::ArraySpec array;
  absl::string_view indices = text;
  if (size_t percent = text.rfind('%'); percent != absl::string_view::npos) {
    indices = text.substr(0, percent);
    absl::string_view limit = text.substr(percent + 1);
    int32_t max_running = 0;
    bool digits = !limit.empty() && limit.size() <= 9 &&
                  absl::c_all_of(limit, [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || !absl::SimpleAtoi(limit, &max_running) || max_running < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--array: '", absl::CHexEscape(limit),
          "' after '%' is not a limit; write %N with N >= 1 tasks running at once "
          "(0-999%50), or leave '%N' out for no limit"));
    }
    array.set_max_running(max_running);
  }
  if (indices.empty()) {
    return absl::InvalidArgumentError(
        "--array: names no indices; write N, A-B or A-B:STEP, comma-separated, such as "
        "0-999%50 or 1,3,7-9");
  }
  // droverd checks the indices themselves (spec.array.indices) and names what is wrong.
  array.set_indices(std::string(indices));
  return array;
}

absl::StatusOr<absl::Duration> ParseRunDuration(absl::string_view text) {
  absl::Duration duration;
  if (text == "0") return absl::ZeroDuration();
  double days = 0;
  absl::string_view number = text;
  if (absl::ConsumeSuffix(&number, "d") && absl::SimpleAtod(number, &days)) {
    duration = absl::Hours(24) * days;
  } else if (!absl::ParseDuration(text, &duration)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a duration; write for example 90m, 2h, 1h30m or 3d"));
  }
  if (duration < absl::ZeroDuration() || duration == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a positive duration; write for example 90m or 2h"));
  }
  return duration;
}

void SubmitSpecFlags::Register(FlagSet* flags) {
  flags->String("file,f", &file_,
                "Read the job spec from FILE (protobuf JSON form of JobSpec; '-' is stdin); "
                "flags override its fields",
                "FILE");
  flags->String("name", &name_, "Job name: letters, digits, '.', '_', '-'", "NAME");
  flags->String("experiment", &experiment_, "Experiment the job belongs to (default \"default\")",
                "NAME");
  flags->Repeated("tag", &tags_, "Label the job", "KEY=VALUE");
  flags->String("target", &target_, "Compute target (pool of nodes) to run on", "NAME");
  flags->String("image", &image_, "OCI image to run in, or 'host' (default host)", "IMAGE");
  flags->Repeated("pip", &pip_, "Install a pip requirement, e.g. torch==2.1.0", "PKG");
  flags->Repeated("conda", &conda_, "Install a conda package", "PKG");
  flags->Repeated("env", &env_,
                  "Set an environment variable of the job; NAME alone copies it from here",
                  "NAME=VALUE");
  flags->Repeated("secret-env", &secret_env_,
                  "Set an environment variable whose value droverd never shows back (\"***\" "
                  "in show, list, watch); NAME alone copies it from here",
                  "NAME=VALUE");
  flags->Bool("gpu", &gpu_, "The job uses GPUs (sets use_gpu; --gpus defaults to 1)");
  flags->Bool("horovod", &horovod_,
              "Build Horovod for PyTorch into the job's environment (needs --backend mpi)");
  Int32Flag(flags, "nodes", &nodes_, "Number of nodes, 1-1024 (default 1)");
  Int32Flag(flags, "processes-per-node", &processes_per_node_,
            "Processes per node, 1-256 (default 1)");
  flags->Custom(
      "backend",
      [this](absl::string_view v) -> absl::Status {
        std::string lower = absl::AsciiStrToLower(v);
        if (lower == "none") {
          backend_ = v1::JobSpec::NONE;
        } else if (lower == "mpi") {
          backend_ = v1::JobSpec::MPI;
        } else if (lower == "pytorch") {
          backend_ = v1::JobSpec::PYTORCH;
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat("'", v, "' is not a backend; use none, mpi or pytorch"));
        }
        return absl::OkStatus();
      },
      "Distributed backend: none, mpi or pytorch (default none)", "NAME");
  flags->Double("cpus", &cpus_, "CPU cores per node, fractions allowed (default 1)");
  SizeFlag(flags, "memory", &memory_mib_, "Memory per node: 512Mi, 16Gi, ... (default 1Gi)");
  Int32Flag(flags, "gpus", &gpus_, "GPUs per node, 0-64 (needs --gpu)");
  SizeFlag(flags, "shm", &shm_mib_, "Size of /dev/shm: 512Mi, 8Gi, ... (default 1Gi)");
  flags->Custom(
      "max-run-duration",
      [this](absl::string_view v) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(max_run_duration_, ParseRunDuration(v));
        return absl::OkStatus();
      },
      "Stop the job after it ran this long: 90m, 2h, 3d; 0 is no limit", "DURATION");
  Int32Flag(flags, "priority", &priority_, "Priority, -1000 to 1000; higher runs first (default 0)");
  Int32Flag(flags, "max-retries", &max_retries_, "Retry a failed attempt up to N times (default 0)");
  flags->Repeated("input", &inputs_,
                  "Make datastore data available without an argument: the job finds its path "
                  "in $DROVER_INPUT_NAME (mode as for ds:// arguments; default mount)",
                  "NAME=ds://DATASTORE/PATH[?mode=...]");
  flags->Repeated("outputs-to", &outputs_to_,
                  "When the job ends, copy its outputs folder ($DROVER_OUTPUT_DIR) into PATH "
                  "of datastore NAME (it must allow writes)",
                  "ds://NAME/PATH");
  flags->String("snapshot", &snapshot_, "Source snapshot digest to run from", "sha256:HEX");
  flags->String("array", &array_,
                "Submit a job array: one task per index, each its own job with\n"
                "$DROVER_ARRAY_INDEX; %N runs at most N tasks at once. Indices: N, A-B or\n"
                "A-B:STEP, comma-separated (0-999, 1,3,7-9, 0-99:5); at most 100000 tasks",
                "INDICES[%N]");
  flags->String("idempotency-key", &idempotency_key_,
                "Resubmitting with the same key returns the first job (default: a random key, "
                "so retries of this submit never create a second job)",
                "KEY");
}

absl::StatusOr<v1::JobSpec> SubmitSpecFlags::Build(const FlagSet& flags,
                                                   const std::vector<std::string>& positional,
                                                   const FileReader& read_file,
                                                   const EnvLookup& getenv) const {
  v1::JobSpec spec;
  if (!file_.empty()) {
    absl::StatusOr<std::string> text = read_file(file_);
    if (!text.ok()) return text.status();
    absl::StatusOr<v1::JobSpec> parsed = ParseJobSpecJson(*text);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "job spec file '", file_, "': ", absl::StripAsciiWhitespace(parsed.status().message()),
          "; it must hold a JobSpec in protobuf JSON form (see docs/cli.md)"));
    }
    spec = *std::move(parsed);
  }

  if (flags.WasSet("name")) spec.set_name(name_);
  if (flags.WasSet("experiment")) spec.set_experiment(experiment_);
  for (const std::string& tag : tags_) {
    auto [key, value] = SplitAssignment(tag);
    if (key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tag: '", tag, "' has no key; write KEY=VALUE"));
    }
    (*spec.mutable_tags())[key] = value.value_or("");
  }
  if (flags.WasSet("target")) spec.set_compute_target(target_);
  v1::Environment* environment = spec.mutable_environment();
  if (flags.WasSet("image")) environment->set_image(image_);
  if (!pip_.empty()) {
    environment->clear_pip_packages();
    for (const std::string& p : pip_) environment->add_pip_packages(p);
  }
  if (!conda_.empty()) {
    environment->clear_conda_packages();
    for (const std::string& p : conda_) environment->add_conda_packages(p);
  }
  for (const std::string& assignment : env_) {
    auto [name, value] = SplitAssignment(assignment);
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--env: '", assignment, "' has no name; write NAME=VALUE"));
    }
    if (!value.has_value()) {
      value = getenv(name);
      if (!value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--env: ", name, " is not set in this shell; write ", name, "=VALUE"));
      }
    }
    (*environment->mutable_env())[name] = *value;
  }
  for (const std::string& assignment : secret_env_) {
    auto [name, value] = SplitAssignment(assignment);
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--secret-env: '", name, "=...' has no name; write NAME=VALUE"));
    }
    if (!value.has_value()) {
      value = getenv(name);
      if (!value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--secret-env: ", name, " is not set in this shell; write ", name, "=VALUE"));
      }
    }
    (*environment->mutable_env())[name] = *value;
    bool listed = false;
    for (const std::string& secret : environment->secret_env()) listed = listed || secret == name;
    if (!listed) environment->add_secret_env(name);
  }
  if (flags.WasSet("gpu")) environment->set_use_gpu(gpu_);
  if (flags.WasSet("horovod")) environment->set_horovod(horovod_);
  if (spec.environment().ByteSizeLong() == 0) {
    spec.clear_environment();
  }

  if (flags.WasSet("nodes")) spec.set_node_count(nodes_);
  if (flags.WasSet("processes-per-node")) spec.set_process_count_per_node(processes_per_node_);
  if (flags.WasSet("backend")) spec.set_distributed_backend(backend_);
  v1::Resources* resources = spec.mutable_resources();
  if (flags.WasSet("cpus")) resources->set_cpus(cpus_);
  if (flags.WasSet("memory")) resources->set_memory_mib(memory_mib_);
  if (flags.WasSet("gpus")) resources->set_gpus(gpus_);
  if (flags.WasSet("shm")) resources->set_shm_mib(shm_mib_);
  if (spec.resources().ByteSizeLong() == 0) spec.clear_resources();
  if (flags.WasSet("max-run-duration")) {
    if (max_run_duration_ == absl::ZeroDuration()) {
      spec.clear_max_run_duration();
    } else {
      absl::Duration rem;
      int64_t seconds = absl::IDivDuration(max_run_duration_, absl::Seconds(1), &rem);
      spec.mutable_max_run_duration()->set_seconds(seconds);
      spec.mutable_max_run_duration()->set_nanos(
          static_cast<int32_t>(absl::ToInt64Nanoseconds(rem)));
    }
  }
  if (flags.WasSet("priority")) spec.set_priority(priority_);
  if (flags.WasSet("max-retries")) spec.set_max_retries(max_retries_);
  if (!inputs_.empty()) {
    spec.clear_inputs();
    for (const std::string& text : inputs_) {
      absl::StatusOr<v1::DataInput> input = ParseInput(text);
      if (!input.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--input: ", input.status().message()));
      }
      *spec.add_inputs() = *std::move(input);
    }
  }
  if (!outputs_to_.empty()) {
    spec.clear_outputs();
    for (const std::string& text : outputs_to_) {
      absl::StatusOr<v1::OutputTarget> target = ParseOutputTarget(text);
      if (!target.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--outputs-to: ", target.status().message()));
      }
      *spec.add_outputs() = *std::move(target);
    }
  }
  if (flags.WasSet("snapshot")) spec.set_source_snapshot(snapshot_);
  if (flags.WasSet("idempotency-key")) spec.set_idempotency_key(idempotency_key_);
  if (flags.WasSet("array")) {
    absl::StatusOr<v1::ArraySpec> array = ParseArrayFlag(array_);
    if (!array.ok()) return array.status();
    *spec.mutable_array() = *std::move(array);
  }

  if (!positional.empty()) {
    spec.set_entry_script(positional[0]);
    spec.clear_arguments();
    for (size_t i = 1; i < positional.size(); ++i) {
      DROVER_ASSIGN_OR_RETURN(*spec.add_arguments(), ParseArgument(positional[i]));
    }
  }
  if (spec.entry_script().empty()) {
    return absl::InvalidArgumentError(
        file_.empty()
            ? "no entry script; name it after the flags: drover submit [flags] SCRIPT [ARGS...]"
            : absl::StrCat("no entry script: '", file_,
                           "' sets no entry_script; name it after the flags: drover submit "
                           "[flags] SCRIPT [ARGS...]"));
  }
  return spec;
}

}  // namespace drover::cli
