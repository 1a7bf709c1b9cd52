// droverd's HTTP face under one greedy client (docs/http-api.md, "Limits"): logins and
// connections counted per client address (another address, or the same one later, is let
// in), and the spool that output downloads are copied through, capped in bytes (parallel
// downloads of a big file are told to come back; a file larger than the cap is refused).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "tests/e2e/http_e2e_fixture.h"

namespace drover::http_e2e {
namespace {

// droverd alone (no agent, no root), plain HTTP on loopback, with small per-client limits.
class HttpClientLimitsE2eTest : public HttpFixture {
 protected:
  HttpClientLimitsE2eTest() : HttpFixture(/*needs_root=*/false) {}
  void SetUp() override {
    HttpFixture::SetUp();
    if (IsSkipped()) return;
    StartWithHttp({.agents = 0,
                   .droverd_flags = {"--http-max-connections-per-client", "4",
                                     "--http-login-burst", "3", "--http-login-interval", "2s"},
                   .datastore_root = false},
                  /*plain=*/true);
  }

  // A connection from the loopback address `source` (127.0.0.1 is the default client).
  std::unique_ptr<HttpConnection> ConnectFrom(const std::string& source) {
    absl::StatusOr<std::unique_ptr<HttpConnection>> c =
        HttpConnection::Open(http_, ca_pem_, "localhost", absl::Seconds(10), source);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  absl::StatusOr<HttpResponse> LoginFrom(const std::string& source, const std::string& token) {
    std::unique_ptr<HttpConnection> c = ConnectFrom(source);
    if (c == nullptr) return absl::UnavailableError("no connection");
    return c->Request("POST", "/api/v1/login", {{"Content-Type", "application/json"}},
                      DumpJson(Json{{"token", token}}));
  }
};

TEST_F(HttpClientLimitsE2eTest, AFloodOfLoginsFromOneAddressGets429WhileAnotherStillLogsIn) {
  std::string alice = CreateUser("alice", "user");
  int ok = 0, too_many = 0;
  std::string retry_after;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<HttpResponse> r = LoginFrom("127.0.0.1", alice);
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->status == 200) {
      ++ok;
    } else {
      ASSERT_EQ(r->status, 429) << r->body;
      ++too_many;
      EXPECT_EQ(Parse(r->body)["error"]["code"], "RESOURCE_EXHAUSTED");
      EXPECT_THAT(r->body, HasSubstr("too many logins from your address"));
      retry_after = r->Header("retry-after");
    }
  }
  // The burst of 3, and one more if the flood took longer than the 2 s interval.
  EXPECT_GE(ok, 3);
  EXPECT_LE(ok, 4);
  EXPECT_EQ(ok + too_many, 20);
  int seconds = 0;
  ASSERT_TRUE(absl::SimpleAtoi(retry_after, &seconds)) << retry_after;
  EXPECT_GE(seconds, 1);
  EXPECT_LE(seconds, 2);
  // Another address is not held back by the flood.
  absl::StatusOr<HttpResponse> other = LoginFrom("127.0.0.2", alice);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->status, 200) << other->body;
  // And the flooding address logs in again once it waited.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  int status = 0;
  while (status != 200 && absl::Now() < deadline) {
    absl::SleepFor(absl::Seconds(1));
    absl::StatusOr<HttpResponse> again = LoginFrom("127.0.0.1", alice);
    status = again.ok() ? again->status : 0;
  }
  EXPECT_EQ(status, 200);
}

TEST_F(HttpClientLimitsE2eTest, ConnectionsPerAddressAreCappedAndFreedWhenTheyClose) {
  std::string alice = CreateUser("alice", "user");
  std::vector<std::unique_ptr<HttpConnection>> open;
  for (int i = 0; i < 4; ++i) {
    open.push_back(ConnectFrom("127.0.0.1"));
    ASSERT_NE(open.back(), nullptr);
    absl::StatusOr<HttpResponse> r = open.back()->Request("GET", "/api/v1/jobs", Bearer(alice));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 200);
  }
  // A fifth from the same address is told so and closed, before it sends anything.
  std::unique_ptr<HttpConnection> fifth = ConnectFrom("127.0.0.1");
  ASSERT_NE(fifth, nullptr);
  absl::StatusOr<HttpResponse> refused = fifth->ReadResponse();
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->status, 429);
  EXPECT_EQ(refused->Header("retry-after"), "1");
  EXPECT_THAT(refused->body, HasSubstr("too many connections from your address"));
  EXPECT_TRUE(fifth->ClosedWithin(absl::Seconds(5)));
  // Another address connects meanwhile.
  std::unique_ptr<HttpConnection> other = ConnectFrom("127.0.0.2");
  ASSERT_NE(other, nullptr);
  absl::StatusOr<HttpResponse> r = other->Request("GET", "/api/v1/jobs", Bearer(alice));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  // Once one of the four closes, its slot comes back.
  open.pop_back();
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  int status = 0;
  while (status != 200 && absl::Now() < deadline) {
    std::unique_ptr<HttpConnection> c = ConnectFrom("127.0.0.1");
    absl::StatusOr<HttpResponse> again =
        c == nullptr ? absl::UnavailableError("") : c->Request("GET", "/api/v1/jobs", Bearer(alice));
    status = again.ok() ? again->status : 0;
    if (status != 200) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(status, 200);
}

