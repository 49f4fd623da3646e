#include "format/testutil.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "format/block.h"
#include "format/test_dir.h"

namespace tapkit::testing {

Exchange RichExchange(uint64_t i) {
  Exchange x;
  x.sort_key_ns = 1'790'000'000'000'000'000ull + i * 1'000'003;
  x.request_end_ns = 1'200 + i;
  x.response_start_ns = 250'000 + i;
  x.response_end_ns = 900'000 + i;
  x.capture_point = static_cast<uint32_t>(i % 3);
  x.stream_id = 1000 + i;
  x.h2_stream_id = static_cast<uint32_t>(i % 2 ? 2 * i + 1 : 0);
  x.source.ip = IpAddress::V4(10, 0, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i));
  x.source.port = static_cast<uint16_t>(40000 + i);
  x.source.labels = Labels{"shop", "frontend-7d9f-abcde", "deployment", "frontend", ""};
  x.destination.ip = IpAddress::V6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  x.destination.port = 8080;
  x.destination.labels = Labels{"shop", "backend-2", "statefulset", "backend", "backend-svc"};
  x.direction = i % 2 ? Direction::kOutbound : Direction::kInbound;
  x.tls = TlsState::kNo;

  Request& q = x.request.emplace();
  q.version = HttpVersion::kHttp11;
  q.method = "POST";
  q.scheme = "http";
  q.authority = "backend.shop.svc:8080";
  q.path = absl::StrCat("/api/orders/", i, "?expand=items&x=%20");
  q.headers = {{"Host", "backend.shop.svc:8080"},
               {"Content-Type", "application/json"},
               {"X-Trace", "a"},
               {"X-Trace", "b"},  // duplicate kept, in order
               {"X-Binary", std::string("\x00\xff\x80 \r", 5)},
               {"Transfer-Encoding", "chunked"}};
  q.body.data = absl::StrCat("{\"order\":", i, ",\"items\":[1,2,3]}");
  q.body.length = q.body.data.size();
  q.trailers = {{"X-Checksum", "abc123"}};

