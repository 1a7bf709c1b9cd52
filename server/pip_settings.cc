#include "server/pip_settings.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace drover::server {
namespace {

bool IsUrl(absl::string_view value) {
  return absl::StartsWith(value, "http://") || absl::StartsWith(value, "https://") ||
         absl::StartsWith(value, "file://");
}

// Values end up as pip arguments and in the environments' cache key, one per line.
absl::Status CheckValue(absl::string_view flag, absl::string_view value) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": empty value"));
  for (char c : value) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) ||
        absl::ascii_iscntrl(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, ": '", value, "' holds whitespace or a control character; give one value per flag"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::PipSettings> PipSettingsFromFlags(const PipFlags& flags) {
  v1::PipSettings settings;
  auto check_url = [](absl::string_view flag, const std::string& url) -> absl::Status {
    if (absl::Status s = CheckValue(flag, url); !s.ok()) return s;
    if (!IsUrl(url)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, ": '", url, "' is not an index URL; write it like https://pypi.example.com/simple"));
    }
    return absl::OkStatus();
  };
  if (!flags.index_url.empty()) {
    if (absl::Status s = check_url("pip-index-url", flags.index_url); !s.ok()) return s;
    settings.set_index_url(flags.index_url);
  }
  for (const std::string& url : flags.extra_index_urls) {
    if (absl::Status s = check_url("pip-extra-index-url", url); !s.ok()) return s;
    settings.add_extra_index_urls(url);
  }
  for (const std::string& link : flags.find_links) {
    if (absl::Status s = CheckValue("pip-find-links", link); !s.ok()) return s;
    if (!IsUrl(link) && !absl::StartsWith(link, "/")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--pip-find-links: '", link,
          "' is neither a URL nor an absolute path; give a folder of wheels that exists on every "
          "node, like /srv/wheels, or https://..."));
    }
    settings.add_find_links(link);
  }
  for (const std::string& host : flags.trusted_hosts) {
    if (absl::Status s = CheckValue("pip-trusted-host", host); !s.ok()) return s;
    settings.add_trusted_hosts(host);
  }
  if (flags.no_index && (!flags.index_url.empty() || !flags.extra_index_urls.empty())) {
    return absl::InvalidArgumentError(
        "--pip-no-index: pip would ignore --pip-index-url and --pip-extra-index-url; give "
        "either --pip-no-index with --pip-find-links, or the index URLs");
  }
  settings.set_no_index(flags.no_index);
  return settings;
}

}  // namespace drover::server