// droverd and an agent (root), plain HTTP on loopback (the stalled reader below is a bare
// socket), with a 24 MB spool for output downloads.
class HttpSpoolE2eTest : public HttpFixture {
 protected:
  HttpSpoolE2eTest() : HttpFixture(/*needs_root=*/true) {}
  void SetUp() override {
    HttpFixture::SetUp();
    if (IsSkipped()) return;
    StartWithHttp({.droverd_flags = {"--http-spool-max", "24000000"}}, /*plain=*/true);
  }

  // A client that sends `request` and reads nothing, with a receive buffer too small for
  // the kernel to take the answer off droverd's hands (loopback buffers otherwise grow to
  // tens of MB). The socket; -1 on failure.
  int StalledReader(const std::string& request) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(std::stoi(http_.substr(http_.rfind(':') + 1))));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
      close(fd);
      return -1;
    }
    return fd;
  }
};

TEST_F(HttpSpoolE2eTest, ParallelDownloadsPastTheSpoolCapAreToldToComeBackAndNoneFillsTheDisk) {
  std::string alice = CreateUser("alice", "user");
  // 16 MB: more than loopback's socket buffers hold, so a reader that takes nothing keeps
  // its copy in the spool; 25 MB: more than the whole spool.
  std::string id = SubmitAs(
      alice, Shell("head -c 16000000 /dev/zero > $DROVER_OUTPUT_DIR/big.bin; "
                   "head -c 25000000 /dev/zero > $DROVER_OUTPUT_DIR/huge.bin"));
  WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  const std::string big = "/api/v1/jobs/" + id + "/outputs/big.bin";
  Session s = Login(alice);

  HttpResponse huge = Call("GET", "/api/v1/jobs/" + id + "/outputs/huge.bin", s.get());
  EXPECT_EQ(huge.status, 413) << huge.body;
  EXPECT_THAT(huge.body, HasSubstr("drover download"));

  // A reader that asks for big.bin and takes nothing holds 16 MB of the 24.
  int stalled = StalledReader(
      absl::StrCat("GET ", big, " HTTP/1.1\r\nHost: x\r\nCookie: ", s.cookie, "\r\n\r\n"));
  ASSERT_GE(stalled, 0) << strerror(errno);
  // Its answer has begun (the copy is made and reserved) and cannot end.
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  std::string begun;
  while (begun.size() < 12 && absl::Now() < deadline) {
    char peek[64];
    ssize_t n = recv(stalled, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) begun.assign(peek, static_cast<size_t>(n));
    if (begun.size() < 12) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_THAT(begun, ::testing::StartsWith("HTTP/1.1 200"));
  // Meanwhile the others are told to come back.
  HttpResponse busy = Call("GET", big, s.get());
  EXPECT_EQ(busy.Header("retry-after"), "30");
  EXPECT_THAT(busy.body, HasSubstr("try again in a minute"));
  // Four at once: every one is refused, none is copied.
  std::vector<std::thread> threads;
  std::vector<int> statuses(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<HttpResponse> r = testing::HttpRequest(http_, "GET", big, s.get(), "", ca_pem_);
      statuses[i] = r.ok() ? r->status : -1;
    });
  }
  for (std::thread& t : threads) t.join();
  for (int status : statuses) EXPECT_TRUE(status == 503 || status == 429) << status;
  // Once the stalled reader goes, the next download gets the whole file.
  close(stalled);
  deadline = absl::Now() + absl::Seconds(30);
  HttpResponse whole;
  while (whole.status != 200 && absl::Now() < deadline) {
    whole = Call("GET", big, s.get());
    if (whole.status != 200) absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_EQ(whole.status, 200) << whole.body;
  EXPECT_EQ(whole.body, std::string(16000000, '\0'));
}

}  // namespace
}  // namespace drover::http_e2e
