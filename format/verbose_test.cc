// verbose_test: tapcat -V's blocks and --body's decoded bodies on hand-built exchanges. Bodies are
// encoded by independent tools (gzip, brotli, Python's zlib) and what the view shows is checked
// against independent decoders and printers: jq for pretty JSON, hexdump -C for hex dumps, Python's
// zlib for what a cut stream decodes to. Timing lines are worked out by hand from the exchange.
#include "format/verbose.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "format/codec.h"
#include "format/decoded_body.h"
#include "format/output.h"
#include "format/render.h"
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

int Shell(const std::string& command) { return std::system(command.c_str()); }

// A JSON API answer with nesting, empty containers, escapes and non-ASCII text (integers and
// strings only, so jq, which reads numbers as doubles, prints them as written).
std::string SampleJson() {
  std::string s = "{\"items\":[";
  for (int i = 0; i < 50; ++i) {
    s += "{\"id\":" + std::to_string(i) + ",\"name\":\"caf\xc3\xa9 " + std::to_string(i) +
         "\",\"tags\":[],\"meta\":{}},";
  }
  s += "{\"quote\":\"say \\\"hi\\\"\\n\",\"nested\":{\"a\":[1,[2,[3]]],\"b\":null,\"c\":true}}]}";
  return s;
}

// Lines of text with a TAB, no line feed at the end.
std::string SampleText() {
  std::string s;
  for (int i = 0; i < 200; ++i) s += "line " + std::to_string(i) + "\tof the sample text\n";
  return s + "last line without a line feed";
}

// What the verbose view shows of one body.
struct ShownBody {
  std::string head;                // "response body: ..." (without the indent)
  std::vector<std::string> notes;  // the "! " lines, without "  ! "
  std::vector<std::string> lines;  // the content lines, without their four-space indent
  bool no_newline = false;         // the "\ no newline at end of body" line was there
  bool found = false;
  // The text the lines stand for (a text body's bytes when no CR was dropped).
  std::string Text() const {
    std::string t;
    for (size_t i = 0; i < lines.size(); ++i)
      t += lines[i] + (i + 1 < lines.size() || !no_newline ? "\n" : "");
    return t;
  }
};

ShownBody FindBody(const std::string& block, std::string_view which) {
  ShownBody b;
  std::vector<std::string> lines = absl::StrSplit(block, '\n');
  std::string start = "  " + std::string(which) + " body: ";
  size_t i = 0;
  while (i < lines.size() && lines[i].rfind(start, 0) != 0) ++i;
  if (i == lines.size()) return b;
  b.found = true;
  b.head = lines[i].substr(2);
  for (++i; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l.rfind("    ", 0) == 0) {
      b.lines.push_back(l.substr(4));
    } else if (l.rfind("  ! ", 0) == 0) {
      b.notes.push_back(l.substr(4));
    } else if (l == "  \\ no newline at end of body") {
      b.no_newline = true;
    } else {
      break;
    }
  }
  return b;
}

// A GET answered 200 with `body` and the given response headers.
Exchange WithResponseBody(std::string body, std::vector<Header> headers) {
  Exchange x = testing::SmallExchange(1, 1'764'460'800'123'456'789ull);
  x.response->headers = std::move(headers);
  x.response->body.length = body.size();
  x.response->body.data = std::move(body);
  return x;
}

std::string Verbose(const Exchange& x, const VerboseOptions& options = {}) {
  flatbuffers::FlatBufferBuilder builder;
  std::string bodies;
  absl::StatusOr<ExchangeView> v = ViewOfExchange(x, &builder, &bodies);
  EXPECT_TRUE(v.ok()) << v.status();
  std::string out;
  if (v.ok()) AppendVerbose(*v, options, &out);
  return out;
}

