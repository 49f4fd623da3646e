// The acceptance test of the capture engine: every capture of the shared corpus (real files
// written by zeek, suricata, tcpdump, scapy and others) is read, and the HTTP/1 requests and
// responses found are compared with tshark's reading of the same file (truth/*.tsv): method, URI,
// host, status, pairing (http.request_in) and Content-Length. Where tapkit and tshark differ, the
// committed file fixtures/corpus/expectations.tsv says so and why, file by file, with the counts
// tapkit must produce, so no file is left unexplained and no difference drifts unnoticed.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "format/testutil.h"
#include "sidecar/engine.h"
#include "sidecar/packet_source.h"
#include "sidecar/testutil.h"

namespace tapkit {
namespace {

using Rows = std::vector<std::map<std::string, std::string>>;

Rows ReadTsv(const std::string& path) {
  Rows rows;
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> header;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '#') continue;
    std::vector<std::string> cells = absl::StrSplit(line, '\t');
    if (header.empty()) {
      header = cells;
      continue;
    }
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size(); ++i) row[header[i]] = i < cells.size() ? cells[i] : "";
    rows.push_back(std::move(row));
  }
  return rows;
}

using Req = std::tuple<std::string, std::string, std::string>;  // method, URI, host
using Rsp = std::tuple<std::string, std::string, int>;          // request's method, URI; status

struct Reading {
  std::vector<Req> requests;
  std::vector<Rsp> responses;
  std::vector<std::pair<int, uint64_t>> response_lengths;  // status, Content-Length (tshark)
  std::vector<Exchange> exchanges;
  std::string error;
};

// tshark's reading. One row per frame; several messages in a frame are comma-joined, but a URI
// may hold commas too, so cells are split only when their count matches the methods'.
Reading Tshark(const std::string& path) {
  Reading r;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> by_frame;
  for (auto& row : ReadTsv(path)) {
    std::vector<std::string> methods, uris, hosts;
    if (!row["http.request.method"].empty())
      methods = absl::StrSplit(row["http.request.method"], ',');
    std::vector<std::string> u = absl::StrSplit(row["http.request.uri"], ',');
    std::vector<std::string> h = absl::StrSplit(row["http.host"], ',');
    for (size_t i = 0; i < methods.size(); ++i) {
      std::string uri = u.size() == methods.size() ? u[i]
                        : methods.size() == 1      ? row["http.request.uri"]
                                                   : "";
      std::string host = h.size() == methods.size() ? h[i]
                         : methods.size() == 1      ? row["http.host"]
                                                    : "";
      r.requests.emplace_back(methods[i], uri, host);
      by_frame[row["frame.number"]].emplace_back(methods[i], uri);
    }
    std::vector<std::string> codes, request_in;
    if (!row["http.response.code"].empty()) codes = absl::StrSplit(row["http.response.code"], ',');
    if (!row["http.request_in"].empty()) request_in = absl::StrSplit(row["http.request_in"], ',');
    for (size_t i = 0; i < codes.size(); ++i) {
      int code = std::stoi(codes[i]);
      std::pair<std::string, std::string> q;
      // 1xx responses (101 included) are compared without pairing: tshark leaves them unpaired.
      if (code >= 200 && i < request_in.size() && !by_frame[request_in[i]].empty()) {
        q = by_frame[request_in[i]][0];
      }
      r.responses.emplace_back(q.first, q.second, code);
    }
    if (codes.size() == 1 && methods.empty() && !row["http.content_length"].empty() &&
        row["http.transfer_encoding"].empty() &&
        row["http.content_length"].find(',') == std::string::npos) {
      r.response_lengths.emplace_back(std::stoi(codes[0]), std::stoull(row["http.content_length"]));
    }
  }
  std::sort(r.requests.begin(), r.requests.end());
  std::sort(r.responses.begin(), r.responses.end());
  return r;
}

uint64_t ExpectSameFrames(PacketSource& want, PacketSource& got);

