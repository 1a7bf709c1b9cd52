// droverd's HTTP face with an agent (root), over HTTPS (issue 20, docs/http-api.md): a
// job's logs and metrics followed live and resumed after a reconnect without a byte or point
// lost or repeated, a slow reader, the outputs list and files for the job's readers only,
// cancel by POST, a big series thinned, and a sweep with its trials for its owner only.
#include "drover/v1/sweep_service.grpc.pb.h"
#include "tests/e2e/http_e2e_fixture.h"

namespace drover::http_e2e {
namespace {

class HttpJobE2eTest : public HttpFixture {
 protected:
  HttpJobE2eTest() : HttpFixture(/*needs_root=*/true) {}
  void SetUp() override {
    HttpFixture::SetUp();
    if (IsSkipped()) return;
    StartWithHttp({.agent_flags = {"--metrics-interval", "200ms"}}, /*plain=*/false);
  }

  // Reads events until `stop` says so or the stream ends; fails on an error event.
  std::vector<testing::SseEvent> ReadEvents(HttpConnection& c,
                                            const std::function<bool(const testing::SseEvent&)>& stop,
                                            absl::Duration wait = absl::Seconds(60)) {
    std::vector<testing::SseEvent> events;
    absl::Time deadline = absl::Now() + wait;
    while (absl::Now() < deadline) {
      absl::StatusOr<testing::SseEvent> e = c.NextEvent(deadline - absl::Now());
      if (absl::IsNotFound(e.status())) break;
      EXPECT_TRUE(e.ok()) << e.status();
      if (!e.ok()) break;
      EXPECT_NE(e->event, "error") << e->data;
      events.push_back(*e);
      if (stop(*e)) break;
    }
    return events;
  }
};

TEST_F(HttpJobE2eTest, FollowsLogsAndMetricsLiveAndResumesWithoutLosingOrRepeating) {
  std::string alice = CreateUser("alice", "user");
  std::string id = SubmitAs(
      alice, Shell("i=0; while [ $i -lt 60 ]; do echo \"line $i \xc3\xa9\"; "
                   "printf '{\"n\":\"loss\",\"s\":%d,\"t\":1764170000,\"v\":%d.5}\\n' $i $i "
                   ">> \"$DROVER_METRICS_DIR/rank-$DROVER_RANK.metrics\"; "
                   "i=$((i+1)); sleep 0.1; done"));
  Session s = Login(alice);
  // HTTPS: the cookie is Secure.
  HttpResponse login = Call("POST", "/api/v1/login", {}, DumpJson(Json{{"token", alice}}));
  EXPECT_THAT(login.Header("set-cookie"), HasSubstr("; Secure"));
  std::string expected;
  for (int i = 0; i < 60; ++i) absl::StrAppend(&expected, "line ", i, " \xc3\xa9\n");

  // Metrics, live: the first points come while the job runs (droverd may not have heard
  // yet that every rank started: STARTING).
  auto metrics = Connect();
  absl::StatusOr<HttpResponse> opened =
      metrics->OpenEvents("/api/v1/jobs/" + id + "/metrics/watch?source=USER&name=loss", s.get());
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->status, 200) << opened->body;
  std::vector<int64_t> steps;
  auto take_points = [&steps](const testing::SseEvent& e) {
    if (e.event != "metrics") return;
    Json data = Parse(e.data);
    for (const Json& series : JsonItems(data["series"])) {
      EXPECT_EQ(series["name"], "loss");
      const Json::array_t& values = JsonItems(series["values"]);
      const Json::array_t& column = JsonItems(series["steps"]);
      ASSERT_EQ(values.size(), column.size());
      for (size_t k = 0; k < column.size(); ++k) {
        int64_t step = std::stoll(JsonString(column[k]));
        EXPECT_DOUBLE_EQ(JsonDouble(values[k]), static_cast<double>(step) + 0.5);
        steps.push_back(step);
      }
    }
  };
  std::vector<testing::SseEvent> first_metrics =
      ReadEvents(*metrics, [](const testing::SseEvent& e) { return e.event == "metrics"; });
  ASSERT_FALSE(first_metrics.empty());
  EXPECT_THAT(Get(id).status().state(),
              ::testing::AnyOf(v1::JobStatus::STARTING, v1::JobStatus::RUNNING))
      << "the first points came late";
  for (const auto& e : first_metrics) take_points(e);
  std::string metrics_id = first_metrics.back().id;
  ASSERT_FALSE(metrics_id.empty());
  metrics.reset();  // the client goes away