nlohmann::json JsonWithBodies(const Exchange& x, size_t cap = kDefaultDecodeCap) {
  flatbuffers::FlatBufferBuilder builder;
  std::string bodies;
  absl::StatusOr<ExchangeView> v = ViewOfExchange(x, &builder, &bodies);
  EXPECT_TRUE(v.ok()) << v.status();
  JsonOptions o;
  o.decoded_bodies = true;
  o.decode_cap = cap;
  std::string line;
  AppendJson(*v, o, &line);
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  // Members in byte order, as every -o json object (json_writer.h): nlohmann prints it back the
  // same.
  EXPECT_EQ(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n", line);
  return j;
}

class VerboseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"gzip", "brotli", "python3", "jq", "hexdump"}) {
      TAPKIT_REQUIRE_TOOL(tool);
    }
    dir_ = testing::TestDir();
    WriteAll(dir_ + "/json", SampleJson());
    WriteAll(dir_ + "/text", SampleText());
  }
  // The file `name` in the test directory after `command` (a shell line run there) made it.
  std::string Make(const std::string& command, const std::string& name) {
    EXPECT_EQ(Shell("cd " + dir_ + " && " + command), 0) << command;
    return ReadAll(dir_ + "/" + name);
  }
  std::string dir_;
};

TEST_F(VerboseTest, GzipJsonIsDecodedAndPrettyPrintedAsJqDoes) {
  std::string gz = Make("gzip -c json > json.gz", "json.gz");
  std::string jq = Make("jq --indent 2 . json > json.jq", "json.jq");
  std::string block = Verbose(WithResponseBody(
      gz, {{"Content-Type", "application/json; charset=utf-8"}, {"Content-Encoding", "gzip"}}));
  ShownBody b = FindBody(block, "response");
  ASSERT_TRUE(b.found) << block;
  EXPECT_EQ(b.head, "response body: " + std::to_string(gz.size()) + " bytes, gzip decoded to " +
                        std::to_string(SampleJson().size()) + " bytes, json (application/json)");
  EXPECT_TRUE(b.notes.empty()) << block;
  EXPECT_FALSE(b.no_newline);
  EXPECT_EQ(b.Text(), jq);
}

TEST_F(VerboseTest, DeflateBrotliAndStackedCodingsShowTheText) {
  struct Case {
    std::string coding, command, file;
  };
  const std::vector<Case> cases = {
      {"deflate",
       "python3 -c 'import zlib; open(\"t.zz\",\"wb\").write(zlib.compress(open(\"text\",\"rb\")"
       ".read()))'",
       "t.zz"},
      {"deflate",
       "python3 -c 'import zlib; c=zlib.compressobj(6, zlib.DEFLATED, -15); "
       "d=open(\"text\",\"rb\").read(); open(\"t.raw\",\"wb\").write(c.compress(d)+c.flush())'",
       "t.raw"},
      {"br", "brotli -c text > t.br", "t.br"},
      {"gzip, br", "gzip -c text | brotli -c > t.gz.br", "t.gz.br"},
      {"", "cp text t.plain", "t.plain"},
  };
  for (const Case& c : cases) {
    std::string coded = Make(c.command, c.file);
    std::vector<Header> headers = {{"Content-Type", "text/plain"}};
    if (!c.coding.empty()) headers.push_back({"Content-Encoding", c.coding});
    std::string block = Verbose(WithResponseBody(coded, headers));
    ShownBody b = FindBody(block, "response");
    ASSERT_TRUE(b.found) << block;
    std::string decoded = c.coding.empty() ? ""
                                           : ", " + c.coding + " decoded to " +
                                                 std::to_string(SampleText().size()) + " bytes";
    EXPECT_EQ(b.head, "response body: " + std::to_string(coded.size()) + " bytes" + decoded +
                          ", text (text/plain)")
        << c.file;
    EXPECT_TRUE(b.notes.empty()) << block;
    EXPECT_TRUE(b.no_newline) << c.file;
    EXPECT_EQ(b.Text(), SampleText()) << c.file;
  }
}

