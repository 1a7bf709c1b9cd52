#include "common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/metrics_server.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(MetricsRegistryTest, RendersCountersGaugesAndHistogramsInTextFormat) {
  MetricsRegistry registry;
  CounterFamily& submits =
      registry.AddCounter("drover_jobs_submitted_total", "Jobs accepted.", {"experiment"});
  GaugeFamily& running = registry.AddGauge("drover_containers_running", "Containers running.");
  HistogramFamily& latency = registry.AddHistogram(
      "drover_rpc_duration_seconds", "RPC latency.", {0.1, 1}, {"method"});
  submits.With({"mnist"}).Increment();
  submits.With({"mnist"}).Increment(2);
  submits.With({"vision"}).Increment(-5);  // ignored: counters only go up
  running.With({}).Set(3);
  latency.With({"SubmitJob"}).Observe(0.05);
  latency.With({"SubmitJob"}).Observe(0.5);
  latency.With({"SubmitJob"}).Observe(7);

  EXPECT_EQ(registry.Render(),
            "# HELP drover_jobs_submitted_total Jobs accepted.\n"
            "# TYPE drover_jobs_submitted_total counter\n"
            "drover_jobs_submitted_total{experiment=\"mnist\"} 3\n"
            "drover_jobs_submitted_total{experiment=\"vision\"} 0\n"
            "# HELP drover_containers_running Containers running.\n"
            "# TYPE drover_containers_running gauge\n"
            "drover_containers_running 3\n"
            "# HELP drover_rpc_duration_seconds RPC latency.\n"
            "# TYPE drover_rpc_duration_seconds histogram\n"
            "drover_rpc_duration_seconds_bucket{method=\"SubmitJob\",le=\"0.1\"} 1\n"
            "drover_rpc_duration_seconds_bucket{method=\"SubmitJob\",le=\"1\"} 2\n"
            "drover_rpc_duration_seconds_bucket{method=\"SubmitJob\",le=\"+Inf\"} 3\n"
            "drover_rpc_duration_seconds_sum{method=\"SubmitJob\"} 7.55\n"
            "drover_rpc_duration_seconds_count{method=\"SubmitJob\"} 3\n");
}

TEST(MetricsRegistryTest, EscapesLabelValuesAndHelpAndKeepsLargeCountsExact) {
  MetricsRegistry registry;
  registry.AddCounter("x_total", "a \\ b\nc", {"path"}).With({"a\"b\\c\nd"}).Increment(1e15 + 1);
  registry.AddGaugeCallback("jobs", "Jobs by state.", {"state"}, [] {
    return std::vector<std::pair<LabelValues, double>>{{{"QUEUED"}, 2}, {{"RUNNING"}, 0.1}};
  });
  EXPECT_EQ(registry.Render(),
            "# HELP x_total a \\\\ b\\nc\n"
            "# TYPE x_total counter\n"
            "x_total{path=\"a\\\"b\\\\c\\nd\"} 1000000000000001\n"
            "# HELP jobs Jobs by state.\n"
            "# TYPE jobs gauge\n"
            "jobs{state=\"QUEUED\"} 2\n"
            "jobs{state=\"RUNNING\"} 0.1\n");
}