  x.interim.push_back(InterimResponse{100, "Continue", {}, 2'000 + i});
  x.interim.push_back(
      InterimResponse{103, "Early Hints", {{"Link", "</style.css>; rel=preload"}}, 3'000 + i});

  Response& s = x.response.emplace();
  s.version = HttpVersion::kHttp11;
  s.status = static_cast<uint16_t>(200 + i % 3);
  s.reason = "OK";
  s.headers = {
      {"Content-Type", "application/octet-stream"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}};
  s.body.data = std::string(64 + i % 50, static_cast<char>(i));
  s.body.data[0] = '\xc3';      // not UTF-8
  s.body.length = 100'000 + i;  // more on the wire than stored
  s.body.truncated = true;
  s.trailers = {{"grpc-status", "0"}};

  x.completion = Completion::kComplete;
  x.grpc_status = static_cast<int32_t>(i % 17);
  x.grpc_message = "ok";
  x.h2_reset_code = static_cast<uint32_t>(i % 14);
  x.reason = i % 5 == 0 ? "" : "example reason";
  // Format 1.3: odd i carry the id of a replayed exchange, even i none (both encodings covered).
  if (i % 2) x.replay_of = ExchangeId{static_cast<uint32_t>(7 + i % 5), 500'000 + i};
  return x;
}

Exchange SmallExchange(uint64_t i, uint64_t sort_key_ns) {
  Exchange x;
  x.sort_key_ns = sort_key_ns;
  x.request_end_ns = 10;
  x.response_start_ns = 1000;
  x.response_end_ns = 1500;
  x.stream_id = i;
  x.source.ip = IpAddress::V4(127, 0, 0, 1);
  x.source.port = 50000;
  x.destination.ip = IpAddress::V4(127, 0, 0, 2);
  x.destination.port = 80;
  Request& q = x.request.emplace();
  q.version = HttpVersion::kHttp11;
  q.method = "GET";
  q.path = absl::StrCat("/item/", i);
  q.authority = "example";
  q.headers = {{"Host", "example"}, {"User-Agent", "curl/7.88.1"}};
  Response& s = x.response.emplace();
  s.version = HttpVersion::kHttp11;
  s.status = 200;
  s.reason = "OK";
  s.headers = {{"Content-Length", "12"}};
  s.body.data = "hello world\n";
  s.body.length = 12;
  return x;
}

CaptureMetadata SampleMetadata() {
  CaptureMetadata m;
  m.start_time_ns = 1'790'000'000'000'000'000ull;
  m.writer_name = "format-test";
  m.writer_version = "1";
  m.host = "testhost";
  m.command_line = {"taprec", "deploy/backend", "-n", "shop", "-w", "out.tap"};
  m.target = "deploy/backend";
  m.ns = "shop";
  m.filters = {{"method", "POST"}, {"to", "deploy/db"}};
  m.body_limit = 65536;
  m.redaction = RedactionPolicy{true, {"authorization", "cookie"}, false, {}, {}};
  m.capture_points = {
      CapturePointInfo{
          0, "pod", "backend-1", Labels{"shop", "backend-1", "deployment", "backend", ""}, {1}},
      CapturePointInfo{1, "file", "in.pcap", {}, {1, 113}}};
  m.extra = {{"bpf", "tcp port 8080"}};
  return m;
}

std::string WriteToString(const std::vector<Exchange>& xs, size_t segment_bytes, bool close,
                          const TrailerInput& trailer) {
  std::string out;
  WriterOptions o;
  o.segment_bytes = segment_bytes;
  o.flush_interval_ns = 0;
  o.wall_clock = [] { return uint64_t{1'790'000'100'000'000'000ull}; };
  auto w = Writer::Open(NewStringWritableFile(&out), SampleMetadata(), o);
  if (!w.ok()) return {};
  for (const Exchange& x : xs) {
    if (!(*w)->Append(x).ok()) return {};
  }
  if (close) {
    if (!(*w)->Close(trailer).ok()) return {};
  } else if (!(*w)->Flush().ok()) {
    return {};
  }
  return out;
}

ReadResult ReadAll(std::string_view data, bool headers_only, bool seekable) {
  ReadResult r;
  RecordingReporter rep(&r.report);
  ReaderOptions o;
  o.headers_only = headers_only;
  o.reporter = &rep;
  auto reader = Reader::Open(NewStringReadableFile(data, "test.tap", seekable), o);
  r.open = reader.status();
  if (!reader.ok()) return r;
  ExchangeView v;
  while ((*reader)->Next(&v)) r.exchanges.push_back(v.ToExchange());
  r.status = (*reader)->status();
  r.stats = (*reader)->stats();
  return r;
}

std::string WriteTestFile(const std::string& name, std::string_view bytes) {
  std::string path = TestDir() + "/" + name;
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string CorpusDir() {
  const char* env = std::getenv("TAPKIT_CORPUS");
  std::string dir = env && *env ? env : std::string(TAPKIT_SOURCE_DIR) + "/../shared/corpus";
  struct stat st {};
  if (::stat((dir + "/MANIFEST.tsv").c_str(), &st) != 0) return {};
  return dir;
}

std::string Shell(const std::string& command, int* status) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) {
    if (status != nullptr) *status = -1;
    return out;
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  if (status != nullptr) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

bool HaveTool(const std::string& tool) {
  int st = 0;
  Shell("command -v " + tool + " >/dev/null 2>&1", &st);
  return st == 0;
}

uint16_t FreePort(const std::string& address) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  socklen_t len = sizeof sa;
  if (fd < 0 || ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    ADD_FAILURE() << "no free port on " << address;
    sa.sin_port = 0;
  }
  if (fd >= 0) ::close(fd);
  return ntohs(sa.sin_port);
}

bool CanConnect(const std::string& address, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) == 1 &&
            ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
  ::close(fd);
  return ok;
}

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::vector<uint64_t> BlockOffsets(const std::string& file) {
  std::vector<uint64_t> out;
  uint64_t data_start = format::kFileHeaderSize + format::Get32(file.data() + 12);
  uint64_t at = data_start;
  while (at + format::kBlockHeaderSize <= file.size() && format::HasBlockMarker(file.data() + at)) {
    out.push_back(at);
    at += format::DecodeBlockHeader(file.data() + at).length();
  }
  return out;
}

void FixBlockChecksum(std::string* file, uint64_t offset) {
  format::BlockHeader h = format::DecodeBlockHeader(file->data() + offset);
  std::string_view all(file->data() + offset, file->size() - offset);
  std::string_view header = all.substr(0, h.header_length);
  std::string_view meta =
      all.substr(h.header_length, std::min<uint64_t>(h.meta_stored, all.size() - h.header_length));
  format::Put64(file->data() + offset + format::kBlockHeaderChecksumOffset,
                format::HeaderChecksum(header, meta));
}

}  // namespace tapkit::testing
