// Tests of the replay engine (replay.h) against a real nginx that the test starts on its own
// loopback addresses (127.0.96.0/24). What nginx received is read from its access log (the
// independent source; escape=json logs a missing field as ""): the request line, chosen fields, the
// body, and $connection / $connection_requests for the order per connection. Pacing is checked
// exactly with FakeClock against due times computed by hand from the recorded sort keys.
//
// Without nginx the nginx tests skip with a message (they fail under CI=true).
#include "replay/replay.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "format/redact.h"
#include "format/testutil.h"
#include "replay/nginx_testutil.h"
#include "replay/replay_input.h"
#include "replay/replay_request.h"
#include "replay/run.h"

namespace tapkit::replay {
namespace {

namespace fs = std::filesystem;

// Everything a test run writes (captures, nginx's files) lives here and is removed at the end.
fs::path TestDir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / absl::StrCat("replay_test_", getpid());
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

class RemoveTestDir : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(TestDir(), ec);
  }
};
const auto* const kRemoveTestDir = ::testing::AddGlobalTestEnvironment(new RemoveTestDir);

constexpr uint64_t kBase = 1'790'000'000'000'000'000ull;  // recorded sort keys start here
constexpr uint64_t kMs = 1'000'000;

using tapkit::testing::FreePort;