  // Logs, live, with a reconnect in the middle.
  std::map<int64_t, std::string> text_at;  // by offset
  int64_t next = 0;
  auto take_log = [&](const testing::SseEvent& e) {
    if (e.event != "log") return;
    Json data = Parse(e.data);
    EXPECT_EQ(data["attempt"], "1");
    EXPECT_EQ(data["rank"], 0);
    EXPECT_EQ(data["stream"], "STDOUT");
    int64_t offset = std::stoll(JsonString(data["offset"]));
    EXPECT_EQ(offset, next) << "a byte lost or repeated at " << offset;
    const std::string& text = JsonString(data["text"]);
    next = offset + static_cast<int64_t>(text.size());
    text_at[offset] = text;
  };
  auto logs = Connect();
  opened = logs->OpenEvents("/api/v1/jobs/" + id + "/logs?stream=STDOUT", s.get());
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->status, 200) << opened->body;
  int seen = 0;
  std::vector<testing::SseEvent> before = ReadEvents(*logs, [&seen](const testing::SseEvent& e) {
    return e.event == "log" && ++seen >= 5;
  });
  ASSERT_FALSE(before.empty());
  EXPECT_THAT(Get(id).status().state(),
              ::testing::AnyOf(v1::JobStatus::STARTING, v1::JobStatus::RUNNING))
      << "the first lines came late";
  for (const auto& e : before) take_log(e);
  std::string last_id = before.back().id;
  EXPECT_EQ(last_id, absl::StrCat("1:0:STDOUT:", next));
  logs.reset();
  absl::SleepFor(absl::Milliseconds(500));  // more lines come meanwhile
  logs = Connect();
  opened = logs->OpenEvents("/api/v1/jobs/" + id + "/logs?stream=STDOUT",
                            {{"Cookie", s.cookie}, {"Last-Event-ID", last_id}});
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->status, 200) << opened->body;
  std::vector<testing::SseEvent> after =
      ReadEvents(*logs, [](const testing::SseEvent& e) { return e.event == "end"; });
  ASSERT_FALSE(after.empty());
  for (const auto& e : after) take_log(e);
  ASSERT_EQ(after.back().event, "end");
  EXPECT_EQ(Parse(after.back().data)["job"]["status"]["state"], "COMPLETED");
  std::string text;
  for (const auto& [offset, piece] : text_at) text += piece;
  EXPECT_EQ(text, expected);
  EXPECT_EQ(text, Logs(id, 0));
  EXPECT_TRUE(absl::IsNotFound(logs->NextEvent(absl::Seconds(5)).status()));

  // The metrics resumed after the job ended: the rest, once.
  metrics = Connect();
  opened = metrics->OpenEvents("/api/v1/jobs/" + id + "/metrics/watch?source=USER&name=loss",
                               {{"Cookie", s.cookie}, {"Last-Event-ID", metrics_id}});
  ASSERT_TRUE(opened.ok()) << opened.status();
  std::vector<testing::SseEvent> rest =
      ReadEvents(*metrics, [](const testing::SseEvent& e) { return e.event == "end"; });
  for (const auto& e : rest) take_points(e);
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.back().event, "end");
  std::vector<int64_t> all(60);
  for (int i = 0; i < 60; ++i) all[i] = i;
  EXPECT_EQ(steps, all);

  // The whole series, exact (fewer points than maxPoints).
  HttpResponse whole =
      Call("GET", "/api/v1/jobs/" + id + "/metrics?source=USER&name=loss", s.get());
  ASSERT_EQ(whole.status, 200) << whole.body;
  Json series = Parse(whole.body)["series"];
  ASSERT_EQ(series.size(), 1u) << whole.body;
  EXPECT_EQ(series[0]["totalPoints"], "60");
  EXPECT_EQ(series[0].count("thinned"), 0u);
  EXPECT_EQ(JsonItems(series[0]["steps"]).size(), 60u);
  // The system series are there too.
  HttpResponse system = Call("GET", "/api/v1/jobs/" + id + "/metrics?source=SYSTEM", s.get());
  EXPECT_THAT(system.body, HasSubstr("memory_peak_bytes"));
}

