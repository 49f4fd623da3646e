// content_coding_test: decoding checked against streams made by independent encoders (the gzip
// and brotli command-line tools, Python's zlib), and encoding checked by those tools' decoders.
#include "format/content_coding.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "format/test_dir.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteAll(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Runs `command` (a shell line) and returns its exit status.
int Shell(const std::string& command) { return std::system(command.c_str()); }

// A body with structure and repetition, as a JSON API answers.
std::string SampleBody() {
  std::string s = "{\"items\":[";
  for (int i = 0; i < 2000; ++i) {
    s += "{\"id\":" + std::to_string(i) + ",\"name\":\"user-" + std::to_string(i * 7919 % 1000) +
         "\"},";
  }
  s += "{}]}";
  return s;
}

class ContentCodingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"gzip", "brotli", "python3"}) TAPKIT_REQUIRE_TOOL(tool);
    plain_ = dir_.path() + "/body";
    WriteAll(plain_, SampleBody());
  }
  testing::ScopedTempDir dir_;
  std::string plain_;
};

TEST_F(ContentCodingTest, GzipFromTheGzipTool) {
  ASSERT_EQ(Shell("gzip -c " + plain_ + " > " + plain_ + ".gz"), 0);
  absl::StatusOr<DecodedContent> d = DecodeContent(ReadAll(plain_ + ".gz"), "gzip");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->complete);
  EXPECT_EQ(d->data, SampleBody());
  // Names are case-insensitive and x-gzip is gzip (RFC 9110 section 8.4.1.3).
  EXPECT_EQ(DecodeContent(ReadAll(plain_ + ".gz"), "X-GZIP")->data, SampleBody());
}

TEST_F(ContentCodingTest, GzipMembersBackToBack) {
  // RFC 1952 section 2.2: a gzip file is a series of members; `cat a.gz b.gz` decodes to a b.
  ASSERT_EQ(Shell("printf 'first ' | gzip -c > " + plain_ + ".1.gz"), 0);
  ASSERT_EQ(Shell("printf 'second' | gzip -c > " + plain_ + ".2.gz"), 0);
  absl::StatusOr<DecodedContent> d =
      DecodeContent(ReadAll(plain_ + ".1.gz") + ReadAll(plain_ + ".2.gz"), "gzip");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->data, "first second");
}

TEST_F(ContentCodingTest, BrotliFromTheBrotliTool) {
  ASSERT_EQ(Shell("brotli -c " + plain_ + " > " + plain_ + ".br"), 0);
  absl::StatusOr<DecodedContent> d = DecodeContent(ReadAll(plain_ + ".br"), "br");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->complete);
  EXPECT_EQ(d->data, SampleBody());
}

TEST_F(ContentCodingTest, DeflateWithAndWithoutTheZlibHeader) {
  // Python's zlib: compress() writes RFC 1950 (zlib header), a -15 window raw RFC 1951.
  ASSERT_EQ(Shell("python3 -c 'import sys,zlib; d=open(sys.argv[1],\"rb\").read(); "
                "open(sys.argv[1]+\".zz\",\"wb\").write(zlib.compress(d)); "
                "c=zlib.compressobj(6, zlib.DEFLATED, -15); "
                "open(sys.argv[1]+\".raw\",\"wb\").write(c.compress(d)+c.flush())' " +
                plain_),
            0);
  absl::StatusOr<DecodedContent> z = DecodeContent(ReadAll(plain_ + ".zz"), "deflate");
  ASSERT_TRUE(z.ok()) << z.status();
  EXPECT_EQ(z->data, SampleBody());
  absl::StatusOr<DecodedContent> raw = DecodeContent(ReadAll(plain_ + ".raw"), "deflate");
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(raw->data, SampleBody());
}

