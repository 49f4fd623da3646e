// FilterCaptures (filter.h): merged order, drops summed, selected_out, -C, the header, the hooks,
// bad inputs. Expected values are computed here from the exchanges written, independently of
// the merge.
#include "recorder/filter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "format/test_dir.h"
#include "format/testutil.h"
#include "recorder/rotating_writer.h"

namespace tapkit {
namespace {

std::string Path(const std::string& name) { return absl::StrCat(testing::TestDir(), "/", name); }

std::vector<Exchange> Jittered(uint64_t n, uint64_t first_id, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Exchange> xs;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t key = 1'000'000'000 + i * 1'000'000 + rng() % 10'000'000 - 5'000'000;
    xs.push_back(testing::SmallExchange(first_id + i, key));
  }
  return xs;
}

struct Read {
  CaptureMetadata meta;
  std::optional<FileSummary> summary;
  std::vector<Exchange> xs;
};

Read ReadBack(const std::string& path) {
  Read r;
  auto file = OpenReadableFile(path);
  EXPECT_TRUE(file.ok()) << file.status();
  if (!file.ok()) return r;
  auto reader = Reader::Open(*std::move(file));
  EXPECT_TRUE(reader.ok()) << reader.status();
  if (!reader.ok()) return r;
  ExchangeView v;
  while ((*reader)->Next(&v)) r.xs.push_back(v.ToExchange());
  EXPECT_TRUE((*reader)->status().ok()) << (*reader)->status();
  r.meta = (*reader)->metadata();
  r.summary = (*reader)->summary();
  return r;
}

using Key = std::tuple<uint64_t, uint32_t, uint64_t>;
std::vector<Key> Keys(const std::vector<Exchange>& xs) {
  std::vector<Key> k;
  for (const Exchange& x : xs) k.emplace_back(x.sort_key_ns, x.capture_point, x.stream_id);
  return k;
}

std::string Filter(const FilterOptions& o, FilterSummary* summary, absl::Status* status) {
  std::string errors = Path("filter.err");
  std::FILE* err = std::fopen(errors.c_str(), "w");
  *status = FilterCaptures(o, err, summary);
  std::fclose(err);
  return testing::ReadFileBytes(errors);
}

TEST(Filter, MergeIsTheSortOfTheUnionWithDropsSummedAndPointsRenumbered) {
  std::vector<Exchange> a = Jittered(3000, 0, 1), b = Jittered(2000, 0, 2);
  TrailerInput ta, tb;
  ta.drops = {{"tcp_gap_bytes", 100}, {"kernel_dropped_packets", 3}};
  tb.drops = {{"tcp_gap_bytes", 23}, {"http1_parse_error_bytes", 7}};
  tb.counters = {{"opaque_connections", 2}};
  std::string pa = testing::WriteTestFile("a.tap", testing::WriteToString(a, 8 << 10, true, ta));
  std::string pb = testing::WriteTestFile("b.tap", testing::WriteToString(b, 8 << 10, true, tb));
  FilterOptions o;
  o.inputs = {pa, pb};
  o.output = Path("merged.tap");
  o.command_line = {"tapfilter", pa, pb, "-w", o.output};
  FilterSummary s;
  absl::Status st;
  EXPECT_EQ(Filter(o, &s, &st), "");
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(s.exchanges, 5000u);
  Read r = ReadBack(o.output);
  // The second input's capture points follow the first's (SampleMetadata's ids).
  CaptureMetadata sample = testing::SampleMetadata();
  uint32_t shift = 0;
  for (const CapturePointInfo& cp : sample.capture_points) shift = std::max(shift, cp.id + 1);
  ASSERT_GT(shift, 0u);
  for (Exchange& x : b) x.capture_point += shift;
  std::vector<Key> want = Keys(a), kb = Keys(b);
  want.insert(want.end(), kb.begin(), kb.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(Keys(r.xs), want) << "written in sort-key order";
  ASSERT_TRUE(r.summary);
  EXPECT_EQ(r.summary->drops, (std::map<std::string, uint64_t>{{"http1_parse_error_bytes", 7},
                                                               {"kernel_dropped_packets", 3},
                                                               {"tcp_gap_bytes", 123}}));
  EXPECT_EQ(r.summary->counters,
            (std::map<std::string, uint64_t>{{"opaque_connections", 2}, {"selected_out", 0}}));
  EXPECT_EQ(r.meta.capture_points.size(), 2 * sample.capture_points.size());
  EXPECT_EQ(r.meta.writer_name, "tapfilter");
  EXPECT_EQ(r.meta.command_line, o.command_line);
  std::vector<std::pair<std::string, std::string>> sources;
  for (const auto& e : r.meta.extra) {
    if (e.first == "tapfilter.source") sources.push_back(e);
  }
  EXPECT_EQ(sources, (std::vector<std::pair<std::string, std::string>>{{"tapfilter.source", pa},
                                                                       {"tapfilter.source", pb}}));
}

TEST(Filter, SelectionIsCountedAsSelectedOutAndRecorded) {
  std::vector<Exchange> xs = Jittered(1000, 0, 5);
  std::string in = testing::WriteTestFile("in.tap", testing::WriteToString(xs, 8 << 10));
  FilterOptions o;
  o.inputs = {in};
  o.output = Path("selected.tap");
  o.keep = [](const ExchangeView& v) { return v.stream_id() % 10 == 3; };
  o.selection = {{"stream-mod-10", "3"}, {"unused", ""}};
  // The redaction hook: every exchange passes through it before it is written.
  o.redaction.apply = [](Exchange* x) {
    x->request->path = "/redacted";
    return absl::OkStatus();
  };
  o.redaction.policy.headers = {"x-secret"};
  o.redaction.description = {{"tapfilter.redact-test", "path"}};
  FilterSummary s;
  absl::Status st;
  EXPECT_EQ(Filter(o, &s, &st), "");
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(s.exchanges, 100u);
  EXPECT_EQ(s.selected_out, 900u);
  Read r = ReadBack(o.output);
  ASSERT_EQ(r.xs.size(), 100u);
  for (const Exchange& x : r.xs) {
    EXPECT_EQ(x.stream_id % 10, 3u);
    EXPECT_EQ(x.request->path, "/redacted");
  }
  EXPECT_EQ(r.summary->counters.at("selected_out"), 900u);
  EXPECT_EQ(r.summary->drops.count("selected_out"), 0u) << "a counter, not a drop";
  const CaptureMetadata sample = testing::SampleMetadata();
  std::vector<std::pair<std::string, std::string>> want_filters = sample.filters;
  want_filters.emplace_back("stream-mod-10", "3");
  EXPECT_EQ(r.meta.filters, want_filters);
  EXPECT_TRUE(r.meta.redaction.enabled);
  EXPECT_NE(std::find(r.meta.redaction.headers.begin(), r.meta.redaction.headers.end(), "x-secret"),
            r.meta.redaction.headers.end());
  EXPECT_NE(std::find(r.meta.extra.begin(), r.meta.extra.end(),
                      std::pair<std::string, std::string>{"tapfilter.redact-test", "path"}),
            r.meta.extra.end());
}

TEST(Filter, SplitsWithDashC) {
  std::vector<Exchange> xs;
  for (int i = 0; i < 400; ++i) {
    Exchange x = testing::RichExchange(i);
    x.sort_key_ns = 1'000'000'000 + i * 1'000'000;
    xs.push_back(std::move(x));
  }
  std::string in = testing::WriteTestFile("rich.tap", testing::WriteToString(xs, 16 << 10));
  FilterOptions o;
  o.inputs = {in};
  o.output = Path("split.tap");
  o.max_bytes = 8 << 10;
  FilterSummary s;
  absl::Status st;
  EXPECT_EQ(Filter(o, &s, &st), "");
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_GE(s.files, 3u);
  std::vector<Exchange> all;
  for (uint64_t i = 0; i < s.files; ++i) {
    // tcpdump's names, as taprec -C: out.tap, out1.tap, out2.tap, ...
    std::string name = i == 0 ? o.output : NumberedName(o.output, i);
    Read r = ReadBack(name);
    EXPECT_GT(r.xs.size(), 0u) << name;
    all.insert(all.end(), r.xs.begin(), r.xs.end());
  }
  EXPECT_FALSE(std::filesystem::exists(NumberedName(o.output, s.files)));
  EXPECT_EQ(Keys(all), Keys(xs)) << "every exchange, in order, across the files";
}

// Regression (fresh-user trial): with -C, an input named as one of the later output files
// (a1.tap for -w a.tap) was overwritten while it was read, and its exchanges lost.
TEST(Filter, NoFileOfTheSplitMayBeAnInput) {
  std::vector<Exchange> xs;
  for (int i = 0; i < 400; ++i) {
    Exchange x = testing::RichExchange(i);
    x.sort_key_ns = 1'000'000'000 + i * 1'000'000;
    xs.push_back(std::move(x));
  }
  std::string out = Path("part.tap");
  std::string in = testing::WriteTestFile("part3.tap", testing::WriteToString(xs, 16 << 10));
  ASSERT_EQ(in, NumberedName(out, 3));
  FilterOptions o;
  o.inputs = {in};
  o.output = out;
  o.max_bytes = 8 << 10;
  FilterSummary s;
  absl::Status st;
  EXPECT_EQ(Filter(o, &s, &st), "");
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_NE(st.message().find("part3.tap"), std::string_view::npos) << st;
  EXPECT_EQ(ReadBack(in).xs.size(), 400u) << "left as it was";
  EXPECT_FALSE(std::filesystem::exists(out)) << "refused before anything was written";
}

TEST(Filter, BadInputNamesTheFileAndTheRestIsWritten) {
  std::string good = testing::WriteTestFile("good.tap", testing::WriteToString(Jittered(20, 0, 9)));
  std::string bad = testing::WriteTestFile("bad.tap", "this is no capture");
  FilterOptions o;
  o.inputs = {good, bad};
  o.output = Path("out.tap");
  FilterSummary s;
  absl::Status st;
  std::string err = Filter(o, &s, &st);
  EXPECT_EQ(err, absl::StrCat("tapfilter: ", bad, ": offset 0: not a .tap file (bad magic)\n"));
  EXPECT_TRUE(absl::IsDataLoss(st)) << st;
  EXPECT_EQ(ReadBack(o.output).xs.size(), 20u);

  // The output may not be an input.
  o.inputs = {good};
  o.output = good;
  EXPECT_EQ(Filter(o, &s, &st), "");
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_EQ(ReadBack(good).xs.size(), 20u) << "left as it was";
}

TEST(Filter, DamagedSegmentIsReportedWithFileAndOffset) {
  std::vector<Exchange> xs;
  for (int i = 0; i < 30; ++i) xs.push_back(testing::RichExchange(i));
  std::string file = testing::WriteToString(xs, 2000);
  std::vector<uint64_t> blocks = testing::BlockOffsets(file);
  ASSERT_GE(blocks.size(), 4u);
  file[blocks[1] + 90] ^= 0x55;
  std::string in = testing::WriteTestFile("damaged.tap", file);
  FilterOptions o;
  o.inputs = {in};
  o.output = Path("out2.tap");
  FilterSummary s;
  absl::Status st;
  std::string err = Filter(o, &s, &st);
  EXPECT_NE(err.find(absl::StrCat("tapfilter: ", in, ": offset ", blocks[1], ": ")),
            std::string::npos)
      << err;
  EXPECT_TRUE(absl::IsDataLoss(st)) << st;
  EXPECT_GT(s.exchanges, 0u);
  EXPECT_LT(s.exchanges, 30u);
}

}  // namespace
}  // namespace tapkit