// A TCP socket listening on the IPv4 `addr` with `backlog`, at the port the kernel picks. On a
// socket, bind, listen or getsockname error: a gtest failure naming the address, and port 0.
struct Listener {
  int fd = -1;
  int port = 0;
  sockaddr_in address{};  // addr:port, for a client's connect()
};
Listener ListenOn(const std::string& addr, int backlog) {
  Listener l;
  l.fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  socklen_t len = sizeof sa;
  if (l.fd < 0 || inet_pton(AF_INET, addr.c_str(), &sa.sin_addr) != 1 ||
      bind(l.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(l.fd, backlog) != 0 ||
      getsockname(l.fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    ADD_FAILURE() << "cannot listen on " << addr;
    return l;
  }
  l.port = ntohs(sa.sin_port);
  l.address = sa;
  return l;
}

bool HaveNginx() { return std::system("command -v nginx >/dev/null 2>&1") == 0; }

// One access-log line of the test's nginx.
struct Logged {
  int connection = 0;
  int connection_requests = 0;
  std::string request, host, accept, expect, user_agent, content_type, x_keep, x_set, x_drop, x_hop,
      authorization, te, content_length, body;
};

// One access-log line as Logged (the `replay` log format below); false for another line.
bool ParseLogged(const std::string& line, Logged* l) {
  std::vector<std::string> f = absl::StrSplit(line, '|');
  if (f.size() != 16) return false;
  l->connection = std::stoi(f[0]);
  l->connection_requests = std::stoi(f[1]);
  l->request = f[2];
  l->host = f[3];
  l->accept = f[4];
  l->expect = f[5];
  l->user_agent = f[6];
  l->content_type = f[7];
  l->x_keep = f[8];
  l->x_set = f[9];
  l->x_drop = f[10];
  l->x_hop = f[11];
  l->authorization = f[12];
  l->te = f[13];
  l->content_length = f[14];
  l->body = f[15];
  return true;
}

// nginx on ADDR:PORT: "/" and everything else answer 200 "ok\n" (text/plain) after reading the
// request body (proxied to a second server on @PORT2@, so $request_body holds it); /missing
// answers 404.
class Nginx {
 public:
  // `http_extra`: more directives for the http block (e.g. "keepalive_timeout 300ms;").
  explicit Nginx(const std::string& addr, const std::string& http_extra = "")
      : server_(addr, (TestDir() / absl::StrCat("nginx_", addr, "_", ++started_count_)).string(),
                absl::StrCat(
                    "@NGINX_USER@ worker_processes 1; daemon on; pid @WORK@/nginx.pid; "
                    "error_log @WORK@/error.log;\n"
                    "events { worker_connections 1024; }\n"
                    "http { default_type text/plain; client_body_temp_path @WORK@/body;\n"
                    "  proxy_temp_path @WORK@/proxy;\n"
                    "  log_format replay escape=json '$connection|$connection_requests|$request|"
                    "$http_host|$http_accept|$http_expect|$http_user_agent|$http_content_type|"
                    "$http_x_keep|$http_x_set|$http_x_drop|$http_x_hop|$http_authorization|"
                    "$http_te|$content_length|$request_body';\n"
                    "  keepalive_requests 10000; ",
                    http_extra,
                    "\n"
                    "  server { listen @ADDRESS@:@PORT@; access_log @WORK@/access.log replay;\n"
                    "    location = /missing { return 404 \"no\\n\"; }\n"
                    "    location / { client_body_buffer_size 1m; "
                    "proxy_pass http://@ADDRESS@:@PORT2@; }\n"
                    "  }\n"
                    "  server { listen @ADDRESS@:@PORT2@; access_log off; "
                    "location / { return 200 \"ok\\n\"; } }\n"
                    "}\n")) {}

  bool Start() { return server_.Start(); }
  void Stop() { server_.Stop(); }
  std::string url() const { return server_.url(); }
  std::string authority() const { return server_.authority(); }

  // The access log once it holds `want` lines (nginx logs a request after answering it), or
  // what it holds after 5 s.
  std::vector<Logged> Log(size_t want) const { return Parse(server_.AccessLog(want)); }
  std::vector<Logged> ReadLog() const { return Parse(server_.AccessLog()); }
  void ClearLog() { server_.ClearAccessLog(); }

 private:
  static std::vector<Logged> Parse(const std::vector<std::string>& lines) {
    std::vector<Logged> out;
    for (const std::string& line : lines) {
      Logged l;
      if (ParseLogged(line, &l)) out.push_back(l);
    }
    return out;
  }

  static inline int started_count_ = 0;
  tapkit::testing::Nginx server_;
};

#define REQUIRE_NGINX(nginx)                                                               \
  do {                                                                                     \
    if (!HaveNginx()) {                                                                    \
      if (::tapkit::testing::InCi()) FAIL() << "nginx missing; CI=true (scripts/deps.sh)"; \
      GTEST_SKIP() << "nginx not installed (scripts/deps.sh installs it); skipping";       \
    }                                                                                      \
    ASSERT_TRUE((nginx).Start()) << "nginx did not start";                                 \
  } while (0)

// A recorded exchange: `conn` picks the recorded client port (one TCP connection per value).
Exchange Recorded(uint64_t id, uint64_t key_ns, uint16_t conn, std::string method = "GET",
                  std::string path = "/") {
  Exchange x;
  x.sort_key_ns = key_ns;
  x.response_start_ns = 500'000;
  x.response_end_ns = 600'000;
  x.capture_point = 1;
  x.stream_id = id;
  x.source.ip = IpAddress::V4(10, 1, 0, 1);
  x.source.port = conn;
  x.destination.ip = IpAddress::V4(10, 1, 0, 2);
  x.destination.port = 80;
  Request& q = x.request.emplace();
  q.version = HttpVersion::kHttp11;
  q.method = std::move(method);
  q.path = std::move(path);
  q.authority = "shop.example";
  q.headers = {{"Host", "shop.example"}};
  Response& s = x.response.emplace();
  s.version = HttpVersion::kHttp11;
  s.status = 200;
  s.reason = "OK";
  s.headers = {{"Content-Type", "text/plain"}, {"Content-Length", "3"}};
  s.body.data = "ok\n";
  s.body.length = 3;
  return x;
}

std::string WriteCapture(const std::vector<Exchange>& xs, const std::string& name) {
  fs::path p = TestDir() / absl::StrCat(name, ".tap");
  std::ofstream(p, std::ios::binary) << tapkit::testing::WriteToString(xs);
  return p.string();
}

struct ReplayRun {
  absl::StatusOr<ReplaySummary> summary;
  std::vector<ReplayedExchange> seen;  // recorded pointers are not kept
  std::vector<uint64_t> recorded_ids;
};

ReplayRun DoReplay(ReplayOptions o) {
  ReplayRun r;
  r.summary = Replay(o, [&](const ReplayedExchange& x) {
    r.recorded_ids.push_back(x.recorded->stream_id);
    ReplayedExchange copy = x;
    copy.recorded = nullptr;
    r.seen.push_back(std::move(copy));
  });
  return r;
}

// ---- pacing, exactly, with FakeClock ----

class PacingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_NGINX(nginx_);
    // Four exchanges, each on its own recorded connection (so each has a free lane), recorded
    // at 0, 100, 250 and 400 ms.
    xs_ = {Recorded(1, kBase, 1001), Recorded(2, kBase + 100 * kMs, 1002),
           Recorded(3, kBase + 250 * kMs, 1003), Recorded(4, kBase + 400 * kMs, 1004)};
    path_ = WriteCapture(xs_, "pacing");
  }
  ReplayOptions Options() {
    ReplayOptions o;
    o.inputs = {path_};
    o.target = nginx_.url();
    o.clock = &clock_;
    o.compare = false;
    o.pacing = Pacing::kRecorded;  // the C++ API's default is kMax
    return o;
  }
  // due (and sent) per recorded stream id.
  std::map<uint64_t, std::pair<int64_t, int64_t>> Times(const ReplayRun& r, int round = 0) {
    std::map<uint64_t, std::pair<int64_t, int64_t>> m;
    for (size_t i = 0; i < r.seen.size(); ++i) {
      if (r.seen[i].round == round) m[r.recorded_ids[i]] = {r.seen[i].due_ns, r.seen[i].sent_ns};
    }
    return m;
  }

  Nginx nginx_{"127.0.96.1"};
  FakeClock clock_{5'000'000'000};
  std::vector<Exchange> xs_;
  std::string path_;
};

TEST_F(PacingTest, RecordedGapsDividedBySpeed) {
  for (double speed : {1.0, 2.0, 0.5}) {
    SCOPED_TRACE(speed);
    FakeClock clock(5'000'000'000);
    ReplayOptions o = Options();
    o.clock = &clock;
    o.speed = speed;
    ReplayRun r = DoReplay(o);
    ASSERT_TRUE(r.summary.ok()) << r.summary.status();
    EXPECT_EQ(r.summary->sent, 4u);
    EXPECT_EQ(r.summary->errors, 0u);
    auto t = Times(r);
    ASSERT_EQ(t.size(), 4u);
    // By hand: 5 s + {0, 100, 250, 400} ms / speed.
    const int64_t start = 5'000'000'000;
    const int64_t want[] = {0, 100, 250, 400};
    for (uint64_t id = 1; id <= 4; ++id) {
      int64_t due = start + static_cast<int64_t>(want[id - 1] * 1e6 / speed);
      EXPECT_EQ(t[id].first, due) << id;
      EXPECT_EQ(t[id].second, due) << id;  // each lane free: sent at once
    }
    EXPECT_EQ(r.summary->elapsed_ns, static_cast<int64_t>(400e6 / speed));
  }
}

TEST_F(PacingTest, Rate) {
  ReplayOptions o = Options();
  o.pacing = Pacing::kRate;
  o.rate = 4;  // one every 250 ms, whatever the recorded gaps
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  auto t = Times(r);
  ASSERT_EQ(t.size(), 4u);
  for (uint64_t id = 1; id <= 4; ++id) {
    EXPECT_EQ(t[id].first, 5'000'000'000 + static_cast<int64_t>(id - 1) * 250'000'000) << id;
    EXPECT_EQ(t[id].second, t[id].first) << id;
  }
}

TEST_F(PacingTest, LoopThreeRounds) {
  // Round r + 1 starts one mean recorded gap (400 ms / 3) after round r's last request: round
  // r's offsets are r * (400 + 133.333...) ms + {0, 100, 250, 400} ms.
  ReplayOptions o = Options();
  o.loop = 3;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 12u);
  EXPECT_EQ(r.summary->read, 12u);
  const int64_t want[] = {0, 100, 250, 400};
  for (int round = 0; round < 3; ++round) {
    auto t = Times(r, round);
    ASSERT_EQ(t.size(), 4u) << round;
    for (uint64_t id = 1; id <= 4; ++id) {
      double offset = round * (400e6 + 400e6 / 3) + want[id - 1] * 1e6;
      EXPECT_EQ(t[id].first, 5'000'000'000 + std::llround(offset)) << round << " " << id;
      // A lane may still wait for its previous round's answer when the fake clock jumps.
      EXPECT_GE(t[id].second, t[id].first) << round << " " << id;
    }
  }
}

TEST_F(PacingTest, MaxSendsAtOnce) {
  ReplayOptions o = Options();
  o.pacing = Pacing::kMax;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  ASSERT_EQ(r.seen.size(), 4u);
  for (const ReplayedExchange& x : r.seen) {
    EXPECT_EQ(x.due_ns, 5'000'000'000);  // the fake clock never waited
    EXPECT_EQ(x.sent_ns, 5'000'000'000);
  }
  EXPECT_EQ(r.summary->elapsed_ns, 0);
}

TEST_F(PacingTest, DueTimesSaturateInsteadOfOverflowing) {
  // Recorded 10^16 ns (about 116 days) apart at the lowest speed: 10^19 ns does not fit an
  // int64 (llround's result is undefined; it was LLONG_MIN, so the request went at once). The
  // due time is held at start + 2^62 ns, and the fake clock jumps there.
  std::vector<Exchange> xs = {Recorded(1, kBase, 1101), Recorded(2, kBase + 10'000'000'000'000'000ull, 1102)};
  ReplayOptions o = Options();
  o.inputs = {WriteCapture(xs, "saturate")};
  o.speed = kMinSpeed;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  auto t = Times(r);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[1].first, 5'000'000'000);
  EXPECT_EQ(t[2].first, 5'000'000'000 + (int64_t{1} << 62));
  EXPECT_EQ(t[2].second, t[2].first);
}

TEST_F(PacingTest, TheApiDefaultSendsAtOnce) {
  // A bug-report capture with an hour between its requests: ReplayCapture's default options do
  // not wait for it (tapreplay's default, run_test's PacingValues, does).
  EXPECT_EQ(ReplayOptions().pacing, Pacing::kMax);
  std::vector<Exchange> xs = {Recorded(1, kBase, 1201),
                              Recorded(2, kBase + 3'600'000 * kMs, 1202)};
  ReplayOptions o;
  o.clock = &clock_;
  absl::StatusOr<ReplayResult> r = ReplayCapture(WriteCapture(xs, "hour"), nginx_.url(), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->summary.sent, 2u);
  EXPECT_EQ(r->summary.elapsed_ns, 0);  // the fake clock never waited
}

// ---- what nginx received ----

class ReceivedTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_NGINX(nginx_); }
  Nginx nginx_{"127.0.96.2"};
};

TEST_F(ReceivedTest, FieldsBodiesAndOrderPerConnection) {
  // Recorded connection A (port 2001): three requests; B (port 2002): two, interleaved in time.
  std::vector<Exchange> xs;
  Exchange a1 = Recorded(1, kBase, 2001, "GET", "/v1/items?x=1&y=%2F..%2F");
  a1.request->headers = {{"Host", "shop.example"},
                         {"Connection", "keep-alive, X-Hop"},
                         {"X-Hop", "gone"},
                         {"TE", "trailers"},
                         {"Authorization", "tapkit-redacted:0123456789ab"},
                         {"X-Drop", "1"},
                         {"X-Keep", "yes"},
                         {"X-Set", "old"}};
  Exchange b1 = Recorded(2, kBase + 1 * kMs, 2002, "POST", "/v1/form");
  b1.request->headers = {{"Host", "shop.example"}, {"Content-Length", "7"}};
  b1.request->body.data = "a=1&b=2";
  b1.request->body.length = 7;
  Exchange a2 = Recorded(3, kBase + 2 * kMs, 2001, "PUT", "/v1/items/7");
  a2.request->headers = {{"Host", "shop.example"},
                         {"Content-Type", "application/json"},
                         {"Transfer-Encoding", "chunked"}};
  a2.request->body.data = "{\"name\":\"seven\",\"n\":7}";
  a2.request->body.length = a2.request->body.data.size();
  Exchange b2 = Recorded(4, kBase + 3 * kMs, 2002, "DELETE", "/v1/items/7");
  Exchange a3 = Recorded(5, kBase + 4 * kMs, 2001, "GET", "/other/./path");
  a3.request->headers = {
      {"Host", "shop.example"}, {"Accept", "application/json"}, {"User-Agent", "recorded-agent/1"}};
  xs = {a1, b1, a2, b2, a3};
  std::string path = WriteCapture(xs, "received");

  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.pacing = Pacing::kMax;
  o.compare = false;
  o.set_headers = {{"X-Set", "new"}};
  o.drop_headers = {"x-drop"};
  o.path_rewrites = {{"^/v1/", "/v2/"}};
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 5u);
  EXPECT_EQ(r.summary->errors, 0u);
  EXPECT_EQ(r.summary->redacted_headers_dropped, 1u);

  std::vector<Logged> log = nginx_.Log(5);
  ASSERT_EQ(log.size(), 5u);
  std::map<std::string, Logged> by_request;
  for (const Logged& l : log) by_request[l.request] = l;
  const std::string host = nginx_.authority();

  const Logged& l1 = by_request["GET /v2/items?x=1&y=%2F..%2F HTTP/1.1"];
  EXPECT_EQ(l1.host, host);
  EXPECT_EQ(l1.x_hop, "");  // named by Connection: hop-by-hop
  EXPECT_EQ(l1.te, "");
  EXPECT_EQ(l1.authorization, "");  // a redaction marker is not sent
  EXPECT_EQ(l1.x_drop, "");
  EXPECT_EQ(l1.x_keep, "yes");
  EXPECT_EQ(l1.x_set, "new");
  EXPECT_EQ(l1.accept, "");  // libcurl's Accept: */* left out
  EXPECT_EQ(l1.user_agent, "");
  EXPECT_EQ(l1.expect, "");

  const Logged& l2 = by_request["POST /v2/form HTTP/1.1"];
  EXPECT_EQ(l2.body, "a=1&b=2");
  EXPECT_EQ(l2.content_length, "7");
  EXPECT_EQ(l2.content_type, "");  // libcurl's form Content-Type left out

  const Logged& l3 = by_request["PUT /v2/items/7 HTTP/1.1"];
  EXPECT_EQ(l3.body, "{\\\"name\\\":\\\"seven\\\",\\\"n\\\":7}");  // nginx's JSON escaping
  EXPECT_EQ(l3.content_length, "22");                              // re-framed
  EXPECT_EQ(l3.content_type, "application/json");

  const Logged& l4 = by_request["DELETE /v2/items/7 HTTP/1.1"];
  EXPECT_EQ(l4.content_length, "");

  const Logged& l5 = by_request["GET /other/./path HTTP/1.1"];  // sent as is, not normalised
  EXPECT_EQ(l5.accept, "application/json");
  EXPECT_EQ(l5.user_agent, "recorded-agent/1");

  // Order per recorded connection, each on one nginx connection: A's three requests are
  // requests 1, 2, 3 of one connection; B's two are 1, 2 of another.
  EXPECT_EQ(l1.connection, by_request["PUT /v2/items/7 HTTP/1.1"].connection);
  EXPECT_EQ(l1.connection, l5.connection);
  EXPECT_EQ(l1.connection_requests, 1);
  EXPECT_EQ(l3.connection_requests, 2);
  EXPECT_EQ(l5.connection_requests, 3);
  EXPECT_EQ(l2.connection, l4.connection);
  EXPECT_NE(l1.connection, l2.connection);
  EXPECT_EQ(l2.connection_requests, 1);
  EXPECT_EQ(l4.connection_requests, 2);

  // The live exchanges say what was sent and where.
  ASSERT_EQ(r.seen.size(), 5u);
  for (const ReplayedExchange& x : r.seen) {
    ASSERT_TRUE(x.live.response.has_value());
    EXPECT_EQ(x.live.response->status, 200);
    EXPECT_EQ(x.live.response->body.data, "ok\n");
    EXPECT_EQ(x.live.destination.ToString(), host);
    EXPECT_EQ(x.live.source.ip.ToString(), "127.0.0.1");
    ASSERT_TRUE(x.live.replay_of.has_value());
    EXPECT_EQ(x.live.replay_of->capture_point, 1u);
  }
}

// A lane's idle keep-alive connection that the target closes (nginx's keepalive_timeout, 300 ms,
// inside a 700 ms recorded gap) is seen closed and replaced: the next request goes out on a new
// connection and is answered, with no transport error. The engine keeps an idle lane's socket in
// its epoll set (replay.cc, OnSocket), so this is the case where that socket turns readable.
class IdleCloseTest : public ::testing::Test {
 protected:
  void SetUp() override { REQUIRE_NGINX(nginx_); }
  Nginx nginx_{"127.0.96.3", "keepalive_timeout 300ms;"};
};

TEST_F(IdleCloseTest, ClosedIdleConnectionIsReplaced) {
  std::string path =
      WriteCapture({Recorded(1, kBase, 5001), Recorded(2, kBase + 50 * kMs, 5001),
                    Recorded(3, kBase + 750 * kMs, 5001), Recorded(4, kBase + 800 * kMs, 5001)},
                   "idle_close");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.compare = false;
  o.pacing = Pacing::kRecorded;  // the 700 ms gap outlasts nginx's keepalive_timeout
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 4u);
  EXPECT_EQ(r.summary->errors, 0u);
  for (const ReplayedExchange& x : r.seen) {
    EXPECT_EQ(x.error, "");
    ASSERT_TRUE(x.live.response.has_value());
    EXPECT_EQ(x.live.response->status, 200);
  }
  // nginx's view: requests 1 and 2 on one connection, 3 and 4 on a second one.
  std::vector<Logged> log = nginx_.Log(4);
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[0].connection, log[1].connection);
  EXPECT_EQ(log[1].connection_requests, 2);
  EXPECT_NE(log[1].connection, log[2].connection);
  EXPECT_EQ(log[2].connection, log[3].connection);
  EXPECT_EQ(log[2].connection_requests, 1);
  EXPECT_EQ(log[3].connection_requests, 2);
  // The live source ports say the same.
  ASSERT_EQ(r.seen.size(), 4u);
  EXPECT_EQ(r.seen[0].live.source.port, r.seen[1].live.source.port);
  EXPECT_NE(r.seen[1].live.source.port, r.seen[2].live.source.port);
  EXPECT_EQ(r.seen[2].live.source.port, r.seen[3].live.source.port);
}

TEST_F(ReceivedTest, KeepAuthority) {
  std::string path = WriteCapture({Recorded(1, kBase, 3001)}, "authority");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.keep_authority = true;
  o.compare = false;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  std::vector<Logged> log = nginx_.Log(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].host, "shop.example");
}

// A request recorded as HTTP/1.0 (nginx's proxy_pass speaks it to upstreams) goes out as
// HTTP/1.0, as nginx's $request shows: servers answer 1.0 and 1.1 differently.
TEST_F(ReceivedTest, Http10RequestIsSentAsHttp10) {
  Exchange old = Recorded(1, kBase, 3101, "GET", "/one-oh");
  old.request->version = HttpVersion::kHttp10;
  std::string path = WriteCapture({old, Recorded(2, kBase + kMs, 3102, "GET", "/one-one")}, "h10");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.compare = false;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  std::vector<Logged> log = nginx_.Log(2);
  ASSERT_EQ(log.size(), 2u);
  std::vector<std::string> requests = {log[0].request, log[1].request};
  std::sort(requests.begin(), requests.end());
  EXPECT_EQ(requests, (std::vector<std::string>{"GET /one-oh HTTP/1.0", "GET /one-one HTTP/1.1"}));
}

TEST_F(ReceivedTest, ConcurrencySpreadsConnections) {
  // One recorded connection, six requests, --concurrency 3: at most 3 nginx connections, and
  // every request answered.
  std::vector<Exchange> xs;
  for (uint64_t i = 1; i <= 6; ++i) xs.push_back(Recorded(i, kBase + i * kMs, 4001));
  std::string path = WriteCapture(xs, "spread");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.pacing = Pacing::kMax;
  o.concurrency = 3;
  o.compare = false;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 6u);
  std::set<int> conns;
  for (const Logged& l : nginx_.Log(6)) conns.insert(l.connection);
  EXPECT_LE(conns.size(), 3u);
  EXPECT_EQ(nginx_.Log(6).size(), 6u);
}

TEST_F(ReceivedTest, MoreRecordedConnectionsThanLanes) {
  // 300 recorded connections, one request each, the last two requests, replayed as fast as
  // possible: past kMaxLanes (256) a new connection waits for an idle lane and gets a new
  // connection of its own, whatever the timing (it never rides another recorded connection's
  // keep-alive connection), so nginx sees 300 connections, the last one serving two requests in
  // order.
  std::vector<Exchange> xs;
  for (uint64_t i = 1; i <= 300; ++i) {
    xs.push_back(Recorded(i, kBase + i * kMs, static_cast<uint16_t>(10000 + i), "GET",
                          absl::StrCat("/lanes/", i)));
  }
  xs.push_back(Recorded(301, kBase + 301 * kMs, 10300, "GET", "/lanes/300b"));
  std::string path = WriteCapture(xs, "lanes");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.compare = false;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 301u);
  EXPECT_EQ(r.summary->errors, 0u);
  std::vector<Logged> log = nginx_.Log(301);
  ASSERT_EQ(log.size(), 301u);
  std::map<int, std::vector<std::pair<int, std::string>>> by_conn;
  for (const Logged& l : log) by_conn[l.connection].emplace_back(l.connection_requests, l.request);
  EXPECT_EQ(by_conn.size(), 300u);
  for (auto& [conn, requests] : by_conn) {
    if (requests.size() == 1) {
      EXPECT_EQ(requests[0].first, 1) << requests[0].second;
      continue;
    }
    std::sort(requests.begin(), requests.end());
    EXPECT_EQ(requests, (std::vector<std::pair<int, std::string>>{
                            {1, "GET /lanes/300 HTTP/1.1"}, {2, "GET /lanes/300b HTTP/1.1"}}));
  }
}

