// Damage: truncation, flipped bytes, garbage, forged lengths and frames. The reader never crashes,
// returns every exchange outside the damage, and says where the damage is.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zstd.h>

#include <fstream>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "format/block.h"
#include "format/codec.h"
#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

using testing::BlockOffsets;
using testing::FixBlockChecksum;
using testing::ReadAll;
using testing::ReadResult;
using testing::RichExchange;

// A small file of several segments; `per_segment[i]` is how many exchanges segment i holds.
struct SmallFile {
  std::vector<Exchange> xs;
  std::string bytes;
  std::vector<uint64_t> blocks;  // segment offsets, then the trailer's
  std::vector<uint32_t> per_segment;
};

SmallFile MakeSmallFile(bool close = true, int n = 12) {
  SmallFile f;
  for (int i = 0; i < n; ++i) f.xs.push_back(RichExchange(i));
  f.bytes = testing::WriteToString(f.xs, 1200, close);
  f.blocks = BlockOffsets(f.bytes);
  for (size_t i = 0; i + (close ? 1 : 0) < f.blocks.size(); ++i) {
    f.per_segment.push_back(format::DecodeBlockHeader(f.bytes.data() + f.blocks[i]).count);
  }
  return f;
}

// How many exchanges lie in segments that end at or before `cut`.
size_t WholeBefore(const SmallFile& f, uint64_t cut) {
  size_t n = 0;
  for (size_t i = 0; i < f.per_segment.size(); ++i) {
    uint64_t end = f.blocks[i] + format::DecodeBlockHeader(f.bytes.data() + f.blocks[i]).length();
    if (end <= cut) n += f.per_segment[i];
  }
  return n;
}

void ExpectPrefix(const ReadResult& r, const SmallFile& f, size_t n, const std::string& where) {
  ASSERT_EQ(r.exchanges.size(), n) << where;
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(r.exchanges[i], f.xs[i]) << where << " exchange " << i;
}

// Truncated at every byte offset: never a crash; every exchange of a whole segment before the cut
// comes back; a cut after the file header is a torn tail (notice), never an error.
TEST(Damage, TruncatedAtEveryOffset) {
  SmallFile f = MakeSmallFile();
  ASSERT_GE(f.per_segment.size(), 3u);
  uint64_t data_start = f.blocks[0];
  for (uint64_t cut = 0; cut <= f.bytes.size(); ++cut) {
    std::string_view part(f.bytes.data(), cut);
    for (int mode = 0; mode < 3; ++mode) {
      bool pipe = mode == 1, headers_only = mode == 2;
      std::string where = absl::StrCat("cut at ", cut, " mode ", mode);
      ReadResult r = ReadAll(part, headers_only, !pipe);
      if (cut < data_start) {
        EXPECT_FALSE(r.open.ok()) << where;
        if (cut == 0) {
          EXPECT_TRUE(absl::IsInvalidArgument(r.open)) << where;
        }
        continue;
      }
      ASSERT_TRUE(r.open.ok()) << where << ": " << r.open;
      EXPECT_TRUE(r.status.ok()) << where << ": " << r.status;
      EXPECT_TRUE(r.report.corruption.empty()) << where << ": " << r.report.corruption[0].reason;
      size_t want = WholeBefore(f, cut);
      ASSERT_EQ(r.exchanges.size(), want) << where;
      if (!headers_only) ExpectPrefix(r, f, want, where);
      if (cut < f.bytes.size())
        EXPECT_EQ(r.report.notices.size(), 1u) << where;
      else
        EXPECT_TRUE(r.report.notices.empty()) << where;
    }
  }
}

