// The exports (har.h, curl_export.h, pcap_export.h) of hand-built exchanges, against values
// worked out by hand or by independent tools: the cookies of RFC 6265 section 3.1's examples, a
// gzip body made by `gzip -n` (bytes below), the shell (sh) running the curl export's printf, and
// chunked framing written out from RFC 9112 section 7.1. tools/export_test.py checks the same
// exports against har-validator, httpsnippet, curl with nginx, tshark and taprec.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "format/content_coding.h"
#include "format/curl_export.h"
#include "format/file.h"
#include "format/har.h"
#include "format/json_writer.h"
#include "format/pcap_export.h"
#include "format/reader.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

using nlohmann::json;

// `printf 'hello hello hello\n' | gzip -n`: 29 bytes for 18.
const unsigned char kGzip[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
                               0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0xc8, 0x40, 0x90, 0x5c,
                               0x00, 0x3b, 0x7c, 0x8a, 0xdf, 0x12, 0x00, 0x00, 0x00};

Exchange Base() {
  Exchange x;
  x.sort_key_ns = 1'700'000'000'123'456'789;  // 2023-11-14T22:13:20.123456789Z
  x.request_end_ns = 2'000'000;               // send 2 ms
  x.response_start_ns = 5'000'000;            // wait 3 ms
  x.response_end_ns = 9'500'000;              // receive 4.5 ms
  x.capture_point = 0;
  x.stream_id = 7;
  x.source = {*IpAddress::Parse("10.0.0.1"), 40000, {}};
  x.destination = {*IpAddress::Parse("10.0.0.2"), 8080, {}};
  x.tls = TlsState::kNo;
  Request q;
  q.version = HttpVersion::kHttp11;
  q.method = "POST";
  q.authority = "api.example:8080";
  q.path = "/login?next=%2Fhome&q=a+b&flag";
  q.headers = {{"Host", "api.example:8080"},
               {"Cookie", "SID=31d4d96e407aad42; lang=en-US"},
               {"Content-Type", "application/x-www-form-urlencoded"},
               {"Content-Length", "25"}};
  q.body.data = "user=ann+lee&pass=p%26w'd";  // 25 bytes
  q.body.length = q.body.data.size();
  x.request = q;
  Response s;
  s.version = HttpVersion::kHttp11;
  s.status = 200;
  s.reason = "OK";
  s.headers = {{"Content-Type", "text/plain"},
               {"Content-Encoding", "gzip"},
               {"Set-Cookie", "SID=31d4d96e407aad42; Path=/; Secure; HttpOnly"},
               {"Set-Cookie", "lang=en-US; Expires=Wed, 09 Jun 2021 10:18:14 GMT"},
               {"Set-Cookie", "tmp=1; Max-Age=60; Domain=example.com"},
               {"Content-Length", "29"}};
  s.body.data.assign(reinterpret_cast<const char*>(kGzip), sizeof(kGzip));
  s.body.length = sizeof(kGzip);
  x.response = s;
  return x;
}

// Each exchange through the Writer and a Reader (bodies loaded), as tapcat reads them.
template <typename F>
void ForEachView(const std::vector<Exchange>& xs, F f) {
  std::string file = testing::WriteToString(xs);
  auto reader = Reader::Open(NewStringReadableFile(file));
  ASSERT_TRUE(reader.ok()) << reader.status();
  ExchangeView v;
  while ((*reader)->Next(&v)) f(v);
}