TEST_F(VerboseTest, CutGzipBodyShowsWhatItsBytesDecodeToAndSaysWhy) {
  std::string gz = Make("gzip -c text > text.gz", "text.gz");
  std::string cut = gz.substr(0, gz.size() / 2);
  WriteAll(dir_ + "/cut.gz", cut);
  // Python's zlib as the independent decoder of the cut stream.
  std::string prefix = Make(
      "python3 -c 'import zlib; open(\"cut.out\",\"wb\").write(zlib.decompressobj(31)"
      ".decompress(open(\"cut.gz\",\"rb\").read()))'",
      "cut.out");
  ASSERT_FALSE(prefix.empty());
  ASSERT_LT(prefix.size(), SampleText().size());

  Exchange x = WithResponseBody(cut, {{"Content-Encoding", "gzip"}});
  x.response->body.length = gz.size();
  x.response->body.truncated = true;
  std::string block = Verbose(x);
  ShownBody b = FindBody(block, "response");
  ASSERT_TRUE(b.found) << block;
  EXPECT_EQ(b.head, "response body: " + std::to_string(gz.size()) + " bytes, gzip decoded to " +
                        std::to_string(prefix.size()) + " bytes, text");
  ASSERT_EQ(b.notes.size(), 2u) << block;
  EXPECT_EQ(b.notes[0], "stored " + std::to_string(cut.size()) + " of " +
                            std::to_string(gz.size()) + " bytes: truncated at the body limit");
  EXPECT_EQ(b.notes[1], "the gzip stream ends early: shown is what the stored bytes decode to");
  bool ends_in_newline = prefix.back() == '\n';
  EXPECT_EQ(b.no_newline, !ends_in_newline);
  EXPECT_EQ(b.Text(), prefix);

  // The same body cut by a gap: the exchange's end is the reason.
  x.completion = Completion::kGap;
  x.reason = "8192 bytes missing in the response";
  b = FindBody(Verbose(x), "response");
  ASSERT_FALSE(b.notes.empty());
  EXPECT_EQ(b.notes[0], "stored " + std::to_string(cut.size()) + " of " +
                            std::to_string(gz.size()) +
                            " bytes: cut: the exchange ended gap (8192 bytes missing in the "
                            "response)");
  // ... unless its stored size is an input's body limit.
  VerboseOptions at_limit;
  at_limit.body_limits = {cut.size()};
  b = FindBody(Verbose(x, at_limit), "response");
  ASSERT_FALSE(b.notes.empty());
  EXPECT_EQ(b.notes[0], "stored " + std::to_string(cut.size()) + " of " +
                            std::to_string(gz.size()) + " bytes: truncated at the body limit");
}

TEST_F(VerboseTest, CutJsonSaysSoAndShowsText) {
  std::string json = SampleJson();
  Exchange x = WithResponseBody(json.substr(0, 100), {{"Content-Type", "application/json"}});
  x.response->body.length = json.size();
  x.response->body.truncated = true;
  ShownBody b = FindBody(Verbose(x), "response");
  EXPECT_EQ(b.head,
            "response body: " + std::to_string(json.size()) + " bytes, text (application/json)");
  ASSERT_EQ(b.notes.size(), 2u);
  EXPECT_EQ(b.notes[1],
            "Content-Type says JSON, but the body is not JSON (it is cut): shown as text");
  EXPECT_EQ(b.Text(), json.substr(0, 100));
}

TEST_F(VerboseTest, BinaryIsAHexDumpAsHexdumpPrintsIt) {
  std::string bin;
  for (int i = 0; i < 300; ++i) bin.push_back(static_cast<char>((i * 37 + 11) & 0xff));
  WriteAll(dir_ + "/bin", bin);
  std::string hexdump = Make("hexdump -C bin > bin.hex", "bin.hex");
  std::string block =
      Verbose(WithResponseBody(bin, {{"Content-Type", "application/octet-stream"}}));
  ShownBody b = FindBody(block, "response");
  EXPECT_EQ(b.head, "response body: 300 bytes, binary (application/octet-stream)");
  // hexdump ends with a line holding the total length; the view leaves it out.
  std::vector<std::string> want = absl::StrSplit(hexdump, '\n');
  while (!want.empty() && (want.back().empty() || want.back() == "0000012c")) want.pop_back();
  EXPECT_EQ(b.lines, want) << block;
  EXPECT_FALSE(b.no_newline);
}

