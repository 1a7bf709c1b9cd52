// The checks of a spec's data references: the datastore arguments among spec.arguments, the
// named spec.inputs and the folders of spec.outputs. The datastore rules are public (job_spec.h) for the datastore
// registry too.
#include <cstddef>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/utf8.h"
#include "scheduler/job_spec.h"
#include "scheduler/job_spec_rules.h"

namespace drover::scheduler {
namespace job_spec_internal {

using v1::Argument;
using v1::DataInput;
using v1::DataReference;
using v1::OutputTarget;

namespace {

absl::Status CheckDataReference(absl::string_view field, const DataReference& data) {
  if (absl::Status s = CheckPoolName(absl::StrCat(field, ".datastore"), data.datastore());
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckRelativePath(absl::StrCat(field, ".path"), data.path(), "the datastore");
      !s.ok()) {
    return s;
  }
  if (!DataReference::Mode_IsValid(data.mode())) {
    return Invalid(absl::StrCat(field, ".mode"),
                   absl::StrCat(static_cast<int>(data.mode()),
                                " is not a mode; use mount, download or upload"));
  }
  const bool mount =
      data.mode() == DataReference::MOUNT || data.mode() == DataReference::MODE_UNSPECIFIED;
  if (data.read_write() && !mount) {
    return Invalid(absl::StrCat(field, ".read_write"),
                   absl::StrCat("applies to mode mount only, not ",
                                absl::AsciiStrToLower(DataReference::Mode_Name(data.mode())),
                                "; unset read_write or use mode mount"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckArguments(const google::protobuf::RepeatedPtrField<Argument>& arguments) {
  if (static_cast<size_t>(arguments.size()) > kMaxArguments) {
    return Invalid("spec.arguments",
                   absl::StrCat(arguments.size(), " arguments are too many; use at most ",
                                kMaxArguments, ", or pass them in a file"));
  }
  size_t total = 0;
  for (int i = 0; i < arguments.size(); ++i) {
    const Argument& arg = arguments[i];
    const std::string field = ListField("spec.arguments", i);
    switch (arg.kind_case()) {
      case Argument::kValue: {
        const std::string vfield = absl::StrCat(field, ".value");
        if (arg.value().size() > kMaxArgumentBytes) {
          return Invalid(vfield, TooLong(arg.value().size(), kMaxArgumentBytes, "bytes"));
        }
        if (absl::StrContains(arg.value(), absl::string_view("\0", 1))) {
          return Invalid(vfield, "contains a NUL byte; remove it");
        }
        if (!IsValidUtf8(arg.value())) {
          return Invalid(vfield, "is not valid UTF-8; fix the encoding");
        }
        total += arg.value().size();
        break;
      }
      case Argument::kData:
        if (absl::Status s = CheckDataReference(absl::StrCat(field, ".data"), arg.data());
            !s.ok()) {
          return s;
        }
        total += arg.data().datastore().size() + arg.data().path().size();
        break;
      case Argument::KIND_NOT_SET:
        return Invalid(field, "sets neither value nor data; set one of them");
    }
  }
  if (total > kMaxArgumentsTotalBytes) {
    return Invalid("spec.arguments",
                   absl::StrCat(total, " bytes in total is over the limit; use at most ",
                                kMaxArgumentsTotalBytes,
                                " bytes (128 KiB) together, or pass large inputs in a file"));
  }
  return absl::OkStatus();
}

absl::Status CheckInputs(const google::protobuf::RepeatedPtrField<DataInput>& inputs) {
  if (static_cast<size_t>(inputs.size()) > kMaxInputs) {
    return Invalid("spec.inputs", absl::StrCat(inputs.size(), " inputs are too many; use at most ",
                                               kMaxInputs));
  }
  std::set<absl::string_view> names;
  for (int i = 0; i < inputs.size(); ++i) {
    const std::string field = ListField("spec.inputs", i);
    const std::string& name = inputs[i].name();
    const std::string name_field = absl::StrCat(field, ".name");
    if (name.empty()) {
      return Invalid(name_field, "is empty; name the input (the job finds its path in "
                                 "DROVER_INPUT_<name>)");
    }
    if (name.size() > kMaxInputNameChars) {
      return Invalid(name_field, TooLong(name.size(), kMaxInputNameChars, "characters"));
    }
    bool valid = absl::ascii_isalpha(static_cast<unsigned char>(name[0]));
    for (char c : name) valid = valid && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!valid) {
      return Invalid(name_field, absl::StrCat(Quote(name),
                                              " is not 1-63 characters of [A-Za-z0-9_] starting "
                                              "with a letter; it becomes part of a variable name"));
    }
    if (!names.insert(name).second) {
      return Invalid(name_field, absl::StrCat(Quote(name),
                                              " is used by an earlier input; give each its own name"));
    }
    if (!inputs[i].has_data()) {
      return Invalid(absl::StrCat(field, ".data"), "is missing; name a datastore and a path");
    }
    if (absl::Status s = CheckDataReference(absl::StrCat(field, ".data"), inputs[i].data());
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckOutputs(const google::protobuf::RepeatedPtrField<OutputTarget>& outputs) {
  if (static_cast<size_t>(outputs.size()) > kMaxOutputs) {
    return Invalid(
        "spec.outputs",
        absl::StrCat(outputs.size(), " outputs are too many; use at most ", kMaxOutputs));
  }
  for (int i = 0; i < outputs.size(); ++i) {
    const std::string field = ListField("spec.outputs", i);
    if (absl::Status s = CheckPoolName(absl::StrCat(field, ".datastore"), outputs[i].datastore());
        !s.ok()) {
      return s;
    }
    if (outputs[i].path().empty()) {
      return Invalid(absl::StrCat(field, ".path"),
                     "is empty; name the folder inside the datastore that receives outputs/, "
                     "such as 'runs/mnist'");
    }
    if (absl::Status s =
            CheckRelativePath(absl::StrCat(field, ".path"), outputs[i].path(), "the datastore");
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace job_spec_internal

absl::Status CheckDatastoreName(absl::string_view field, absl::string_view name) {
  return job_spec_internal::CheckPoolName(field, name);
}

absl::Status CheckDatastorePath(absl::string_view field, absl::string_view path) {
  return job_spec_internal::CheckRelativePath(field, path, "the datastore");
}

}  // namespace drover::scheduler
