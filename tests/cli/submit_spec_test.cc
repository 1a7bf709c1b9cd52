// ParseArgument, ParseOutputTarget, ParseJobSpecJson and ParseRunDuration: the pieces of
// `drover submit` that turn text into a JobSpec; the example job files parse.
#include "cli/submit_spec.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::cli {
namespace {

using ::testing::HasSubstr;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(ParseArrayFlagTest, IndicesAsWrittenAndTheLimitAfterPercent) {
  absl::StatusOr<v1::ArraySpec> array = ParseArrayFlag("0-999%50");
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->indices(), "0-999");
  EXPECT_EQ(array->max_running(), 50);
  array = ParseArrayFlag("1,3,7-9");
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->indices(), "1,3,7-9");
  EXPECT_EQ(array->max_running(), 0);
  array = ParseArrayFlag("0-99:5%1");
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->indices(), "0-99:5");
  EXPECT_EQ(array->max_running(), 1);
}

TEST(ParseArrayFlagTest, ABadLimitOrNoIndicesIsRefusedNamingTheFlag) {
  for (const char* text : {"0-9%0", "0-9%-1", "0-9%", "0-9%x", "0-9%1.5", "0-9%99999999999",
                           "0-9% 2", "%5", ""}) {
    absl::StatusOr<v1::ArraySpec> array = ParseArrayFlag(text);
    ASSERT_FALSE(array.ok()) << "'" << text << "' was accepted";
    EXPECT_EQ(array.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(array.status().message(), HasSubstr("--array")) << text;
  }
  EXPECT_THAT(ParseArrayFlag("0-9%0").status().message(), HasSubstr("N >= 1"));
}

TEST(ParseArgumentTest, PlainTextIsALiteralValue) {
  absl::StatusOr<v1::Argument> arg = ParseArgument("--lr=0.1");
  ASSERT_TRUE(arg.ok());
  EXPECT_EQ(arg->value(), "--lr=0.1");
}

TEST(ParseArgumentTest, DataReferenceDefaultsToReadOnlyMount) {
  absl::StatusOr<v1::Argument> arg = ParseArgument("ds://imagenet/train/part-1");
  ASSERT_TRUE(arg.ok()) << arg.status();
  ASSERT_TRUE(arg->has_data());
  EXPECT_EQ(arg->data().datastore(), "imagenet");
  EXPECT_EQ(arg->data().path(), "train/part-1");
  EXPECT_EQ(arg->data().mode(), v1::DataReference::MOUNT);
  EXPECT_FALSE(arg->data().read_write());
}

TEST(ParseArgumentTest, DataReferenceWithoutPathIsTheDatastoreRoot) {
  absl::StatusOr<v1::Argument> arg = ParseArgument("ds://scratch");
  ASSERT_TRUE(arg.ok()) << arg.status();
  EXPECT_EQ(arg->data().datastore(), "scratch");
  EXPECT_EQ(arg->data().path(), "");
}

TEST(ParseArgumentTest, QueryChoosesModeAndReadWrite) {
  absl::StatusOr<v1::Argument> download = ParseArgument("ds://d/x?mode=download");
  ASSERT_TRUE(download.ok());
  EXPECT_EQ(download->data().mode(), v1::DataReference::DOWNLOAD);
  EXPECT_EQ(download->data().path(), "x");

  absl::StatusOr<v1::Argument> upload = ParseArgument("ds://results/run1?mode=UPLOAD");
  ASSERT_TRUE(upload.ok());
  EXPECT_EQ(upload->data().mode(), v1::DataReference::UPLOAD);

  absl::StatusOr<v1::Argument> rw = ParseArgument("ds://scratch/tmp?mode=mount&rw=true");
  ASSERT_TRUE(rw.ok());
  EXPECT_EQ(rw->data().mode(), v1::DataReference::MOUNT);
  EXPECT_TRUE(rw->data().read_write());
}

TEST(ParseArgumentTest, BackslashEscapesALiteralDsUrl) {
  absl::StatusOr<v1::Argument> one = ParseArgument("\\ds://not/a/ref");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->value(), "ds://not/a/ref");
  absl::StatusOr<v1::Argument> two = ParseArgument("\\\\ds://x");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->value(), "\\ds://x");
  // A backslash before anything else stays.
  absl::StatusOr<v1::Argument> other = ParseArgument("\\n");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->value(), "\\n");
}

