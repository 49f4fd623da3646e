// ExchangeSource (order.h): sort-key order on indexed files, the reorder window on files without
// an index, merging, the keep predicate. The expected order is computed here independently, by
// sorting the exchanges that were written.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "format/order.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

using Key = std::tuple<uint64_t, uint32_t, uint64_t>;  // sort key, capture point, stream id

// Completion order: sort keys one ms apart with +-5 ms of jitter, so neighbours swap.
std::vector<Exchange> Jittered(uint64_t n, uint64_t first_id, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Exchange> xs;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t key = 1'000'000'000 + i * 1'000'000 + rng() % 10'000'000 - 5'000'000;
    xs.push_back(testing::SmallExchange(first_id + i, key));
  }
  return xs;
}

std::vector<Key> Keys(const std::vector<Exchange>& xs) {
  std::vector<Key> k;
  for (const Exchange& x : xs) k.emplace_back(x.sort_key_ns, x.capture_point, x.stream_id);
  return k;
}

struct Drained {
  std::vector<Key> keys;
  std::vector<size_t> inputs;
  uint64_t late = 0, selected_out = 0, max_segments = 0;
};

Drained Drain(OrderOptions o) {
  Drained d;
  auto s = ExchangeSource::Open(std::move(o));
  EXPECT_TRUE(s.ok()) << s.status();
  if (!s.ok()) return d;
  ExchangeView v;
  size_t input;
  while ((*s)->Next(&v, &input)) {
    d.keys.emplace_back(v.sort_key_ns(), v.capture_point(), v.stream_id());
    d.inputs.push_back(input);
  }
  for (size_t i = 0; i < (*s)->inputs(); ++i) {
    EXPECT_TRUE((*s)->reader(i)->status().ok()) << (*s)->reader(i)->status();
  }
  d.late = (*s)->late();
  d.selected_out = (*s)->selected_out();
  d.max_segments = (*s)->max_held_segments();
  return d;
}

TEST(Order, IndexedFileInExactSortKeyOrderWithBoundedSegments) {
  std::vector<Exchange> xs = Jittered(6000, 0, 42);
  std::string path =
      testing::WriteTestFile("indexed.tap", testing::WriteToString(xs, 8 << 10, true));
  std::vector<Key> stored = Keys(xs), want = stored;
  std::sort(want.begin(), want.end());
  ASSERT_NE(stored, want) << "completion order must differ from sort-key order here";

  OrderOptions o;
  o.files = {path};
  o.headers_only = true;
  Drained d = Drain(o);
  EXPECT_EQ(d.keys, want);
  EXPECT_EQ(d.late, 0u);
  // About 100 segments, each overlapping only its neighbours' key ranges.
  auto reader = Reader::Open(*OpenReadableFile(path));
  ASSERT_TRUE(reader.ok());
  size_t segments = (*reader)->summary()->index.size();
  EXPECT_GT(segments, 50u);
  EXPECT_LE(d.max_segments, 4u) << "of " << segments;

  o.file_order = true;
  EXPECT_EQ(Drain(o).keys, stored);
}

TEST(Order, MergeOfTwoFilesIsTheSortOfTheirUnion) {
  std::vector<Exchange> a = Jittered(3000, 0, 1), b = Jittered(2000, 100000, 2);
  // Equal sort keys across the files: the tie goes to capture point, stream id, then input.
  b[10].sort_key_ns = a[10].sort_key_ns;
  b[11].sort_key_ns = a[11].sort_key_ns;
  b[11].capture_point = 0;
  a[11].capture_point = 1;
  std::string pa = testing::WriteTestFile("a.tap", testing::WriteToString(a, 8 << 10, true));
  // The second without a trailer: read through the window, merged all the same.
  std::string pb = testing::WriteTestFile("b.tap", testing::WriteToString(b, 8 << 10, false));
  std::vector<Key> want = Keys(a), kb = Keys(b);
  want.insert(want.end(), kb.begin(), kb.end());
  std::sort(want.begin(), want.end());

  OrderOptions o;
  o.files = {pa, pb};
  Drained d = Drain(o);
  EXPECT_EQ(d.keys, want);
  EXPECT_EQ(d.late, 0u) << "10 ms of jitter is well inside the 10 s window";
  ASSERT_EQ(d.inputs.size(), 5000u);
  EXPECT_EQ(std::count(d.inputs.begin(), d.inputs.end(), 1u), 2000);
}