TEST_F(ContentCodingTest, StackedCodingsAreUndoneRightToLeft) {
  // "gzip, br": gzip was applied first, then br (RFC 9110 section 8.4).
  ASSERT_EQ(Shell("gzip -c " + plain_ + " | brotli -c > " + plain_ + ".gz.br"), 0);
  absl::StatusOr<DecodedContent> d = DecodeContent(ReadAll(plain_ + ".gz.br"), "gzip, br");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->data, SampleBody());
  // The other order does not decode.
  EXPECT_FALSE(DecodeContent(ReadAll(plain_ + ".gz.br"), "br, gzip").ok());
}

TEST_F(ContentCodingTest, CutStreamsDecodeTheirPrefixAndSaySo) {
  ASSERT_EQ(Shell("gzip -c " + plain_ + " > " + plain_ + ".gz"), 0);
  ASSERT_EQ(Shell("brotli -c " + plain_ + " > " + plain_ + ".br"), 0);
  for (const char* coding : {"gzip", "br"}) {
    std::string coded = ReadAll(plain_ + (std::string(coding) == "gzip" ? ".gz" : ".br"));
    absl::StatusOr<DecodedContent> d = DecodeContent(coded.substr(0, coded.size() / 2), coding);
    ASSERT_TRUE(d.ok()) << coding << ": " << d.status();
    EXPECT_FALSE(d->complete) << coding;
    EXPECT_LT(d->data.size(), SampleBody().size()) << coding;
    EXPECT_EQ(d->data, SampleBody().substr(0, d->data.size())) << coding;
  }
}

TEST_F(ContentCodingTest, TheCapStopsABomb) {
  // 64 MiB of zeros gzip to about 64 KiB; a 1 MiB cap refuses them.
  ASSERT_EQ(Shell("head -c 67108864 /dev/zero | gzip -c > " + plain_ + ".bomb.gz"), 0);
  std::string bomb = ReadAll(plain_ + ".bomb.gz");
  ASSERT_LT(bomb.size(), 200u * 1024);
  absl::StatusOr<DecodedContent> d = DecodeContent(bomb, "gzip", 1 << 20);
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(d.status())) << d.status();
}

TEST_F(ContentCodingTest, DamageAndUnknownCodingsAreErrors) {
  absl::StatusOr<DecodedContent> d = DecodeContent("definitely not gzip", "gzip");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(absl::IsDataLoss(d.status())) << d.status();
  EXPECT_NE(d.status().message().find("gzip"), std::string_view::npos);
  d = DecodeContent("abc", "compress");
  ASSERT_FALSE(d.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(d.status()));
  EXPECT_NE(d.status().message().find("compress"), std::string_view::npos);
  // identity and empty lists leave the bytes alone; an empty body is empty under any coding.
  EXPECT_EQ(DecodeContent("abc", "identity")->data, "abc");
  EXPECT_EQ(DecodeContent("abc", "")->data, "abc");
  EXPECT_TRUE(DecodeContent("", "gzip")->complete);
}

TEST_F(ContentCodingTest, EncodedBodiesDecodeWithTheTools) {
  for (const char* coding : {"gzip", "br", "deflate", "gzip, br"}) {
    absl::StatusOr<std::string> e = EncodeContent(SampleBody(), coding);
    ASSERT_TRUE(e.ok()) << coding << ": " << e.status();
    EXPECT_LT(e->size(), SampleBody().size()) << coding;
    WriteAll(plain_ + ".enc", *e);
    std::string decoder = std::string(coding) == "gzip"  ? "gzip -dc"
                          : std::string(coding) == "br" ? "brotli -dc"
                          : std::string(coding) == "deflate"
                              ? "python3 -c 'import sys,zlib; "
                                "sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read()))'"
                              : "{ brotli -dc | gzip -dc; }";
    ASSERT_EQ(Shell(decoder + " < " + plain_ + ".enc > " + plain_ + ".dec"), 0) << coding;
    EXPECT_EQ(ReadAll(plain_ + ".dec"), SampleBody()) << coding;
  }
}

}  // namespace
}  // namespace tapkit