TEST_F(HttpJobE2eTest, AReaderThatFallsBehindStillGetsEveryByte) {
  // 20 MB of output: far more than the socket buffers and the 1 MiB the gateway queues, so
  // the stream must pause while the client does not read, and go on when it does.
  std::string id = Submit(Shell("head -c 20000000 /dev/zero | tr '\\0' 'a'"));
  WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  auto c = Connect();
  absl::StatusOr<HttpResponse> opened = c->OpenEvents(
      "/api/v1/jobs/" + id + "/logs?stream=STDOUT&follow=0", Bearer(testing::TestAdminTokenValue()));
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(opened->status, 200) << opened->body;
  absl::SleepFor(absl::Seconds(3));  // not reading: the server's queue fills and it pauses
  int64_t next = 0;
  bool ended = false;
  while (!ended) {
    absl::StatusOr<testing::SseEvent> e = c->NextEvent(absl::Seconds(30));
    ASSERT_TRUE(e.ok()) << e.status() << " at " << next;
    if (e->event == "end") {
      ended = true;
      break;
    }
    ASSERT_EQ(e->event, "log") << e->data;
    Json data = Parse(e->data);
    ASSERT_EQ(std::stoll(JsonString(data["offset"])), next);
    const std::string& text = JsonString(data["text"]);
    ASSERT_EQ(text.find_first_not_of('a'), std::string::npos);
    next += static_cast<int64_t>(text.size());
  }
  EXPECT_EQ(next, 20000000);
}

TEST_F(HttpJobE2eTest, ServesTheOutputsListAndEachFilesBytesToTheJobsReadersOnly) {
  std::string alice = CreateUser("alice", "user");
  std::string bob = CreateUser("bob", "user");
  // 3 MB of bytes no text tool would keep (NUL, 0xff, no newline), in several gRPC chunks.
  std::string id = SubmitAs(
      alice, Shell("printf 'a\\000b\\377' > $DROVER_OUTPUT_DIR/x.bin; "
                   "head -c 3000000 /dev/zero | tr '\\0' '\\377' >> $DROVER_OUTPUT_DIR/x.bin; "
                   "printf 'end' >> $DROVER_OUTPUT_DIR/x.bin; "
                   "mkdir $DROVER_OUTPUT_DIR/sub; echo hello > $DROVER_OUTPUT_DIR/sub/y.txt"));
  WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  std::string x_bin = std::string("a\0b\xff", 4) + std::string(3000000, '\xff') + "end";
  const std::string outputs = "/api/v1/jobs/" + id + "/outputs";

  Session s = Login(alice);
  HttpResponse list = Call("GET", outputs, s.get());
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(Parse(list.body),
            Parse(R"({"files": [{"path": "sub/y.txt", "size": "6"},
                                {"path": "x.bin", "size": "3000007"}]})"));

  HttpResponse x = Call("GET", outputs + "/x.bin", s.get());
  ASSERT_EQ(x.status, 200) << x.body.substr(0, 200);
  EXPECT_EQ(x.body.size(), x_bin.size());
  EXPECT_TRUE(x.body == x_bin) << "the downloaded x.bin differs from what the job wrote";
  EXPECT_EQ(x.Header("content-type"), "application/octet-stream");
  EXPECT_EQ(x.Header("content-disposition"), "attachment; filename=\"x.bin\"; filename*=UTF-8''x.bin");
  EXPECT_EQ(x.Header("content-length"), "3000007");
  HttpResponse y = Call("GET", outputs + "/sub/y.txt", Bearer(alice));
  ASSERT_EQ(y.status, 200) << y.body;
  EXPECT_EQ(y.body, "hello\n");
  EXPECT_EQ(y.Header("content-disposition"), "attachment; filename=\"y.txt\"; filename*=UTF-8''y.txt");
  EXPECT_EQ(Call("GET", outputs + "/./sub//y.txt", s.get()).body, "hello\n");

  // Refused, each naming what it refused: traversal, a folder, a missing file.
  for (const char* path : {"/sub/../x.bin", "/%2e%2e/%2e%2e/etc/passwd", "/..",
                                  "/sub/%2E%2E/x.bin"}) {
    HttpResponse r = Call("GET", outputs + path, s.get());
    EXPECT_EQ(r.status, 400) << path << " " << r.body;
    EXPECT_THAT(r.body, HasSubstr("'..'")) << path;
  }
  EXPECT_EQ(Call("GET", outputs + "/x%00.bin", s.get()).status, 400);
  HttpResponse folder = Call("GET", outputs + "/sub", s.get());
  EXPECT_EQ(folder.status, 400) << folder.body;
  EXPECT_THAT(folder.body, HasSubstr("'sub'"));
  EXPECT_THAT(folder.body, HasSubstr("a folder"));
  HttpResponse missing = Call("GET", outputs + "/nope.bin", s.get());
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_THAT(missing.body, HasSubstr("'nope.bin'"));

  // Another user is refused as for the job itself; an admin reads them.
  Session b = Login(bob);
  EXPECT_EQ(Call("GET", "/api/v1/jobs/" + id, b.get()).status, 403);
  for (const std::string& target : {outputs, outputs + "/x.bin", outputs + "/nope.bin"}) {
    HttpResponse r = Call("GET", target, b.get());
    EXPECT_EQ(r.status, 403) << target << " " << r.body;
    EXPECT_EQ(r.body.find("\xff\xff"), std::string::npos);
  }
  EXPECT_EQ(Call("GET", outputs + "/sub/y.txt", Bearer(testing::TestAdminTokenValue())).body,
            "hello\n");
}