// ---- what is replayed ----

TEST_F(ReceivedTest, IncompleteSkippedOrIncluded) {
  std::vector<Exchange> xs = {Recorded(1, kBase, 5001), Recorded(2, kBase + kMs, 5002),
                              Recorded(3, kBase + 2 * kMs, 5003)};
  Exchange no_response = Recorded(4, kBase + 3 * kMs, 5004);
  no_response.response.reset();
  no_response.completion = Completion::kNoResponse;
  Exchange no_request = Recorded(5, kBase + 4 * kMs, 5005);
  no_request.request.reset();
  no_request.completion = Completion::kNoRequest;
  xs.push_back(no_response);
  xs.push_back(no_request);
  std::string path = WriteCapture(xs, "incomplete");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.pacing = Pacing::kMax;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->read, 5u);
  EXPECT_EQ(r.summary->sent, 3u);
  EXPECT_EQ(r.summary->skipped_incomplete, 2u);
  EXPECT_EQ(nginx_.Log(3).size(), 3u);

  nginx_.ClearLog();
  o.include_incomplete = true;
  r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 4u);  // one without a request cannot be sent
  EXPECT_EQ(r.summary->skipped_incomplete, 1u);
  EXPECT_EQ(nginx_.Log(4).size(), 4u);
  // Compared only where the recording has a response.
  EXPECT_EQ(r.summary->matched + r.summary->mismatched, 3u);
}