TEST(ParseArgumentTest, RejectsBadReferencesNamingTheArgument) {
  for (const char* bad : {"ds://", "ds:///path", "ds://d/x?mode=stream", "ds://d/x?ro=1",
                          "ds://d/x?mode=download&rw=true", "ds://d/x?rw=maybe"}) {
    absl::StatusOr<v1::Argument> arg = ParseArgument(bad);
    ASSERT_FALSE(arg.ok()) << bad;
    EXPECT_EQ(arg.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(arg.status().message(), HasSubstr(bad));
    EXPECT_THAT(arg.status().message(), HasSubstr("ds://DATASTORE/PATH"));
  }
}

TEST(FormatArgumentTest, RoundTripsThroughParseArgument) {
  for (const char* text : {"plain", "ds://d", "ds://d/a/b", "ds://d/x?mode=download",
                           "ds://d/x?mode=upload", "ds://d/x?rw=true", "\\ds://lit",
                           "\\\\ds://lit", "\\other"}) {
    absl::StatusOr<v1::Argument> arg = ParseArgument(text);
    ASSERT_TRUE(arg.ok()) << text;
    EXPECT_EQ(FormatArgument(*arg), text);
  }
}

TEST(ParseJobSpecJsonTest, AcceptsProtoAndJsonNamesAndLowercaseEnums) {
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"({
    "entry_script": "train.py",
    "nodeCount": 2,
    "process_count_per_node": 4,
    "distributed_backend": "pytorch",
    "environment": {"use_gpu": true, "pipPackages": ["torch==2.1.0"]},
    "resources": {"memory_mib": "16384"},
    "arguments": [{"value": "--lr"}, {"data": {"datastore": "d", "mode": "download"}}],
    "max_run_duration": "7200s"
  })");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->entry_script(), "train.py");
  EXPECT_EQ(spec->node_count(), 2);
  EXPECT_EQ(spec->process_count_per_node(), 4);
  EXPECT_EQ(spec->distributed_backend(), v1::JobSpec::PYTORCH);
  EXPECT_TRUE(spec->environment().use_gpu());
  EXPECT_EQ(spec->environment().pip_packages(0), "torch==2.1.0");
  EXPECT_EQ(spec->resources().memory_mib(), 16384);
  EXPECT_EQ(spec->arguments(1).data().mode(), v1::DataReference::DOWNLOAD);
  EXPECT_EQ(spec->max_run_duration().seconds(), 7200);
}

TEST(ParseJobSpecJsonTest, RejectsUnknownFieldsAndBadEnums) {
  EXPECT_FALSE(ParseJobSpecJson(R"({"entry_scrip": "x"})").ok());
  EXPECT_FALSE(ParseJobSpecJson(R"({"distributed_backend": "horovod"})").ok());
  EXPECT_FALSE(ParseJobSpecJson("not json").ok());
}

TEST(ParseJobSpecJsonTest, ArgumentsMayBeWrittenAsOnTheCommandLine) {
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(R"({
    "entry_script": "train.py",
    "arguments": ["--data", "ds://imagenet/train", "--cache", "ds://imagenet/idx?mode=download",
                  "ds://results/run1?mode=upload", "ds://scratch?mode=mount&rw=1",
                  {"data": {"datastore": "results", "path": "x", "mode": "download"}},
                  {"value": "ds://as-is"}, "\\ds://literal"],
    "resources": {"memory_mib": 262144}
  })");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->arguments_size(), 9);
  EXPECT_EQ(spec->arguments(0).value(), "--data");
  EXPECT_EQ(spec->arguments(1).data().datastore(), "imagenet");
  EXPECT_EQ(spec->arguments(1).data().path(), "train");
  EXPECT_EQ(spec->arguments(1).data().mode(), v1::DataReference::MOUNT);
  EXPECT_FALSE(spec->arguments(1).data().read_write());
  EXPECT_EQ(spec->arguments(3).data().mode(), v1::DataReference::DOWNLOAD);
  EXPECT_EQ(spec->arguments(4).data().mode(), v1::DataReference::UPLOAD);
  EXPECT_EQ(spec->arguments(5).data().datastore(), "scratch");
  EXPECT_TRUE(spec->arguments(5).data().read_write());
  EXPECT_EQ(spec->arguments(6).data().mode(), v1::DataReference::DOWNLOAD);
  EXPECT_EQ(spec->arguments(7).value(), "ds://as-is");
  EXPECT_EQ(spec->arguments(8).value(), "ds://literal");
  EXPECT_EQ(spec->resources().memory_mib(), 262144);
}

