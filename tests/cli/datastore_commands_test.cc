// `drover datastore create|list|delete` against FakeDroverClient, and the pure parts of
// cli/datastore_commands.h.
#include "cli/datastore_commands.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

TEST_F(CliTest, DatastoreCreateRegistersAHostpathDatastore) {
  ASSERT_EQ(Run({"datastore", "create", "imagenet", "--type", "hostpath", "--path",
                 "/data/imagenet"}),
            0)
      << err();
  EXPECT_EQ(out(), "imagenet CREATED\n");
  EXPECT_EQ(err(), "");
  ASSERT_EQ(server_.datastore_puts.size(), 1u);
  const v1::PutDatastoreRequest& put = server_.datastore_puts[0];
  EXPECT_FALSE(put.replace());
  EXPECT_EQ(put.datastore().name(), "imagenet");
  EXPECT_EQ(put.datastore().type(), v1::Datastore::HOSTPATH);
  EXPECT_EQ(put.datastore().path(), "/data/imagenet");
  EXPECT_FALSE(put.datastore().allow_write());
  EXPECT_THAT(put.datastore().rclone_options(), IsEmpty());
}

TEST_F(CliTest, DatastoreCreateRcloneSetsOptionsAndMarksSecrets) {
  ASSERT_EQ(Run({"datastore", "create", "results", "--type", "RCLONE", "--option", "type=s3",
                 "--option", "endpoint=http://minio:9000", "--secret",
                 "secret_access_key=s3cr3t=x", "--path", "bucket/prefix", "--allow-write",
                 "-o", "json"}),
            0)
      << err();
  ASSERT_EQ(server_.datastore_puts.size(), 1u);
  const v1::Datastore& sent = server_.datastore_puts[0].datastore();
  EXPECT_EQ(sent.type(), v1::Datastore::RCLONE);
  EXPECT_EQ(sent.path(), "bucket/prefix");
  EXPECT_TRUE(sent.allow_write());
  EXPECT_THAT(sent.rclone_options(),
              UnorderedElementsAre(Pair("type", "s3"), Pair("endpoint", "http://minio:9000"),
                                   Pair("secret_access_key", "s3cr3t=x")));
  EXPECT_THAT(sent.secret_keys(), ElementsAre("secret_access_key"));
  // What droverd answers is printed: the credential masked.
  EXPECT_THAT(out(), HasSubstr("\"secret_access_key\": \"***\""));
  EXPECT_THAT(out(), Not(HasSubstr("s3cr3t")));
}

TEST_F(CliTest, DatastoreCreateReadsASecretWithoutValueFromStdin) {
  in_.str("from-stdin\n");
  ASSERT_EQ(Run({"datastore", "create", "results", "--type", "rclone", "--option", "type=s3",
                 "--secret", "secret_access_key", "--secret", "access_key_id=drover"}),
            0)
      << err();
  const v1::Datastore& sent = server_.datastore_puts[0].datastore();
  EXPECT_EQ(sent.rclone_options().at("secret_access_key"), "from-stdin");
  EXPECT_EQ(sent.rclone_options().at("access_key_id"), "drover");
  EXPECT_THAT(sent.secret_keys(), UnorderedElementsAre("secret_access_key", "access_key_id"));
}

TEST_F(CliTest, DatastoreCreateRefusesATakenNameUnlessReplace) {
  ASSERT_EQ(Run({"datastore", "create", "data", "--type", "hostpath", "--path", "/data/a"}), 0);
  EXPECT_EQ(Run({"datastore", "create", "data", "--type", "hostpath", "--path", "/data/b"}), 5);
  ExpectOneErrorLine(
      "datastore 'data' already exists (hostpath /data/a, read-only); pass --replace to change "
      "it");
  EXPECT_EQ(server_.datastores[0].path(), "/data/a");
  ASSERT_EQ(Run({"datastore", "create", "data", "--type", "hostpath", "--path", "/data/b",
                 "--replace", "--allow-write"}),
            0)
      << err();
  EXPECT_EQ(out(), "data REPLACED\n");
  EXPECT_TRUE(server_.datastore_puts.back().replace());
  EXPECT_EQ(server_.datastores[0].path(), "/data/b");
  EXPECT_TRUE(server_.datastores[0].allow_write());
}

TEST_F(CliTest, DatastoreCreateChecksItsFlagsBeforeContactingDroverd) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"datastore", "create", "--type", "hostpath", "--path", "/d"},
            "missing NAME; usage: drover datastore create NAME"},
           {{"datastore", "create", "Data", "--type", "hostpath", "--path", "/d"},
            "NAME: 'Data' is not a datastore name; use 1-63 characters of [a-z0-9_-]"},
           {{"datastore", "create", "data", "--path", "/d"},
            "--type: required; use --type hostpath (a folder on every node) or --type rclone"},
           {{"datastore", "create", "data", "--type", "nfs", "--path", "/d"},
            "--type: 'nfs' is not a type"},
           {{"datastore", "create", "data", "--type", "hostpath"},
            "--path: required with --type hostpath"},
           {{"datastore", "create", "data", "--type", "hostpath", "--path", "/d", "--option",
             "type=s3"},
            "--option: applies to --type rclone only"},
           {{"datastore", "create", "s3", "--type", "rclone", "--option", "endpoint=http://x"},
            "--option type=...: required with --type rclone"},
           {{"datastore", "create", "s3", "--type", "rclone", "--option", "type"},
            "--option: 'type' is not KEY=VALUE"},
           {{"datastore", "create", "s3", "--type", "rclone", "--option", "=s3"},
            "--option: '=s3' has no key"},
           {{"datastore", "create", "s3", "--type", "rclone", "--option", "type=s3",
             "--option", "key=a", "--secret", "key=b"},
            "--secret: 'key' is given twice"},
           {{"datastore", "create", "s3", "--type", "rclone", "--option", "type=s3",
             "--secret", "a", "--secret", "b"},
            "only one --secret may read its value from stdin"},
           {{"datastore", "create", "s3", "--type", "rclone", "--option", "type=s3",
             "--secret", "secret_access_key"},
            "--secret secret_access_key: no value given and stdin is empty"},
       }) {
    EXPECT_EQ(Run(c.args), 2) << c.message;
    ExpectOneErrorLine(c.message);
  }
  EXPECT_THAT(server_.connects, IsEmpty());
}