TEST(MetricsRegistryTest, SeriesReferencesStayValidAndCountEveryThreadsIncrements) {
  MetricsRegistry registry;
  CounterFamily& family = registry.AddCounter("hits_total", "Hits.", {"worker"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&family] {
      for (int i = 0; i < 10000; ++i) family.With({"all"}).Increment();
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(family.With({"all"}).value(), 40000);
}

TEST(MetricsRegistryTest, PageParsesWithPrometheusClientParser) {
  // Debian's python3-prometheus-client (deploy/install-deps.sh installs it).
  MetricsRegistry registry;
  registry.AddCounter("drover_log_bytes_total", "Log bytes \"ingested\".", {"stream"})
      .With({"std\"out"})
      .Increment(12);
  registry.AddHistogram("drover_op_seconds", "Op.", LatencyBuckets(), {"op"})
      .With({"a"})
      .Observe(0.003);
  std::string path = ::testing::TempDir() + "/metrics_page.txt";
  std::ofstream(path) << registry.Render();
  std::string script = absl::StrCat(
      "/usr/bin/python3 -c \"import sys; from prometheus_client.parser import "
      "text_string_to_metric_families as p; "
      "fs={f.name: f for f in p(open('",
      path,
      "').read())}; "
      "s=fs['drover_log_bytes'].samples[0]; "
      "assert s.labels=={'stream': 'std\\\"out'} and s.value==12, s; "
      "h=fs['drover_op_seconds']; "
      "assert [x.value for x in h.samples if x.name=='drover_op_seconds_count']==[1]\"");
  EXPECT_EQ(system(script.c_str()), 0) << script;
}

// A TCP connection to `endpoint` (127.0.0.1:PORT), with a receive timeout so that a test
// that waits for the server to close never hangs; -1 on failure.
int Connect(const std::string& endpoint) {
  size_t colon = endpoint.rfind(':');
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(endpoint.substr(colon + 1), &port));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  return send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
}

// Everything the server sends until it closes (or 10 s pass).
std::string ReadAll(int fd) {
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) response.append(buffer, n);
  return response;
}

// Sends `request` on a new connection; returns the whole response.
std::string HttpRequest(const std::string& endpoint, const std::string& request) {
  int fd = Connect(endpoint);
  EXPECT_TRUE(SendAll(fd, request));
  std::string response = ReadAll(fd);
  close(fd);
  return response;
}