TEST_F(ReceivedTest, SelectionAndCount) {
  std::vector<Exchange> xs;
  for (uint64_t i = 1; i <= 6; ++i) {
    xs.push_back(
        Recorded(i, kBase + i * kMs, 6000 + i, i % 2 ? "GET" : "POST", absl::StrCat("/sel/", i)));
  }
  std::string path = WriteCapture(xs, "selection");
  SelectionFlags flags;
  flags.method = {"POST"};
  absl::StatusOr<Selection> sel = Selection::Parse(flags);
  ASSERT_TRUE(sel.ok()) << sel.status();
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.pacing = Pacing::kMax;
  o.compare = false;
  o.selection = *sel;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 3u);
  EXPECT_EQ(r.summary->selected_out, 3u);
  EXPECT_EQ(r.summary->read, 6u);
  std::set<std::string> sent;
  for (const Logged& l : nginx_.Log(3)) sent.insert(l.request);
  EXPECT_EQ(sent, (std::set<std::string>{"POST /sel/2 HTTP/1.1", "POST /sel/4 HTTP/1.1",
                                         "POST /sel/6 HTTP/1.1"}));

  nginx_.ClearLog();
  flags.count = 2;
  flags.count_given = true;
  sel = Selection::Parse(flags);
  ASSERT_TRUE(sel.ok()) << sel.status();
  o.selection = *sel;
  r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // nothing more may come
  EXPECT_EQ(nginx_.Log(2).size(), 2u);
}