// tapkit's reading, in the same shape.
Reading Tapkit(const std::string& path) {
  Reading r;
  testing::EngineRun run = testing::RunEngine(path);
  r.exchanges = std::move(run.exchanges);
  if (!run.status.ok()) r.error = std::string(run.status.message());
  for (const Exchange& x : r.exchanges) {
    std::string method = x.request ? x.request->method : "", uri = x.request ? x.request->path : "";
    if (x.request) {
      std::string host;
      for (const Header& h : x.request->headers) {
        if (absl::AsciiStrToLower(h.name) == "host") {
          host = h.value;
          break;
        }
      }
      r.requests.emplace_back(method, uri, host);
    }
    for (const InterimResponse& i : x.interim) r.responses.emplace_back("", "", i.status);
    if (x.response && x.response->status) {
      // 1xx (101 Switching Protocols included) compared unpaired, as tshark shows them.
      bool interim = x.response->status < 200;
      r.responses.emplace_back(interim ? "" : method, interim ? "" : uri, x.response->status);
    }
  }
  std::sort(r.requests.begin(), r.requests.end());
  std::sort(r.responses.begin(), r.responses.end());
  return r;
}

struct Expectation {
  std::string verdict;  // "same" or "differs"
  size_t requests = 0, responses = 0;
  std::string note;
};

std::map<std::string, Expectation> Expectations() {
  std::map<std::string, Expectation> out;
  for (auto& row : ReadTsv(TAPKIT_SOURCE_DIR "/fixtures/corpus/expectations.tsv")) {
    Expectation e;
    e.verdict = row["verdict"];
    e.requests = std::stoul(row["tapkit_requests"]);
    e.responses = std::stoul(row["tapkit_responses"]);
    e.note = row["why"];
    out[row["file"]] = e;
  }
  return out;
}

std::string Show(const std::vector<Req>& v) {
  std::string s;
  for (auto& [m, u, h] : v) absl::StrAppend(&s, "\n    ", m, " ", u, " host=", h);
  return s;
}
std::string Show(const std::vector<Rsp>& v) {
  std::string s;
  for (auto& [m, u, c] : v) absl::StrAppend(&s, "\n    ", m, " ", u, " -> ", c);
  return s;
}

TEST(Corpus, EveryFileAgreesWithTsharkOrIsExplained) {
  std::string corpus = testing::CorpusDir();
  TAPKIT_REQUIRE_CORPUS(corpus);
  std::map<std::string, Expectation> expect = Expectations();
  Rows manifest = ReadTsv(corpus + "/MANIFEST.tsv");
  ASSERT_GE(manifest.size(), 40u);
  int same = 0, differs = 0;
  for (auto& row : manifest) {
    const std::string& file = row["file"];
    SCOPED_TRACE(file);
    auto e = expect.find(file);
    ASSERT_NE(e, expect.end()) << file << " has no line in fixtures/corpus/expectations.tsv";
    Reading t = Tshark(corpus + "/truth/" + file + ".tsv");
    Reading k = Tapkit(corpus + "/pcaps/" + file);
    bool agrees = t.requests == k.requests && t.responses == k.responses;
    if (e->second.verdict == "same") {
      ++same;
      EXPECT_TRUE(agrees) << "tshark requests:" << Show(t.requests)
                          << "\n  tapkit requests:" << Show(k.requests)
                          << "\n  tshark responses:" << Show(t.responses)
                          << "\n  tapkit responses:" << Show(k.responses) << "\n  " << k.error;
    } else {
      ++differs;
      EXPECT_FALSE(agrees) << "now agrees with tshark: mark it 'same' in expectations.tsv";
      EXPECT_FALSE(e->second.note.empty());
    }
    EXPECT_EQ(k.requests.size(), e->second.requests) << "requests";
    EXPECT_EQ(k.responses.size(), e->second.responses) << "responses (interim 1xx included)";
    // Content-Length where tshark shows one: some response of that status has that body length.
    for (auto [status, length] : t.response_lengths) {
      bool found = false;
      for (const Exchange& x : k.exchanges) {
        if (!x.response || x.response->status != status) continue;
        // A response to HEAD announces a length it does not send (RFC 9110 section 9.3.2).
        bool head = x.request && x.request->method == "HEAD";
        if (x.response->body.length == length || (head && x.response->body.length == 0))
          found = true;
      }
      if (e->second.verdict == "same") {
        EXPECT_TRUE(found) << "no " << status << " response with a body of " << length << " bytes";
      }
    }
  }
  EXPECT_GT(same, 30) << "most of the corpus should agree with tshark";
  std::cerr << "corpus: " << same << " files agree with tshark, " << differs
            << " differ as explained in fixtures/corpus/expectations.tsv\n";
}

