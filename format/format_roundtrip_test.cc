// Round trips through Writer and Reader: every field comes back as it went in.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "format/codec.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

using testing::ReadAll;
using testing::RichExchange;
using testing::SmallExchange;
using testing::WriteToString;

// Every field of a fully populated exchange survives, for many distinct exchanges.
TEST(RoundTrip, EveryFieldOfRichExchanges) {
  std::vector<Exchange> xs;
  for (uint64_t i = 0; i < 200; ++i) xs.push_back(RichExchange(i));
  std::string file = WriteToString(xs, 8 << 10);
  ASSERT_FALSE(file.empty());
  testing::ReadResult r = ReadAll(file);
  ASSERT_TRUE(r.open.ok()) << r.open;
  EXPECT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.exchanges.size(), xs.size());
  for (size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(r.exchanges[i], xs[i]) << "exchange " << i;
  EXPECT_GT(r.stats.blocks, 3u) << "the small segment size should give several segments";
  EXPECT_TRUE(r.stats.trailer_read);
  EXPECT_TRUE(r.report.corruption.empty());
  EXPECT_TRUE(r.report.notices.empty());
}

// The same file read through a pipe (no seeking, odd-sized reads) gives the same exchanges.
TEST(RoundTrip, ReadFromPipe) {
  std::vector<Exchange> xs;
  for (uint64_t i = 0; i < 50; ++i) xs.push_back(RichExchange(i));
  std::string file = WriteToString(xs, 4 << 10);
  testing::ReadResult r = ReadAll(file, false, /*seekable=*/false);
  ASSERT_TRUE(r.open.ok());
  EXPECT_EQ(r.exchanges, xs);
  EXPECT_TRUE(r.stats.trailer_read);
}

// An exchange without request (capture began late) and one without response (none came).
TEST(RoundTrip, MissingRequestOrResponse) {
  Exchange no_req = RichExchange(1);
  no_req.request.reset();
  no_req.completion = Completion::kNoRequest;
  no_req.reason = "request not captured";
  Exchange no_rsp = RichExchange(2);
  no_rsp.response.reset();
  no_rsp.interim.clear();
  no_rsp.completion = Completion::kNoResponse;
  Exchange bare;  // nothing at all set
  std::string file = WriteToString({no_req, no_rsp, bare});
  testing::ReadResult r = ReadAll(file);
  ASSERT_EQ(r.exchanges.size(), 3u);
  EXPECT_EQ(r.exchanges[0], no_req);
  EXPECT_FALSE(r.exchanges[0].request.has_value());
  EXPECT_EQ(r.exchanges[1], no_rsp);
  EXPECT_FALSE(r.exchanges[1].response.has_value());
  EXPECT_EQ(r.exchanges[2], bare);
  EXPECT_EQ(r.exchanges[2].latency_ns(), 0u);
}

// Several interim responses keep their order, status, headers and times.
TEST(RoundTrip, SeveralInterimResponsesInOrder) {
  Exchange x = SmallExchange(1, 5);
  for (int k = 0; k < 5; ++k) {
    x.interim.push_back(InterimResponse{static_cast<uint16_t>(100 + (k % 2) * 3),
                                        k % 2 ? "Early Hints" : "Continue",
                                        {{"X-K", std::to_string(k)}},
                                        static_cast<uint64_t>(k) * 777});
  }
  testing::ReadResult r = ReadAll(WriteToString({x}));
  ASSERT_EQ(r.exchanges.size(), 1u);
  EXPECT_EQ(r.exchanges[0].interim, x.interim);
}

// Empty bodies, a body of exactly the limit and binary header bytes, IPv6 both ways.
TEST(RoundTrip, EmptyAndLargeBodiesBinaryHeadersIpv6) {
  Exchange empty = SmallExchange(1, 10);
  empty.response->body = Body{"", 0, false};
  empty.request->body = Body{"", 0, false};
  Exchange big = SmallExchange(2, 20);
  std::string bytes(1 << 20, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 + (i >> 9));
  big.response->body = Body{bytes, bytes.size(), false};
  big.request->headers.push_back({std::string("X-\x01\xfe", 4), std::string("\0\0\xff", 3)});
  std::array<uint8_t, 16> v6{};
  v6[15] = 1;
  big.source.ip = IpAddress::V6(v6);
  big.destination.ip = *IpAddress::Parse("fe80::1:2");
  std::string file = WriteToString({empty, big}, 64 << 10);
  testing::ReadResult r = ReadAll(file);
  ASSERT_EQ(r.exchanges.size(), 2u);
  EXPECT_EQ(r.exchanges[0], empty);
  EXPECT_EQ(r.exchanges[1], big);
  EXPECT_EQ(r.exchanges[1].destination.ip.ToString(), "fe80::1:2");
  EXPECT_EQ(r.exchanges[1].source.ToString(), "[::1]:50000");
}