// Everything an InputReader hands out until its end or error.
std::vector<internal::InputItem> ReadAllItems(const ReplayOptions& o, uint64_t cache_limit) {
  std::unique_ptr<internal::InputReader> in = internal::InputReader::Start(
      o, [] {}, cache_limit);
  std::deque<internal::InputItem> got;
  for (int i = 0; i < 5000; ++i) {
    in->Take(&got, 1024);
    if (!got.empty() && (got.back().kind == internal::InputItem::Kind::kEnd ||
                         got.back().kind == internal::InputItem::Kind::kError)) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return {got.begin(), got.end()};
}

TEST(InputTest, LoopsFromMemoryOrReadAgainAlike) {
  // Three rounds of a capture whose third exchange is incomplete: served from round 0's copy in
  // memory, or (a cache limit of 0) read again each round, the items are the same.
  std::vector<Exchange> xs = {Recorded(1, kBase, 1), Recorded(2, kBase + 5 * kMs, 2),
                              Recorded(3, kBase + 9 * kMs, 3)};
  xs[2].completion = Completion::kGap;
  ReplayOptions o;
  o.inputs = {WriteCapture(xs, "input_loop")};
  o.loop = 3;
  for (uint64_t limit : {internal::kRoundCacheBytes, uint64_t{0}}) {
    SCOPED_TRACE(limit);
    std::vector<internal::InputItem> items = ReadAllItems(o, limit);
    ASSERT_EQ(items.size(), 3u * 3 + 1);  // per round: 2 exchanges and its end; then the end
    for (int round = 0; round < 3; ++round) {
      const internal::InputItem* r = &items[round * 3];
      EXPECT_EQ(r[0].kind, internal::InputItem::Kind::kExchange);
      EXPECT_EQ(r[0].round, round);
      EXPECT_EQ(r[0].exchange->stream_id, 1u);
      EXPECT_EQ(r[1].exchange->stream_id, 2u);
      ASSERT_EQ(r[2].kind, internal::InputItem::Kind::kRoundEnd);
      EXPECT_EQ(r[2].counts.read, 3u);
      EXPECT_EQ(r[2].counts.taken, 2u);
      EXPECT_EQ(r[2].counts.skipped_incomplete, 1u);
      EXPECT_EQ(r[2].counts.first_key_ns, kBase);
      EXPECT_EQ(r[2].counts.last_key_ns, kBase + 5 * kMs);
    }
    EXPECT_EQ(items.back().kind, internal::InputItem::Kind::kEnd);
  }
}

TEST(InputTest, DamageIsAnErrorNamingFileAndOffset) {
  // A byte of the second segment's body changed: its checksum fails, and the reader's error
  // names the file and the block's offset (as BlockOffsets finds it).
  std::vector<Exchange> xs = {Recorded(1, kBase, 1), Recorded(2, kBase + kMs, 2),
                              Recorded(3, kBase + 2 * kMs, 3)};
  std::string file = tapkit::testing::WriteToString(xs, /*segment_bytes=*/1);
  std::vector<uint64_t> blocks = tapkit::testing::BlockOffsets(file);
  ASSERT_GE(blocks.size(), 3u);
  file[blocks[1] + (blocks[2] - blocks[1]) / 2 + 8] ^= 0x55;
  fs::path p = TestDir() / "damaged.tap";
  std::ofstream(p, std::ios::binary) << file;
  ReplayOptions o;
  o.inputs = {p.string()};
  std::vector<internal::InputItem> items = ReadAllItems(o, internal::kRoundCacheBytes);
  ASSERT_FALSE(items.empty());
  ASSERT_EQ(items.back().kind, internal::InputItem::Kind::kError);
  EXPECT_EQ(items.back().error.message().substr(
                0, p.string().size() + 9 + std::to_string(blocks[1]).size()),
            absl::StrCat(p.string(), ": offset ", blocks[1]))
      << items.back().error;
}

TEST(SamplingTest, StableAndInProportion) {
  // 100,000 ids at 10%: the binomial's standard deviation is about 95, so 10,000 +- 500 holds
  // with overwhelming probability for a hash that spreads well.
  uint64_t in = 0;
  for (uint64_t i = 0; i < 100'000; ++i) in += internal::SampledIn({3, i}, 10.0, 42);
  EXPECT_GT(in, 9'500u);
  EXPECT_LT(in, 10'500u);
  // The same id and seed decide the same way; another seed picks another sample.
  uint64_t same = 0, differ = 0;
  for (uint64_t i = 0; i < 10'000; ++i) {
    same += internal::SampledIn({3, i}, 50.0, 7) == internal::SampledIn({3, i}, 50.0, 7);
    differ += internal::SampledIn({3, i}, 50.0, 7) != internal::SampledIn({3, i}, 50.0, 8);
  }
  EXPECT_EQ(same, 10'000u);
  EXPECT_GT(differ, 4'000u);
  EXPECT_TRUE(internal::SampledIn({0, 0}, 100.0, 0));
}

TEST_F(ReceivedTest, SampleReplaysTheSameExchangesTwice) {
  std::vector<Exchange> xs;
  for (uint64_t i = 1; i <= 40; ++i) xs.push_back(Recorded(i, kBase + i * kMs, 7000 + i));
  std::string path = WriteCapture(xs, "sample");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.pacing = Pacing::kMax;
  o.compare = false;
  o.sample_percent = 30;
  o.sample_seed = 9;
  ReplayRun a = DoReplay(o), b = DoReplay(o);
  ASSERT_TRUE(a.summary.ok() && b.summary.ok());
  std::set<uint64_t> sa(a.recorded_ids.begin(), a.recorded_ids.end());
  std::set<uint64_t> sb(b.recorded_ids.begin(), b.recorded_ids.end());
  EXPECT_EQ(sa, sb);
  EXPECT_EQ(a.summary->sent + a.summary->sampled_out, 40u);
  EXPECT_GT(a.summary->sent, 0u);
  EXPECT_LT(a.summary->sent, 40u);
}

TEST_F(ReceivedTest, InterimResponseKeptInOrder) {
  // A recorded Expect: 100-continue is sent as recorded; nginx answers 100 Continue before
  // reading the body (RFC 9110 section 10.1.1), and the live exchange keeps it as interim.
  Exchange x = Recorded(1, kBase, 9401, "POST", "/upload");
  x.request->headers = {
      {"Host", "shop.example"}, {"Expect", "100-continue"}, {"Content-Type", "text/plain"}};
  x.request->body.data = "payload";
  x.request->body.length = 7;
  std::string path = WriteCapture({x}, "interim");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.compare = false;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  ASSERT_EQ(r.seen.size(), 1u);
  const Exchange& live = r.seen[0].live;
  ASSERT_EQ(live.interim.size(), 1u);
  EXPECT_EQ(live.interim[0].status, 100);
  EXPECT_EQ(live.interim[0].reason, "Continue");
  ASSERT_TRUE(live.response.has_value());
  EXPECT_EQ(live.response->status, 200);
  EXPECT_EQ(live.response->reason, "OK");
  EXPECT_EQ(live.response->version, HttpVersion::kHttp11);
  std::vector<Logged> log = nginx_.Log(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].expect, "100-continue");
  EXPECT_EQ(log[0].body, "payload");
}

TEST_F(ReceivedTest, StdinStreamIsSentAsItArrives) {
  // taprec -w - flushes a segment about every second: the first exchange's segment arrives, the
  // second's 700 ms later. The first request must be answered before the second segment is
  // written (no reorder window held on a live stream), and the replay ends with the stream.
  std::vector<Exchange> xs = {Recorded(1, kBase, 9501), Recorded(2, kBase + 10 * kMs, 9502)};
  std::string file = tapkit::testing::WriteToString(xs, /*segment_bytes=*/1);
  std::vector<uint64_t> blocks = tapkit::testing::BlockOffsets(file);
  ASSERT_GE(blocks.size(), 2u);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  int saved_stdin = dup(STDIN_FILENO);
  ASSERT_EQ(dup2(fds[0], STDIN_FILENO), STDIN_FILENO);
  close(fds[0]);
  std::chrono::steady_clock::time_point rest_written;
  std::thread writer([&] {
    std::string_view all(file);
    (void)!write(fds[1], all.data(), blocks[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    rest_written = std::chrono::steady_clock::now();
    (void)!write(fds[1], all.data() + blocks[1], all.size() - blocks[1]);
    close(fds[1]);
  });
  ReplayOptions o;
  o.inputs = {"-"};
  o.target = nginx_.url();
  o.compare = false;
  std::vector<std::pair<uint64_t, std::chrono::steady_clock::time_point>> answered;
  absl::StatusOr<ReplaySummary> summary = Replay(o, [&](const ReplayedExchange& x) {
    answered.emplace_back(x.recorded->stream_id, std::chrono::steady_clock::now());
  });
  writer.join();
  dup2(saved_stdin, STDIN_FILENO);
  close(saved_stdin);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->sent, 2u);
  ASSERT_EQ(answered.size(), 2u);
  EXPECT_EQ(answered[0].first, 1u);
  EXPECT_LT(answered[0].second, rest_written);
  EXPECT_EQ(nginx_.Log(2).size(), 2u);
}

// ---- comparison, the one-call API ----

TEST_F(ReceivedTest, ReplayCaptureCollectsMismatches) {
  Exchange same = Recorded(1, kBase, 8001);
  Exchange other_status = Recorded(2, kBase + kMs, 8002, "GET", "/missing");  // nginx: 404
  std::string path = WriteCapture({same, other_status}, "capture");
  ReplayOptions o;
  o.pacing = Pacing::kMax;
  absl::StatusOr<ReplayResult> r = ReplayCapture(path, nginx_.url(), o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->summary.sent, 2u);
  EXPECT_EQ(r->summary.mismatched, 1u);
  EXPECT_FALSE(r->ok());
  ASSERT_EQ(r->mismatches.size(), 1u);
  EXPECT_EQ(r->mismatches[0].recorded->stream_id, 2u);
  ASSERT_TRUE(r->mismatches[0].comparison.has_value());
  ASSERT_FALSE(r->mismatches[0].comparison->diffs.empty());
  EXPECT_EQ(r->mismatches[0].comparison->diffs[0].field, "status");
  EXPECT_EQ(r->mismatches[0].live.response->status, 404);
}

TEST_F(ReceivedTest, CutRecordedBodyComparedOnItsPrefix) {
  // The recording kept 2 of the body's 3 bytes (the body limit): compared on "ok", it matches
  // nginx's "ok\n", and the summary counts it.
  Exchange x = Recorded(1, kBase, 8101);
  x.response->body.data = "ok";
  x.response->body.length = 3;
  x.response->body.truncated = true;
  std::string path = WriteCapture({x}, "prefix");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->matched, 1u);
  EXPECT_EQ(r.summary->body_prefix_compared, 1u);
  ASSERT_EQ(r.seen.size(), 1u);
  ASSERT_TRUE(r.seen[0].comparison.has_value());
  EXPECT_TRUE(r.seen[0].comparison->body_prefix_only);
}

TEST_F(ReceivedTest, StopEndsTheReplay) {
  // Recorded 200 ms apart: stop() turns true once the first answer is in, so the second is
  // never sent.
  std::string path =
      WriteCapture({Recorded(1, kBase, 8201), Recorded(2, kBase + 200 * kMs, 8202)}, "stop");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.compare = false;
  o.pacing = Pacing::kRecorded;
  bool answered = false;
  o.stop = [&] { return answered; };
  absl::StatusOr<ReplaySummary> s = Replay(o, [&](const ReplayedExchange&) { answered = true; });
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->stopped);
  EXPECT_EQ(s->sent, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(nginx_.Log(1).size(), 1u);
}

TEST_F(ReceivedTest, RequestBodyNotStoredWholeSkippedUnlessAsked) {
  // Three POSTs: one whole body; one cut at the body limit (3 of 10 bytes stored); one form body
  // that format/redact.cc's Redactor drops (it cannot decode it: a "gzip" body that is not).
  Exchange whole = Recorded(1, kBase, 8301, "POST", "/whole");
  whole.request->headers.push_back({"Content-Type", "text/plain"});
  whole.request->body.data = "whole";
  whole.request->body.length = 5;
  Exchange cut = Recorded(2, kBase + kMs, 8302, "POST", "/cut");
  cut.request->headers.push_back({"Content-Type", "application/octet-stream"});
  cut.request->body.data = "abc";
  cut.request->body.length = 10;
  cut.request->body.truncated = true;
  Exchange form = Recorded(3, kBase + 2 * kMs, 8303, "POST", "/form");
  form.request->headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
  form.request->headers.push_back({"Content-Encoding", "gzip"});
  form.request->body.data = "password=hunter2";
  form.request->body.length = 16;
  RedactionRules rules;
  rules.query_params = {"password"};
  RedactionStats stats;
  Redactor(rules, "key").Apply(&form, &stats);
  ASSERT_EQ(stats.bodies_dropped, 1u) << form.reason;
  ASSERT_TRUE(form.request->body.data.empty());
  std::string path = WriteCapture({whole, cut, form}, "cut_request_bodies");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.pacing = Pacing::kMax;
  o.compare = false;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->read, 3u);
  EXPECT_EQ(r.summary->sent, 1u);
  EXPECT_EQ(r.summary->skipped_truncated_body, 2u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // nothing more may come
  std::vector<Logged> log = nginx_.Log(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].request, "POST /whole HTTP/1.1");
  EXPECT_EQ(log[0].body, "whole");

  // Asked for: the stored bytes go out, with their own Content-Length.
  nginx_.ClearLog();
  o.send_truncated_bodies = true;
  r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 3u);
  EXPECT_EQ(r.summary->skipped_truncated_body, 0u);
  std::map<std::string, std::pair<std::string, std::string>> got;  // request -> length, body
  for (const Logged& l : nginx_.Log(3)) got[l.request] = {l.content_length, l.body};
  EXPECT_EQ(got["POST /cut HTTP/1.1"], (std::pair<std::string, std::string>{"3", "abc"}));
  EXPECT_EQ(got["POST /form HTTP/1.1"].first, "0");
}

TEST_F(ReceivedTest, UppercaseSchemeInTarget) {
  // RFC 3986 section 3.1: "HTTP://" names the same scheme as "http://".
  std::string path = WriteCapture({Recorded(1, kBase, 8401)}, "upper_scheme");
  ReplayOptions o;
  o.inputs = {path};
  o.target = absl::StrCat("HTTP://", nginx_.authority());
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->matched, 1u);
  std::vector<Logged> log = nginx_.Log(1);
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].host, nginx_.authority());
}

