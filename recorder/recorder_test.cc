// Recorder: a tap's events to a .tap file: the control plane's labels copied into each exchange,
// the trailer summing every capture point's counters, pods lost counted, a damaged exchange
// refused with the reason. Checked by reading the file back with format/'s Reader.
#include "recorder/recorder.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "format/codec.h"
#include "format/file.h"
#include "format/reader.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

namespace v1 = tapkit::tap::v1;

// An ExchangeEnded as a sidecar sends it (no labels in the bytes) with the control plane's
// labels beside it.
v1::ExchangeEnded Event(uint64_t i, uint32_t capture_point) {
  Exchange x = testing::RichExchange(i);
  x.capture_point = capture_point;
  x.source.labels = {};
  x.destination.labels = {};
  flatbuffers::FlatBufferBuilder b;
  std::string bodies;
  EXPECT_TRUE(EncodeExchange(x, &b, &bodies).ok());
  v1::ExchangeEnded e;
  e.mutable_id()->set_capture_point("demo/backend-" + std::to_string(capture_point));
  e.mutable_id()->set_capture_point_id(capture_point);
  e.mutable_id()->set_stream_id(i);
  e.set_exchange(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  e.set_bodies(bodies);
  auto& src = *e.mutable_source()->mutable_labels();
  src["namespace"] = "demo";
  src["pod"] = "frontend-1";
  src["workload_kind"] = "deployment";
  src["workload"] = "frontend";
  auto& dst = *e.mutable_destination()->mutable_labels();
  dst["namespace"] = "demo";
  dst["pod"] = "backend-" + std::to_string(capture_point);
  dst["service"] = "backend";
  return e;
}

TEST(Recorder, LabelsTrailerAndPodsLost) {
  std::string path = testing::TestDir() + "/recorder.tap";
  std::filesystem::remove(path);
  Recorder r(path, testing::SampleMetadata(), {});
  ASSERT_TRUE(r.Open().ok());
  for (uint64_t i = 0; i < 10; ++i) {
    absl::StatusOr<Exchange> x = ExchangeFromEvent(Event(i, 1 + i % 2));
    ASSERT_TRUE(x.ok()) << x.status();
    ASSERT_TRUE(r.Append(*std::move(x), "demo/backend-" + std::to_string(1 + i % 2)).ok());
    if (i % 3 == 0) {
      ASSERT_TRUE(r.EndOfMessage().ok());
    }
  }
  v1::Stats a, b, a_later;
  a.set_capture_point("demo/backend-1");
  a.set_kernel_dropped(5);
  (*a.mutable_drops())["buffer_cap"] = 1;
  b.set_capture_point("demo/backend-2");
  b.set_kernel_dropped(7);
  (*b.mutable_counters())["frames"] = 100;
  a_later = a;
  a_later.set_kernel_dropped(6);  // monotonic: the latest replaces, never adds
  r.OnStats(a);
  r.OnStats(b);
  r.OnStats(a_later);
  r.OnPodLost();
  EXPECT_EQ(r.drops(), 6u + 1 + 7 + 1) << "kernel, buffer_cap, kernel, pods_lost: the trailer's";
  ASSERT_TRUE(r.Close().ok());

  testing::ReadResult got = testing::ReadAll(testing::ReadFileBytes(path));
  ASSERT_TRUE(got.status.ok()) << got.status;
  ASSERT_EQ(got.exchanges.size(), 10u);
  for (const Exchange& x : got.exchanges) {
    EXPECT_EQ(x.source.labels.pod, "frontend-1");
    EXPECT_EQ(x.source.labels.workload_kind, "deployment");
    EXPECT_EQ(x.source.labels.workload_name, "frontend");
    EXPECT_EQ(x.destination.labels.pod, "backend-" + std::to_string(x.capture_point));
    EXPECT_EQ(x.destination.labels.service, "backend");
    Exchange want = testing::RichExchange(x.stream_id - 1000);
    EXPECT_EQ(x.request->path, want.request->path);
    EXPECT_EQ(x.response->body.data, want.response->body.data);
  }
  auto file = OpenReadableFile(path);
  ASSERT_TRUE(file.ok());
  auto reader = Reader::Open(*std::move(file));
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->summary().has_value());
  const FileSummary& s = *(*reader)->summary();
  EXPECT_EQ(s.drops.at("kernel_dropped_packets"), 13u);
  EXPECT_EQ(s.drops.at("buffer_cap"), 1u);
  EXPECT_EQ(s.drops.at("pods_lost"), 1u);
  EXPECT_EQ(s.counters.at("frames"), 100u);
  ASSERT_EQ(s.capture_points.size(), 2u);
  EXPECT_EQ(s.capture_points[0].name, "demo/backend-1");
  EXPECT_EQ(s.capture_points[1].name, "demo/backend-2");
}

// A live tap's trailer gets every named drop its sidecars reported, whatever the name (the
// engine's names are its own: Stats.drops is a map), summed by name over the capture points, and
// the kernel's losses under the names taprec -i gives its own (kernel_dropped_packets,
// interface_dropped_packets); nothing is dropped for being zero or unknown to the recorder.
TEST(Recorder, EveryNamedDropOfEverySidecarReachesTheTrailer) {
  std::string path = testing::TestDir() + "/recorder-drops.tap";
  std::filesystem::remove(path);
  Recorder r(path, testing::SampleMetadata(), {});
  ASSERT_TRUE(r.Open().ok());
  v1::Stats a, b;
  a.set_capture_point("demo/backend-1");
  (*a.mutable_drops())["connection_limit"] = 2;
  (*a.mutable_drops())["snaplen_truncated_packets"] = 3;
  (*a.mutable_drops())["a_name_no_one_knows_yet"] = 4;
  a.set_kernel_dropped(10);
  a.set_interface_dropped(1);
  a.set_events_dropped(6);
  b.set_capture_point("demo/backend-2");
  (*b.mutable_drops())["connection_limit"] = 5;
  (*b.mutable_drops())["total_buffer_limit"] = 7;
  b.set_kernel_dropped(20);
  r.OnStats(a);
  r.OnStats(b);
  ASSERT_TRUE(r.Close().ok());
  auto reader = Reader::Open(NewStringReadableFile(testing::ReadFileBytes(path)));
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->summary().has_value());
  std::map<std::string, uint64_t> want = {
      {"connection_limit", 7},        {"snaplen_truncated_packets", 3},
      {"a_name_no_one_knows_yet", 4}, {"total_buffer_limit", 7},
      {"kernel_dropped_packets", 30}, {"interface_dropped_packets", 1},
      {"sidecar_events_dropped", 6}};
  EXPECT_EQ((*reader)->summary()->drops, want);
}

TEST(Recorder, DamagedExchangeBytesAreRefusedWithTheReason) {
  v1::ExchangeEnded e = Event(3, 1);
  std::string bytes = e.exchange();
  bytes[bytes.size() / 2] ^= 0x55;
  bytes.resize(bytes.size() - 9);
  e.set_exchange(bytes);
  absl::StatusOr<Exchange> x = ExchangeFromEvent(e);
  ASSERT_FALSE(x.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(x.status()) || absl::IsDataLoss(x.status())) << x.status();
  EXPECT_FALSE(x.status().message().empty());
}

}  // namespace
}  // namespace tapkit