// HAR's times: nanoseconds as exact milliseconds (json_writer.h Milliseconds).
TEST(JsonWriter, Milliseconds) {
  for (auto [ns, text] :
       std::vector<std::pair<uint64_t, std::string>>{{0, "[0]"},
                                                     {1, "[0.000001]"},
                                                     {1'500'000, "[1.5]"},
                                                     {2'000'000, "[2]"},
                                                     {123'456'789, "[123.456789]"},
                                                     {10'000'100'000, "[10000.1]"}}) {
    std::string got;
    {
      JsonWriter w(&got);
      w.Open('[');
      w.Milliseconds(ns);
      w.Close(']');
    }
    EXPECT_EQ(got, text);
  }
}

TEST(Har, EntryFromRecordedFields) {
  json e;
  ForEachView({Base()}, [&](const ExchangeView& v) { e = json::parse(HarEntry(v)); });
  EXPECT_EQ(e["startedDateTime"], "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(e["timings"]["send"], 2.0);
  EXPECT_EQ(e["timings"]["wait"], 3.0);
  EXPECT_EQ(e["timings"]["receive"], 4.5);
  EXPECT_EQ(e["timings"]["dns"], -1);
  EXPECT_EQ(e["time"], 9.5);
  EXPECT_EQ(e["serverIPAddress"], "10.0.0.2");
  EXPECT_EQ(e["connection"], "0:10.0.0.1:40000");
  EXPECT_EQ(e["_id"], "0:7");
  EXPECT_EQ(e["cache"], json::object());
  EXPECT_FALSE(e.contains("comment"));

  const json& q = e["request"];
  EXPECT_EQ(q["url"], "http://api.example:8080/login?next=%2Fhome&q=a+b&flag");
  EXPECT_EQ(q["httpVersion"], "HTTP/1.1");
  EXPECT_EQ(q["queryString"], json::parse(R"([{"name":"next","value":"/home"},
      {"name":"q","value":"a b"},{"name":"flag","value":""}])"));
  EXPECT_EQ(q["cookies"], json::parse(R"([{"name":"SID","value":"31d4d96e407aad42"},
      {"name":"lang","value":"en-US"}])"));
  EXPECT_EQ(q["postData"]["text"], "user=ann+lee&pass=p%26w'd");
  EXPECT_EQ(q["postData"]["params"], json::parse(R"([{"name":"user","value":"ann lee"},
      {"name":"pass","value":"p&w'd"}])"));
  // "POST /login?next=%2Fhome&q=a+b&flag HTTP/1.1" (44) + CRLF, four fields, blank line:
  // 46 + (4+2+16+2) + (6+2+32+2) + (12+2+33+2) + (14+2+2+2) + 2.
  EXPECT_EQ(q["headersSize"], 46 + 24 + 42 + 49 + 20 + 2);
  EXPECT_EQ(q["bodySize"], 25);

  const json& s = e["response"];
  EXPECT_EQ(s["status"], 200);
  EXPECT_EQ(s["content"]["text"], "hello hello hello\n");
  EXPECT_EQ(s["content"]["size"], 18);
  EXPECT_EQ(s["content"]["compression"], 18 - 29);
  EXPECT_EQ(s["content"]["mimeType"], "text/plain");
  EXPECT_EQ(s["bodySize"], 29);
  // RFC 6265 section 3.1's examples; Max-Age counts from the exchange's start (22:13:20 + 60 s).
  EXPECT_EQ(s["cookies"], json::parse(R"([
      {"name":"SID","value":"31d4d96e407aad42","path":"/","secure":true,"httpOnly":true},
      {"name":"lang","value":"en-US","expires":"2021-06-09T10:18:14.000Z"},
      {"name":"tmp","value":"1","domain":"example.com","expires":"2023-11-14T22:14:20.123Z"}])"));
}

TEST(Har, IncompleteAndBinary) {
  Exchange no_response = Base();
  no_response.response.reset();
  no_response.completion = Completion::kNoResponse;
  no_response.reason = "connection closed";
  no_response.response_start_ns = no_response.response_end_ns = 0;
  Exchange binary = Base();
  binary.response->headers = {{"Content-Type", "application/octet-stream"},
                              {"X-Raw", std::string("a\xff"
                                                    "b",
                                                    3)}};
  binary.response->body.data = std::string("\x00\xff\x10", 3);
  binary.response->body.length = 3;
  std::vector<json> got;
  ForEachView({no_response, binary},
              [&](const ExchangeView& v) { got.push_back(json::parse(HarEntry(v))); });
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["response"]["status"], 0);
  EXPECT_EQ(got[0]["comment"], "incomplete: no-response: connection closed");
  EXPECT_EQ(got[0]["timings"]["wait"], -1);
  EXPECT_EQ(got[0]["timings"]["receive"], -1);
  EXPECT_EQ(got[0]["time"], 2.0);
  EXPECT_EQ(got[1]["response"]["content"]["text"], "AP8Q");  // base64 of 00 ff 10
  EXPECT_EQ(got[1]["response"]["content"]["encoding"], "base64");
  EXPECT_EQ(got[1]["response"]["content"]["size"], 3);
  // A header value that is not UTF-8: the byte becomes U+FFFD (HAR strings are JSON strings).
  EXPECT_EQ(got[1]["response"]["headers"][1]["value"],
            "a\xef\xbf\xbd"
            "b");
}

// Content-Encoding in two field lines, "gzip" then "br": one list (RFC 9110 section 5.3), as
// -V and --body join it (decoded_body.h); the body is br over `gzip -n`'s bytes.
TEST(Har, ContentEncodingLinesJoined) {
  Exchange x = Base();
  const std::string gz(reinterpret_cast<const char*>(kGzip), sizeof(kGzip));
  x.response->headers = {{"Content-Type", "text/plain"},
                         {"Content-Encoding", "gzip"},
                         {"Content-Encoding", "br"}};
  x.response->body.data = *EncodeContent(gz, "br");
  x.response->body.length = x.response->body.data.size();
  std::vector<json> got;
  ForEachView({x}, [&](const ExchangeView& v) { got.push_back(json::parse(HarEntry(v))); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["response"]["content"]["text"], "hello hello hello\n");
  EXPECT_EQ(got[0]["response"]["content"]["size"], 18);
  EXPECT_FALSE(got[0]["response"]["content"].contains("encoding"));
}

TEST(Har, OneDocument) {
  auto out = MakeHarOutput({"tapcat", "9.9", size_t{1} << 20});
  std::string doc;
  out->Begin(OutputContext{}, &doc);
  ForEachView({Base(), Base()}, [&](const ExchangeView& v) { out->Add(v, &doc); });
  out->Finish(&doc);
  json h = json::parse(doc, nullptr, false);
  ASSERT_FALSE(h.is_discarded()) << doc;
  EXPECT_EQ(h["log"]["version"], "1.2");
  EXPECT_EQ(h["log"]["creator"], json::parse(R"({"name":"tapcat","version":"9.9"})"));
  EXPECT_EQ(h["log"]["entries"].size(), 2u);
}

TEST(Curl, ShellQuote) {
  EXPECT_EQ(ShellQuote("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellQuote(""), "''");
}

// What `SHELL SCRIPT` prints on stdout (stderr dropped); `*status` gets the wait status.
std::string Shell(const std::string& script, const std::string& shell = "sh",
                  int* status = nullptr) {
  // One script per test: ctest runs this binary's tests in parallel processes.
  std::string path = ::testing::TempDir() + "/export_test." +
                     ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".sh";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fwrite(script.data(), 1, script.size(), f);
  std::fclose(f);
  FILE* p = popen((shell + " " + path + " 2>/dev/null").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  if (status != nullptr) *status = st;
  return out;
}

// True when `tool` runs; a missing tool fails the test under CI=true (the caller skips otherwise).
bool Have(const std::string& tool) {
  bool have = testing::HaveTool(tool);
  if (!have && testing::InCi()) ADD_FAILURE() << tool << " missing";
  return have;
}

// The words the shell passes to curl for the export's one command, one per line.
std::vector<std::string> CurlWords(const std::string& command) {
  std::string words =
      Shell("curl() { for w in \"$@\"; do printf '%s\\n' \"$w\"; done; }\n" + command);
  std::vector<std::string> out;
  size_t i = 0, nl;
  while ((nl = words.find('\n', i)) != std::string::npos) {
    out.push_back(words.substr(i, nl - i));
    i = nl + 1;
  }
  return out;
}

TEST(Curl, CommandLines) {
  std::string text;
  ForEachView({Base()}, [&](const ExchangeView& v) { AppendCurlCommand(v, &text); });
  EXPECT_EQ(text,
            "curl --url 'http://api.example:8080/login?next=%2Fhome&q=a+b&flag' -H 'Host: "
            "api.example:8080' -H 'Cookie: SID=31d4d96e407aad42; lang=en-US' -H 'Content-Type: "
            "application/x-www-form-urlencoded' -H 'User-Agent:' -H 'Accept:' -H 'Expect:' "
            "--data-binary 'user=ann+lee&pass=p%26w'\\''d'\n");
  // A binary body goes through printf: the shell prints exactly the stored bytes.
  Exchange bin = Base();
  std::string body("\x00\x01%s\\n'\n\xff@", 10);
  bin.request->body.data = body;
  bin.request->body.length = body.size();
  bin.request->method = "PUT";
  text.clear();
  ForEachView({bin}, [&](const ExchangeView& v) { AppendCurlCommand(v, &text); });
  size_t pipe = text.find(" | curl ");
  ASSERT_NE(pipe, std::string::npos) << text;
  EXPECT_EQ(Shell(text.substr(0, pipe)), body);
  EXPECT_NE(text.find(" -X 'PUT' "), std::string::npos) << text;
  EXPECT_NE(text.find(" --data-binary @-\n"), std::string::npos) << text;
}

// A binary body starting with '-': bash's and dash's printf take a leading '-' as an option,
// fail and print nothing, so the body must not reach printf as "-...".
TEST(Curl, BinaryBodyStartingWithDash) {
  Exchange bin = Base();
  std::string body("-\x01-%-", 5);
  bin.request->body.data = body;
  bin.request->body.length = body.size();
  std::string text;
  ForEachView({bin}, [&](const ExchangeView& v) { AppendCurlCommand(v, &text); });
  size_t pipe = text.find(" | curl ");
  ASSERT_NE(pipe, std::string::npos) << text;
  for (std::string shell : {"sh", "dash", "bash"}) {
    if (!Have(shell)) {
      std::printf("SKIP %s: not installed\n", shell.c_str());
      continue;
    }
    EXPECT_EQ(Shell(text.substr(0, pipe), shell), body) << shell << ": " << text;
  }
}

// An absolute-form path is the URL verbatim (RequestUrl); one starting with '-' must reach curl as
// the URL, not as options. Real curl: "-vhttp" is an unsupported protocol (exit 1), where the
// bare word would be -v -h and print curl's help (exit 0).
TEST(Curl, UrlStartingWithDash) {
  Exchange x = Base();
  x.request->method = "GET";
  x.request->path = "-vhttp://127.0.0.1:1/";
  x.request->body = {};
  x.request->headers = {{"Host", "h"}};
  std::string text;
  ForEachView({x}, [&](const ExchangeView& v) { AppendCurlCommand(v, &text); });
  std::vector<std::string> words = CurlWords(text);
  auto url = std::find(words.begin(), words.end(), "-vhttp://127.0.0.1:1/");
  ASSERT_NE(url, words.end()) << text;
  ASSERT_NE(url, words.begin());
  EXPECT_EQ(*(url - 1), "--url") << text;
  if (!Have("curl")) GTEST_SKIP() << "curl not installed";
  int status = 0;
  std::string out = Shell(text.substr(0, text.size() - 1) + " -s -m 2\n", "sh", &status);
  EXPECT_EQ(out, "") << text;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status << " " << text;
}

// A field name that is not an RFC 9110 token (section 5.1, 5.6.2): "@NAME" would make curl's -H
// read the file NAME. Such fields go into a '#' comment, the others still reach curl.
TEST(Curl, HeaderNameNotToken) {
  Exchange x = Base();
  x.request->headers = {{"Host", "h"},
                        {"@/etc/passwd", "x"},
                        {"X:Y", "z"},
                        {"X-Ok", "1"},
                        {"X-Nul", std::string("a\0b", 3)},
                        {"X-Crlf", "a\r\nX-Injected: 1"}};
  std::string text;
  ForEachView({x}, [&](const ExchangeView& v) { AppendCurlCommand(v, &text); });
  size_t nl = text.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_EQ(text.substr(0, nl + 1),
            "# id=0:7: request headers not sent (name not an RFC 9110 token, or NUL, CR or LF in "
            "the value) @/etc/passwd: x; X:Y: z; X-Nul: a\\x00b; X-Crlf: a\\x0d\\x0aX-Injected: "
            "1;\n");
  std::vector<std::string> words = CurlWords(text.substr(nl + 1));
  std::vector<std::string> headers;
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    if (words[i] == "-H") headers.push_back(words[i + 1]);
  }
  EXPECT_EQ(headers, (std::vector<std::string>{"Host: h", "X-Ok: 1", "User-Agent:", "Accept:",
                                               "Content-Type:", "Expect:"}))
      << text;
}

// An exchange that comes after the reorder window (a pipe) starts before one already exported:
// its packets would go back in time and its connection's acknowledgement history is forgotten,
// so it is left out with a notice. tshark reads the rest with no TCP analysis flag, in time order.
TEST(Pcap, LateExchangeLeftOut) {
  std::vector<Exchange> xs(5, Base());
  const uint64_t t = xs[0].sort_key_ns;
  xs[1].sort_key_ns = t + 1'000'000'000;
  xs[2].sort_key_ns = t + 1'000'000;  // late, on the same connection
  xs[3].sort_key_ns = t + 1'000'000;  // late, on a connection of its own
  xs[3].source.port = 40001;
  xs[4].sort_key_ns = t + 2'000'000'000;
  for (size_t i = 0; i < xs.size(); ++i) xs[i].request->path = "/x" + std::to_string(i);
  absl::StatusOr<std::unique_ptr<ExchangeOutput>> out = MakePcapOutput();
  ASSERT_TRUE(out.ok()) << out.status();
  std::string pcap;
  (*out)->Begin(OutputContext{}, &pcap);
  ForEachView(xs, [&](const ExchangeView& v) { (*out)->Add(v, &pcap); });
  (*out)->Finish(&pcap);
  EXPECT_EQ((*out)->Notices(),
            std::vector<std::string>{"pcap: left out 2 exchanges that came after the reorder "
                                     "window (their packets would go back in time); a larger "
                                     "--reorder-window keeps them"});
  if (!Have("tshark")) GTEST_SKIP() << "tshark not installed";
  std::string path = ::testing::TempDir() + "/export_test.late.pcap";
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(pcap.data(), 1, pcap.size(), f);
  std::fclose(f);
  EXPECT_EQ(Shell("tshark -r " + path + " -Y tcp.analysis.flags"), "");
  EXPECT_EQ(Shell("tshark -r " + path + " -Y 'frame.time_delta < 0'"), "");
  EXPECT_EQ(Shell("tshark -r " + path +
                  " -d tcp.port==8080,http -Y http.request -T fields -e "
                  "http.request.uri"),
            "/x0\n/x1\n/x4\n");
}

TEST(Pcap, ChunkedBodyReframed) {
  Exchange x = Base();
  x.request->headers = {{"Host", "h"}, {"Transfer-Encoding", "chunked"}};
  x.request->body.data = "hello, world";
  x.request->body.length = 12;
  x.request->trailers = {{"X-Checksum", "12345"}};
  std::string got;
  ForEachView({x}, [&](const ExchangeView& v) { got = SerializeRequest(v); });
  EXPECT_EQ(got,
            "POST /login?next=%2Fhome&q=a+b&flag HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
            "chunked\r\n\r\nc\r\nhello, world\r\n0\r\nX-Checksum: 12345\r\n\r\n");
}

// A body cut short (a gap: 10 of 29 bytes stored) keeps its recorded Content-Length and is sent
// as stored, so a reader sees a short message, not a whole one (issue 11 follow-up).
TEST(Pcap, CutBodyKeepsRecordedLength) {
  Exchange x = Base();
  x.response->body.data.resize(10);
  x.response->body.truncated = true;
  x.completion = Completion::kGap;
  std::vector<std::string> got;
  ForEachView({x}, [&](const ExchangeView& v) { got = SerializeResponses(v); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].find("\r\nContent-Length: 29\r\n\r\n"), std::string::npos) << got[0];
  EXPECT_EQ(got[0].substr(got[0].size() - 10),
            std::string(reinterpret_cast<const char*>(kGzip), 10));
}

// A cut chunked body gets its stored bytes as one chunk and no last chunk (RFC 9112 section 7.1:
// the message is not finished).
TEST(Pcap, CutChunkedBodyHasNoLastChunk) {
  Exchange x = Base();
  x.request->headers = {{"Host", "h"}, {"Transfer-Encoding", "chunked"}};
  x.request->body.data = "hello";
  x.request->body.length = 12;
  x.request->body.truncated = true;
  std::string got;
  ForEachView({x}, [&](const ExchangeView& v) { got = SerializeRequest(v); });
  EXPECT_EQ(got,
            "POST /login?next=%2Fhome&q=a+b&flag HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
            "chunked\r\n\r\n5\r\nhello\r\n");
}

}  // namespace
}  // namespace tapkit
