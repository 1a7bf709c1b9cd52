// The built `drover` binary against a real droverd, for jobs: submit (sources, spec files,
// idempotency), list, show, logs, watch, cancel, download; what a user sees on stdout,
// stderr and in exit codes. The fixture is cli_e2e_fixture.h.
#include "tests/cli/cli_e2e_fixture.h"

namespace drover::cli {
namespace {

TEST_F(CliE2eTest, LogsOfAQueuedJobPrintsNothingAndExits0) {
  std::string id = Submit({"train.py"});
  CommandResult r = Drover({"logs", id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, IsEmpty());
  EXPECT_THAT(r.err, IsEmpty());
  r = Drover({"logs", "j-999"});
  EXPECT_EQ(r.exit_code, 4);
}

TEST_F(CliE2eTest, SubmitSourceUploadsASnapshotOnlyOnce) {
  std::string src = dir_.path() + "/project";
  std::filesystem::create_directories(src + "/data");
  std::ofstream(src + "/train.py") << "print('hello')\n";
  std::ofstream(src + "/data/big.bin") << std::string(3'000'000, 'b');
  std::ofstream(src + "/.droverignore") << "*.ckpt\n";
  std::ofstream(src + "/old.ckpt") << "ignored";

  CommandResult first = Drover({"submit", "--source", src, "train.py"});
  ASSERT_EQ(first.exit_code, 0) << first.err << "\ndroverd log:\n" << droverd_->ReadLog();
  EXPECT_THAT(first.out, MatchesRegex("j-[0-9]+\n"));
  EXPECT_THAT(first.err, HasSubstr("1 path ignored (rules from .droverignore)"));
  EXPECT_THAT(first.err, HasSubstr("data/big.bin"));
  EXPECT_THAT(first.err, HasSubstr("uploading snapshot sha256:"));

  CommandResult second = Drover({"submit", "--source", src, "train.py"});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_THAT(second.err, HasSubstr("already on droverd; nothing to upload"));
  EXPECT_THAT(second.err, Not(HasSubstr("uploading")));

  v1::Job job = ParseJob(Drover({"show", std::string(absl::StripTrailingAsciiWhitespace(second.out)),
                                 "-o", "json"}).out);
  const std::string& digest = job.spec().source_snapshot();
  EXPECT_THAT(digest, MatchesRegex("sha256:[0-9a-f]{64}"));
  EXPECT_THAT(first.err, HasSubstr(absl::StrCat("uploading snapshot ", digest)));

  auto blobs = v1::BlobService::NewStub(
      testing::TlsChannel(droverd_->address()));
  grpc::ClientContext context;
  v1::StatBlobRequest stat;
  stat.set_digest(digest);
  v1::StatBlobResponse present;
  ASSERT_TRUE(blobs->StatBlob(&context, stat, &present).ok());
  EXPECT_TRUE(present.present());
  EXPECT_GT(present.size(), 3'000'000);
}

TEST_F(CliE2eTest, LogsShowEveryRankAndFollowEndsWithTheJob) {
  ScriptedAgent agent(droverd_->address(), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit({"--processes-per-node", "2", "train.py"});
  agent.Run(id);
  WaitFor(id, v1::JobStatus::RUNNING);

  CommandResult followed;
  std::thread follower([&] { followed = Drover({"logs", "-f", id}); });
  agent.Log(id, 0, v1::STDOUT, 0, "hel");
  agent.Log(id, 0, v1::STDOUT, 3, "lo\nwor");
  agent.Log(id, 1, v1::STDERR, 0, "oops\n");
  agent.Log(id, 0, v1::STDOUT, 9, "ld\n");

  CommandResult r = Drover({"logs", id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "[rank 0] hello\n[rank 0] world\n");
  EXPECT_EQ(r.err, "[rank 1] oops\n");
  r = Drover({"logs", id, "--rank", "0", "--stdout"});
  EXPECT_EQ(r.out, "hello\nworld\n");
  EXPECT_THAT(r.err, IsEmpty());

  r = Drover({"nodes"});
  ASSERT_EQ(Lines(r.out).size(), 2u) << r.out;
  EXPECT_THAT(Lines(r.out)[1], MatchesRegex(absl::StrCat(
                                   "n1 +READY +1/4 +[0-9.]+[MG]i/8Gi +- +", id, " +pool=cpu +[0-9]+s")));

  agent.Report(id, v1::AttemptReport::ENDED, {{0, 0}, {1, 3}});
  follower.join();
  EXPECT_EQ(followed.exit_code, 10) << followed.err;
  EXPECT_EQ(followed.out, "[rank 0] hello\n[rank 0] world\n");
  EXPECT_EQ(followed.err, absl::StrCat("[rank 1] oops\n", id,
                                       " FAILED: rank 1 on n1 exited with code 3\n"
                                       "  rank 1 on n1 exited with code 3\n"
                                       "  the other rank exited with code 0\n"));
}

TEST_F(CliE2eTest, DownloadFetchesTheOutputsByteForByte) {
  // What a job wrote to its outputs folder, archived and uploaded as the agent does.
  std::string outputs = dir_.path() + "/outputs";
  std::filesystem::create_directories(outputs + "/checkpoints");
  std::string weights(1'500'000, '\0');
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<char>(i * 7919 % 251);
  std::ofstream(outputs + "/checkpoints/model.pt", std::ios::binary) << weights;
  std::ofstream(outputs + "/metrics.csv") << "epoch,loss\n1,0.25\n";
  archive::SnapshotOptions options;
  options.use_ignore_files = false;
  options.output_path = dir_.path() + "/outputs.tar";
  absl::StatusOr<archive::Snapshot> tar = archive::BuildSnapshot(outputs, options);
  ASSERT_TRUE(tar.ok()) << tar.status();
  {
    auto blobs = v1::BlobService::NewStub(
        testing::TlsChannel(droverd_->address()));
    grpc::ClientContext context;
    v1::UploadBlobResponse response;
    auto writer = blobs->UploadBlob(&context, &response);
    v1::UploadBlobRequest message;
    message.mutable_header()->set_digest(tar->digest);
    message.mutable_header()->set_size(static_cast<int64_t>(tar->tar_bytes));
    ASSERT_TRUE(writer->Write(message));
    std::string bytes = ReadFile(tar->tar_path);
    for (size_t offset = 0; offset < bytes.size(); offset += 1 << 20) {
      message.set_chunk(bytes.substr(offset, 1 << 20));
      ASSERT_TRUE(writer->Write(message));
    }
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  ScriptedAgent agent(droverd_->address(), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit({"train.py"});
  std::string dest = dir_.path() + "/fetched";
  agent.Run(id);
  WaitFor(id, v1::JobStatus::RUNNING);
  CommandResult r = Drover({"download", id, "--dest", dest});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.err, absl::StrCat("drover: ", id, " is RUNNING; its outputs are uploaded when it ends ",
                                "('drover watch ", id, "' waits for that)\n"));

  agent.Report(id, v1::AttemptReport::FINALIZING);
  agent.Report(id, v1::AttemptReport::ENDED, {{0, 0}}, tar->digest,
               static_cast<int64_t>(tar->tar_bytes));
  WaitFor(id, v1::JobStatus::COMPLETED);
  r = Drover({"download", id, "--dest", dest});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat("wrote 2 files (1.4 MiB) to ", dest, "\n"));
  EXPECT_EQ(ReadFile(dest + "/checkpoints/model.pt"), weights);
  EXPECT_EQ(ReadFile(dest + "/metrics.csv"), "epoch,loss\n1,0.25\n");

  r = Drover({"download", id, "--dest", dest});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("already exists; remove it, or name a new folder with --dest"));
}

TEST_F(CliE2eTest, SubmitPrintsOnlyTheNewJobId) {
  CommandResult r = Drover({"submit", "--name", "mnist", "train.py", "--epochs", "3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, MatchesRegex("j-[0-9]+\n"));
  EXPECT_THAT(r.err, IsEmpty());
}

TEST_F(CliE2eTest, ListShowsJobsNewestFirstInAlignedColumns) {
  std::string first = Submit({"--name", "a", "train.py"});
  std::string second = Submit({"--name", "a-much-longer-job-name", "--experiment", "vision",
                               "--nodes", "2", "--processes-per-node", "4", "--backend", "mpi",
                               "train.py"});
  std::string third = Submit({"--name", "c", "train.py"});

  CommandResult r = Drover({"list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << r.out;
  const std::string& header = lines[0];
  EXPECT_THAT(header, MatchesRegex("ID +NAME +EXPERIMENT +STATE +REASON +NODES +AGE"));
  EXPECT_THAT(lines[1], StartsWith(third + " "));
  EXPECT_THAT(lines[2], StartsWith(second + " "));
  EXPECT_THAT(lines[3], StartsWith(first + " "));
  // Every column starts at its header's offset on every row.
  size_t name_col = header.find("NAME");
  size_t state_col = header.find("STATE");
  size_t nodes_col = header.find("NODES");
  EXPECT_EQ(lines[2].substr(name_col, 22), "a-much-longer-job-name");
  EXPECT_EQ(lines[2].substr(nodes_col, 4), "2x4 ");
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].substr(state_col, 6), "QUEUED") << lines[i];
    EXPECT_NE(lines[i].back(), ' ');
  }
  EXPECT_THAT(lines[2], HasSubstr("vision"));
  EXPECT_THAT(lines[1], MatchesRegex(".* [0-9]+s"));
}

TEST_F(CliE2eTest, ListFiltersAndJsonOutput) {
  std::string a = Submit({"--experiment", "one", "--tag", "team=cv", "train.py"});
  std::string b = Submit({"--experiment", "two", "train.py"});
  CommandResult r = Drover({"list", "--experiment", "one", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("\"id\":\"", a, "\"")));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr(absl::StrCat("\"id\":\"", b, "\""))));
  EXPECT_THAT(r.out, StartsWith("["));

  r = Drover({"list", "--tag", "team=cv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(a + " "));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr(b + " ")));

  r = Drover({"list", "--state", "canceled"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 1u) << r.out;  // the header only
}

TEST_F(CliE2eTest, ListLimitAndAllFollowPages) {
  for (int i = 0; i < 5; ++i) Submit({"train.py"});
  CommandResult r = Drover({"list", "--limit", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(r.out, '\n', absl::SkipEmpty())).size(), 3u);
  r = Drover({"list", "--all"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(r.out, '\n', absl::SkipEmpty())).size(), 6u);
}

TEST_F(CliE2eTest, ShowJsonRoundTripsTheSubmittedJob) {
  CommandResult created =
      Drover({"datastore", "create", "corpus", "--type", "hostpath", "--path", "/data/corpus"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  CommandResult submitted = Drover(
      {"submit", "--output", "json", "--name", "bert", "--tag", "team=nlp", "--env", "SEED=7",
       "--pip", "torch==2.1.0", "--memory", "16Gi", "--max-run-duration", "2h", "train.py",
       "--lr", "0.1", "ds://corpus/wiki?mode=download"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  v1::Job job = ParseJob(submitted.out);
  ASSERT_THAT(job.id(), StartsWith("j-"));

  CommandResult shown = Drover({"show", job.id(), "--output", "json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("\"entry_script\""));  // proto field names
  v1::Job again = ParseJob(shown.out);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(job, again))
      << job.DebugString() << "\n----\n" << again.DebugString();
  EXPECT_EQ(again.spec().resources().memory_mib(), 16384);
  EXPECT_EQ(again.spec().max_run_duration().seconds(), 7200);
  ASSERT_EQ(again.spec().arguments_size(), 3);
  EXPECT_EQ(again.spec().arguments(2).data().datastore(), "corpus");
  EXPECT_EQ(again.spec().arguments(2).data().mode(), v1::DataReference::DOWNLOAD);

  CommandResult page = Drover({"show", job.id()});
  ASSERT_EQ(page.exit_code, 0) << page.err;
  EXPECT_THAT(page.out, HasSubstr(absl::StrCat("id:         ", job.id(), "\n")));
  EXPECT_THAT(page.out, HasSubstr("name:       bert\n"));
  EXPECT_THAT(page.out, HasSubstr("state:"));
  EXPECT_THAT(page.out, HasSubstr("ds://corpus/wiki?mode=download"));
  EXPECT_THAT(page.out, HasSubstr("memory: 16Gi"));
}

TEST_F(CliE2eTest, SpecFileWithLowercaseEnumsAndFlagOverrides) {
  std::string path = WriteFile("job.json", R"({
    "name": "from-file",
    "entry_script": "train.py",
    "nodeCount": 2,
    "process_count_per_node": 2,
    "distributed_backend": "pytorch",
    "arguments": [{"value": "--epochs"}, {"value": "5"}]
  })");
  CommandResult r = Drover({"submit", "-f", path, "--name", "from-flag", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::Job job = ParseJob(r.out);
  EXPECT_EQ(job.spec().name(), "from-flag");
  EXPECT_EQ(job.spec().node_count(), 2);
  EXPECT_EQ(job.spec().distributed_backend(), v1::JobSpec::PYTORCH);
  EXPECT_EQ(job.spec().arguments_size(), 2);
}

TEST_F(CliE2eTest, CancelOfAQueuedJobCancelsAndASecondCancelSucceeds) {
  std::string id = Submit({"train.py"});
  CommandResult r = Drover({"cancel", id, "--reason", "wrong data"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(id, " CANCELED\n"));
  r = Drover({"cancel", id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(id, " CANCELED\n"));
}

TEST_F(CliE2eTest, TagChangesTheTagsThatShowAndListSee) {
  std::string id = Submit({"--tag", "stage=draft", "train.py"});
  CommandResult r = Drover({"tag", id, "stage=final", "lr=0.01"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(id, " lr=0.01 stage=final\n"));
  r = Drover({"list", "--tag", "stage=final", "--output", "json"});
  EXPECT_THAT(r.out, HasSubstr(id));
  r = Drover({"tag", id, "--remove", "stage"});
  EXPECT_EQ(r.out, absl::StrCat(id, " lr=0.01\n"));
  r = Drover({"tag", id, "bad key=x"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "drover: tags['bad key']: 'bad key' has the character ' ' outside "
                   "[A-Za-z0-9._/-]; use 1-63 characters of [A-Za-z0-9._/-] starting with a "
                   "letter or digit\n");
  r = Drover({"tag", "j-999999", "a=b"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
}

TEST_F(CliE2eTest, WatchOfACanceledJobExits11) {
  std::string id = Submit({"train.py"});
  ASSERT_EQ(Drover({"cancel", id}).exit_code, 0);
  CommandResult r = Drover({"watch", id});
  EXPECT_EQ(r.exit_code, 11) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines.back(), MatchesRegex(absl::StrCat("[0-9T:+-]+ ", id, " CANCELED.*")));

  r = Drover({"watch", id, "--output", "json"});
  EXPECT_EQ(r.exit_code, 11) << r.err;
  EXPECT_EQ(ParseJob(std::string(absl::StripTrailingAsciiWhitespace(r.out))).status().state(),
            v1::JobStatus::CANCELED);
}

TEST_F(CliE2eTest, WatchFollowsAJobThroughDroverdRestarts) {
  // droverd is killed and started again twice while `drover watch` runs: each time the
  // watch reconnects (a new TLS handshake, driven while the CLI pauses between retries)
  // and in the end reports how the job ended.
  std::string id = Submit({"train.py"});
  const std::string printed = dir_.path() + "/watch.out";
  // Its lines go to a file, to be read while it runs.
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec \"$@\" >\"$0\"", printed,
                                   testing::ProgramPath("DROVER_CLI", DROVER_CLI_PATH),
                                   "--server", droverd_->address(), "watch", id};
  std::vector<std::string> env = {"DROVER_SERVER=", "DROVER_CA=" + droverd_->ca_file()};
  absl::StatusOr<CommandResult> watch;
  std::thread watcher([&] { watch = testing::RunCommand(argv, env); });
  // The watch saw the job before droverd goes away.
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!absl::StrContains(ReadFile(printed), "QUEUED") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT(ReadFile(printed), HasSubstr("QUEUED"));
  const std::string address = droverd_->address();
  for (int restart = 0; restart < 2; ++restart) {
    droverd_->Signal(SIGKILL);
    ASSERT_TRUE(droverd_->Wait(absl::Seconds(20)).ok());
    droverd_.reset();
    absl::SleepFor(absl::Seconds(1));
    auto droverd = testing::DroverdProcess::Start(
        dir_.path() + "/state", {"--listen", address, "--datastore-root", "/data"});
    ASSERT_TRUE(droverd.ok()) << droverd.status();
    droverd_ = *std::move(droverd);
    absl::SleepFor(absl::Seconds(2));
  }
  CommandResult cancel = Drover({"cancel", id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  watcher.join();
  ASSERT_TRUE(watch.ok()) << watch.status();
  EXPECT_EQ(watch->exit_code, 11) << watch->err << "\nprinted:\n" << ReadFile(printed);
  std::vector<std::string> lines = Lines(ReadFile(printed));
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines.back(), MatchesRegex(absl::StrCat("[0-9T:+-]+ ", id, " CANCELED.*")));
}

TEST_F(CliE2eTest, InvalidSpecExits3WithOneLineNamingTheField) {
  CommandResult r = Drover({"submit", "--nodes", "5000", "--backend", "mpi", "train.py"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "drover: spec.node_count: 5000 is out of range; use 1 to 1024\n");
  EXPECT_THAT(r.out, IsEmpty());
  r = Drover({"list"});
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(r.out, '\n', absl::SkipEmpty())).size(), 1u);
}

TEST_F(CliE2eTest, UnknownJobExits4) {
  for (const char* command : {"show", "cancel", "watch"}) {
    CommandResult r = Drover({command, "j-999999"});
    EXPECT_EQ(r.exit_code, 4) << command << ": " << r.err;
    EXPECT_THAT(r.err, StartsWith("drover: "));
    EXPECT_THAT(r.err, HasSubstr("j-999999"));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST_F(CliE2eTest, SameIdempotencyKeyGivesTheSameJob) {
  std::string a = Submit({"--idempotency-key", "run-2024-01", "train.py"});
  std::string b = Submit({"--idempotency-key", "run-2024-01", "train.py"});
  EXPECT_EQ(a, b);
  CommandResult r = Drover({"submit", "--idempotency-key", "run-2024-01", "other.py"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
}

}  // namespace
}  // namespace drover::cli
