// LogPrinter: stream routing, rank prefixes across chunk boundaries, and bytes printed once.
#include "cli/log_printer.h"

#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::cli {
namespace {

class LogPrinterTest : public ::testing::Test {
 protected:
  std::ostringstream out_;
  std::ostringstream err_;
};

TEST_F(LogPrinterTest, WithoutPrefixesBytesPassThroughAsTheyCome) {
  LogPrinter printer(&out_, &err_, /*prefix_ranks=*/false);
  printer.Add(0, v1::STDOUT, 0, "50%\r");
  EXPECT_EQ(out_.str(), "50%\r");  // nothing held back
  printer.Add(0, v1::STDOUT, 4, "100%\nlast");
  printer.Add(0, v1::STDERR, 0, "warn\n");
  printer.Flush();
  EXPECT_EQ(out_.str(), "50%\r100%\nlast");  // no newline added
  EXPECT_EQ(err_.str(), "warn\n");
}

TEST_F(LogPrinterTest, PrefixesEveryLineAndJoinsLinesSplitAcrossChunks) {
  LogPrinter printer(&out_, &err_, /*prefix_ranks=*/true);
  printer.Add(0, v1::STDOUT, 0, "ep");
  printer.Add(1, v1::STDOUT, 0, "a\nb\nc");
  EXPECT_EQ(out_.str(), "[rank 1] a\n[rank 1] b\n");
  printer.Add(0, v1::STDOUT, 2, "och 1");
  printer.Add(0, v1::STDOUT, 7, "\n\nx");
  EXPECT_EQ(out_.str(), "[rank 1] a\n[rank 1] b\n[rank 0] epoch 1\n[rank 0] \n");
  printer.Add(0, v1::STDERR, 0, "err");
  printer.Flush();
  EXPECT_EQ(out_.str(),
            "[rank 1] a\n[rank 1] b\n[rank 0] epoch 1\n[rank 0] \n"
            "[rank 0] x\n[rank 1] c\n");
  EXPECT_EQ(err_.str(), "[rank 0] err\n");
}

TEST_F(LogPrinterTest, PrintsEachByteOnceWhateverIsResent) {
  LogPrinter printer(&out_, &err_, /*prefix_ranks=*/true);
  printer.Add(2, v1::STDOUT, 0, "one\ntw");
  printer.Add(2, v1::STDOUT, 0, "one\n");        // all seen
  printer.Add(2, v1::STDOUT, 0, "one\ntwo\nth");  // partly seen
  printer.Add(2, v1::STDOUT, 8, "three\n");       // overlaps "th"
  printer.Flush();
  EXPECT_EQ(out_.str(), "[rank 2] one\n[rank 2] two\n[rank 2] three\n");
}

TEST_F(LogPrinterTest, StreamsOfTheSameRankAreIndependent) {
  LogPrinter printer(&out_, &err_, /*prefix_ranks=*/true);
  printer.Add(0, v1::STDOUT, 0, "out-start ");
  printer.Add(0, v1::STDERR, 0, "err line\n");
  printer.Add(0, v1::STDOUT, 10, "out-end\n");
  EXPECT_EQ(out_.str(), "[rank 0] out-start out-end\n");
  EXPECT_EQ(err_.str(), "[rank 0] err line\n");
}

TEST_F(LogPrinterTest, AVeryLongLineIsPrintedBeforeItEnds) {
  LogPrinter printer(&out_, &err_, /*prefix_ranks=*/true);
  std::string big(LogPrinter::kMaxHeldBytes + 1, 'x');
  printer.Add(0, v1::STDOUT, 0, big);
  EXPECT_EQ(out_.str(), "[rank 0] " + big + "\n");
  printer.Add(0, v1::STDOUT, static_cast<int64_t>(big.size()), "tail\n");
  EXPECT_EQ(out_.str(), "[rank 0] " + big + "\n[rank 0] tail\n");
}

TEST_F(LogPrinterTest, PreparationLogsGoToStdoutPrefixedByNode) {
  LogPrinter printer(&out_, &err_, /*prefix_ranks=*/true);
  printer.Add(1, v1::PREPARE, 0, "drover: building\nCollect");
  printer.Add(1, v1::PREPARE, 25, "ing x\n");
  printer.Add(0, v1::PREPARE, 0, "drover: using cached");
  printer.Flush();
  EXPECT_EQ(out_.str(),
            "[node 1] drover: building\n[node 1] Collecting x\n[node 0] drover: using cached\n");
  EXPECT_EQ(err_.str(), "");
}

}  // namespace
}  // namespace drover::cli
