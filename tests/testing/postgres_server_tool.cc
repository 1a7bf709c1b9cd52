// drover-test-postgres: one throw-away PostgreSQL server for a whole test run, so that the
// test processes share it (DROVER_TEST_PG_DIR, tests/testing/postgres_server.h) instead of
// each running initdb and starting a server of its own.
//
//   drover-test-postgres start      starts a server; prints its folder (for DROVER_TEST_PG_DIR)
//   drover-test-postgres stop DIR   stops the server in DIR and removes the folder
#include <cstdio>
#include <cstring>
#include <string>

#include "tests/testing/postgres_server.h"

namespace {

constexpr char kUsage[] =
    "usage: drover-test-postgres start       start a test server, print its folder\n"
    "       drover-test-postgres stop DIR    stop the server in DIR, remove DIR\n"
    "The folder is what the tests take in DROVER_TEST_PG_DIR (deploy/run-tests.sh).\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (argc == 2 && std::strcmp(argv[1], "start") == 0) {
    auto server = drover::testing::PostgresServer::Start();
    if (!server.ok()) {
      std::fprintf(stderr, "drover-test-postgres: %s\n", server.status().ToString().c_str());
      return 1;
    }
    std::printf("%s\n", (*server)->Detach().c_str());
    return 0;
  }
  if (argc == 3 && std::strcmp(argv[1], "stop") == 0) {
    // Only a folder this tool made: never remove an arbitrary path given by mistake.
    const std::string dir = argv[2];
    if (dir.rfind("/tmp/drover-pg-", 0) != 0 || dir.find("..") != std::string::npos) {
      std::fprintf(stderr, "drover-test-postgres: '%s' is not a folder made by start\n",
                   dir.c_str());
      return 2;
    }
    drover::testing::PostgresServer::StopAt(dir);
    return 0;
  }
  std::fputs(kUsage, stderr);
  return 2;
}