// A byte flipped anywhere in the data: never a crash; what comes back is exactly the original
// exchanges of the undamaged segments, and the damage is reported at the damaged block.
TEST(Damage, FlippedByteAnywhere) {
  SmallFile f = MakeSmallFile();
  for (uint64_t at = f.blocks[0]; at < f.bytes.size(); ++at) {
    std::string bad = f.bytes;
    bad[at] ^= 0x20;
    ReadResult r = ReadAll(bad);
    std::string where =
        absl::StrCat("flip at ", at, " of ", f.bytes.size(), " blocks at ", f.blocks.back());
    ASSERT_TRUE(r.open.ok()) << where;
    // Which segment holds the byte, if any, and is it in the segment's body frame?
    size_t seg = f.per_segment.size();
    bool in_body = false;
    uint64_t body_at = 0;
    for (size_t i = 0; i < f.per_segment.size(); ++i) {
      if (at >= f.blocks[i] && at < f.blocks[i + 1]) {
        seg = i;
        format::BlockHeader h = format::DecodeBlockHeader(f.bytes.data() + f.blocks[i]);
        body_at = f.blocks[i] + h.header_length + h.meta_stored;
        in_body = at >= body_at;
      }
    }
    // A damaged body frame costs only the bodies: the headers frame verified on its own.
    std::vector<Exchange> want;
    size_t k = 0;
    for (size_t i = 0; i < f.per_segment.size(); ++i) {
      for (uint32_t j = 0; j < f.per_segment[i]; ++j, ++k) {
        if (i != seg) {
          want.push_back(f.xs[k]);
        } else if (in_body) {
          Exchange x = f.xs[k];
          if (x.request) x.request->body.data.clear();
          if (x.response) x.response->body.data.clear();
          want.push_back(x);
        }
      }
    }
    EXPECT_EQ(r.exchanges, want) << where;
    ASSERT_FALSE(r.status.ok()) << where << " must be reported";
    EXPECT_TRUE(absl::IsDataLoss(r.status)) << where;
    ASSERT_FALSE(r.report.corruption.empty()) << where;
    if (seg < f.per_segment.size()) {
      EXPECT_EQ(r.report.corruption[0].offset, in_body ? body_at : f.blocks[seg]) << where;
    }
  }
}

// A flipped byte in each segment of a larger file: each damaged segment is skipped and reported
// once with its offset; the others all come back.
TEST(Damage, FlippedByteInEachSegment) {
  SmallFile f = MakeSmallFile(true, 60);
  std::string bad = f.bytes;
  for (size_t i = 0; i < f.per_segment.size(); i += 2) bad[f.blocks[i] + 100] ^= 1;
  ReadResult r = ReadAll(bad);
  std::vector<Exchange> want;
  size_t k = 0;
  for (size_t i = 0; i < f.per_segment.size(); ++i) {
    for (uint32_t j = 0; j < f.per_segment[i]; ++j, ++k) {
      if (i % 2 == 1) want.push_back(f.xs[k]);
    }
  }
  EXPECT_EQ(r.exchanges, want);
  ASSERT_EQ(r.report.corruption.size(), (f.per_segment.size() + 1) / 2);
  for (size_t i = 0; i < r.report.corruption.size(); ++i) {
    EXPECT_EQ(r.report.corruption[i].offset, f.blocks[2 * i]);
    EXPECT_EQ(r.report.corruption[i].length, f.blocks[2 * i + 1] - f.blocks[2 * i]);
  }
}

// Garbage between two segments (a file without trailer, as a crashed writer leaves): reported
// with its exact offset and length; every exchange comes back.
TEST(Damage, GarbageBetweenSegments) {
  SmallFile f = MakeSmallFile(false);
  std::string garbage(333, '\0');
  std::mt19937 rng(7);
  for (char& c : garbage) c = static_cast<char>(rng());
  garbage[10] = static_cast<char>(format::kBlockMarker[0]);  // a false start of a marker
  std::string bad = f.bytes;
  bad.insert(f.blocks[2], garbage);
  for (bool pipe : {false, true}) {
    ReadResult r = ReadAll(bad, false, !pipe);
    EXPECT_EQ(r.exchanges, f.xs);
    ASSERT_EQ(r.report.corruption.size(), 1u);
    EXPECT_EQ(r.report.corruption[0].offset, f.blocks[2]);
    EXPECT_EQ(r.report.corruption[0].length, garbage.size());
    EXPECT_TRUE(absl::IsDataLoss(r.status));
  }
}