// Regression: segments larger than the reader's first window (incompressible bodies, 1 MiB
// segments) used to be decoded through a view the window had moved away from.
TEST(RoundTrip, SegmentsLargerThanTheReadWindow) {
  std::vector<Exchange> xs;
  uint64_t state = 88172645463325252ull;
  for (uint64_t i = 0; i < 40; ++i) {
    Exchange x = SmallExchange(i, 1000 + i);
    std::string body(100'000 + i * 997, '\0');
    for (char& c : body) {  // xorshift: zstd cannot shrink it
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      c = static_cast<char>(state);
    }
    x.response->body = Body{body, body.size(), false};
    xs.push_back(std::move(x));
  }
  std::string file = WriteToString(xs);
  ASSERT_GE(testing::BlockOffsets(file).size(), 4u);
  for (bool seekable : {true, false}) {
    testing::ReadResult r = ReadAll(file, false, seekable);
    EXPECT_TRUE(r.status.ok()) << r.status;
    EXPECT_TRUE(r.report.corruption.empty());
    EXPECT_EQ(r.exchanges, xs) << (seekable ? "file" : "pipe");
  }
}

// Bodies at the default body limit (64 KiB) and far beyond it (32 MiB, a --snaplen-body raised
// for a bulk upload) round trip byte for byte.
TEST(RoundTrip, MaximumSizeBodies) {
  Exchange at_limit = SmallExchange(1, 10);
  at_limit.request->body.data.assign(format::kDefaultBodyLimit, 'q');
  at_limit.request->body.length = at_limit.request->body.data.size();
  at_limit.response->body.data.assign(format::kDefaultBodyLimit, 'r');
  at_limit.response->body.length = 10 * format::kDefaultBodyLimit;  // cut by the limit
  at_limit.response->body.truncated = true;
  Exchange huge = SmallExchange(2, 20);
  huge.response->body.data.assign(32u << 20, '\0');
  for (size_t i = 0; i < huge.response->body.data.size(); i += 4096) {
    huge.response->body.data[i] = static_cast<char>(i >> 12);
  }
  huge.response->body.length = huge.response->body.data.size();
  testing::ReadResult r = ReadAll(WriteToString({at_limit, huge}));
  ASSERT_EQ(r.exchanges.size(), 2u);
  EXPECT_EQ(r.exchanges[0], at_limit);
  EXPECT_TRUE(r.exchanges[1] == huge) << "32 MiB body differs";
}

// A field this version does not know (written by a later minor version) is ignored.
TEST(RoundTrip, UnknownFieldOfALaterMinorIsIgnored) {
  flatbuffers::FlatBufferBuilder b;
  std::string bodies;
  Exchange x = SmallExchange(7, 777);
  ASSERT_TRUE(EncodeExchange(x, &b, &bodies).ok());
  // Rebuild the record by hand with an extra field in vtable slot 60, past every known field.
  const fb::Exchange* known = flatbuffers::GetSizePrefixedRoot<fb::Exchange>(b.GetBufferPointer());
  flatbuffers::FlatBufferBuilder nb;
  auto path = nb.CreateString(known->request()->path()->str());
  auto method = nb.CreateString("GET");
  fb::RequestBuilder rb(nb);
  rb.add_method(method);
  rb.add_path(path);
  auto req = rb.Finish();
  fb::ExchangeBuilder eb(nb);
  eb.add_sort_key(777);
  eb.add_request(req);
  nb.AddElement<uint64_t>(flatbuffers::FieldIndexToOffset(60), 0xfeedfacecafebeefull, 0);
  nb.TrackMinAlign(8);
  nb.FinishSizePrefixed(eb.Finish());
  std::string record(reinterpret_cast<const char*>(nb.GetBufferPointer()), nb.GetSize());
  std::string file = BuildFileHeader(EncodeCaptureMetadata(testing::SampleMetadata()), 1, 9);
  ASSERT_TRUE(BuildBlock(format::BlockType::kSegment, format::Codec::kZstd, 3, 1, 777, 777, record,
                         {}, &file)
                  .ok());
  testing::ReadResult r = ReadAll(file);
  ASSERT_TRUE(r.open.ok()) << r.open;
  EXPECT_TRUE(r.status.ok()) << r.status;
  ASSERT_EQ(r.exchanges.size(), 1u);
  EXPECT_EQ(r.exchanges[0].sort_key_ns, 777u);
  EXPECT_EQ(r.exchanges[0].request->path, "/item/7");
}

// Time offsets of 4.29 s and more go to the wide field and come back exactly.
TEST(RoundTrip, LongOffsets) {
  Exchange x = SmallExchange(1, 1'000);
  x.request_end_ns = 5;
  x.response_start_ns = 3'600'000'000'000ull;  // a one-hour long poll
  x.response_end_ns = 3'600'000'000'123ull;
  Exchange y = SmallExchange(2, 2'000);
  y.response_start_ns = UINT32_MAX;  // the largest narrow value
  y.response_end_ns = UINT32_MAX;
  testing::ReadResult r = ReadAll(WriteToString({x, y}));
  ASSERT_EQ(r.exchanges.size(), 2u);
  EXPECT_EQ(r.exchanges[0], x);
  EXPECT_EQ(r.exchanges[0].latency_ns(), 3'600'000'000'000ull);
  EXPECT_EQ(r.exchanges[0].duration_ns(), 123u);
  EXPECT_EQ(r.exchanges[1], y);
}

// Format 1.3's replay_of: present (including the all-zero id and the largest values) and absent
// exchanges come back as written, from a file, headers-only, and through DecodeExchange; an
// absent id is no field at all in the record (so the record is what 1.2 wrote).
TEST(RoundTrip, ReplayOfPresentAbsentAndExtremes) {
  Exchange zero = SmallExchange(1, 1'000);
  zero.replay_of = ExchangeId{0, 0};  // present, though every member is 0
  Exchange max = SmallExchange(2, 2'000);
  max.replay_of = ExchangeId{UINT32_MAX, UINT64_MAX};
  Exchange none = SmallExchange(3, 3'000);
  Exchange typical = SmallExchange(4, 4'000);
  typical.replay_of = ExchangeId{2, 1'234'567};
  std::vector<Exchange> xs = {zero, max, none, typical};
  std::string file = WriteToString(xs, 300);  // several segments
  for (bool headers_only : {false, true}) {
    testing::ReadResult r = ReadAll(file, headers_only);
    ASSERT_TRUE(r.status.ok()) << r.status;
    ASSERT_EQ(r.exchanges.size(), 4u);
    ASSERT_TRUE(r.exchanges[0].replay_of.has_value());
    EXPECT_EQ(r.exchanges[0].replay_of->capture_point, 0u);
    EXPECT_EQ(r.exchanges[0].replay_of->stream_id, 0u);
    ASSERT_TRUE(r.exchanges[1].replay_of.has_value());
    EXPECT_EQ(r.exchanges[1].replay_of->capture_point, 4'294'967'295u);
    EXPECT_EQ(r.exchanges[1].replay_of->stream_id, 18'446'744'073'709'551'615u);
    EXPECT_FALSE(r.exchanges[2].replay_of.has_value());
    ASSERT_TRUE(r.exchanges[3].replay_of.has_value());
    EXPECT_EQ(r.exchanges[3].replay_of->capture_point, 2u);
    EXPECT_EQ(r.exchanges[3].replay_of->stream_id, 1'234'567u);
    if (!headers_only) {
      for (size_t i = 0; i < xs.size(); ++i) EXPECT_EQ(r.exchanges[i], xs[i]) << "exchange " << i;
    }
  }

  flatbuffers::FlatBufferBuilder b;
  std::string bodies;
  for (const Exchange& x : xs) {
    absl::StatusOr<ExchangeView> v = ViewOfExchange(x, &b, &bodies);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->replay_of(), x.replay_of);
    EXPECT_EQ(v->raw()->replay_of() != nullptr, x.replay_of.has_value());
    std::string encoded(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
    absl::StatusOr<Exchange> back = DecodeExchange(encoded, bodies);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, x);
  }

  // The id adds exactly its 16-byte struct (u32, 4 bytes of padding, u64) and one 2-byte vtable
  // slot, rounded up to the record's 8-byte multiple: nothing else of the record changes.
  Exchange with = none;
  with.replay_of = ExchangeId{9, 10};
  ASSERT_TRUE(EncodeExchange(none, &b, &bodies).ok());
  size_t without_size = b.GetSize();
  ASSERT_TRUE(EncodeExchange(with, &b, &bodies).ok());
  EXPECT_GE(b.GetSize(), without_size + 16);
  EXPECT_LE(b.GetSize(), without_size + 16 + 8 + 8);
}

// flatc, FlatBuffers' own compiler, decodes a record with replay_of from tap.fbs alone: the
// field's encoding is the schema's, not something only tapkit's reader understands.
TEST(RoundTrip, ReplayOfAsFlatcReadsIt) {
  Exchange x = SmallExchange(5, 5'000);
  x.replay_of = ExchangeId{3, 81'985'529'216'486'895ull};  // 0x0123456789ABCDEF
  flatbuffers::FlatBufferBuilder b;
  std::string bodies;
  ASSERT_TRUE(EncodeExchange(x, &b, &bodies).ok());
  std::string dir = testing::TestDir();
  std::string bin = dir + "/record.bin";
  {
    std::ofstream out(bin, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  }
  std::string cmd = std::string(TAPKIT_FLATC) +
                    " --json --strict-json --raw-binary --size-prefixed" +
                    " --root-type tapkit.fb.Exchange -o " + dir + " " + TAPKIT_SOURCE_DIR +
                    "/format/tap.fbs -- " + bin + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::string json = testing::ReadFileBytes(dir + "/record.json");
  std::string compact;
  for (char c : json) {
    if (c != ' ' && c != '\n') compact += c;
  }
  EXPECT_NE(compact.find(R"("replay_of":{"capture_point":3,"stream_id":81985529216486895})"),
            std::string::npos)
      << json;
  EXPECT_NE(compact.find(R"("stream_id":5)"), std::string::npos) << json;
}

// Headers-only reading returns everything but body bytes, and decompresses no body frame.
TEST(RoundTrip, HeadersOnlyLeavesBodiesOut) {
  std::vector<Exchange> xs;
  for (uint64_t i = 0; i < 30; ++i) xs.push_back(RichExchange(i));
  testing::ReadResult r = ReadAll(WriteToString(xs, 4 << 10), /*headers_only=*/true);
  ASSERT_EQ(r.exchanges.size(), xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    Exchange want = xs[i];
    want.request->body.data.clear();
    want.response->body.data.clear();
    EXPECT_EQ(r.exchanges[i], want);
    EXPECT_EQ(r.exchanges[i].response->body.length, xs[i].response->body.length);
  }
}

// The header metadata and the trailer's totals, drops and index come back.
TEST(RoundTrip, MetadataAndTrailer) {
  std::vector<Exchange> xs;
  for (uint64_t i = 0; i < 100; ++i) xs.push_back(SmallExchange(i, 1000 + i));
  TrailerInput t;
  t.drops = {{"stream_limit", 3}, {"kernel", 12}};
  t.counters = {{"tls_connections", 4}};
  std::string file = WriteToString(xs, 2 << 10, true, t);
  auto reader = Reader::Open(NewStringReadableFile(file));
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->metadata(), testing::SampleMetadata());
  EXPECT_EQ((*reader)->major_version(), 1);
  ASSERT_TRUE((*reader)->summary().has_value()) << "footer should be found at open";
  const FileSummary& s = *(*reader)->summary();
  EXPECT_EQ(s.exchanges, 100u);
  EXPECT_EQ(s.segments, s.index.size());
  EXPECT_GT(s.segments, 5u);
  EXPECT_EQ(s.min_sort_key, 1000u);
  EXPECT_EQ(s.max_sort_key, 1099u);
  EXPECT_EQ(s.drops, t.drops);
  EXPECT_EQ(s.counters, t.counters);
  EXPECT_EQ(s.end_time_ns, 1'790'000'100'000'000'000ull);
  EXPECT_EQ(s.capture_points, testing::SampleMetadata().capture_points);
  uint64_t total = 0;
  for (const SegmentInfo& e : s.index) total += e.exchanges;
  EXPECT_EQ(total, 100u);
  std::vector<uint64_t> blocks = testing::BlockOffsets(file);
  ASSERT_EQ(blocks.size(), s.index.size() + 1) << "segments, then the trailer";
  for (size_t i = 0; i < s.index.size(); ++i) EXPECT_EQ(s.index[i].offset, blocks[i]);
}

// A segment closes on the flush interval even when it is far below its size.
TEST(Writer, FlushIntervalClosesSegment) {
  std::string out;
  int64_t now = 0;
  WriterOptions o;
  o.flush_interval_ns = 1'000'000'000;
  o.clock = [&now] { return now; };
  auto w = Writer::Open(NewStringWritableFile(&out), testing::SampleMetadata(), o);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Append(SmallExchange(1, 1)).ok());
  size_t header_only = out.size();
  now = 999'999'999;
  ASSERT_TRUE((*w)->Tick().ok());
  EXPECT_EQ(out.size(), header_only) << "not due yet";
  now = 1'000'000'000;
  ASSERT_TRUE((*w)->Tick().ok());
  EXPECT_GT(out.size(), header_only) << "due: the segment reached the file";
  EXPECT_EQ((*w)->stats().segments, 1u);
  testing::ReadResult r = ReadAll(out);
  EXPECT_EQ(r.exchanges.size(), 1u);
  EXPECT_EQ(r.report.notices.size(), 1u) << "no trailer yet";
}

// A full disk fails the writer; what reached the file still reads up to the last whole segment.
TEST(Writer, FullDiskKeepsWholeSegments) {
  std::string out;
  WriterOptions o;
  o.segment_bytes = 2 << 10;
  o.flush_interval_ns = 0;
  auto w = Writer::Open(NewFaultInjectingWritableFile(NewStringWritableFile(&out), 6000),
                        testing::SampleMetadata(), o);
  ASSERT_TRUE(w.ok());
  absl::Status s;
  uint64_t appended = 0;
  for (uint64_t i = 0; i < 1000 && s.ok(); ++i) {
    s = (*w)->Append(RichExchange(i));
    if (s.ok()) ++appended;
  }
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_FALSE((*w)->Append(RichExchange(0)).ok()) << "a failed writer stays failed";
  EXPECT_EQ(out.size(), 6000u);
  testing::ReadResult r = ReadAll(out);
  EXPECT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.stats.torn_tail);
  EXPECT_GT(r.exchanges.size(), 0u);
  for (size_t i = 0; i < r.exchanges.size(); ++i) EXPECT_EQ(r.exchanges[i], RichExchange(i));
}

// Files are created with mode 0600, even over an existing file with a wider mode.
TEST(File, CreatedOwnerOnly) {
  std::string path = absl::StrCat(testing::TestDir(), "/mode.tap");
  FILE* f = fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  chmod(path.c_str(), 0644);
  auto w = OpenWritableFile(path);
  ASSERT_TRUE(w.ok());
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Oversized input is refused with InvalidArgument and nothing is written for it.
TEST(Writer, RefusesExchangeOverFrameCap) {
  std::string out;
  auto w = Writer::Open(NewStringWritableFile(&out), testing::SampleMetadata());
  ASSERT_TRUE(w.ok());
  Exchange x = SmallExchange(1, 1);
  x.response->body.data.assign(format::kMaxFrameSize + 1, 'x');
  x.response->body.length = x.response->body.data.size();
  EXPECT_TRUE(absl::IsInvalidArgument((*w)->Append(x)));
  ASSERT_TRUE((*w)->Append(SmallExchange(2, 2)).ok());
  ASSERT_TRUE((*w)->Close().ok());
  testing::ReadResult r = ReadAll(out);
  ASSERT_EQ(r.exchanges.size(), 1u);
  EXPECT_EQ(r.exchanges[0], SmallExchange(2, 2));
}

}  // namespace
}  // namespace tapkit
