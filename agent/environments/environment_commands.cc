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

// The Horovod step (environment.horovod), run with the environment's python "$E/bin/python"
// once the job's packages are in: first every tool the build needs is looked for, and all
// that are missing are written to /job/missing (exit kCannotBuildHorovod), so that the job's
// message names them at once; then pip builds Horovod from source against the environment's
// torch and the image's Open MPI, and Horovod's own check of its build goes to the log.
std::string HorovodStep(const std::string& pip_options) {
  return absl::StrCat(
      "# Horovod ", kHorovodVersion, " (environment.horovod)\n"
      "M=/job/", kHorovodMissingFile, "\n"
      ": > \"$M\"\n"
      "lacks() { echo \"$1\" >> \"$M\"; }\n"
      "command -v c++ > /dev/null 2>&1 || command -v g++ > /dev/null 2>&1 || "
      "lacks \"a C++ compiler (c++ or g++; Debian: g++)\"\n"
      "command -v cmake > /dev/null 2>&1 || lacks \"cmake (Debian: cmake)\"\n"
      "if command -v mpicxx > /dev/null 2>&1; then\n"
      "  found=\n"
      "  for d in $(mpicxx --showme:incdirs 2> /dev/null) /usr/include /usr/local/include; do\n"
      "    [ -f \"$d/mpi.h\" ] && found=1\n"
      "  done\n"
      "  [ -n \"$found\" ] || lacks \"MPI headers (mpi.h; Debian: libopenmpi-dev)\"\n"
      "else\n"
      "  lacks \"MPI headers and compiler wrapper (mpi.h, mpicxx; Debian: libopenmpi-dev)\"\n"
      "fi\n"
      "if \"$E/bin/python\" -c 'import torch' > /dev/null 2>&1; then\n"
      // torch's C++ headers, the pybind11 and Python headers they include.
      "  \"$E/bin/python\" - << 'EOF' >> \"$M\"\n"
      "import os, sysconfig\n"
      "from torch.utils import cpp_extension\n"
      "dirs = cpp_extension.include_paths() + [sysconfig.get_paths()['include'], "
      "'/usr/include', '/usr/local/include']\n"
      "def has(name): return any(os.path.isfile(os.path.join(d, name)) for d in dirs)\n"
      "if not has('torch/extension.h'): "
      "print(\"torch's C++ headers (torch/extension.h; Debian: libtorch-dev)\")\n"
      "if not has('pybind11/pybind11.h'): print('pybind11 headers (Debian: pybind11-dev)')\n"
      "if not has('Python.h'): print('Python headers (Python.h; Debian: python3-dev)')\n"
      "EOF\n"
      "else\n"
      "  lacks \"torch (import torch fails; use an image with it or add torch to "
      "pip_packages)\"\n"
      "fi\n"
      "if [ -s \"$M\" ]; then\n"
      "  echo \"drover: cannot build Horovod; the image lacks:\"\n"
      "  cat \"$M\"\n"
      "  exit ", kCannotBuildHorovod, "\n"
      "fi\n"
      // GPU operations only where the image can build them (CUDA's compiler and NCCL).
      "G=\n"
      "if command -v nvcc > /dev/null 2>&1 && { [ -f /usr/include/nccl.h ] || "
      "[ -f \"${CUDA_HOME:-/usr/local/cuda}/include/nccl.h\" ]; }; then\n"
      "  G=HOROVOD_GPU_OPERATIONS=NCCL\n"
      "fi\n"
      "J=$(nproc 2> /dev/null || echo 2)\n"
      "run env HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 "
      "HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITHOUT_GLOO=1 HOROVOD_CPU_OPERATIONS=MPI $G "
      "CCACHE_DISABLE=1 MAKEFLAGS=-j$J "
      "\"$E/bin/python\" -m pip install --no-cache-dir --no-input --disable-pip-version-check "
      "--progress-bar off --no-build-isolation --no-binary horovod",
      pip_options.empty() ? "" : " ", pip_options, " horovod==", kHorovodVersion,
      " || exit $?\n"
      "run \"$E/bin/python\" -c 'import horovod.torch' || exit $?\n"
      "run \"$E/bin/horovodrun\" --check-build || exit $?\n");
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
  const std::string pip_options = ShellWords(PipOptions(request.pip));
  const std::string pip_install =
      absl::StrCat("\"$E/bin/python\" -m pip install --no-cache-dir --no-input "
                   "--disable-pip-version-check --progress-bar off",
                   pip_options.empty() ? "" : " ", pip_options, " -r /job/requirements.txt");
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
    if (request.horovod) {
      absl::StrAppend(&script, "[ -x \"$E/bin/python\" ] || { echo 'python in the conda "
                      "environment (add python to conda_packages)' > /job/", kHorovodMissingFile,
                      "; refuse ", kCannotBuildHorovod, " \"cannot build Horovod without python\"; }\n",
                      HorovodStep(pip_options));
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
      "run \"$P\" -m venv --without-pip --system-site-packages \"$E\" || exit $?\n");
  if (!request.pip_packages.empty()) absl::StrAppend(&script, "run ", pip_install, " || exit $?\n");
  if (request.horovod) absl::StrAppend(&script, HorovodStep(pip_options));
  absl::StrAppend(
      &script,
      "S=$(\"$E/bin/python\" -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') "
      "|| exit $?\n"
      "printf 'kind=venv\\nsite=%s\\n' \"$S\" > /job/result\n");
  return script;
}

}  // namespace drover::agent
