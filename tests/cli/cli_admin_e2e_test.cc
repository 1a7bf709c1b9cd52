// The built `drover` binary against a real droverd, for the cluster: nodes, targets,
// datastores, node administration, every command's --help, reaching the server (an
// unreachable one, $DROVER_SERVER). The fixture is cli_e2e_fixture.h.
#include "tests/cli/cli_e2e_fixture.h"

namespace drover::cli {
namespace {

TEST_F(CliE2eTest, NodesOnAnEmptyClusterPrintsTheHeaderOnly) {
  CommandResult r = Drover({"nodes"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "NAME  STATE  CPUS  MEMORY  GPUS  JOBS  LABELS  LAST SEEN\n");
  EXPECT_THAT(r.err, IsEmpty());
  r = Drover({"nodes", "-o", "json"});
  EXPECT_EQ(r.out, "[]\n");
}

TEST_F(CliE2eTest, TargetCreateListDeleteRoundTrip) {
  CommandResult r = Drover({"target", "create", "gpu", "--selector", "acc=a100", "--max-nodes", "4"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "gpu CREATED\n");
  r = Drover({"target", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "NAME     SELECTOR      MAX NODES\n"
            "default  (every node)  no limit\n"
            "gpu      acc=a100      4\n");
  // A job can name it now.
  Submit({"--target", "gpu", "train.py"});

  r = Drover({"target", "create", "gpu", "--selector", "acc=h100"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.err, "drover: compute target 'gpu' already exists (selector acc=a100, max 4 nodes); "
                   "pass --replace to change it\n");
  r = Drover({"target", "create", "gpu", "--selector", "acc=h100", "--replace"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "gpu REPLACED\n");

  r = Drover({"target", "delete", "gpu"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "gpu DELETED\n");
  r = Drover({"target", "list", "-o", "json"});
  EXPECT_EQ(r.out, "[\n{\"name\":\"default\"}\n]\n");
}

TEST_F(CliE2eTest, TargetErrorsExitByWhatWentWrong) {
  CommandResult r = Drover({"target", "delete", "default"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.err, "drover: the default target cannot be deleted\n");
  r = Drover({"target", "delete", "nope"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.err, "drover: compute target 'nope' does not exist; see drover target list\n");
  r = Drover({"target", "create", "Bad_Name"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("target.name: 'Bad_Name' is not valid"));
  r = Drover({"target", "create", "default", "--selector", "a=b"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_THAT(r.err, HasSubstr("the default target always selects every node"));
}

TEST_F(CliE2eTest, DatastoreCreateListSubmitDeleteRoundTrip) {
  CommandResult r = Drover({"datastore", "create", "imagenet", "--type", "hostpath", "--path",
                            "/data/imagenet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "imagenet CREATED\n");
  r = Drover({"datastore", "create", "results", "--type", "rclone", "--option", "type=s3",
              "--option", "endpoint=http://minio:9000", "--secret", "secret_access_key",
              "--path", "bucket/runs", "--allow-write"},
             {}, true, "s3cr3t\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "results CREATED\n");

  r = Drover({"datastore", "list"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_THAT(lines[0], StartsWith("NAME      TYPE      PATH            ACCESS      OPTIONS"));
  EXPECT_THAT(lines[1], StartsWith("imagenet  hostpath  /data/imagenet  read-only   -"));
  EXPECT_THAT(lines[2], StartsWith("results   rclone    bucket/runs     read-write  "
                                   "type=s3,endpoint=http://minio:9000,secret_access_key=***"));
  r = Drover({"datastore", "list", "-o", "json"});
  EXPECT_THAT(r.out, HasSubstr("\"secret_access_key\":\"***\""));
  EXPECT_THAT(r.out, Not(HasSubstr("s3cr3t")));
  EXPECT_THAT(droverd_->ReadLog(), Not(HasSubstr("s3cr3t")));

  // Jobs can refer to them now; unknown names and writes to read-only ones are refused.
  Submit({"train.py", "--data", "ds://imagenet/train", "ds://results/run1?mode=upload"});
  r = Drover({"submit", "train.py", "ds://imagnet/train"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err,
            "drover: spec.arguments[0].data.datastore: 'imagnet' is not a registered datastore; "
            "drover datastore list shows them\n");
  r = Drover({"submit", "train.py", "ds://imagenet/out?mode=upload"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_THAT(r.err, StartsWith("drover: spec.arguments[0].data: datastore 'imagenet' is "
                                "read-only, so the job cannot upload to it; an administrator "
                                "can allow writes"));
  // So are output targets.
  Submit({"--outputs-to", "ds://results/run1", "train.py"});
  r = Drover({"submit", "--outputs-to", "ds://reslts/run1", "train.py"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err,
            "drover: spec.outputs[0].datastore: 'reslts' is not a registered datastore; "
            "drover datastore list shows them\n");
  r = Drover({"submit", "--outputs-to", "ds://imagenet/run1", "train.py"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_THAT(r.err, StartsWith("drover: spec.outputs[0]: datastore 'imagenet' is read-only, so "
                                "the job cannot upload its outputs to it"));

  r = Drover({"datastore", "create", "imagenet", "--type", "hostpath", "--path", "/data/x"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.err, "drover: datastore 'imagenet' already exists (hostpath /data/imagenet, "
                   "read-only); pass --replace to change it\n");
  r = Drover({"datastore", "create", "imagenet", "--type", "hostpath", "--path", "data/x"});
  EXPECT_EQ(r.exit_code, 5);
  r = Drover({"datastore", "create", "scratch", "--type", "hostpath", "--path", "data/x"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, StartsWith("drover: datastore.path: 'data/x' is not absolute"));
  // Only below droverd's --datastore-root (/data here), never a system folder.
  r = Drover({"datastore", "create", "etc", "--type", "hostpath", "--path", "/etc",
              "--allow-write"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, StartsWith("drover: datastore.path: '/etc' is in /etc, which is never part "
                                "of a datastore"));
  r = Drover({"datastore", "create", "home", "--type", "hostpath", "--path", "/home/alice"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("'/home/alice' is not below an allowed datastore root (/data)"));
  r = Drover({"datastore", "create", "cmd", "--type", "rclone", "--option", "type=webdav",
              "--option", "url=http://h", "--option", "bearer_token_command=touch /tmp/x"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("rclone_options['bearer_token_command']: would make rclone run"));

  r = Drover({"datastore", "delete", "imagenet"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "imagenet DELETED\n");
  r = Drover({"datastore", "delete", "imagenet"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.err, "drover: datastore 'imagenet' is not registered; see drover datastore list\n");
}

TEST_F(CliE2eTest, NodeCordonOfAnUnknownNodeExits4WithAReadableMessage) {
  for (const char* action : {"cordon", "uncordon", "drain"}) {
    CommandResult r = Drover({"node", action, "n9"});
    EXPECT_EQ(r.exit_code, 4) << action;
    EXPECT_EQ(r.err, "drover: node 'n9' is not known; see drover nodes\n") << action;
    EXPECT_THAT(r.out, IsEmpty());
  }
}

TEST_F(CliE2eTest, NodeAdministrationChangesTheListedState) {
  ScriptedAgent agent(droverd_->address(), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  CommandResult r = Drover({"node", "cordon", "n1", "--reason", "disk check"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "n1 CORDONED\n");
  EXPECT_THAT(Drover({"nodes"}).out, HasSubstr("n1    CORDONED"));
  r = Drover({"node", "drain", "n1"});
  EXPECT_EQ(r.out, "n1 CORDONED\n");  // nothing runs there, so draining is done at once
  r = Drover({"node", "uncordon", "n1", "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"state\": \"READY\""));
}

TEST_F(CliE2eTest, UnreachableServerExits6WithAReadableLine) {
  // Port 1 on loopback: nothing listens there, so the connection is refused.
  CommandResult r = Drover({"--server", "127.0.0.1:1", "list"}, {}, /*with_server=*/false);
  EXPECT_EQ(r.exit_code, 6);
  EXPECT_EQ(r.err,
            "drover: cannot reach droverd at 127.0.0.1:1 (connection refused); is it running? "
            "set --server or DROVER_SERVER\n");
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(CliE2eTest, DroverServerVariableNamesTheServer) {
  std::string id = Submit({"train.py"});
  CommandResult r =
      Drover({"show", id}, {absl::StrCat("DROVER_SERVER=", droverd_->address())}, /*with_server=*/false);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(id));
}

TEST_F(CliE2eTest, HelpOfEveryCommandExits0AndListsItsFlags) {
  struct Case {
    std::string command;
    std::vector<std::string> flags;
  } cases[] = {
      {"submit", {"--file", "--name", "--experiment", "--tag", "--target", "--image", "--pip",
                  "--conda", "--env", "--gpu", "--horovod", "--nodes", "--processes-per-node", "--backend",
                  "--cpus", "--memory", "--gpus", "--shm", "--max-run-duration", "--priority",
                  "--max-retries", "--snapshot", "--idempotency-key", "--watch"}},
      {"list", {"--state", "--experiment", "--tag", "--limit", "--all"}},
      {"show", {"--output"}},
      {"cancel", {"--reason"}},
      {"watch", {"--output"}},
      {"logs", {"--follow", "--rank", "--stderr", "--stdout", "--all-streams", "--attempt"}},
      {"download", {"--dest"}},
      {"nodes", {}},
      {"node", {"cordon", "uncordon", "drain"}},
      {"target", {"create", "list", "delete"}},
      {"datastore", {"create", "list", "delete"}},
      {"help", {}},
      {"version", {}},
  };
  for (const Case& c : cases) {
    CommandResult r = Drover({c.command, "--help"}, {}, /*with_server=*/false);
    EXPECT_EQ(r.exit_code, 0) << c.command << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("Usage: drover")) << c.command;
    for (const std::string& flag : c.flags) EXPECT_THAT(r.out, HasSubstr(flag)) << c.command;
    for (const char* global : {"--server", "--output", "--timeout"}) {
      EXPECT_THAT(r.out, HasSubstr(global)) << c.command;
    }
  }
}

#ifdef DROVER_STATIC_CLI
// One process per command, so start-up is most of a short one: the CLI is linked fully
// statically (cmake/DroverStaticLink.cmake), glibc included, so no loader runs and no
// shared library is resolved on any command (it used to load 57).
TEST(CliBinaryTest, NeedsNoSharedLibraryAtRunTime) {
  absl::StatusOr<testing::CommandResult> headers = testing::RunCommand(
      {"/usr/bin/readelf", "--program-headers", "--dynamic", "--wide", DROVER_CLI_PATH});
  ASSERT_TRUE(headers.ok()) << headers.status();
  ASSERT_EQ(headers->exit_code, 0) << headers->err;
  EXPECT_THAT(headers->out, ::testing::HasSubstr("LOAD")) << "not the program's headers";
  EXPECT_THAT(headers->out, ::testing::Not(::testing::HasSubstr("(NEEDED)")));
  EXPECT_THAT(headers->out, ::testing::Not(::testing::HasSubstr("INTERP")))
      << "the program asks for a dynamic loader";
}
#endif

}  // namespace
}  // namespace drover::cli
