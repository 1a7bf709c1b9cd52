// FlagSet: a small command-line flag parser shared by every Drover program, so flags look
// and fail the same everywhere. Accepts `--name value`, `--name=value`, `-x value` for flags
// with a one-letter alias, `--bool-flag` / `--bool-flag=false`, repeated flags and `--` to
// end flags. Single-threaded; used only from main() and the CLI's command table.
#ifndef DROVER_COMMON_FLAGS_H_
#define DROVER_COMMON_FLAGS_H_

#include <cstdint>
#include <functional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"

namespace drover {

class FlagSet {
 public:
  // `usage` is the synopsis line ("drover submit [flags] -- SCRIPT [ARGS...]"), `summary` a
  // paragraph shown under it by Help().
  FlagSet(std::string usage, std::string summary);

  // Registers a flag. `names` is the long name optionally followed by a one-letter alias:
  // "file,f". Targets must outlive Parse(); their current values are the defaults shown in
  // Help().
  void String(absl::string_view names, std::string* target, std::string help,
              std::string value_name = "VALUE");
  void Int(absl::string_view names, int64_t* target, std::string help,
           std::string value_name = "N");
  void Double(absl::string_view names, double* target, std::string help,
              std::string value_name = "N");
  void Bool(absl::string_view names, bool* target, std::string help);
  // Each use appends one value.
  void Repeated(absl::string_view names, std::vector<std::string>* target, std::string help,
                std::string value_name = "VALUE");
  // A flag whose value goes through `set`, which returns INVALID_ARGUMENT for bad values.
  void Custom(absl::string_view names, std::function<absl::Status(absl::string_view)> set,
              std::string help, std::string value_name, std::string default_text = "");

  // Parses `args` (without the program name). Arguments that are not flags go to
  // `positional` in order; with `interspersed` false the first positional argument ends
  // flag parsing (everything after it is positional), as for `submit -- SCRIPT ARGS`.
  // `--help`/`-h` sets help_requested() and stops. INVALID_ARGUMENT names the flag and
  // what it expects.
  absl::Status Parse(const std::vector<std::string>& args, std::vector<std::string>* positional,
                     bool interspersed = true);

  // Sets one flag by long name, as from a config file. INVALID_ARGUMENT for unknown names
  // and bad values.
  absl::Status Set(absl::string_view name, absl::string_view value);
  bool Has(absl::string_view name) const;
  // Whether the flag was given on the command line or through Set().
  bool WasSet(absl::string_view name) const;

  bool help_requested() const { return help_requested_; }
  // The full help text: usage, summary and one aligned line per flag.
  std::string Help() const;

 private:
  struct Flag {
    std::string name;
    char alias = 0;
    std::string help;
    std::string value_name;  // empty for booleans
    std::string default_text;
    bool is_bool = false;
    bool set = false;
    std::function<absl::Status(absl::string_view)> apply;
  };
  Flag* Find(absl::string_view name);
  const Flag* Find(absl::string_view name) const;
  Flag* FindAlias(char alias);
  void Add(absl::string_view names, Flag flag);

  std::string usage_;
  std::string summary_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

// Parses sizes written like "512", "512Mi", "16G", "2Gi" into MiB. "G" and "Gi" both mean
// GiB; a plain number is MiB.
absl::Status ParseMib(absl::string_view text, int64_t* mib);

}  // namespace drover

#endif  // DROVER_COMMON_FLAGS_H_