TEST_F(ReceivedTest, RewriteThatBreaksTheTargetIsAUsageError) {
  // '.*=' empties every path: the command line's mistake, named with the recorded path, and
  // nothing is sent.
  std::string path = WriteCapture({Recorded(1, kBase, 8501, "GET", "/api/v1?x=1")}, "rewrite");
  ReplayOptions o;
  o.inputs = {path};
  o.target = nginx_.url();
  o.path_rewrites = {{".*", ""}};
  ReplayRun r = DoReplay(o);
  ASSERT_FALSE(r.summary.ok());
  EXPECT_EQ(r.summary.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.summary.status().message(),
            "--rewrite-path '.*=': turns the recorded path /api/v1?x=1 into '', not a request "
            "target (RFC 9112 section 3.2)");
  // A rewrite that drops the leading "/" breaks the origin form too.
  o.path_rewrites = {{"^/api/", "api/"}};
  r = DoReplay(o);
  ASSERT_FALSE(r.summary.ok());
  EXPECT_EQ(r.summary.status().message(),
            "--rewrite-path '^/api/=api/': turns the recorded path /api/v1?x=1 into 'api/v1?x=1', "
            "not a request target (RFC 9112 section 3.2)");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(nginx_.ReadLog().empty());
}

TEST(InputTest, TornTailIsANoticeOrAnErrorWhenNothingIsRead) {
  // Two segments: cut inside the second, the first is read and the torn tail is a notice as
  // tapcat prints it; cut inside the first, nothing could be read: an error naming the file.
  std::vector<Exchange> xs = {Recorded(1, kBase, 1), Recorded(2, kBase + kMs, 2)};
  std::string file = tapkit::testing::WriteToString(xs, /*segment_bytes=*/1);
  std::vector<uint64_t> blocks = tapkit::testing::BlockOffsets(file);
  ASSERT_GE(blocks.size(), 2u);
  const uint64_t cut_second = blocks[1] + 20, cut_first = blocks[0] + 20;
  fs::path half = TestDir() / "torn_half.tap", none = TestDir() / "torn_none.tap";
  std::ofstream(half, std::ios::binary) << file.substr(0, cut_second);
  std::ofstream(none, std::ios::binary) << file.substr(0, cut_first);
  const std::string torn = absl::StrCat("torn tail: the data ends inside a block (");
  ReplayOptions o;
  o.inputs = {half.string()};
  std::vector<internal::InputItem> items = ReadAllItems(o, internal::kRoundCacheBytes);
  ASSERT_EQ(items.size(), 4u);  // the exchange, the notice, the round's end, the end
  EXPECT_EQ(items[0].exchange->stream_id, 1u);
  ASSERT_EQ(items[1].kind, internal::InputItem::Kind::kNotice);
  EXPECT_EQ(items[1].notice.substr(0, half.string().size() + 30),
            absl::StrCat(half.string(), ": offset ", blocks[1], ": notice: ", torn).substr(
                0, half.string().size() + 30));
  EXPECT_NE(items[1].notice.find(absl::StrCat("(", cut_second - blocks[1], " bytes ignored)")),
            std::string::npos)
      << items[1].notice;
  EXPECT_EQ(items[2].kind, internal::InputItem::Kind::kRoundEnd);

  o.inputs = {none.string()};
  items = ReadAllItems(o, internal::kRoundCacheBytes);
  ASSERT_FALSE(items.empty());
  ASSERT_EQ(items.back().kind, internal::InputItem::Kind::kError);
  EXPECT_EQ(items.back().error.message().substr(0, none.string().size() + 9 +
                                                       std::to_string(blocks[0]).size()),
            absl::StrCat(none.string(), ": offset ", blocks[0]))
      << items.back().error;
  EXPECT_NE(items.back().error.message().find("(no exchange could be read)"), std::string::npos)
      << items.back().error;
}

// A server on ADDR that accepts `answers` connections, answers one request on each (a 200 "ok\n"
// without keep-alive), then resets every later connection (SO_LINGER 0) once its request came.
class ResettingServer {
 public:
  ResettingServer(const std::string& addr, int answers) {
    Listener l = ListenOn(addr, 16);
    fd_ = l.fd;
    port_ = l.port;
    thread_ = std::thread([this, answers] {
      for (int n = 0;; ++n) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        char buf[4096];
        (void)!recv(c, buf, sizeof buf, 0);  // the request arrived: the connection was made
        if (n < answers) {
          const char kAnswer[] =
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
              "Connection: close\r\n\r\nok\n";
          (void)!send(c, kAnswer, sizeof kAnswer - 1, MSG_NOSIGNAL);
        } else {
          linger l{1, 0};
          setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(c);
      }
    });
  }
  ~ResettingServer() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(ReceivedTest, RedactionMarkersInPathAndBodyAreSentAndCounted) {
  // taprec rewrote a query value and two JSON values into markers; they cannot be undone, so
  // they go out as recorded (nginx logs them) and are counted: 1 in the path, 2 in the body. A
  // string that merely starts like a marker ("...:xyz") is not one.
  const std::string m1 = "tapkit-redacted:0123456789ab", m2 = "tapkit-redacted:ba9876543210";
  Exchange x = Recorded(1, kBase, 8301, "POST", "/q?token=" + m1 + "&n=tapkit-redacted:xyz");
  x.request->headers = {{"Host", "shop.example"}, {"Content-Type", "application/json"}};
  x.request->body.data = "{\"password\":\"" + m2 + "\",\"key\":\"" + m1 + "\"}";
  x.request->body.length = x.request->body.data.size();
  Exchange plain = Recorded(2, kBase + kMs, 8301);
  ReplayOptions o;
  o.inputs = {WriteCapture({x, plain}, "markers")};
  o.target = nginx_.url();
  o.compare = false;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->redacted_values_sent, 3u);
  ASSERT_EQ(r.seen.size(), 2u);
  EXPECT_EQ(r.seen[0].redacted_values_sent, 3u);
  EXPECT_EQ(r.seen[1].redacted_values_sent, 0u);
  std::vector<Logged> log = nginx_.Log(2);
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].request, "POST /q?token=" + m1 + "&n=tapkit-redacted:xyz HTTP/1.1");
  // escape=json writes the body's quotes as \".
  EXPECT_EQ(log[0].body, "{\\\"password\\\":\\\"" + m2 + "\\\",\\\"key\\\":\\\"" + m1 + "\\\"}");
}

