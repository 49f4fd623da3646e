// AsyncWriter: the same file as the Writer, written from a thread of its own; errors come back to
// the producer; Flush() and the writer thread's own timer put exchanges in the file on time.
#include "format/async_writer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "format/testutil.h"

namespace tapkit {
namespace {

using testing::ReadAll;
using testing::RichExchange;
using testing::SampleMetadata;

WriterOptions NoTimer(size_t segment_bytes) {
  WriterOptions o;
  o.segment_bytes = segment_bytes;
  o.flush_interval_ns = 0;
  o.wall_clock = [] { return uint64_t{1700000000000000000}; };
  return o;
}

// Many exchanges through a small queue (the producer waits on the writer thread) arrive in order
// and equal to what went in, in the same bytes a Writer on the caller's thread writes.
TEST(AsyncWriter, SameFileAsTheWriter) {
  std::vector<Exchange> xs;
  for (uint64_t i = 0; i < 1000; ++i) xs.push_back(RichExchange(i));
  std::string async_file, sync_file;
  {
    auto w = AsyncWriter::Open(NewStringWritableFile(&async_file), SampleMetadata(),
                               NoTimer(16 << 10), /*max_batches=*/1);
    ASSERT_TRUE(w.ok()) << w.status();
    for (const Exchange& x : xs) ASSERT_TRUE((*w)->Append(Exchange(x)).ok());
    ASSERT_TRUE((*w)->Close().ok());
    EXPECT_EQ((*w)->stats().exchanges, xs.size());
    EXPECT_FALSE((*w)->Append(RichExchange(0)).ok()) << "append after close";
  }
  {
    auto w = Writer::Open(NewStringWritableFile(&sync_file), SampleMetadata(), NoTimer(16 << 10));
    ASSERT_TRUE(w.ok()) << w.status();
    for (const Exchange& x : xs) ASSERT_TRUE((*w)->Append(x).ok());
    ASSERT_TRUE((*w)->Close().ok());
  }
  EXPECT_EQ(async_file, sync_file);
  testing::ReadResult r = ReadAll(async_file);
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.exchanges.size(), xs.size());
  for (size_t i = 0; i < xs.size(); ++i) ASSERT_EQ(r.exchanges[i], xs[i]) << "exchange " << i;
}

// Flush() returns once everything handed over is in a whole segment of the file.
TEST(AsyncWriter, FlushWritesEverythingHandedOver) {
  std::string file;
  auto w = AsyncWriter::Open(NewStringWritableFile(&file), SampleMetadata(), NoTimer(1 << 20));
  ASSERT_TRUE(w.ok());
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE((*w)->Append(RichExchange(i)).ok());
  ASSERT_TRUE((*w)->Flush().ok());
  std::string copy = file;  // the writer thread is idle after Flush()
  testing::ReadResult r = ReadAll(copy);
  EXPECT_EQ(r.exchanges.size(), 3u);
  EXPECT_EQ((*w)->stats().segments, 1u);
  ASSERT_TRUE((*w)->Close().ok());
}

// With a flush interval, a segment reaches the file without any further call from the producer.
TEST(AsyncWriter, TimerFlushesAQuietCapture) {
  std::string file;
  WriterOptions o = NoTimer(1 << 20);
  o.flush_interval_ns = 50'000'000;  // 50 ms
  auto w = AsyncWriter::Open(NewStringWritableFile(&file), SampleMetadata(), o);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append(RichExchange(7)).ok());
  ASSERT_TRUE((*w)->Tick().ok());  // too early: the partial batch stays with the producer
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*w)->stats().segments == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE((*w)->Tick().ok());  // a live capture's poll loop ticks like this
  }
  EXPECT_EQ((*w)->stats().segments, 1u) << "no segment within 10 s of a 50 ms interval";
  ASSERT_TRUE((*w)->Close().ok());
}

// A failing file (a full disk) is reported to the producer by a later call, and the file keeps
// every whole segment written before the failure.
TEST(AsyncWriter, FileErrorReachesTheProducer) {
  std::string file;
  auto w = AsyncWriter::Open(NewFaultInjectingWritableFile(NewStringWritableFile(&file), 20000),
                             SampleMetadata(), NoTimer(4 << 10));
  ASSERT_TRUE(w.ok());
  absl::Status s;
  uint64_t i = 0;
  for (; i < 100000 && s.ok(); ++i) s = (*w)->Append(RichExchange(i));
  if (s.ok()) s = (*w)->Close();
  EXPECT_FALSE(s.ok()) << "the fault at 20000 bytes was never reported";
  EXPECT_FALSE((*w)->Close().ok());
  testing::ReadResult r = ReadAll(file);
  EXPECT_GT(r.exchanges.size(), 0u);
  EXPECT_LT(r.exchanges.size(), i);
  for (size_t k = 0; k < r.exchanges.size(); ++k) ASSERT_EQ(r.exchanges[k], RichExchange(k));
}

}  // namespace
}  // namespace tapkit