TEST_F(CliTest, DatastoreCreateReportsDroverdRefusingTheDatastore) {
  server_.errors.push_back(absl::OkStatus());  // ListDatastores
  server_.errors.push_back(absl::InvalidArgumentError(
      "datastore.path: 'data' is not absolute; give the folder's full path on the nodes"));
  EXPECT_EQ(Run({"datastore", "create", "data", "--type", "hostpath", "--path", "data"}), 3);
  ExpectOneErrorLine("datastore.path: 'data' is not absolute");
}

TEST_F(CliTest, DatastoreListPrintsATableWithMaskedCredentialsOrJson) {
  ASSERT_EQ(Run({"datastore", "list"}), 0) << err();
  EXPECT_EQ(out(), "NAME  TYPE  PATH  ACCESS  OPTIONS  CREATED\n");
  v1::Datastore& imagenet = server_.datastores.emplace_back();
  imagenet.set_name("imagenet");
  imagenet.set_type(v1::Datastore::HOSTPATH);
  imagenet.set_path("/data/imagenet");
  imagenet.mutable_create_time()->set_seconds(1'000'100 - 7200);
  v1::Datastore& results = server_.datastores.emplace_back();
  results.set_name("results");
  results.set_type(v1::Datastore::RCLONE);
  results.set_allow_write(true);
  (*results.mutable_rclone_options())["type"] = "s3";
  (*results.mutable_rclone_options())["secret_access_key"] = "s3cr3t";
  results.add_secret_keys("secret_access_key");
  results.mutable_create_time()->set_seconds(1'000'100 - 300);
  ASSERT_EQ(Run({"datastore", "list"}), 0) << err();
  EXPECT_EQ(out(),
            "NAME      TYPE      PATH            ACCESS      OPTIONS                        "
            "CREATED\n"
            "imagenet  hostpath  /data/imagenet  read-only   -                              "
            "2h ago\n"
            "results   rclone    -               read-write  type=s3,secret_access_key=***  "
            "5m ago\n");
  ASSERT_EQ(Run({"datastore", "list", "-o", "json"}), 0) << err();
  EXPECT_THAT(out(), StartsWith("[\n{\"name\":\"imagenet\",\"type\":\"HOSTPATH\""));
  EXPECT_THAT(out(), Not(HasSubstr("s3cr3t")));
}

TEST_F(CliTest, DatastoreDeleteRemovesItAndUnknownNamesExit4) {
  server_.datastores.emplace_back().set_name("imagenet");
  ASSERT_EQ(Run({"datastore", "delete", "imagenet"}), 0) << err();
  EXPECT_EQ(out(), "imagenet DELETED\n");
  EXPECT_THAT(server_.datastores, IsEmpty());
  EXPECT_EQ(Run({"datastore", "delete", "imagenet"}), 4);
  ExpectOneErrorLine("datastore 'imagenet' is not registered; see drover datastore list");
  EXPECT_EQ(Run({"datastore", "delete"}), 2);
  ExpectOneErrorLine("missing NAME; usage: drover datastore delete NAME");
  EXPECT_EQ(Run({"datastore", "mount"}), 2);
  ExpectOneErrorLine("unknown action 'mount' for drover datastore; use create, list or delete");
}

TEST_F(CliTest, DatastoreHelpShowsTheFlagsAndTheDsSyntaxIsInSubmitsHelp) {
  ASSERT_EQ(Run({"datastore", "create", "--help"}), 0);
  EXPECT_THAT(out(), StartsWith("Usage: drover datastore create [flags] NAME"));
  for (const char* flag : {"--type", "--path", "--option", "--secret", "--allow-write",
                           "--replace", "Examples:", "Exit codes:"}) {
    EXPECT_THAT(out(), HasSubstr(flag));
  }
  ASSERT_EQ(Run({"help", "datastore", "list"}), 0);
  EXPECT_THAT(out(), StartsWith("Usage: drover datastore list"));
  ASSERT_EQ(Run({"datastore", "delete", "-h"}), 0);
  EXPECT_THAT(out(), StartsWith("Usage: drover datastore delete"));
  ASSERT_EQ(Run({"submit", "--help"}), 0);
  EXPECT_THAT(out(), HasSubstr("ds://DATASTORE/PATH"));
  EXPECT_THAT(server_.connects, IsEmpty());
}

TEST(DescribeDatastoreTest, NamesTypeWhereAndAccess) {
  v1::Datastore datastore;
  datastore.set_type(v1::Datastore::RCLONE);
  datastore.set_path("bucket/x");
  datastore.set_allow_write(true);
  (*datastore.mutable_rclone_options())["type"] = "s3";
  EXPECT_EQ(DescribeDatastore(datastore), "rclone s3:bucket/x, read-write");
}

}  // namespace
}  // namespace drover::cli