TEST_F(ReceivedTest, TheToolWarnsOnceAboutMarkersSent) {
  const std::string m = "tapkit-redacted:0123456789ab";
  std::vector<Exchange> xs = {Recorded(1, kBase, 8351, "GET", "/a?token=" + m),
                              Recorded(2, kBase + kMs, 8351, "GET", "/b?token=" + m),
                              Recorded(3, kBase + 2 * kMs, 8351, "GET", "/c")};
  ReplayToolFlags f;
  f.inputs = {WriteCapture(xs, "warn")};
  f.target = nginx_.url();
  f.max = true;
  f.given = {"max"};
  std::ostringstream out, err;
  EXPECT_EQ(RunReplayTool(f, out, err), 0) << err.str();
  EXPECT_EQ(err.str(),
            "tapreplay: warning: redaction markers (tapkit-redacted:...) in a recorded path or body "
            "are sent as recorded; the target sees the markers, not the original values\n");
}

TEST_F(ReceivedTest, ReplayCaptureKeepsAtMostTheCapOfMismatches) {
  // kMaxKeptMismatches + 1 requests for nginx's 404, on one recorded connection (one lane).
  std::vector<Exchange> xs;
  for (uint64_t i = 0; i <= kMaxKeptMismatches; ++i) {
    xs.push_back(Recorded(i + 1, kBase + i * kMs, 8401, "GET", "/missing"));
  }
  absl::StatusOr<ReplayResult> r = ReplayCapture(WriteCapture(xs, "many"), nginx_.url());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->summary.mismatched, kMaxKeptMismatches + 1);
  EXPECT_EQ(r->mismatches.size(), kMaxKeptMismatches);
  EXPECT_EQ(r->recorded.size(), kMaxKeptMismatches);
  EXPECT_EQ(r->mismatches_not_kept, 1u);
  EXPECT_EQ(r->mismatches.back().recorded->stream_id, kMaxKeptMismatches);  // the first ones kept
}

// ---- live bodies ----