// Length fields forged to huge values, checksum fixed so only the caps and the presence check
// can stop them: each forgery costs at most its own segment, and the reader goes on.
TEST(Damage, HugeLengthsCostOnlyTheirSegment) {
  SmallFile f = MakeSmallFile();
  const size_t fields[] = {format::kBlockMetaStoredOffset, format::kBlockMetaRawOffset,
                           format::kBlockBodyStoredOffset, format::kBlockBodyRawOffset,
                           format::kBlockCountOffset};
  for (size_t field : fields) {
    for (uint32_t value : {0xffffffffu, format::kMaxFrameSize, format::kMaxFrameSize + 1}) {
      std::string bad = f.bytes;
      format::Put32(bad.data() + f.blocks[1] + field, value);
      FixBlockChecksum(&bad, f.blocks[1]);
      ReadResult r = ReadAll(bad);
      std::string where = absl::StrCat("field ", field, " = ", value);
      ASSERT_TRUE(r.open.ok()) << where;
      // A forged body raw length within the cap leaves the header and headers frame valid: the
      // exchanges are read without bodies. Every other forgery loses the segment.
      bool headers_survive = field == format::kBlockBodyRawOffset && value <= format::kMaxFrameSize;
      EXPECT_EQ(r.exchanges.size(), f.xs.size() - (headers_survive ? 0 : f.per_segment[1]))
          << where;
      EXPECT_FALSE(r.status.ok()) << where;
    }
  }
}

// Builds a segment block whose headers frame is `frame` (raw bytes declared `declared_raw`).
std::string ForgedSegment(std::string_view frame, uint32_t declared_raw, uint32_t count) {
  format::BlockHeader h;
  h.type = static_cast<uint8_t>(format::BlockType::kSegment);
  h.codec = static_cast<uint8_t>(format::Codec::kZstd);
  h.count = count;
  h.meta_raw = declared_raw;
  std::string out;
  format::AppendBlock(h, frame, {}, &out);
  return out;
}

// A zstd frame that decompresses beyond the declared (capped) size is refused, whether or not its
// header states the content size; nothing larger than the declaration is allocated.
TEST(Damage, ZstdFrameBeyondDeclaredSize) {
  std::string zeros(8 << 20, '\0');
  // With the content size in the frame header.
  std::string with_size(ZSTD_compressBound(zeros.size()), '\0');
  with_size.resize(
      ZSTD_compress(with_size.data(), with_size.size(), zeros.data(), zeros.size(), 1));
  // Streamed, without a content size.
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
  std::string no_size(ZSTD_compressBound(zeros.size()), '\0');
  ZSTD_outBuffer out{no_size.data(), no_size.size(), 0};
  ZSTD_inBuffer in{zeros.data(), zeros.size(), 0};
  ASSERT_EQ(ZSTD_compressStream2(c, &out, &in, ZSTD_e_end), 0u);
  no_size.resize(out.pos);
  ZSTD_freeCCtx(c);
  ASSERT_EQ(ZSTD_getFrameContentSize(no_size.data(), no_size.size()), ZSTD_CONTENTSIZE_UNKNOWN);

  SmallFile f = MakeSmallFile(false);
  for (const std::string& frame : {with_size, no_size}) {
    std::string bad = f.bytes;
    bad.insert(f.blocks[1], ForgedSegment(frame, 4096, 1));
    ReadResult r = ReadAll(bad);
    EXPECT_EQ(r.exchanges, f.xs) << "the forged block is skipped, the rest read";
    ASSERT_EQ(r.report.corruption.size(), 1u);
    EXPECT_EQ(r.report.corruption[0].offset, f.blocks[1]);
  }
}

