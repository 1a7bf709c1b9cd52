// The commands of an environment build (environment_cache.h): pip's options from the
// cluster's settings and the shell script that runs pip, venv, conda or mamba in the build
// container.
#include "agent/environments/environment_cache.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/environments/environment_internal.h"

namespace drover::agent {
namespace {

// `text` as one single-quoted shell word.
std::string ShellQuote(absl::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out += "'";
  return out;
}

std::string ShellWords(const std::vector<std::string>& words) {
  std::vector<std::string> quoted;
  for (const std::string& w : words) quoted.push_back(ShellQuote(w));
  return absl::StrJoin(quoted, " ");
}

}  // namespace

std::vector<std::string> PipOptions(const v1::PipSettings& settings) {
  std::vector<std::string> options;
  if (!settings.index_url().empty()) options.insert(options.end(), {"--index-url", settings.index_url()});
  for (const std::string& url : settings.extra_index_urls()) {
    options.insert(options.end(), {"--extra-index-url", url});
  }
  for (const std::string& link : settings.find_links()) {
    options.insert(options.end(), {"--find-links", link});
  }
  for (const std::string& host : settings.trusted_hosts()) {
    options.insert(options.end(), {"--trusted-host", host});
  }
  if (settings.no_index()) options.push_back("--no-index");
  return options;
}

std::string EnvironmentBuildScript(const EnvironmentRequest& request) {
  const std::string pip_install =
      absl::StrCat("\"$E/bin/python\" -m pip install --no-cache-dir --no-input "
                   "--disable-pip-version-check --progress-bar off",
                   PipOptions(request.pip).empty() ? "" : " ",
                   ShellWords(PipOptions(request.pip)), " -r /job/requirements.txt");
  std::string script = absl::StrCat(
      "# Builds a Drover job environment into ", kEnvironmentPrefix,
      " (agent/environments/environment_cache.h).\n"
      "exec 2>&1\n"
      "set -u\n"
      "E=", kEnvironmentPrefix, "\n"
      "export TMPDIR=", kEnvironmentMount, "/tmp\n"
      "mkdir -p \"$TMPDIR\"\n"
      "trap 'rm -rf \"$TMPDIR\"' EXIT\n"
      "refuse() { code=$1; shift; echo \"drover: $*\"; exit \"$code\"; }\n"
      "run() { echo \"+ $*\"; \"$@\"; }\n");
  if (!request.conda_packages.empty()) {
    absl::StrAppend(
        &script,
        "C=$(command -v mamba || command -v conda) || refuse ", kNoConda,
        " \"the image has neither conda nor mamba\"\n",
        "run \"$C\" create --yes --prefix \"$E\" ", ShellWords(SortedUnique(request.conda_packages)),
        " || exit $?\n");
    if (!request.pip_packages.empty()) {
      absl::StrAppend(&script, "[ -x \"$E/bin/python\" ] || refuse ", kCondaWithoutPython,
                      " \"the conda environment has no python to install pip_packages with; add "
                      "python to conda_packages\"\n",
                      "run ", pip_install, " || exit $?\n");
    }
    absl::StrAppend(
        &script,
        "echo kind=conda > /job/result\n"
        "if [ -x \"$E/bin/python\" ]; then\n"
        "  S=$(\"$E/bin/python\" -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') "
        "|| exit $?\n"
        "  echo \"site=$S\" >> /job/result\n"
        "fi\n");
    return script;
  }
  absl::StrAppend(
      &script,
      "P=$(command -v python3 || command -v python) || refuse ", kNoPython,
      " \"the image has no python3\"\n",
      "\"$P\" -m pip --version > /dev/null 2>&1 || refuse ", kNoPip, " \"$P has no pip\"\n",
      "\"$P\" -c 'import venv' > /dev/null 2>&1 || refuse ", kNoVenv, " \"$P has no venv module\"\n",
      // The image's packages stay visible; pip installs only what is missing or different.
      "run \"$P\" -m venv --without-pip --system-site-packages \"$E\" || exit $?\n",
      "run ", pip_install, " || exit $?\n",
      "S=$(\"$E/bin/python\" -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') "
      "|| exit $?\n"
      "printf 'kind=venv\\nsite=%s\\n' \"$S\" > /job/result\n");
  return script;
}

}  // namespace drover::agent
