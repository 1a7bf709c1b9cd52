// The listening socket of --metrics-listen and --http-listen: good addresses, bad values
// named by their flag, and a port already taken.
#include "common/tcp_listen.h"

#include "absl/strings/match.h"
#include "boost/asio/io_context.hpp"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

TEST(TcpListenTest, ListensOnAFreePortAndSaysWhich) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor v4(io), v6(io), local(io);
  absl::StatusOr<std::string> got = ListenOn(v4, "x-listen", "127.0.0.1:0", "9102");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, MatchesRegex("127\\.0\\.0\\.1:[1-9][0-9]*"));
  got = ListenOn(local, "x-listen", "localhost:0", "9102");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, MatchesRegex("127\\.0\\.0\\.1:[1-9][0-9]*"));
  // IPv6 loopback, where the machine has one.
  got = ListenOn(v6, "x-listen", "[::1]:0", "9102");
  if (got.ok()) {
    EXPECT_THAT(*got, MatchesRegex("\\[::1\\]:[1-9][0-9]*"));
  } else {
    EXPECT_TRUE(absl::IsUnavailable(got.status())) << got.status();
  }
}

TEST(TcpListenTest, BadValuesAndATakenPortAreRefusedNamingTheFlag) {
  boost::asio::io_context io;
  for (const char* bad : {"", "8443", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                          "127.0.0.1:80x", "example.com:80", "[::1:80", "999.1.1.1:80"}) {
    SCOPED_TRACE(bad);
    boost::asio::ip::tcp::acceptor acceptor(io);
    absl::StatusOr<std::string> got = ListenOn(acceptor, "http-listen", bad, "8443");
    EXPECT_TRUE(absl::IsInvalidArgument(got.status())) << got.status();
    EXPECT_THAT(got.status().message(), HasSubstr("--http-listen: '"));
  }
  boost::asio::ip::tcp::acceptor first(io), second(io);
  absl::StatusOr<std::string> taken = ListenOn(first, "http-listen", "127.0.0.1:0", "8443");
  ASSERT_TRUE(taken.ok()) << taken.status();
  absl::StatusOr<std::string> again = ListenOn(second, "http-listen", *taken, "8443");
  EXPECT_TRUE(absl::IsUnavailable(again.status())) << again.status();
  EXPECT_THAT(again.status().message(), HasSubstr("--http-listen: cannot listen on " + *taken));
}

}  // namespace
}  // namespace drover
