// serve_input_test: ReadServedExchanges (serve.h) on .tap files the Writer wrote: the exchanges
// of several files in sort-key order, the selection and -c, a torn file's notice, errors naming
// the file. The expected orders are worked out by hand from the sort keys written.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "format/select.h"
#include "format/test_dir.h"
#include "format/testutil.h"
#include "replay/serve.h"

namespace tapkit::replay {
namespace {

using ::tapkit::testing::SmallExchange;
using ::tapkit::testing::WriteTestFile;
using ::tapkit::testing::WriteToString;

// (stream id, sort key) of each exchange, in the order given.
std::vector<std::pair<uint64_t, uint64_t>> Ids(const std::vector<Exchange>& xs) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const Exchange& x : xs) out.emplace_back(x.stream_id, x.sort_key_ns);
  return out;
}

// File a holds streams 1, 2, 3 at 1000, 4000, 5000 (written out of order, as completion order
// writes them); file b streams 11, 12 at 2000, 3000 and 13 at 4000, tying with a's stream 2.
struct TwoFiles {
  std::string a, b;
  TwoFiles() {
    a = WriteTestFile("a.tap", WriteToString({SmallExchange(1, 1000), SmallExchange(3, 5000),
                                              SmallExchange(2, 4000)}));
    b = WriteTestFile("b.tap", WriteToString({SmallExchange(12, 3000), SmallExchange(11, 2000),
                                              SmallExchange(13, 4000)}));
  }
};

TEST(ReadServedExchanges, MergesFilesInSortKeyOrder) {
  TwoFiles f;
  absl::StatusOr<std::vector<Exchange>> xs = ReadServedExchanges({f.a, f.b});
  ASSERT_TRUE(xs.ok()) << xs.status();
  // The tie at 4000 goes to the lower stream id (same capture point): a's 2 before b's 13.
  std::vector<std::pair<uint64_t, uint64_t>> want = {{1, 1000}, {11, 2000}, {12, 3000},
                                                     {2, 4000}, {13, 4000}, {3, 5000}};
  EXPECT_EQ(Ids(*xs), want);
  // Owned, whole exchanges: bodies are read.
  EXPECT_EQ((*xs)[0].request->path, "/item/1");
  EXPECT_EQ((*xs)[0].response->body.data, "hello world\n");
}

TEST(ReadServedExchanges, AppliesTheSelectionAndCountsWhatItKept) {
  TwoFiles f;
  SelectionFlags flags;
  flags.path = {"/item/1"};  // a prefix: /item/1, /item/11, /item/12, /item/13
  flags.count = 3;
  flags.count_given = true;
  absl::StatusOr<Selection> sel = Selection::Parse(flags);
  ASSERT_TRUE(sel.ok()) << sel.status();
  absl::StatusOr<std::vector<Exchange>> xs = ReadServedExchanges({f.a, f.b}, &*sel);
  ASSERT_TRUE(xs.ok()) << xs.status();
  std::vector<std::pair<uint64_t, uint64_t>> want = {{1, 1000}, {11, 2000}, {12, 3000}};
  EXPECT_EQ(Ids(*xs), want);
}

TEST(ReadServedExchanges, BindsARelativeSinceToTheInputs) {
  TwoFiles f;
  SelectionFlags flags;
  flags.since = "+2500ns";  // after the earliest sort key, 1000: from 3500 on
  absl::StatusOr<Selection> sel = Selection::Parse(flags);
  ASSERT_TRUE(sel.ok()) << sel.status();
  absl::StatusOr<std::vector<Exchange>> xs = ReadServedExchanges({f.a, f.b}, &*sel);
  ASSERT_TRUE(xs.ok()) << xs.status();
  std::vector<std::pair<uint64_t, uint64_t>> want = {{2, 4000}, {13, 4000}, {3, 5000}};
  EXPECT_EQ(Ids(*xs), want);
}

// `examined` counts what was read, kept or not: the six exchanges written, whether the selection
// keeps all, one or none of them; input_of names each exchange's file (the merged order above).
TEST(ReadServedExchanges, CountsTheExchangesExaminedAndSaysTheirInput) {
  TwoFiles f;
  ServedInputs read;
  absl::StatusOr<std::vector<Exchange>> xs =
      ReadServedExchanges({f.a, f.b}, nullptr, nullptr, &read);
  ASSERT_TRUE(xs.ok()) << xs.status();
  EXPECT_EQ(xs->size(), 6u);
  EXPECT_EQ(read.examined, 6u);
  // Streams 1, 11, 12, 2, 13, 3: a, b, b, a, b, a.
  EXPECT_EQ(read.input_of, (std::vector<size_t>{0, 1, 1, 0, 1, 0}));
  for (const auto& [path, kept] : {std::pair<std::string, size_t>{"/item/13", 1},
                                   std::pair<std::string, size_t>{"/nothing", 0}}) {
    SelectionFlags flags;
    flags.path = {path};
    absl::StatusOr<Selection> sel = Selection::Parse(flags);
    ASSERT_TRUE(sel.ok()) << sel.status();
    read = {};
    xs = ReadServedExchanges({f.a, f.b}, &*sel, nullptr, &read);
    ASSERT_TRUE(xs.ok()) << xs.status();
    EXPECT_EQ(xs->size(), kept) << path;
    EXPECT_EQ(read.examined, 6u) << path;
    EXPECT_EQ(read.input_of, kept == 1 ? std::vector<size_t>{1} : std::vector<size_t>{}) << path;
  }
}

TEST(ReadServedExchanges, ReadsATornFileUpToTheTearWithANotice) {
  // One segment per exchange, no trailer (a killed writer), the last segment cut short.
  std::string bytes =
      WriteToString({SmallExchange(1, 1000), SmallExchange(2, 2000), SmallExchange(3, 3000)},
                    /*segment_bytes=*/64, /*close=*/false);
  std::string path = WriteTestFile("torn.tap", bytes.substr(0, bytes.size() - 10));
  std::vector<std::string> notices;
  absl::StatusOr<std::vector<Exchange>> xs = ReadServedExchanges({path}, nullptr, &notices);
  ASSERT_TRUE(xs.ok()) << xs.status();
  std::vector<std::pair<uint64_t, uint64_t>> want = {{1, 1000}, {2, 2000}};
  EXPECT_EQ(Ids(*xs), want);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_EQ(notices[0].rfind(path + ": offset ", 0), 0u) << notices[0];
  EXPECT_NE(notices[0].find(": notice: "), std::string::npos) << notices[0];
}

TEST(ReadServedExchanges, NamesAMissingFile) {
  TwoFiles f;
  const std::string missing = ::tapkit::testing::TestDir() + "/missing.tap";
  absl::StatusOr<std::vector<Exchange>> xs = ReadServedExchanges({f.a, missing});
  ASSERT_FALSE(xs.ok());
  EXPECT_NE(xs.status().message().find(missing), std::string::npos) << xs.status();
  EXPECT_NE(xs.status().message().find("No such file"), std::string::npos) << xs.status();
}

TEST(ReadServedExchanges, NamesAFileThatIsNotACapture) {
  std::string path = WriteTestFile("text.tap", "GET / HTTP/1.1\r\n\r\n");
  absl::StatusOr<std::vector<Exchange>> xs = ReadServedExchanges({path});
  ASSERT_FALSE(xs.ok());
  EXPECT_EQ(xs.status().message().rfind(path, 0), 0u) << xs.status();
}

}  // namespace
}  // namespace tapkit::replay