TEST(Order, WindowReleasesLateExchangeAtOnceAndCountsIt) {
  // Seconds: 25 arrives after 30 but within the 10 s window; 5 arrives after 30 was released.
  std::vector<uint64_t> secs = {0, 30, 25, 40, 5, 45};
  std::vector<Exchange> xs;
  for (size_t i = 0; i < secs.size(); ++i) {
    xs.push_back(testing::SmallExchange(i, 1'000'000'000'000 + secs[i] * 1'000'000'000));
  }
  // One exchange per segment, no trailer: read in file order through the window.
  std::string path = testing::WriteTestFile("late.tap", testing::WriteToString(xs, 1, false));
  OrderOptions o;
  o.files = {path};
  Drained d = Drain(o);
  std::vector<uint64_t> got;
  for (const Key& k : d.keys) got.push_back((std::get<0>(k) - 1'000'000'000'000) / 1'000'000'000);
  EXPECT_EQ(got, (std::vector<uint64_t>{0, 25, 30, 5, 40, 45}));
  EXPECT_EQ(d.late, 1u);

  // A window of 0: as read, nothing counted.
  o.reorder_window_ns = 0;
  d = Drain(o);
  got.clear();
  for (const Key& k : d.keys) got.push_back((std::get<0>(k) - 1'000'000'000'000) / 1'000'000'000);
  EXPECT_EQ(got, secs);
  EXPECT_EQ(d.late, 0u);
  // A window wider than the whole spread: exact order.
  o.reorder_window_ns = 60'000'000'000;
  d = Drain(o);
  EXPECT_TRUE(std::is_sorted(d.keys.begin(), d.keys.end()));
  EXPECT_EQ(d.late, 0u);
}

TEST(Order, KeepRunsBeforeHoldingAndCountsTheRest) {
  std::vector<Exchange> xs = Jittered(5000, 0, 7);
  std::string path = testing::WriteTestFile("keep.tap", testing::WriteToString(xs, 8 << 10, true));
  OrderOptions o;
  o.files = {path};
  uint64_t calls = 0;
  o.keep = [&](const ExchangeView& v) {
    ++calls;
    return v.stream_id() % 100 == 0;
  };
  Drained d = Drain(o);
  std::vector<Key> want;
  for (const Key& k : Keys(xs)) {
    if (std::get<2>(k) % 100 == 0) want.push_back(k);
  }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(d.keys, want);
  EXPECT_EQ(d.selected_out, 5000u - want.size());
  EXPECT_EQ(calls, 5000u);
}

TEST(Order, UnopenableInputIsToldAndTheRestRead) {
  std::vector<Exchange> xs = Jittered(10, 0, 3);
  std::string good = testing::WriteTestFile("good.tap", testing::WriteToString(xs));
  std::string bad = testing::WriteTestFile("bad.tap", "not a tap file at all");
  OrderOptions o;
  o.files = {bad, good};
  std::vector<std::string> errors;
  o.open_error = [&](const absl::Status& s) { errors.emplace_back(s.message()); };
  auto s = ExchangeSource::Open(o);
  ASSERT_TRUE(s.ok());
  ExchangeView v;
  int n = 0;
  while ((*s)->Next(&v)) ++n;
  EXPECT_EQ(n, 10);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find(bad + ": offset 0: not a .tap file"), std::string::npos) << errors[0];
  EXPECT_EQ((*s)->reader(0), nullptr);
}

TEST(Order, Durations) {
  EXPECT_EQ(*ParseDurationNs("10s"), 10'000'000'000);
  EXPECT_EQ(*ParseDurationNs("500ms"), 500'000'000);
  EXPECT_EQ(*ParseDurationNs("1.5s"), 1'500'000'000);
  EXPECT_EQ(*ParseDurationNs("0"), 0);
  EXPECT_EQ(*ParseDurationNs("2m"), 120'000'000'000);
  for (const char* bad : {"", "10", "s", "-1s", "1.2.3s", "10x", "1e30h"}) {
    EXPECT_FALSE(ParseDurationNs(bad).ok()) << bad;
  }
  EXPECT_EQ(FormatDurationNs(10'000'000'000), "10s");
  EXPECT_EQ(FormatDurationNs(500'000'000), "500ms");
  EXPECT_EQ(FormatDurationNs(1'500'000'000), "1.5s");
  EXPECT_EQ(FormatDurationNs(0), "0s");
}

}  // namespace
}  // namespace tapkit