TEST_F(HttpJobE2eTest, ListsAJobArraysTasksOrTheArrayAsOneEntry) {
  std::string alice = CreateUser("alice", "user");
  v1::JobSpec spec = Shell("true");
  spec.mutable_array()->set_indices("0-4");
  std::string first = SubmitAs(alice, spec);
  const std::string array_id = Get(first).spec().array_task().array_id();
  HttpResponse tasks = Call("GET", "/api/v1/jobs?arrayId=" + array_id, Bearer(alice));
  ASSERT_EQ(tasks.status, 200) << tasks.body;
  EXPECT_EQ(Parse(tasks.body)["jobs"].size(), 5u);
  HttpResponse grouped = Call("GET", "/api/v1/jobs?groupArrays=true", Bearer(alice));
  ASSERT_EQ(grouped.status, 200) << grouped.body;
  Json body = Parse(grouped.body);
  EXPECT_FALSE(body.contains("jobs")) << grouped.body;
  ASSERT_EQ(body["arrays"].size(), 1u) << grouped.body;
  EXPECT_EQ(body["arrays"][0]["arrayId"], array_id);
  EXPECT_EQ(Call("GET", "/api/v1/jobs?groupArrays=maybe", Bearer(alice)).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/jobs?arrayId=j-1", Bearer(alice)).status, 400);
}

TEST_F(HttpJobE2eTest, CancelByPostCancelsTheRunningJob) {
  std::string alice = CreateUser("alice", "user");
  std::string id = SubmitAs(alice, Shell("echo started; exec sleep 300"));
  WaitFor(id, v1::JobStatus::RUNNING);
  Session s = Login(alice);
  HttpResponse r = Call("POST", "/api/v1/jobs/" + id + "/cancel", s.post(),
                        DumpJson(Json{{"reason", "stopped from the web page"}}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(JsonString(Parse(r.body)["status"]["state"]), ::testing::StartsWith("CANCEL"));
  v1::Job job = WaitFor(id, v1::JobStatus::CANCELED);
  EXPECT_THAT(job.status().message(), HasSubstr("stopped from the web page"));
  HttpResponse again = Call("GET", "/api/v1/jobs/" + id, s.get());
  EXPECT_EQ(Parse(again.body)["status"]["state"], "CANCELED");
}

TEST_F(HttpJobE2eTest, CancelByPostWithAnArrayIdCancelsEveryTaskOfItsOwnerOnly) {
  std::string alice = CreateUser("alice", "user");
  std::string bob = CreateUser("bob", "user");
  v1::JobSpec spec = Shell("exec sleep 300");
  spec.mutable_array()->set_indices("0-3");
  spec.mutable_array()->set_max_running(2);
  std::string first = SubmitAs(alice, spec);
  const std::string array_id = Get(first).spec().array_task().array_id();
  WaitFor(first, v1::JobStatus::RUNNING);
  const std::string cancel = "/api/v1/jobs/" + array_id + "/cancel";
  const std::string body = DumpJson(Json{{"reason", "the whole array"}});

  // Another user may not cancel it, nor learn more than that.
  Session b = Login(bob);
  HttpResponse refused = Call("POST", cancel, b.post(), body);
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_EQ(Get(first).status().state(), v1::JobStatus::RUNNING);

  Session a = Login(alice);
  HttpResponse r = Call("POST", cancel, a.post(), body);
  ASSERT_EQ(r.status, 200) << r.body;
  HttpResponse tasks = Call("GET", "/api/v1/jobs?arrayId=" + array_id, a.get());
  ASSERT_EQ(tasks.status, 200) << tasks.body;
  const Json listed = Parse(tasks.body);
  ASSERT_EQ(listed["jobs"].size(), 4u) << tasks.body;
  for (const Json& task : JsonItems(listed["jobs"])) {
    v1::Job job = WaitFor(JsonString(task["id"]), v1::JobStatus::CANCELED);
    EXPECT_THAT(job.status().message(), HasSubstr("the whole array")) << job.id();
  }
  // An id that is neither a job nor an array is refused, naming it.
  HttpResponse junk = Call("POST", "/api/v1/jobs/a-zz/cancel", a.post(), body);
  EXPECT_GE(junk.status, 400) << junk.body;
  EXPECT_LT(junk.status, 500) << junk.body;
  EXPECT_THAT(junk.body, HasSubstr("a-zz"));
}

TEST_F(HttpJobE2eTest, ABigSeriesIsThinnedForTheChartAndExactWhenItFits) {
  std::string id = Submit(Shell(
      "awk 'BEGIN { for (i = 0; i < 200000; i++) "
      "printf \"{\\\"n\\\":\\\"loss\\\",\\\"s\\\":%d,\\\"t\\\":1764170000,"
      "\\\"v\\\":%d}\\n\", i, (i == 123457 ? 1000000 : i % 1000) }' "
      ">> \"$DROVER_METRICS_DIR/rank-$DROVER_RANK.metrics\""));
  WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  const Headers admin = Bearer(testing::TestAdminTokenValue());
  absl::Time start = absl::Now();
  HttpResponse thinned =
      Call("GET", "/api/v1/jobs/" + id + "/metrics?source=USER&name=loss&maxPoints=1000", admin);
  absl::Duration took = absl::Now() - start;
  ASSERT_EQ(thinned.status, 200) << thinned.body;
  Json series = Parse(thinned.body)["series"][0];
  EXPECT_EQ(series["totalPoints"], "200000");
  EXPECT_EQ(series["thinned"], true);
  EXPECT_EQ(series["method"], "minmax");
  // At most 250 buckets: the width doubled from one step to 1024 (196 buckets).
  EXPECT_EQ(series["bucketSteps"], "1024");
  const Json::array_t& steps = JsonItems(series["steps"]);
  const Json::array_t& values = JsonItems(series["values"]);
  ASSERT_LE(steps.size(), 1000u);
  ASSERT_GE(steps.size(), 500u);
  EXPECT_EQ(steps.front(), "0");
  EXPECT_EQ(steps.back(), "199999");
  int64_t previous = -1;
  bool spike = false;
  for (size_t k = 0; k < steps.size(); ++k) {
    int64_t step = std::stoll(JsonString(steps[k]));
    EXPECT_GT(step, previous);
    previous = step;
    if (step == 123457) spike = JsonDouble(values[k]) == 1000000;
  }
  EXPECT_TRUE(spike) << "the spike was thinned away";
  std::cout << "thinned 200000 points to " << steps.size() << " in " << took << "\n";
  // A range that fits is exact.
  HttpResponse range = Call(
      "GET", "/api/v1/jobs/" + id + "/metrics?name=loss&source=USER&fromStep=1000&toStep=1999",
      admin);
  Json exact = Parse(range.body)["series"][0];
  EXPECT_EQ(exact["totalPoints"], "1000");
  EXPECT_EQ(exact.count("thinned"), 0u);
  ASSERT_EQ(JsonItems(exact["steps"]).size(), 1000u);
  EXPECT_EQ(exact["steps"][0], "1000");
  EXPECT_EQ(exact["values"][999], 999);
  EXPECT_EQ(Call("GET", "/api/v1/jobs/" + id + "/metrics?maxPoints=20001", admin).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/jobs/" + id + "/metrics?fromStep=x", admin).status, 400);
}

// A grid sweep over x of `trial` (its score a known function of x), submitted with `token`.
std::string SubmitSweepAs(const std::string& address, const std::string& token,
                          const v1::JobSpec& trial, const std::vector<double>& xs,
                          const std::string& key) {
  v1::SubmitSweepRequest request;
  v1::SweepSpec& spec = *request.mutable_spec();
  *spec.mutable_trial_template() = trial;
  spec.set_primary_metric_name("score");
  spec.set_primary_metric_goal(v1::MAXIMIZE);
  spec.mutable_sampling()->set_method(v1::Sampling::GRID);
  for (double x : xs) {
    (*spec.mutable_search_space())["x"].mutable_choice()->add_values()->set_number(x);
  }
  spec.set_idempotency_key(key);
  grpc::ClientContext context;
  v1::SubmitSweepResponse response;
  grpc::Status status = v1::SweepService::NewStub(testing::TlsChannel(address, "", token))
                            ->SubmitSweep(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.sweep().id();
}

TEST_F(HttpJobE2eTest, ShowsASweepWithItsTrialsToItsOwnerOnlyAndRefusesHostileIds) {
  std::string alice = CreateUser("alice", "user");
  std::string bob = CreateUser("bob", "user");
  const v1::JobSpec trial = Shell(
      "exec python3 -c \"import drover, sys\n"
      "x = float(sys.argv[2])\n"
      "run = drover.Run.get_context()\n"
      "for i in range(3):\n"
      "    run.log('score', -(x - 0.3) ** 2)\n\" \"$0\" \"$1\"");
  const std::string id = SubmitSweepAs(droverd_->address(), alice, trial, {0.1, 0.3, 0.6}, "a");
  ASSERT_THAT(id, ::testing::StartsWith("s-"));
  Session s = Login(alice);
  Json sweep;
  absl::Time deadline = absl::Now() + absl::Seconds(180);
  while (absl::Now() < deadline) {
    HttpResponse r = Call("GET", "/api/v1/sweeps/" + id, s.get());
    ASSERT_EQ(r.status, 200) << r.body;
    sweep = Parse(r.body);
    if (sweep["status"]["state"] == "COMPLETED") break;
    absl::SleepFor(absl::Milliseconds(300));
  }
  ASSERT_EQ(sweep["status"]["state"], "COMPLETED") << DumpJson(sweep);
  EXPECT_EQ(sweep["id"], id);
  EXPECT_EQ(sweep["owner"], "alice");
  EXPECT_EQ(sweep["spec"]["primaryMetricName"], "score");
  EXPECT_EQ(sweep["spec"]["primaryMetricGoal"], "MAXIMIZE");
  ASSERT_EQ(sweep["trials"].size(), 3u) << DumpJson(sweep);
  std::string best_index;
  for (const Json& trial : sweep["trials"]) {
    double x = trial["parameters"]["x"]["number"].get<double>();
    EXPECT_THAT(JsonString(trial["jobId"]), ::testing::StartsWith("j-"));
    EXPECT_EQ(trial["jobState"], "COMPLETED") << DumpJson(trial);
    EXPECT_NEAR(trial["result"].get<double>(), -(x - 0.3) * (x - 0.3), 1e-9) << DumpJson(trial);
    EXPECT_EQ(trial["intervals"], "3");
    if (x == 0.3) best_index = trial.contains("index") ? JsonString(trial["index"]) : "0";
  }
  EXPECT_EQ(sweep.contains("bestTrialIndex") ? JsonString(sweep["bestTrialIndex"]) : "", best_index);
  EXPECT_NEAR(sweep["bestResult"].get<double>(), 0.0, 1e-12);

  // The list: the caller's own, counted, without the trials; paged as jobs are.
  const std::string second = SubmitSweepAs(droverd_->address(), alice, trial, {0.2}, "b");
  HttpResponse list = Call("GET", "/api/v1/sweeps", s.get());
  ASSERT_EQ(list.status, 200) << list.body;
  Json listed = Parse(list.body);
  ASSERT_EQ(listed["sweeps"].size(), 2u) << list.body;
  EXPECT_EQ(listed["sweeps"][0]["id"], second);
  EXPECT_EQ(listed["sweeps"][1]["id"], id);
  EXPECT_EQ(listed["sweeps"][1]["trialCount"], "3");
  EXPECT_FALSE(listed["sweeps"][1].contains("trials")) << list.body;
  HttpResponse page = Call("GET", "/api/v1/sweeps?pageSize=1", Bearer(alice));
  ASSERT_EQ(page.status, 200) << page.body;
  Json first_page = Parse(page.body);
  ASSERT_EQ(first_page["sweeps"].size(), 1u);
  EXPECT_EQ(first_page["sweeps"][0]["id"], second);
  const std::string token = JsonString(first_page["nextPageToken"]);
  ASSERT_FALSE(token.empty()) << page.body;
  HttpResponse next = Call("GET", "/api/v1/sweeps?pageSize=1&pageToken=" + token, Bearer(alice));
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(Parse(next.body)["sweeps"][0]["id"], id);
  EXPECT_EQ(Call("GET", "/api/v1/sweeps?state=COMPLETED", s.get()).status, 200);
  for (const char* query : {"?state=NOPE", "?state=STATE_UNSPECIFIED", "?pageSize=5000",
                            "?pageSize=-1", "?pageToken=garbage"}) {
    HttpResponse r = Call("GET", std::string("/api/v1/sweeps") + query, s.get());
    EXPECT_EQ(r.status, 400) << query << " " << r.body;
  }
  EXPECT_THAT(Call("GET", "/api/v1/sweeps?state=NOPE", s.get()).body, HasSubstr("'state'"));

  // Another user: refused as for jobs; their own list holds none of alice's.
  Session b = Login(bob);
  HttpResponse theirs = Call("GET", "/api/v1/sweeps/" + id, b.get());
  EXPECT_EQ(theirs.status, 403) << theirs.body;
  EXPECT_THAT(theirs.body, Not(HasSubstr("score")));
  HttpResponse bobs = Call("GET", "/api/v1/sweeps", b.get());
  ASSERT_EQ(bobs.status, 200) << bobs.body;
  EXPECT_THAT(bobs.body, Not(HasSubstr(id)));
  EXPECT_EQ(Call("GET", "/api/v1/sweeps?owner=alice", b.get()).status, 403);
  EXPECT_EQ(Call("GET", "/api/v1/sweeps/" + id, Bearer(testing::TestAdminTokenValue())).status,
            200);
  EXPECT_EQ(Call("GET", "/api/v1/sweeps/" + id).status, 401);

  // Hostile ids: junk and too long refused naming the field, an unknown one 404 naming it,
  // traversal refused before any route, extra path segments no route.
  HttpResponse junk = Call("GET", "/api/v1/sweeps/s-nothex%01", s.get());
  EXPECT_EQ(junk.status, 400) << junk.body;
  EXPECT_THAT(junk.body, HasSubstr("sweep_id"));
  EXPECT_THAT(junk.body, HasSubstr("s-nothex\\\\x01"));
  HttpResponse longer = Call("GET", "/api/v1/sweeps/s-" + std::string(4000, 'a'), s.get());
  EXPECT_EQ(longer.status, 400) << longer.body.substr(0, 200);
  EXPECT_THAT(longer.body, HasSubstr("sweep_id"));
  EXPECT_LT(longer.body.size(), 600u);
  HttpResponse unknown = Call("GET", "/api/v1/sweeps/s-0123456789abcdef", s.get());
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_THAT(unknown.body, HasSubstr("s-0123456789abcdef"));
  for (const std::string& target : std::vector<std::string>{
       "/api/v1/sweeps/../jobs", "/api/v1/sweeps/%2e%2e/jobs", "/api/v1/sweeps/%2E%2E%2Fjobs",
       "/api/v1/sweeps/..%5cjobs", "/api/v1/sweeps/" + id + "/%2e%2e"}) {
    HttpResponse r = Call("GET", target, s.get());
    EXPECT_EQ(r.status, 400) << target << " " << r.body;
    EXPECT_THAT(r.body, Not(HasSubstr("\"jobs\""))) << target;
  }
  for (const std::string& target :
       std::vector<std::string>{"/api/v1/sweeps/", "/api/v1/sweeps/" + id + "/trials"}) {
    EXPECT_EQ(Call("GET", target, s.get()).status, 404) << target;
  }
}

}  // namespace
}  // namespace drover::http_e2e
