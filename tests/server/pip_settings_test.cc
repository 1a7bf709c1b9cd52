// droverd's --pip-* flags: what they become, and what is refused with which message.
#include "server/pip_settings.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(PipSettingsTest, FlagsBecomeTheSettingsInOrder) {
  absl::StatusOr<v1::PipSettings> settings = PipSettingsFromFlags(
      {.index_url = "https://pypi.example.com/simple",
       .extra_index_urls = {"https://b.example.com/simple", "file:///srv/index"},
       .find_links = {"/srv/wheels", "https://wheels.example.com/"},
       .trusted_hosts = {"b.example.com"}});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_EQ(settings->index_url(), "https://pypi.example.com/simple");
  EXPECT_THAT(settings->extra_index_urls(),
              ElementsAre("https://b.example.com/simple", "file:///srv/index"));
  EXPECT_THAT(settings->find_links(), ElementsAre("/srv/wheels", "https://wheels.example.com/"));
  EXPECT_THAT(settings->trusted_hosts(), ElementsAre("b.example.com"));
  EXPECT_FALSE(settings->no_index());

  settings = PipSettingsFromFlags({.find_links = {"/srv/wheels"}, .no_index = true});
  ASSERT_TRUE(settings.ok()) << settings.status();
  EXPECT_TRUE(settings->no_index());
  EXPECT_EQ(PipSettingsFromFlags({})->ByteSizeLong(), 0u);
}

TEST(PipSettingsTest, BadValuesAreRefusedNamingTheFlag) {
  struct Case {
    PipFlags flags;
    std::string message;
  } cases[] = {
      {{.index_url = "pypi.example.com"}, "--pip-index-url: 'pypi.example.com' is not an index URL"},
      {{.extra_index_urls = {"ftp://x"}}, "--pip-extra-index-url: 'ftp://x' is not an index URL"},
      {{.find_links = {"wheels"}}, "--pip-find-links: 'wheels' is neither a URL nor an absolute path"},
      {{.find_links = {"/srv/my wheels"}}, "--pip-find-links: '/srv/my wheels' holds whitespace"},
      {{.trusted_hosts = {""}}, "--pip-trusted-host: empty value"},
      {{.index_url = "https://a/simple", .no_index = true},
       "--pip-no-index: pip would ignore --pip-index-url"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<v1::PipSettings> settings = PipSettingsFromFlags(c.flags);
    EXPECT_EQ(settings.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(settings.status().message()), HasSubstr(c.message));
  }
}

}  // namespace
}  // namespace drover::server