TEST(LiveBodyTest, KeptUpToTheLimitAndCountedPastIt) {
  // The limit: the recorded stored body plus one, at least kLiveBodyFloorBytes.
  Exchange small = Recorded(1, kBase, 1);
  EXPECT_EQ(internal::LiveBodyLimit(small), internal::kLiveBodyFloorBytes);
  Exchange big = Recorded(2, kBase, 1);
  big.response->body.data.assign(300'000, 'x');
  EXPECT_EQ(internal::LiveBodyLimit(big), 300'001u);
  Exchange none = Recorded(3, kBase, 1);
  none.response.reset();
  EXPECT_EQ(internal::LiveBodyLimit(none), internal::kLiveBodyFloorBytes);

  // 4 x 100 000 bytes against the 300 001-byte limit: 300 001 kept, 400 000 counted.
  internal::ResponseReader reader;
  reader.Reset(internal::LiveBodyLimit(big));
  auto zero = [](const void*) -> uint64_t { return 0; };
  reader.HeaderLine("HTTP/1.1 200 OK\r\n", zero, nullptr);
  reader.HeaderLine("\r\n", zero, nullptr);
  const std::string chunk(100'000, 'y');
  for (int i = 0; i < 4; ++i) reader.BodyBytes(chunk);
  EXPECT_EQ(reader.response().body.data.size(), 300'001u);
  EXPECT_EQ(reader.response().body.length, 400'000u);
  EXPECT_TRUE(reader.response().body.truncated);
  // Reset starts the next response with its own limit.
  reader.Reset(10);
  reader.BodyBytes("0123456789");
  EXPECT_EQ(reader.response().body.data, "0123456789");
  EXPECT_FALSE(reader.response().body.truncated);
}

// ---- failures ----

TEST(FailureTest, TargetDownIsAnErrorNamingIt) {
  const std::string addr = "127.0.96.3";
  int port = FreePort(addr);  // nothing listens there
  std::string path = WriteCapture({Recorded(1, kBase, 9001)}, "down");
  ReplayOptions o;
  o.inputs = {path};
  o.target = absl::StrCat("http://", addr, ":", port);
  ReplayRun r = DoReplay(o);
  ASSERT_FALSE(r.summary.ok());
  EXPECT_EQ(r.summary.status().message(),
            absl::StrCat("--target http://", addr, ":", port, ": connection refused"));
  EXPECT_TRUE(r.seen.empty());
}

TEST(FailureTest, SilentServerOnTheFirstRequestIsAnError) {
  // A listening socket that never accepts: the kernel completes the handshake, nothing answers.
  // No answer has come yet, so the target cannot be reached: an error naming --target.
  const std::string addr = "127.0.96.4";
  const Listener listener = ListenOn(addr, 8);
  ASSERT_NE(listener.port, 0);
  const int fd = listener.fd;
  std::string path = WriteCapture({Recorded(1, kBase, 9101), Recorded(2, kBase, 9102)}, "silent");
  ReplayOptions o;
  o.inputs = {path};
  o.target = absl::StrCat("http://", addr, ":", listener.port);
  o.timeout_ns = 300'000'000;
  o.concurrency = 1;
  auto begin = std::chrono::steady_clock::now();
  ReplayRun r = DoReplay(o);
  auto took = std::chrono::steady_clock::now() - begin;
  close(fd);
  ASSERT_FALSE(r.summary.ok());
  EXPECT_EQ(r.summary.status().message(),
            absl::StrCat("--target ", o.target,
                         ": no answer to the first request: none within 300 ms (--timeout)"));
  EXPECT_TRUE(r.seen.empty());
  EXPECT_LT(took, std::chrono::seconds(5));
}

// A keep-alive server on ADDR that answers every request 200 "ok\n" `delay` after it arrived, one
// thread per connection, and logs (connection number, request number on it, request line).
class SlowServer {
 public:
  struct Logged {
    int connection = 0, connection_requests = 0;
    std::string request;
  };
  SlowServer(const std::string& addr, std::chrono::milliseconds delay) : delay_(delay) {
    Listener l = ListenOn(addr, 512);
    fd_ = l.fd;
    port_ = l.port;
    acceptor_ = std::thread([this] {
      for (int n = 1;; ++n) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::lock_guard<std::mutex> lock(mu_);
        conns_.push_back(c);
        threads_.emplace_back([this, c, n] { Serve(c, n); });
      }
    });
  }
  ~SlowServer() {
    shutdown(fd_, SHUT_RDWR);
    acceptor_.join();
    for (int c : conns_) shutdown(c, SHUT_RDWR);
    for (std::thread& t : threads_) t.join();
    for (int c : conns_) close(c);
    close(fd_);
  }
  int port() const { return port_; }
  std::vector<Logged> log() {
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

 private:
  void Serve(int c, int n) {
    std::string in;
    char buf[4096];
    for (int k = 1;; ++k) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        ssize_t got = recv(c, buf, sizeof buf, 0);
        if (got <= 0) return;
        in.append(buf, static_cast<size_t>(got));
      }
      std::string line = in.substr(0, in.find("\r\n"));
      in.erase(0, end + 4);  // GET requests: no body
      std::this_thread::sleep_for(delay_);
      {
        std::lock_guard<std::mutex> lock(mu_);
        log_.push_back({n, k, line});
      }
      const char kAnswer[] =
          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
      if (send(c, kAnswer, sizeof kAnswer - 1, MSG_NOSIGNAL) < 0) return;
    }
  }

  std::chrono::milliseconds delay_;
  int fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> conns_;
  std::vector<std::thread> threads_;
  std::vector<Logged> log_;
};

TEST(LanesTest, PastMaxLanesANewConnectionWaitsForAnIdleLane) {
  // 257 recorded connections at once against a server that answers after 300 ms: the 257th comes
  // while all 256 lanes are busy, and must wait for one to go idle and open a connection of its
  // own (its two requests on it, in order), not ride another recorded connection's connection.
  SlowServer server("127.0.96.9", std::chrono::milliseconds(300));
  std::vector<Exchange> xs;
  for (uint64_t i = 1; i <= 257; ++i) {
    xs.push_back(Recorded(i, kBase + i * kMs, static_cast<uint16_t>(20000 + i), "GET",
                          absl::StrCat("/w/", i)));
  }
  xs.push_back(Recorded(258, kBase + 258 * kMs, 20257, "GET", "/w/257b"));
  std::string path = WriteCapture(xs, "lanes_busy");
  ReplayOptions o;
  o.inputs = {path};
  o.target = absl::StrCat("http://127.0.96.9:", server.port());
  o.compare = false;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 258u);
  EXPECT_EQ(r.summary->errors, 0u);
  std::map<int, std::vector<std::pair<int, std::string>>> by_conn;
  for (const SlowServer::Logged& l : server.log()) {
    by_conn[l.connection].emplace_back(l.connection_requests, l.request);
  }
  EXPECT_EQ(by_conn.size(), 257u);
  for (auto& [conn, requests] : by_conn) {
    if (requests.size() == 1) {
      EXPECT_EQ(requests[0].first, 1) << requests[0].second;
      continue;
    }
    EXPECT_EQ(requests, (std::vector<std::pair<int, std::string>>{
                            {1, "GET /w/257 HTTP/1.1"}, {2, "GET /w/257b HTTP/1.1"}}));
  }
}

TEST(FailureTest, ResetOnTheFirstRequestIsAnError) {
  ResettingServer server("127.0.96.7", /*answers=*/0);
  std::string path = WriteCapture({Recorded(1, kBase, 9111)}, "reset_first");
  ReplayOptions o;
  o.inputs = {path};
  o.target = absl::StrCat("http://127.0.96.7:", server.port());
  ReplayRun r = DoReplay(o);
  ASSERT_FALSE(r.summary.ok());
  EXPECT_EQ(r.summary.status().message(),
            absl::StrCat("--target ", o.target,
                         ": no answer to the first request: connection reset by peer"))
      << r.summary.status();
  EXPECT_TRUE(r.seen.empty());
}

TEST(FailureTest, ResetAfterAnAnswerIsCountedPerExchange) {
  // The first request is answered, the second reset: the service misbehaved, the replay goes on.
  ResettingServer server("127.0.96.8", /*answers=*/1);
  std::string path =
      WriteCapture({Recorded(1, kBase, 9121), Recorded(2, kBase + kMs, 9122)}, "reset_later");
  ReplayOptions o;
  o.inputs = {path};
  o.target = absl::StrCat("http://127.0.96.8:", server.port());
  o.concurrency = 1;
  o.pacing = Pacing::kMax;
  ReplayRun r = DoReplay(o);
  ASSERT_TRUE(r.summary.ok()) << r.summary.status();
  EXPECT_EQ(r.summary->sent, 2u);
  EXPECT_EQ(r.summary->matched, 1u);
  EXPECT_EQ(r.summary->errors, 1u);
  ASSERT_EQ(r.seen.size(), 2u);
  EXPECT_EQ(r.seen[1].live.completion, Completion::kNoResponse);
  EXPECT_FALSE(r.seen[1].error.empty());
}

TEST(FailureTest, TargetThatNeverAcceptsIsAnError) {
  // A listener whose backlog is full drops new SYNs: the connection is never made, so the
  // first request's timeout names the target as unreachable, as a refusal does.
  const std::string addr = "127.0.96.6";
  const Listener listener = ListenOn(addr, 0);
  ASSERT_NE(listener.port, 0);
  const int fd = listener.fd;
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {  // fill the backlog; the ones past it stay half-open
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    connect(c, reinterpret_cast<const sockaddr*>(&listener.address), sizeof listener.address);
    fillers.push_back(c);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::string path = WriteCapture({Recorded(1, kBase, 9151)}, "backlog");
  ReplayOptions o;
  o.inputs = {path};
  o.target = absl::StrCat("http://", addr, ":", listener.port);
  o.timeout_ns = 300'000'000;
  ReplayRun r = DoReplay(o);
  for (int c : fillers) close(c);
  close(fd);
  ASSERT_FALSE(r.summary.ok());
  EXPECT_EQ(r.summary.status().message(),
            absl::StrCat("--target ", o.target, ": connection timed out"));
}

TEST(FailureTest, PipeInputDoesNotHoldUpAnError) {
  // A FIFO (as bash's <(...) gives) whose writer stays open: the target is down, and Replay
  // returns its error at once; it must not wait for the reader thread blocked in read(). The
  // writer holds the pipe open 10 s at most, then records that it had to give up.
  const std::string addr = "127.0.96.3";
  const std::string fifo = (TestDir() / "input.fifo").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string file = tapkit::testing::WriteToString({Recorded(1, kBase, 9301)});
  std::mutex mu;
  std::condition_variable cv;
  bool replay_done = false, writer_gave_up = false;
  std::thread writer([&] {
    int fd = open(fifo.c_str(), O_WRONLY);
    (void)!write(fd, file.data(), file.size());
    std::unique_lock<std::mutex> lock(mu);
    writer_gave_up = !cv.wait_for(lock, std::chrono::seconds(10), [&] { return replay_done; });
    close(fd);
  });
  ReplayOptions o;
  o.inputs = {fifo};
  o.target = absl::StrCat("http://", addr, ":", FreePort(addr));
  absl::StatusOr<ReplaySummary> s = Replay(o, nullptr);
  {
    std::lock_guard<std::mutex> lock(mu);
    replay_done = true;
  }
  cv.notify_all();
  writer.join();
  EXPECT_FALSE(writer_gave_up) << "Replay waited for the pipe's writer to close";
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), absl::StrCat("--target ", o.target, ": connection refused"));
  o.loop = 2;  // a stream is read once
  EXPECT_EQ(Replay(o, nullptr).status().message(),
            absl::StrCat("--loop 2: ", fifo, " is a stream (not a regular file); it is replayed once"));
  EXPECT_TRUE(internal::IsStreamInput(fifo));
  EXPECT_TRUE(internal::IsStreamInput("-"));
  EXPECT_FALSE(internal::IsStreamInput(WriteCapture({Recorded(1, kBase, 9302)}, "regular")));
}

TEST(OptionsTest, BadOptionsNameTheFlag) {
  std::string path = WriteCapture({Recorded(1, kBase, 9201)}, "options");
  auto error = [&](auto edit) {
    ReplayOptions o;
    o.inputs = {path};
    o.target = "http://127.0.96.5:1";
    edit(o);
    absl::StatusOr<ReplaySummary> s = Replay(o, nullptr);
    return s.ok() ? std::string("ok") : std::string(s.status().message());
  };
  EXPECT_EQ(error([](ReplayOptions& o) { o.target = "http://127.0.96.5:1/api"; }),
            "--target http://127.0.96.5:1/api: a path prefix is not allowed (http://HOST:PORT)");
  EXPECT_EQ(error([](ReplayOptions& o) { o.target = "http://127.0.96.5:99999"; }),
            "--target http://127.0.96.5:99999: the port is not a number in 1..65535");
  EXPECT_EQ(error([](ReplayOptions& o) { o.target = "https://127.0.96.5:1"; }).substr(0, 46),
            "--target https://127.0.96.5:1: not an http:// ");
  EXPECT_EQ(error([](ReplayOptions& o) { o.pacing = Pacing::kRate; }),
            "--rate 0: not in 0.001..10000000");
  EXPECT_EQ(error([](ReplayOptions& o) {
              o.pacing = Pacing::kRecorded;
              o.speed = 0;
            }),
            "--speed 0: not in 0.001..1000");
  EXPECT_EQ(error([](ReplayOptions& o) {
              o.pacing = Pacing::kRecorded;
              o.speed = 1e-10;
            }),
            "--speed 1e-10: not in 0.001..1000");
  EXPECT_EQ(error([](ReplayOptions& o) {
              o.pacing = Pacing::kRate;
              o.rate = 1e-12;
            }),
            "--rate 1e-12: not in 0.001..10000000");
  EXPECT_EQ(error([](ReplayOptions& o) { o.concurrency = kMaxLanes + 1; }),
            "--concurrency 257: not in 0..256");
  EXPECT_EQ(error([](ReplayOptions& o) { o.set_headers = {{"Content-Length", "10"}}; }),
            "--set-header 'Content-Length: 10': the replay frames the request itself; "
            "Content-Length cannot be set (RFC 9110 section 7.6.1, RFC 9112 section 6)");
  EXPECT_EQ(error([](ReplayOptions& o) { o.set_headers = {{"Transfer-Encoding", "chunked"}}; })
                .substr(0, 44),
            "--set-header 'Transfer-Encoding: chunked': t");
  EXPECT_EQ(error([](ReplayOptions& o) { o.sample_percent = 0; }),
            "--sample 0: not a percentage in (0, 100]");
  EXPECT_EQ(error([](ReplayOptions& o) {
              o.inputs = {"-"};
              o.loop = 2;
            }),
            "--loop 2: a stream on standard input is replayed once");
  EXPECT_EQ(error([](ReplayOptions& o) {
              o.path_rewrites = {{"(", "x"}};
            }).substr(0, 22),
            "--rewrite-path '(=x': ");
  EXPECT_EQ(
      error([](ReplayOptions& o) { o.inputs = {"/nonexistent/x.tap"}; }).find("/nonexistent/x.tap"),
      0u);
}

}  // namespace
}  // namespace tapkit::replay