TEST(MetricsServerTest, AnswersGetMetricsWithThePageAndRefusesOtherPaths) {
  int renders = 0;
  auto server = MetricsServer::Start("127.0.0.1:0", "metrics-listen", [&renders] {
    ++renders;
    return std::string("up 1\n");
  });
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT((*server)->endpoint(), StartsWith("127.0.0.1:"));
  EXPECT_NE((*server)->endpoint(), "127.0.0.1:0");

  std::string ok = HttpRequest((*server)->endpoint(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ok, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(ok, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(ok, HasSubstr("Content-Length: 5\r\n"));
  EXPECT_THAT(ok, testing::EndsWith("\r\n\r\nup 1\n"));
  EXPECT_THAT(HttpRequest((*server)->endpoint(), "GET / HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 404"));
  std::string post = HttpRequest((*server)->endpoint(), "POST /metrics HTTP/1.1\r\n\r\n");
  EXPECT_THAT(post, StartsWith("HTTP/1.1 405"));
  EXPECT_THAT(post, HasSubstr("Allow: GET, HEAD\r\n"));
  EXPECT_EQ(renders, 1);

  // HEAD: the length of the page, without the page; a query string is ignored.
  std::string head = HttpRequest((*server)->endpoint(), "HEAD /metrics?x=1 HTTP/1.1\r\n\r\n");
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(head, HasSubstr("Content-Length: 5\r\n"));
  EXPECT_THAT(head, testing::EndsWith("\r\n\r\n"));
  EXPECT_THAT(HttpRequest((*server)->endpoint(), "not http at all\r\n\r\n"),
              StartsWith("HTTP/1.1 400"));
}

TEST(MetricsServerTest, RefusesAHugeHeader) {
  auto server = MetricsServer::Start("127.0.0.1:0", "metrics-listen", [] { return "up 1\n"; });
  ASSERT_TRUE(server.ok()) << server.status();
  std::string request = "GET /metrics HTTP/1.1\r\nX-Big: " +
                        std::string(MetricsServer::Limits().max_request_bytes, 'a') + "\r\n\r\n";
  EXPECT_THAT(HttpRequest((*server)->endpoint(), request), StartsWith("HTTP/1.1 431"));
  // An endless header is cut at the same point: the server answers and closes without
  // waiting for the rest.
  int fd = Connect((*server)->endpoint());
  ASSERT_TRUE(SendAll(fd, "GET /metrics HTTP/1.1\r\nX-Big: " + std::string(64 * 1024, 'a')));
  EXPECT_THAT(ReadAll(fd), StartsWith("HTTP/1.1 431"));
  close(fd);
}

// Slowloris: a client that trickles its headers is dropped when the request's time is up,
// and meanwhile others are answered.
TEST(MetricsServerTest, DropsAClientThatNeverFinishesItsHeaders) {
  MetricsServer::Limits limits;
  limits.client_timeout = absl::Milliseconds(500);
  auto server =
      MetricsServer::Start("127.0.0.1:0", "metrics-listen", [] { return "up 1\n"; }, limits);
  ASSERT_TRUE(server.ok()) << server.status();
  int slow = Connect((*server)->endpoint());
  ASSERT_TRUE(SendAll(slow, "GET /metrics HTTP/1.1\r\nX-Slow: "));
  absl::Time start = absl::Now();
  std::thread trickle([slow] {
    for (int i = 0; i < 40; ++i) {
      if (!SendAll(slow, "a")) return;  // closed by the server
      absl::SleepFor(absl::Milliseconds(100));
    }
  });
  EXPECT_THAT(HttpRequest((*server)->endpoint(), "GET /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(ReadAll(slow), "") << "no answer, just closed";
  absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(400));
  EXPECT_LT(took, absl::Seconds(3)) << "dropped at the deadline, not after the client stopped";
  trickle.join();
  close(slow);
}

TEST(MetricsServerTest, RefusesConnectionsOverTheCapAndServesOnceTheyClose) {
  MetricsServer::Limits limits;
  limits.max_connections = 4;
  auto server =
      MetricsServer::Start("127.0.0.1:0", "metrics-listen", [] { return "up 1\n"; }, limits);
  ASSERT_TRUE(server.ok()) << server.status();
  std::vector<int> idle;
  for (int i = 0; i < limits.max_connections; ++i) {
    idle.push_back(Connect((*server)->endpoint()));
    ASSERT_TRUE(SendAll(idle.back(), "GET"));  // a request begun, never finished
  }
  EXPECT_THAT(HttpRequest((*server)->endpoint(), "GET /metrics HTTP/1.1\r\n\r\n"),
              StartsWith("HTTP/1.1 503"));
  for (int fd : idle) close(fd);
  // The server sees the closes asynchronously: poll, with a deadline.
  std::string answer;
  for (absl::Time deadline = absl::Now() + absl::Seconds(10); absl::Now() < deadline;) {
    answer = HttpRequest((*server)->endpoint(), "GET /metrics HTTP/1.1\r\n\r\n");
    if (absl::StartsWith(answer, "HTTP/1.1 200")) break;
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_THAT(answer, StartsWith("HTTP/1.1 200"));
}

TEST(MetricsServerTest, StopsPromptlyWithConnectionsOpen) {
  auto server = MetricsServer::Start("127.0.0.1:0", "metrics-listen", [] { return "up 1\n"; });
  ASSERT_TRUE(server.ok()) << server.status();
  int idle = Connect((*server)->endpoint());
  ASSERT_TRUE(SendAll(idle, "GET /metrics HTTP/1.1\r\n"));
  absl::Time start = absl::Now();
  server->reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(ReadAll(idle), "");
  close(idle);
}

TEST(MetricsServerTest, RefusesMalformedAddressNamingTheFlag) {
  for (const char* bad : {"9102", "host:99999", "example.com:80", "1.2.3:5"}) {
    auto server = MetricsServer::Start(bad, "metrics-listen", [] { return std::string(); });
    ASSERT_FALSE(server.ok()) << bad;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(server.status().message()), HasSubstr("--metrics-listen")) << bad;
  }
}

}  // namespace
}  // namespace drover