// Repeated 16-byte lines collapse into one "*" line, as hexdump -C (without -v) prints them: runs
// in the middle, a run reaching a short last line, and a run at the end.
TEST_F(VerboseTest, RepeatedHexLinesCollapseAsHexdumpDoes) {
  std::string bin = std::string(16, 'a') + std::string(64, '\0') + std::string(16, 'b') +
                    std::string(16, 'a') + std::string(48, '\0') + std::string(5, '\0') +
                    "xyz" + std::string(40, 'c');
  bin += std::string(16, 'c');
  WriteAll(dir_ + "/rep", bin);
  std::string hexdump = Make("hexdump -C rep > rep.hex", "rep.hex");
  std::vector<std::string> want = absl::StrSplit(hexdump, '\n');
  want.resize(want.size() - 2);  // the total-length line and the empty one after it
  ASSERT_NE(std::find(want.begin(), want.end(), "*"), want.end()) << hexdump;
  ShownBody b = FindBody(
      Verbose(WithResponseBody(bin, {{"Content-Type", "application/octet-stream"}})), "response");
  EXPECT_EQ(b.lines, want);
  EXPECT_TRUE(b.notes.empty());
}

// A small gzip body that decodes to 8 MiB of zeros: the first 64 KiB decoded are shown (as
// hexdump -C shows them: one line and "*"), then a line saying how much more there is.
TEST_F(VerboseTest, ABodyShowsAtMost64KiB) {
  std::string gz = Make("head -c 8388608 /dev/zero | gzip -c > zeros.gz", "zeros.gz");
  std::string hexdump = Make("head -c 65536 /dev/zero | hexdump -C > zeros.hex", "zeros.hex");
  std::vector<std::string> want = absl::StrSplit(hexdump, '\n');
  want.resize(want.size() - 2);
  ShownBody b = FindBody(Verbose(WithResponseBody(gz, {{"Content-Encoding", "gzip"}})),
                         "response");
  EXPECT_EQ(b.head, "response body: " + std::to_string(gz.size()) +
                        " bytes, gzip decoded to 8388608 bytes, binary");
  EXPECT_EQ(b.lines, want);
  ASSERT_EQ(b.notes.size(), 1u);
  EXPECT_EQ(b.notes[0], "shown the first 65536 of 8388608 bytes; 8323072 more not shown");

  // A text body over the cap stops at the line end before it, without the "no newline" line.
  VerboseOptions small;
  small.show_cap = 100;
  std::string text = SampleText();
  ASSERT_GT(text.size(), 100u);
  size_t cut = text.rfind('\n', 99) + 1;
  b = FindBody(Verbose(WithResponseBody(text, {{"Content-Type", "text/plain"}}), small),
               "response");
  EXPECT_EQ(b.Text(), text.substr(0, cut));
  EXPECT_FALSE(b.no_newline);
  ASSERT_EQ(b.notes.size(), 1u);
  EXPECT_EQ(b.notes[0], "shown the first " + std::to_string(cut) + " of " +
                            std::to_string(text.size()) + " bytes; " +
                            std::to_string(text.size() - cut) + " more not shown");
}