// The project's pcapng reader against libpcap, frame by frame, on every corpus pcapng file that
// libpcap can read whole: same link type, capture time, wire length and bytes.
TEST(Corpus, PcapngReaderAgreesWithLibpcap) {
  std::string corpus = testing::CorpusDir();
  TAPKIT_REQUIRE_CORPUS(corpus);
  int files = 0;
  for (auto& row : ReadTsv(corpus + "/MANIFEST.tsv")) {
    if (row["file_format"] != "pcapng") continue;
    std::string path = corpus + "/pcaps/" + row["file"];
    SCOPED_TRACE(row["file"]);
    // With a filter too: both must compile it as libpcap does for that file (savefile rules).
    for (std::string bpf : {"tcp port 80", "ip6"}) {
      SCOPED_TRACE(bpf);
      auto lib = OpenLibpcapFile(path, bpf);
      auto own = OpenPcapngFile(path, bpf);
      ASSERT_TRUE(lib.ok() && own.ok());
      ExpectSameFrames(**lib, **own);
    }
    auto lib = OpenCaptureFile(path, "");
    auto own = OpenPcapngFile(path, "");
    ASSERT_TRUE(lib.ok() && own.ok());
    Frame a, b;
    uint64_t n = 0;
    bool lib_ok = true;
    while ((*lib)->Next(&a)) {
      ASSERT_TRUE((*own)->Next(&b)) << "frame " << n;
      EXPECT_EQ(a.link_type, b.link_type) << "frame " << n;
      EXPECT_EQ(a.ts_ns, b.ts_ns) << "frame " << n;
      EXPECT_EQ(a.wire_length, b.wire_length) << "frame " << n;
      ASSERT_TRUE(std::equal(a.data.begin(), a.data.end(), b.data.begin(), b.data.end()))
          << "frame " << n;
      ++n;
    }
    lib_ok = (*lib)->status().ok();
    EXPECT_FALSE((*own)->Next(&b)) << "more frames than libpcap";
    EXPECT_TRUE((*own)->status().ok()) << (*own)->status();
    if (lib_ok) ++files;
  }
  EXPECT_GE(files, 4);
}

// Frames of two sources, compared one by one: link type, time, lengths, bytes, and whether each
// ended in an error. Returns the frame count.
uint64_t ExpectSameFrames(PacketSource& want, PacketSource& got) {
  Frame a, b;
  uint64_t n = 0;
  while (want.Next(&a)) {
    EXPECT_TRUE(got.Next(&b)) << "frame " << n;
    if (::testing::Test::HasFailure()) return n;
    EXPECT_EQ(a.link_type, b.link_type) << "frame " << n;
    EXPECT_EQ(a.ts_ns, b.ts_ns) << "frame " << n;
    EXPECT_EQ(a.wire_length, b.wire_length) << "frame " << n;
    EXPECT_TRUE(std::equal(a.data.begin(), a.data.end(), b.data.begin(), b.data.end()))
        << "frame " << n;
    ++n;
  }
  EXPECT_FALSE(got.Next(&b)) << "more frames than libpcap";
  EXPECT_EQ(want.status().ok(), got.status().ok()) << want.status() << " / " << got.status();
  return n;
}

// The mapped reader of classic pcap files against libpcap on every corpus pcap it takes, with
// and without a BPF expression.
TEST(Corpus, MappedPcapReaderAgreesWithLibpcap) {
  std::string corpus = testing::CorpusDir();
  TAPKIT_REQUIRE_CORPUS(corpus);
  int files = 0;
  for (auto& row : ReadTsv(corpus + "/MANIFEST.tsv")) {
    std::string path = corpus + "/pcaps/" + row["file"];
    std::string bytes = testing::ReadFileBytes(path);
    auto span =
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    for (std::string bpf : {"", "tcp port 80"}) {
      SCOPED_TRACE(row["file"] + " bpf \"" + bpf + "\"");
      std::unique_ptr<PacketSource> mapped = OpenPcapBytes(span, path, bpf);
      if (!mapped) continue;  // pcapng, or a link type left to libpcap
      auto lib = OpenLibpcapFile(path, bpf);
      ASSERT_TRUE(lib.ok()) << lib.status();
      ExpectSameFrames(**lib, *mapped);
      auto chosen = OpenCaptureFile(path, bpf);
      ASSERT_TRUE(chosen.ok());
      EXPECT_EQ((*chosen)->link_type(), mapped->link_type());
      if (bpf.empty()) ++files;
    }
  }
  EXPECT_GE(files, 20) << "most corpus files are classic pcap";
}

}  // namespace
}  // namespace tapkit