// The header checksum passes but the body frame was damaged: the segment's exchanges are still
// read, without their bodies, and the body frame is reported.
TEST(Damage, BodyFrameChecksum) {
  SmallFile f = MakeSmallFile();
  std::string bad = f.bytes;
  format::BlockHeader h = format::DecodeBlockHeader(bad.data() + f.blocks[0]);
  uint64_t body_at = f.blocks[0] + h.header_length + h.meta_stored;
  bad[body_at + 3] ^= 4;
  ReadResult whole = ReadAll(bad);
  ASSERT_EQ(whole.exchanges.size(), f.xs.size());
  for (size_t i = 0; i < f.xs.size(); ++i) {
    bool lost = i < f.per_segment[0];
    EXPECT_EQ(whole.exchanges[i].response->body.data.empty(), lost) << i;
    EXPECT_EQ(whole.exchanges[i].response->body.length, f.xs[i].response->body.length) << i;
  }
  ASSERT_EQ(whole.report.corruption.size(), 1u);
  EXPECT_EQ(whole.report.corruption[0].offset, body_at);
  EXPECT_EQ(whole.report.corruption[0].length, h.body_stored);
  EXPECT_EQ(whole.report.corruption[0].reason.rfind("body frame checksum mismatch", 0), 0u);
  // Headers-only reading never looks at body frames, so it sees no damage.
  ReadResult headers = ReadAll(bad, true);
  EXPECT_EQ(headers.exchanges.size(), f.xs.size());
  EXPECT_TRUE(headers.status.ok());
}

// A .tap file carried as a captured body, whose blocks a resynchronisation can land on: its
// trailer and footer do not end the outer file, and the outer file's later segments are read.
TEST(Damage, EmbeddedCaptureDoesNotEndTheFile) {
  SmallFile inner = MakeSmallFile(true, 6);
  std::vector<Exchange> xs;
  for (int i = 0; i < 3; ++i) xs.push_back(RichExchange(100 + i));
  Exchange carrier = RichExchange(103);
  carrier.response->body = Body{inner.bytes, inner.bytes.size(), false};
  xs.push_back(carrier);
  for (int i = 4; i < 8; ++i) xs.push_back(RichExchange(100 + i));
  WriterOptions o;
  o.codec = format::Codec::kStored;  // the inner file's bytes appear verbatim in the outer one
  o.segment_bytes = 1500;
  o.flush_interval_ns = 0;
  std::string outer;
  auto w = Writer::Open(NewStringWritableFile(&outer), testing::SampleMetadata(), o);
  ASSERT_TRUE(w.ok());
  for (const Exchange& x : xs) ASSERT_TRUE((*w)->Append(x).ok());
  ASSERT_TRUE((*w)->Close().ok());
  // Damage the block that holds the carrier, so a resync starts inside it.
  std::vector<uint64_t> blocks = BlockOffsets(outer);
  size_t carrier_block = 0;
  for (size_t i = 0; i + 1 < blocks.size(); ++i) {
    if (outer.find(inner.bytes.substr(0, 64), blocks[i]) < blocks[i + 1]) carrier_block = i;
  }
  std::string bad = outer;
  bad[blocks[carrier_block] + 30] ^= 1;
  ReadResult r = ReadAll(bad, false, /*seekable=*/false);
  // Everything outside the damaged block comes back, whatever was read inside it.
  for (const Exchange& x : xs) {
    if (&x == &xs[3]) continue;
    bool in_damaged = false;
    // Exchanges of the damaged block are the ones written into it; find them by comparison.
    for (size_t i = 0; i < r.exchanges.size(); ++i) {
      if (r.exchanges[i] == x) in_damaged = true;
    }
    if (!in_damaged) {
      // Only exchanges stored in the damaged block may be missing.
      std::string key = x.request->path;
      size_t pos = outer.find(key);
      EXPECT_TRUE(pos >= blocks[carrier_block] && pos < blocks[carrier_block + 1])
          << "lost " << key << " outside the damaged block";
    }
  }
  EXPECT_FALSE(r.status.ok());
  EXPECT_TRUE(r.stats.trailer_read);
  EXPECT_TRUE(r.stats.footer_ok) << "the outer file's own footer is found";
}