TEST(ParseJobSpecJsonTest, ABadDataReferenceStringNamesTheArgument) {
  absl::StatusOr<v1::JobSpec> spec =
      ParseJobSpecJson(R"({"entry_script": "t.py", "arguments": ["x", "ds://d/x?mode=stream"]})");
  ASSERT_FALSE(spec.ok());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(spec.status().message()),
              HasSubstr("arguments[1]: argument 'ds://d/x?mode=stream': mode 'stream' is not "
                        "one of mount, download, upload"));
  // Other errors stay the parser's.
  EXPECT_FALSE(ParseJobSpecJson(R"({"entry_scrip": "x", "arguments": ["ds://d"]})").ok());
}

TEST(ParseOutputTargetTest, DatastoreAndFolder) {
  absl::StatusOr<v1::OutputTarget> target = ParseOutputTarget("ds://results/resnet/run7");
  ASSERT_TRUE(target.ok()) << target.status();
  EXPECT_EQ(target->datastore(), "results");
  EXPECT_EQ(target->path(), "resnet/run7");
  for (const char* bad : {"results/run7", "ds://", "ds:///x", "ds://results", "ds://results/",
                          "ds://r/x?rw=true"}) {
    SCOPED_TRACE(bad);
    absl::StatusOr<v1::OutputTarget> refused = ParseOutputTarget(bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr("; write ds://DATASTORE/PATH (PATH: the folder in the datastore"));
  }
}

TEST(ParseJobSpecJsonTest, OutputsMayBeWrittenAsStrings) {
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(
      R"({"entry_script": "t.py", "outputs": ["ds://results/a", {"datastore": "b", "path": "c"}]})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->outputs_size(), 2);
  EXPECT_EQ(spec->outputs(0).datastore(), "results");
  EXPECT_EQ(spec->outputs(0).path(), "a");
  EXPECT_EQ(spec->outputs(1).datastore(), "b");
  spec = ParseJobSpecJson(R"({"entry_script": "t.py", "outputs": ["ds://results"]})");
  EXPECT_THAT(std::string(spec.status().message()),
              HasSubstr("outputs[0]: output target 'ds://results': no folder"));
}

// The job files in examples/jobs parse, and a datastore one of them needs is documented.
TEST(ParseJobSpecJsonTest, ExampleJobFilesParseAndTheirDatastoresAreDocumented) {
  std::string readme = ReadText(DROVER_SOURCE_DIR "/examples/jobs/README.md");
  for (const char* name : {"distributed-pytorch.json", "distributed-mpi.json", "mnist.json"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<v1::JobSpec> spec =
        ParseJobSpecJson(ReadText(absl::StrCat(DROVER_SOURCE_DIR "/examples/jobs/", name)));
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_THAT(readme, HasSubstr(absl::StrCat("`", name, "`")));
    for (const v1::Argument& argument : spec->arguments()) {
      if (!argument.has_data()) continue;
      EXPECT_THAT(readme, HasSubstr(absl::StrCat("drover datastore create ",
                                                 argument.data().datastore(), " ")));
    }
  }
}

TEST(ParseRunDurationTest, AcceptsCommonSpellings) {
  EXPECT_EQ(*ParseRunDuration("2h"), absl::Hours(2));
  EXPECT_EQ(*ParseRunDuration("90m"), absl::Minutes(90));
  EXPECT_EQ(*ParseRunDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseRunDuration("3d"), absl::Hours(72));
  EXPECT_EQ(*ParseRunDuration("0"), absl::ZeroDuration());
}

TEST(ParseRunDurationTest, RejectsNegativeAndUnreadable) {
  for (const char* bad : {"-1h", "soon", "2 hours", "", "inf"}) {
    EXPECT_FALSE(ParseRunDuration(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace drover::cli
