// Seek on a file of many segments whose sort keys are only nearly ordered (completion order).
#include <gtest/gtest.h>

#include <random>

#include "format/block.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

struct Fixture {
  std::vector<Exchange> xs;
  std::string with_index, without_index;
};

const Fixture& Get() {
  static const Fixture* f = [] {
    auto* f = new Fixture;
    std::mt19937_64 rng(42);
    for (uint64_t i = 0; i < 6000; ++i) {
      // Completion order: a request that started earlier may finish later (jitter of +-5 ms).
      uint64_t key = 1'000'000'000 + i * 1'000'000 + rng() % 10'000'000 - 5'000'000;
      f->xs.push_back(testing::SmallExchange(i, key));
    }
    f->with_index = testing::WriteToString(f->xs, 8 << 10, true);
    f->without_index = testing::WriteToString(f->xs, 8 << 10, false);
    return f;
  }();
  return *f;
}

struct SeekResult {
  std::vector<Exchange> got;
  ReaderStats stats;
};

SeekResult SeekAndRead(std::string_view file, uint64_t t, bool seekable = true) {
  SeekResult r;
  auto reader = Reader::Open(NewStringReadableFile(file, "seek.tap", seekable));
  EXPECT_TRUE(reader.ok());
  EXPECT_TRUE((*reader)->Seek(t).ok());
  ExchangeView v;
  while ((*reader)->Next(&v)) r.got.push_back(v.ToExchange());
  r.stats = (*reader)->stats();
  EXPECT_TRUE((*reader)->status().ok()) << (*reader)->status();
  return r;
}

std::vector<Exchange> Expected(uint64_t t) {
  std::vector<Exchange> want;
  for (const Exchange& x : Get().xs) {
    if (x.sort_key_ns >= t) want.push_back(x);
  }
  return want;
}

// Segments whose largest key can hold an exchange >= t, from the block headers.
uint64_t SegmentsThatCanHold(const std::string& file, uint64_t t, uint64_t* total) {
  uint64_t n = 0;
  *total = 0;
  for (uint64_t off : testing::BlockOffsets(file)) {
    format::BlockHeader h = format::DecodeBlockHeader(file.data() + off);
    if (h.type != static_cast<uint8_t>(format::BlockType::kSegment)) continue;
    ++*total;
    if (h.max_key >= t) ++n;
  }
  return n;
}

// seek(T) yields exactly the exchanges with key >= T, decompressing only segments that can hold
// them, through the index.
TEST(Seek, ExactlyKeysAtOrAfterThroughIndex) {
  const Fixture& f = Get();
  for (uint64_t t : {0ull, 1'000'000'000ull, 1'500'000'000ull, 3'333'333'333ull, 5'999'000'000ull,
                     7'000'000'000ull, 9'000'000'000ull}) {
    SeekResult r = SeekAndRead(f.with_index, t);
    EXPECT_EQ(r.got, Expected(t)) << "T=" << t;
    uint64_t total = 0;
    uint64_t can_hold = SegmentsThatCanHold(f.with_index, t, &total);
    EXPECT_EQ(r.stats.segments_decompressed, can_hold) << "T=" << t;
    EXPECT_EQ(r.stats.segments_skipped, total - can_hold) << "T=" << t;
  }
}

// Without an index (a killed writer's file) the block headers give the same result.
TEST(Seek, ExactlyKeysAtOrAfterByScanning) {
  const Fixture& f = Get();
  for (uint64_t t : {0ull, 2'500'000'000ull, 5'990'000'000ull}) {
    SeekResult r = SeekAndRead(f.without_index, t);
    EXPECT_EQ(r.got, Expected(t)) << "T=" << t;
    uint64_t total = 0;
    EXPECT_EQ(r.stats.segments_decompressed, SegmentsThatCanHold(f.without_index, t, &total));
  }
}

// On a pipe the floor still selects exactly; nothing can be rewound, so it applies from the start
// only when called before reading.
TEST(Seek, PipeFiltersForward) {
  const Fixture& f = Get();
  SeekResult r = SeekAndRead(f.with_index, 4'000'000'000ull, /*seekable=*/false);
  EXPECT_EQ(r.got, Expected(4'000'000'000ull));
}

// Seeking twice restarts from the beginning of the data.
TEST(Seek, SecondSeekRestarts) {
  const Fixture& f = Get();
  auto reader = Reader::Open(NewStringReadableFile(f.with_index));
  ASSERT_TRUE(reader.ok());
  ExchangeView v;
  ASSERT_TRUE((*reader)->Seek(5'000'000'000ull).ok());
  ASSERT_TRUE((*reader)->Next(&v));
  ASSERT_TRUE((*reader)->Seek(1'000'000'000ull).ok());
  std::vector<Exchange> got;
  while ((*reader)->Next(&v)) got.push_back(v.ToExchange());
  EXPECT_EQ(got, Expected(1'000'000'000ull));
}

}  // namespace
}  // namespace tapkit