// Inputs that are not a readable .tap file: one clear error naming the file.
TEST(Damage, NotATapFile) {
  EXPECT_TRUE(absl::IsInvalidArgument(ReadAll("").open));
  ReadResult text = ReadAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(absl::IsInvalidArgument(text.open));
  EXPECT_NE(std::string(text.open.message()).find("test.tap: offset 0: not a .tap file"),
            std::string::npos)
      << text.open;
  std::string pcap("\xd4\xc3\xb2\xa1\x02\x00\x04\x00", 8);
  pcap.resize(24, '\0');
  ReadResult p = ReadAll(pcap);
  EXPECT_NE(std::string(p.open.message()).find("taprec -r"), std::string::npos) << p.open;
}

// A file of a newer major version is refused with both versions named; a newer minor is read.
TEST(Damage, VersionRules) {
  SmallFile f = MakeSmallFile();
  std::string v2 = f.bytes;
  format::Put16(v2.data() + 8, 2);
  ReadResult r2 = ReadAll(v2);
  EXPECT_TRUE(absl::IsFailedPrecondition(r2.open)) << r2.open;
  EXPECT_NE(std::string(r2.open.message())
                .find("version 2." + std::to_string(format::kMinorVersion) + " is newer"),
            std::string::npos)
      << r2.open;
  // A minor bump: fix the header checksum (it covers the version) and read everything.
  std::string minor = f.bytes;
  format::Put16(minor.data() + 10, 7);
  uint32_t meta = format::Get32(minor.data() + 12);
  format::Put64(minor.data() + 16, format::Checksum(std::string_view(minor.data(), 16),
                                                    std::string_view(minor.data() + 24, meta)));
  ReadResult r7 = ReadAll(minor);
  ASSERT_TRUE(r7.open.ok()) << r7.open;
  EXPECT_EQ(r7.exchanges, f.xs);
  // A damaged file header cannot be trusted at all.
  std::string bad = f.bytes;
  bad[30] ^= 1;
  EXPECT_TRUE(absl::IsDataLoss(ReadAll(bad).open));
}

// Blocks of a type this version does not know (a later minor) are passed over silently.
TEST(Damage, UnknownBlockTypeSkipped) {
  SmallFile f = MakeSmallFile(false);
  format::BlockHeader h;
  h.type = 9;
  h.meta_raw = 5;
  std::string block;
  format::AppendBlock(h, "hello", {}, &block);
  std::string file = f.bytes;
  file.insert(f.blocks[1], block);
  ReadResult r = ReadAll(file);
  EXPECT_EQ(r.exchanges, f.xs);
  EXPECT_TRUE(r.report.corruption.empty());
  EXPECT_TRUE(r.status.ok());
}

// Bytes after the footer are damage too.
TEST(Damage, BytesAfterFooter) {
  SmallFile f = MakeSmallFile();
  ReadResult r = ReadAll(f.bytes + "junk");
  EXPECT_EQ(r.exchanges, f.xs);
  ASSERT_EQ(r.report.corruption.size(), 1u);
  EXPECT_EQ(r.report.corruption[0].offset, f.bytes.size());
  EXPECT_EQ(r.report.corruption[0].length, 4u);
}

// A killed writer's file (no trailer, torn last segment) gets its index rebuilt: the torn tail is
// cut off, a trailer appended, and the file then reads cleanly through its index.
TEST(Damage, RebuildIndexAfterCrash) {
  SmallFile f = MakeSmallFile(false);
  std::string torn = f.bytes.substr(0, f.bytes.size() - 10);
  std::string path = absl::StrCat(testing::TestDir(), "/crashed.tap");
  std::ofstream(path, std::ios::binary) << torn;
  bool rebuilt = false;
  ASSERT_TRUE(RebuildIndex(path, nullptr, &rebuilt).ok());
  EXPECT_TRUE(rebuilt);
  std::ifstream in(path, std::ios::binary);
  std::string fixed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ReadResult r = ReadAll(fixed);
  size_t want = WholeBefore(f, torn.size());
  ExpectPrefix(r, f, want, "rebuilt");
  EXPECT_TRUE(r.report.notices.empty()) << r.report.notices[0];
  EXPECT_TRUE(r.stats.trailer_read);
  auto reader = Reader::Open(NewStringReadableFile(fixed));
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->summary().has_value());
  EXPECT_EQ((*reader)->summary()->exchanges, want);
  EXPECT_EQ((*reader)->summary()->index.size(), f.per_segment.size() - 1);
  // A second rebuild finds the trailer and changes nothing.
  ASSERT_TRUE(RebuildIndex(path, nullptr, &rebuilt).ok());
  EXPECT_FALSE(rebuilt);
}