TEST_F(VerboseTest, UndecodableBodiesSayWhyAndShowTheStoredBytesInHex) {
  std::string gz = Make("gzip -c text > text.gz", "text.gz");
  // A gzip header naming compression method 7: RFC 1952 section 2.3.1 defines only 8 (deflate).
  WriteAll(dir_ + "/bad.gz",
           "\x1f\x8b\x07"
           "garbage, not deflate");
  std::string bad = ReadAll(dir_ + "/bad.gz");
  std::string hexdump = Make("hexdump -C -v bad.gz > bad.hex", "bad.hex");
  std::vector<std::string> hex_lines = absl::StrSplit(hexdump, '\n');
  hex_lines.resize(hex_lines.size() - 2);  // the total-length line and the empty one after it

  ShownBody b =
      FindBody(Verbose(WithResponseBody(bad, {{"Content-Encoding", "gzip"}})), "response");
  EXPECT_EQ(b.head, "response body: " + std::to_string(bad.size()) + " bytes, binary");
  ASSERT_EQ(b.notes.size(), 1u);
  EXPECT_EQ(b.notes[0].rfind("not decoded: gzip: not a valid stream at input byte ", 0), 0u)
      << b.notes[0];
  EXPECT_NE(b.notes[0].find("; the stored bytes follow"), std::string::npos);
  EXPECT_EQ(b.lines, hex_lines);

  // Over the decoding cap: the cap is named.
  VerboseOptions small;
  small.decode_cap = 1000;
  b = FindBody(Verbose(WithResponseBody(gz, {{"Content-Encoding", "gzip"}}), small), "response");
  ASSERT_EQ(b.notes.size(), 1u);
  EXPECT_EQ(b.notes[0],
            "not decoded: gzip: decoded body is larger than the 1000-byte cap; the stored bytes "
            "follow");
  EXPECT_EQ(b.lines.size(), (gz.size() + 15) / 16);

  // A coding tapkit cannot undo.
  b = FindBody(Verbose(WithResponseBody(gz, {{"Content-Encoding", "zstd"}})), "response");
  ASSERT_EQ(b.notes.size(), 1u);
  EXPECT_EQ(b.notes[0],
            "not decoded: content coding \"zstd\" is not supported (gzip, deflate, br); the "
            "stored bytes follow");
}

TEST_F(VerboseTest, TerminalControlBytesAreEscaped) {
  Exchange x = WithResponseBody("red \x1b[31mtext\x1b[0m\n", {{"Content-Type", "text/plain"}});
  x.response->headers.push_back({"X-Esc", "\x1b]0;title\x07"});
  x.response->headers.push_back({"X-C1",
                                 "a\xc2\x9b"
                                 "31mb"});  // U+009B CSI
  x.response->headers.push_back({"X-Bidi",
                                 "ab\xe2\x80\xae"
                                 "cd"});  // U+202E RIGHT-TO-LEFT OVERRIDE
  x.response->headers.push_back({"X-Latin1", "caf\xe9"});
  x.response->headers.push_back({"X-Utf8", "caf\xc3\xa9\tok"});
  std::string block = Verbose(x);
  EXPECT_EQ(block.find('\x1b'), std::string::npos) << "no raw ESC reaches the terminal";
  EXPECT_EQ(block.find('\x07'), std::string::npos);
  EXPECT_NE(block.find("  < X-Esc: \\x1b]0;title\\x07\n"), std::string::npos) << block;
  EXPECT_NE(block.find("  < X-C1: a\\xc2\\x9b31mb\n"), std::string::npos) << block;
  EXPECT_NE(block.find("  < X-Bidi: ab\\xe2\\x80\\xaecd\n"), std::string::npos) << block;
  EXPECT_NE(block.find("  < X-Latin1: caf\\xe9\n"), std::string::npos) << block;
  EXPECT_NE(block.find("  < X-Utf8: caf\xc3\xa9\\x09ok\n"), std::string::npos) << block;
  ShownBody b = FindBody(block, "response");
  EXPECT_EQ(b.head, "response body: " + std::to_string(x.response->body.data.size()) +
                        " bytes, text (text/plain)");
  EXPECT_EQ(b.lines, std::vector<std::string>{"red \\x1b[31mtext\\x1b[0m"});
}