// A trailer whose footer was cut (killed while writing the last 16 bytes) is replaced.
TEST(Damage, RebuildIndexAfterCutFooter) {
  SmallFile f = MakeSmallFile();
  std::string path = absl::StrCat(testing::TestDir(), "/cut-footer.tap");
  std::ofstream(path, std::ios::binary) << f.bytes.substr(0, f.bytes.size() - 5);
  bool rebuilt = false;
  ASSERT_TRUE(RebuildIndex(path, nullptr, &rebuilt).ok());
  EXPECT_TRUE(rebuilt);
  ReadResult r = ReadAll(testing::ReadFileBytes(path));
  EXPECT_EQ(r.exchanges, f.xs);
  EXPECT_TRUE(r.report.notices.empty());
  EXPECT_TRUE(r.status.ok());
}

// Regression (docs review): a trailer whose footer is bad, followed by more segments (files
// joined with cat), must not make a rebuild cut those segments away.
TEST(Damage, RebuildKeepsSegmentsAfterABadFooter) {
  SmallFile a = MakeSmallFile();
  SmallFile b = MakeSmallFile(false);
  std::string joined = a.bytes;
  joined[joined.size() - 3] ^= 1;         // a's footer is damaged
  joined += b.bytes.substr(b.blocks[0]);  // b's segments, without b's file header
  std::string path = absl::StrCat(testing::TestDir(), "/joined.tap");
  std::ofstream(path, std::ios::binary) << joined;
  bool rebuilt = false;
  ASSERT_TRUE(RebuildIndex(path, nullptr, &rebuilt).ok());
  EXPECT_TRUE(rebuilt);
  std::string fixed = testing::ReadFileBytes(path);
  EXPECT_EQ(fixed.substr(0, joined.size()), joined) << "nothing before the new trailer changed";
  ReadResult r = ReadAll(fixed);
  EXPECT_EQ(r.exchanges.size(), a.xs.size() + b.xs.size());
  auto reader = Reader::Open(NewStringReadableFile(fixed));
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->summary().has_value());
  EXPECT_EQ((*reader)->summary()->exchanges, a.xs.size() + b.xs.size());
}

// A rebuild keeps every byte but the torn tail: a corrupt segment in the middle stays in the file
// (reported again on reading), the index lists the segments that verified.
TEST(Damage, RebuildIndexKeepsCorruptRanges) {
  SmallFile f = MakeSmallFile(false);
  std::string bad = f.bytes;
  bad[f.blocks[1] + 80] ^= 1;
  std::string path = absl::StrCat(testing::TestDir(), "/corrupt-middle.tap");
  std::ofstream(path, std::ios::binary) << bad;
  bool rebuilt = false;
  ASSERT_TRUE(RebuildIndex(path, nullptr, &rebuilt).ok());
  EXPECT_TRUE(rebuilt);
  std::string fixed = testing::ReadFileBytes(path);
  EXPECT_EQ(fixed.substr(0, bad.size()), bad) << "nothing before the trailer changed";
  ReadResult r = ReadAll(fixed);
  EXPECT_EQ(r.exchanges.size(), f.xs.size() - f.per_segment[1]);
  ASSERT_EQ(r.report.corruption.size(), 1u);
  EXPECT_EQ(r.report.corruption[0].offset, f.blocks[1]);
  auto reader = Reader::Open(NewStringReadableFile(fixed));
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->summary().has_value());
  EXPECT_EQ((*reader)->summary()->index.size(), f.per_segment.size() - 1);
}

// A block whose header verifies but whose codec this version does not know is skipped whole, by
// its (trusted) length, and reading goes on right after it.
TEST(Damage, UnknownCodecSkippedByLength) {
  SmallFile f = MakeSmallFile(false);
  format::BlockHeader h;
  h.type = static_cast<uint8_t>(format::BlockType::kSegment);
  h.codec = 7;
  h.count = 1;
  h.meta_raw = 300;
  std::string block;
  format::AppendBlock(h, std::string(120, 'z'), {}, &block);
  std::string file = f.bytes;
  file.insert(f.blocks[1], block);
  ReadResult r = ReadAll(file);
  EXPECT_EQ(r.exchanges, f.xs);
  ASSERT_EQ(r.report.corruption.size(), 1u);
  EXPECT_EQ(r.report.corruption[0].offset, f.blocks[1]);
  EXPECT_EQ(r.report.corruption[0].length, block.size());
  EXPECT_EQ(r.report.corruption[0].reason, "unknown codec 7");
}

// Format 1.3's replay_of is a struct inside the Exchange table: a record whose vtable sends it
// past the record's end, or off its 8-byte alignment, fails FlatBuffers verification. The reader
// reports the segment, keeps the segments around it, and DecodeExchange refuses the record.
TEST(Damage, ReplayOfOutsideTheRecord) {
  Exchange x = testing::SmallExchange(1, 5'000);
  x.replay_of = ExchangeId{4, 77};
  flatbuffers::FlatBufferBuilder b;
  std::string bodies;
  ASSERT_TRUE(EncodeExchange(x, &b, &bodies).ok());
  std::string good(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
  // The size prefix, then the root table's offset; the table starts with its vtable's soffset.
  uint32_t table = 4 + format::Get32(good.data() + 4);
  int32_t soffset = static_cast<int32_t>(format::Get32(good.data() + table));
  uint32_t vtable = table - soffset;
  uint32_t slot = vtable + fb::Exchange::VT_REPLAY_OF;  // VT_ values are byte positions
  uint16_t field = format::Get16(good.data() + slot);
  ASSERT_NE(field, 0) << "the encoded record should hold replay_of";
  EXPECT_EQ(format::Get32(good.data() + table + field), 4u);       // capture_point, then padding
  EXPECT_EQ(format::Get32(good.data() + table + field + 8), 77u);  // stream_id, low half

  std::string past = good;
  format::Put16(past.data() + slot, static_cast<uint16_t>(good.size() - table - 8));  // 8 of 16
  std::string crooked = good;
  format::Put16(crooked.data() + slot, static_cast<uint16_t>(field + 4));  // misaligned
  for (const std::string& bad : {past, crooked}) {
    EXPECT_TRUE(absl::IsInvalidArgument(DecodeExchange(bad, bodies).status()));
    // A file: a good segment, the forged one, a good one.
    std::string file = BuildFileHeader(EncodeCaptureMetadata(testing::SampleMetadata()));
    uint64_t second = 0;
    for (const std::string* rec : {&std::as_const(good), &bad, &std::as_const(good)}) {
      if (rec == &bad) second = file.size();
      ASSERT_TRUE(BuildBlock(format::BlockType::kSegment, format::Codec::kZstd, 3, 1, 5'000, 5'000,
                             *rec, bodies, &file)
                      .ok());
    }
    ReadResult r = ReadAll(file);
    ASSERT_TRUE(r.open.ok()) << r.open;
    ASSERT_EQ(r.exchanges.size(), 2u);
    EXPECT_EQ(r.exchanges[0], x);
    EXPECT_EQ(r.exchanges[1], x);
    ASSERT_EQ(r.report.corruption.size(), 1u);
    EXPECT_EQ(r.report.corruption[0].offset, second);
    EXPECT_NE(r.report.corruption[0].reason.find("fails FlatBuffers verification"),
              std::string::npos)
        << r.report.corruption[0].reason;
  }
}

}  // namespace
}  // namespace tapkit