// Every header of the request, the interim responses, the final response and the trailers, in
// wire order with duplicates; the timing lines, worked out by hand.
TEST_F(VerboseTest, EveryHeaderInWireOrderAndTheTiming) {
  Exchange x = testing::SmallExchange(7, 1'764'460'800'123'456'789ull);
  x.capture_point = 2;
  x.request_end_ns = 1'000;
  x.response_start_ns = 312'000;
  x.response_end_ns = 350'500;
  x.direction = Direction::kOutbound;
  x.tls = TlsState::kNo;
  x.source.labels = Labels{"shop", "web-0", "deployment", "web", ""};
  x.request->method = "POST";
  x.request->headers = {{"Host", "example"}, {"Accept", "a"}, {"Accept", "b"}};
  x.request->trailers = {{"X-Sum", "1"}};
  x.interim.push_back(InterimResponse{100, "Continue", {{"X-I", "1"}}, 1'200});
  x.interim.push_back(
      InterimResponse{103, "Early Hints", {{"Link", "</a>"}, {"Link", "</b>"}}, 2'000});
  x.response->headers = {{"Set-Cookie", "a=1"}, {"Content-Length", "12"}, {"Set-Cookie", "b=2"}};
  x.response->trailers = {{"grpc-status", "0"}};
  std::string want =
      "exchange 2:7: POST example /item/7 -> 200 OK\n"
      "  request start   2025-11-30T00:00:00.123456789Z\n"
      "  request end     2025-11-30T00:00:00.123457789Z (+1us)\n"
      "  response start  2025-11-30T00:00:00.123768789Z (+312us)\n"
      "  response end    2025-11-30T00:00:00.123807289Z (+350.5us)\n"
      "  latency         312us\n"
      "  duration        38.5us\n"
      "  source          127.0.0.1:50000 (namespace shop, pod web-0, deployment/web)\n"
      "  destination     127.0.0.2:80\n"
      "  direction       outbound\n"
      "  tls             no\n"
      "  completion      complete\n"
      "  > POST /item/7 HTTP/1.1\n"
      "  > Host: example\n"
      "  > Accept: a\n"
      "  > Accept: b\n"
      "  >\n"
      "  request trailers:\n"
      "  > X-Sum: 1\n"
      "  interim response at +1.2us:\n"
      "  < HTTP/1.1 100 Continue\n"
      "  < X-I: 1\n"
      "  <\n"
      "  interim response at +2us:\n"
      "  < HTTP/1.1 103 Early Hints\n"
      "  < Link: </a>\n"
      "  < Link: </b>\n"
      "  <\n"
      "  < HTTP/1.1 200 OK\n"
      "  < Set-Cookie: a=1\n"
      "  < Content-Length: 12\n"
      "  < Set-Cookie: b=2\n"
      "  <\n"
      "  response body: 12 bytes, text\n"
      "    hello world\n"
      "  response trailers:\n"
      "  < grpc-status: 0\n"
      "\n";
  EXPECT_EQ(Verbose(x), want);
}

TEST_F(VerboseTest, NoRequestAndNoResponse) {
  Exchange x = testing::SmallExchange(3, 1'764'460'800'000'000'000ull);
  x.request.reset();
  x.response_start_ns = 0;
  x.response_end_ns = 6'000'000'000;
  x.completion = Completion::kNoRequest;
  x.reason = "capture began after the request";
  std::string block = Verbose(x);
  EXPECT_NE(block.find("exchange 0:3: (no request) -> 200 OK\n"
                       "  request start   - (no request captured)\n"
                       "  response start  2025-11-30T00:00:00.000000000Z (+0s)\n"
                       "  response end    2025-11-30T00:00:06.000000000Z (+6s)\n"
                       "  latency         -\n"
                       "  duration        6s\n"),
            std::string::npos)
      << block;
  EXPECT_NE(block.find("  completion      no-request: capture began after the request\n"),
            std::string::npos);
  Exchange y = testing::SmallExchange(4, 1'764'460'800'000'000'000ull);
  y.response.reset();
  y.completion = Completion::kReset;
  block = Verbose(y);
  EXPECT_NE(block.find("exchange 0:4: GET example /item/4 -> (no response)\n"), std::string::npos);
  EXPECT_NE(block.find("  response start  - (no response captured)\n"), std::string::npos);
  EXPECT_EQ(block.find("latency"), std::string::npos);
}

// --body: -o json bodies gain `decoded`; without it the schema is as before.
TEST_F(VerboseTest, JsonBodyGainsDecoded) {
  std::string gz = Make("gzip -c json > json.gz", "json.gz");
  Exchange x =
      WithResponseBody(gz, {{"Content-Type", "application/json"}, {"Content-Encoding", "gzip"}});
  x.request->headers.push_back({"Content-Type", "text/plain"});
  x.request->body.data = "caf\xc3\xa9";
  x.request->body.length = 5;
  nlohmann::json j = JsonWithBodies(x);
  ASSERT_FALSE(j.is_discarded());
  const nlohmann::json& d = j["response"]["body"]["decoded"];
  EXPECT_EQ(d["text"], SampleJson());
  EXPECT_EQ(d["kind"], "json");
  EXPECT_EQ(d["contentEncoding"], "gzip");
  EXPECT_EQ(d["length"], SampleJson().size());
  EXPECT_EQ(d["complete"], true);
  EXPECT_EQ(j["request"]["body"]["decoded"]["text"], "caf\xc3\xa9");
  EXPECT_EQ(j["request"]["body"]["decoded"]["contentEncoding"], "");
  EXPECT_EQ(j["request"]["body"]["decoded"]["kind"], "text");
  // The existing fields are unchanged.
  EXPECT_EQ(j["response"]["body"]["stored"], gz.size());
  EXPECT_EQ(j["response"]["body"]["encoding"], "base64");

  // Without --body: no `decoded`, byte for byte what AppendJson printed before.
  flatbuffers::FlatBufferBuilder builder;
  std::string bodies, plain, with_default;
  absl::StatusOr<ExchangeView> v = ViewOfExchange(x, &builder, &bodies);
  AppendJson(*v, &plain);
  AppendJson(*v, JsonOptions(), &with_default);
  EXPECT_EQ(plain, with_default);
  EXPECT_EQ(plain.find("decoded"), std::string::npos);

  // A body that does not decode: the reason, no text.
  x.response->body.data =
      "\x1f\x8b\x07"
      "garbage";
  j = JsonWithBodies(x);
  const nlohmann::json& bad = j["response"]["body"]["decoded"];
  EXPECT_FALSE(bad.contains("text"));
  EXPECT_EQ(bad["error"].get<std::string>().rfind("gzip: not a valid stream at input byte ", 0), 0u)
      << bad;
  // Binary: no text.
  x = WithResponseBody(std::string("\x00\x01\x02\xff", 4), {});
  j = JsonWithBodies(x);
  EXPECT_EQ(j["response"]["body"]["decoded"]["kind"], "binary");
  EXPECT_FALSE(j["response"]["body"]["decoded"].contains("text"));
  // A cut UTF-8 sequence at the end of a cut body is left out of the text.
  x = WithResponseBody("caf\xc3", {{"Content-Type", "text/plain"}});
  x.response->body.length = 5;
  x.response->body.truncated = true;
  j = JsonWithBodies(x);
  EXPECT_EQ(j["response"]["body"]["decoded"]["text"], "caf");
  EXPECT_EQ(j["response"]["body"]["decoded"]["length"], 4);
}

TEST(DecodedBody, Classification) {
  EXPECT_TRUE(IsJsonMediaType("application/json"));
  EXPECT_TRUE(IsJsonMediaType("application/problem+json"));  // RFC 9457
  EXPECT_FALSE(IsJsonMediaType("text/plain"));
  EXPECT_FALSE(IsJsonMediaType("+json"));
  EXPECT_EQ(ClassifyBody("{\"a\":1}", "", false), BodyKind::kJson);  // by parse
  EXPECT_EQ(ClassifyBody("123", "", false), BodyKind::kText);        // JSON, but not by its start
  EXPECT_EQ(ClassifyBody("123", "application/json", false), BodyKind::kJson);
  EXPECT_EQ(ClassifyBody("{\"a\":", "application/json", false), BodyKind::kText);
  EXPECT_EQ(ClassifyBody(std::string("a\0b", 3), "", false), BodyKind::kBinary);
  // fuzz_verbose: nlohmann's parser stops at a NUL byte and took "[1]\0..." for JSON.
  EXPECT_EQ(ClassifyBody(std::string("[1]\0\xda]", 6), "application/json", false),
            BodyKind::kBinary);
  EXPECT_EQ(ClassifyBody("caf\xc3", "", false), BodyKind::kBinary);
  EXPECT_EQ(ClassifyBody("caf\xc3", "", true), BodyKind::kText);  // a cut sequence at the end
  EXPECT_EQ(Utf8CompletePrefix("caf\xc3"), 3u);
  EXPECT_EQ(Utf8CompletePrefix("caf\xe2\x82"), 3u);
  EXPECT_EQ(Utf8CompletePrefix("caf\xe2\x82\xac"), 6u);
  // Nested past the limit: not pretty-printed (the printer recurses), shown as text.
  std::string deep = std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']');
  EXPECT_EQ(ClassifyBody(deep, "application/json", false), BodyKind::kText);
  std::string ok = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_EQ(ClassifyBody(ok, "application/json", false), BodyKind::kJson);
}

// One rule for JSON media types, redaction's and -V's alike (http_text.h): text/json counts.
TEST(DecodedBody, TextJsonIsJsonAsInRedaction) {
  EXPECT_TRUE(IsJsonMediaType("text/json"));
  EXPECT_EQ(ClassifyBody("123", "text/json", false), BodyKind::kJson);
  DecodedBody d = DecodeBody("{\"a\":", HeaderListView(), false);
  EXPECT_FALSE(d.json_expected);
  std::string out = Verbose(WithResponseBody("{\"a\":", {{"Content-Type", "text/json"}}));
  EXPECT_NE(out.find("  ! Content-Type says JSON, but the body is not JSON: shown as text\n"),
            std::string::npos)
      << out;
}

// An object of 50,000 members: laying it out with nlohmann's ordered_json costs O(N^2), so -V
// shows it as text and says why. (The time is bench/'s; here the outcome.)
TEST(DecodedBody, ObjectWithTooManyMembersIsShownAsText) {
  std::string many = "{";
  for (int i = 0; i < 50000; ++i) many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":0";
  many += "}";
  ASSERT_TRUE(nlohmann::json::accept(many));
  JsonText j = JsonText::kOk;
  EXPECT_EQ(ClassifyBody(many, "application/json", false, &j), BodyKind::kText);
  EXPECT_EQ(j, JsonText::kTooManyMembers);
  std::string out = Verbose(WithResponseBody(many, {{"Content-Type", "application/json"}}));
  EXPECT_NE(out.find("  ! an object in the JSON has more than 10000 members, too many to lay out: "
                     "shown as text\n"),
            std::string::npos);
  // The text line as stored, up to -V's 64 KiB display cap (one line: cut at the cap).
  ASSERT_GT(many.size(), kVerboseShowCap);
  EXPECT_NE(out.find("    " + many.substr(0, kVerboseShowCap) + "\n  ! shown the first 65536 of " +
                     std::to_string(many.size()) + " bytes; " +
                     std::to_string(many.size() - kVerboseShowCap) + " more not shown\n"),
            std::string::npos);
  // Repeated names are still JSON to look at (nlohmann shows the last), as before.
  EXPECT_EQ(ClassifyBody("{\"a\":1,\"a\":2}", "", false, &j), BodyKind::kJson);
  EXPECT_EQ(j, JsonText::kDuplicateNames);
}

TEST(VerboseOutput, RefusesOtherFormatsAndBodyWithoutJson) {
  OutputOptions o;
  o.verbose = true;
  EXPECT_TRUE(MakeOutput(o).ok());
  o.format = OutputFormat::kJson;
  absl::StatusOr<std::unique_ptr<ExchangeOutput>> bad = MakeOutput(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "-V prints its own blocks; it does not combine with -o wide, -o json or --stat");
  OutputOptions b;
  b.decoded_bodies = true;
  bad = MakeOutput(b);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "--body: only with -o json (-V shows the decoded bodies by itself)");
  b.format = OutputFormat::kJson;
  EXPECT_TRUE(MakeOutput(b).ok());
}

}  // namespace
}  // namespace tapkit
