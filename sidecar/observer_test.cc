// The tap sidecar's parts without gRPC: redaction (a known HMAC answer from RFC 4231), the match
// tree, and the Observer over the frames of a capture the project made with curl and nginx.
#include "sidecar/observer.h"

#include <gtest/gtest.h>

#include "format/codec.h"
#include "sidecar/match.h"
#include "sidecar/packet_source.h"
#include "format/redact.h"
#include "sidecar/testutil.h"

namespace tapkit {
namespace {

namespace v1 = tapkit::tap::v1;

// RFC 4231 section 4.2, test case 1: HMAC-SHA256(0x0b * 20, "Hi There") = b0344c61d8db38535c...
TEST(Redact, MarkerIsTheKeyedDigestOfRfc4231) {
  Redactor r({}, std::string(20, '\x0b'));
  EXPECT_EQ(r.Redact("Hi There"), "tapkit-redacted:b0344c61d8db");
}

TEST(Redact, SecretFieldsOnlyCaseInsensitiveEqualValuesEqual) {
  Redactor r({}, "a key of sixteen+ bytes");
  Exchange x;
  x.request.emplace().headers = {{"Authorization", "Bearer abc"},
                                 {"X-Request-Id", "1"},
                                 {"cookie", "s=1"},
                                 {"AUTHORIZATION", "Bearer abc"}};
  x.response.emplace().headers = {{"Set-Cookie", "s=2"}};
  EXPECT_EQ(r.Apply(&x), 4u);
  const auto& h = x.request->headers;
  EXPECT_TRUE(h[0].value.starts_with(kRedactedPrefix));
  EXPECT_EQ(h[1].value, "1");
  EXPECT_EQ(h[0].value, h[3].value) << "equal values stay equal";
  EXPECT_NE(h[0].value, h[2].value);
  EXPECT_EQ(r.Apply(&x), 0u) << "a marker is not redacted again";
  Exchange padded;
  padded.request.emplace().headers = {{"AUTHORIZATION ", "SECRET9"}};  // space before the colon
  EXPECT_EQ(r.Apply(&padded), 1u);
  EXPECT_NE(padded.request->headers[0].value, "SECRET9");
  Redactor other({}, "another key, sixteen bytes+");
  EXPECT_NE(other.Redact("Bearer abc"), r.Redact("Bearer abc")) << "the key matters";
  RedactionRules request_id;
  request_id.headers = {"X-Request-Id"};
  Redactor only(request_id, "a key of sixteen+ bytes");
  Exchange y;
  y.request.emplace().headers = {{"Authorization", "a"}, {"x-request-id", "2"}};
  EXPECT_EQ(only.Apply(&y), 1u);
  EXPECT_EQ(y.request->headers[0].value, "a");
}

Endpoint Ep(const char* ip, uint16_t port) {
  Endpoint e;
  e.ip = *IpAddress::Parse(ip);
  e.port = port;
  return e;
}

TEST(Match, LeavesAndTrees) {
  v1::Match m;
  auto* all = m.mutable_all();
  all->add_matches()->mutable_destination()->add_addresses("127.0.20.1");
  auto* any = all->add_matches()->mutable_any();
  any->add_matches()->mutable_http()->set_method("POST");
  any->add_matches()->mutable_http()->set_path_prefix("/api/");
  all->add_matches()->mutable_not_()->mutable_http()->set_authority("Internal.Example");
  auto c = CompiledMatch::Compile(m);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->needs_request());
  Request get;
  get.method = "GET";
  get.path = "/api/items";
  get.authority = "shop";
  Endpoint src = Ep("127.0.10.1", 4000), dst = Ep("127.0.20.1", 8080);
  EXPECT_TRUE(c->Evaluate(src, dst, &get));
  EXPECT_FALSE(c->Evaluate(src, Ep("127.0.20.2", 8080), &get)) << "other destination";
  get.path = "/index.html";
  EXPECT_FALSE(c->Evaluate(src, dst, &get)) << "neither POST nor /api/";
  get.method = "POST";
  EXPECT_TRUE(c->Evaluate(src, dst, &get));
  get.authority = "internal.example";
  EXPECT_FALSE(c->Evaluate(src, dst, &get)) << "authority compares case-insensitively";
  EXPECT_FALSE(c->Evaluate(src, dst, nullptr)) << "an HTTP leaf needs the request";
  EXPECT_TRUE(CompiledMatch::Compile(v1::Match())->Evaluate(src, dst, nullptr)) << "unset: all";

  v1::Match bad;
  bad.mutable_all()->add_matches();
  bad.mutable_all()->add_matches()->mutable_destination()->add_addresses("10.0.0.300");
  EXPECT_EQ(CompiledMatch::Compile(bad).status().message(),
            "match.all[1].destination.addresses[0]: \"10.0.0.300\" is not an IP address");
  v1::Match empty_http;
  empty_http.mutable_http();
  EXPECT_FALSE(CompiledMatch::Compile(empty_http).ok());
}

// Frames of a capture through an Observer: the three phases in order for each exchange, the
// exchange bytes decode to what the offline engine reads, direction from the pod's address,
// the limit ends the subscription, and a full queue counts drops instead of waiting.
// Everything the subscription hands out until it ends, stats left out (the last one's
// events_dropped in `*dropped`), taken in batches of at most `max_bytes` of exchanges; the
// number of batches in `*batches`.
std::vector<v1::ObserveEvent> Drain(Subscription& sub, size_t max_bytes, uint64_t* dropped,
                                    size_t* batches = nullptr) {
  std::vector<v1::ObserveEvent> out;
  v1::ObserveEvents batch;
  for (bool ended = false; !ended;) {
    if (sub.Next(0, max_bytes, &batch, &ended) && batches) ++*batches;
    for (const v1::ObserveEvent& e : batch.events()) {
      if (e.has_stats()) {
        if (dropped) *dropped = e.stats().events_dropped();
        continue;
      }
      out.push_back(e);
    }
  }
  return out;
}

ObserverOptions PodOptions(const std::string& address, size_t queue = 8192) {
  ObserverOptions o;
  o.capture_point = "demo/web-1";
  o.capture_point_id = 7;
  o.pod_addresses = {address};
  o.queue_events = queue;
  return o;
}

std::vector<v1::ObserveEvent> Observe(const v1::ObserveRequest& req, size_t queue = 8192,
                                      uint64_t* dropped = nullptr) {
  Observer obs(PodOptions("127.0.0.91", queue));
  auto sub = obs.Subscribe(req);
  EXPECT_TRUE(sub.ok());
  auto src = OpenCaptureFile(TAPKIT_SOURCE_DIR "/fixtures/captures/pipelined-3-gets.pcap", "");
  EXPECT_TRUE(src.ok());
  Frame f;
  uint64_t last = 0;
  while ((*src)->Next(&f)) {
    obs.OnFrame(f);
    last = f.ts_ns;
  }
  obs.Finish(last, {});
  return Drain(**sub, 1, dropped);  // 1 byte: one exchange per batch at most
}

// Two connections from 10.0.0.1 to the pod (10.0.0.2:80), hand-built: /first's request is seen
// before /second's, but /second is answered first.
void CrossedExchanges(Observer& obs) {
  struct Conn {
    uint16_t port;
    uint32_t cseq, sseq;
  } a{40001, 1000, 5000}, b{40002, 2000, 6000};
  uint64_t ts = 1'000'000'000'000ull;
  auto client = [&](Conn& c, const std::string& p) {
    testing::Bytes f = testing::Ethernet(
        testing::Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, c.port, 80, c.cseq, c.sseq, 0x18, p));
    obs.OnFrame(Frame{1, ts += 1000, static_cast<uint32_t>(f.size()), f});
    c.cseq += static_cast<uint32_t>(p.size());
  };
  auto server = [&](Conn& c, const std::string& p) {
    testing::Bytes f = testing::Ethernet(
        testing::Ipv4Tcp({10, 0, 0, 2}, {10, 0, 0, 1}, 80, c.port, c.sseq, c.cseq, 0x18, p));
    obs.OnFrame(Frame{1, ts += 1000, static_cast<uint32_t>(f.size()), f});
    c.sseq += static_cast<uint32_t>(p.size());
  };
  client(a, "GET /first HTTP/1.1\r\nHost: web\r\n\r\n");
  client(b, "GET /second HTTP/1.1\r\nHost: web\r\n\r\n");
  server(b, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nb!");
  server(a, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\na!");
  obs.Finish(ts, {});
}

// The sidecar redacts before anything leaves it, as the request asks: query parameters in the
// RequestSeen path as in the exchange, JSON fields by pointer; a bad pointer refuses the
// subscription.
TEST(Observer, RedactsQueryParametersAndJsonFieldsBeforeEventsLeave) {
  v1::ObserveRequest req;
  req.set_phases(true);
  req.mutable_extract()->set_headers(true);
  req.mutable_extract()->set_bodies(true);
  v1::Redaction* red = req.mutable_redaction();
  red->set_enabled(true);
  red->set_key("a key of sixteen+ bytes");
  red->add_json_fields("/token");  // query_params empty: the default list
  Observer obs(PodOptions("10.0.0.2"));
  auto sub = obs.Subscribe(req);
  ASSERT_TRUE(sub.ok()) << sub.status();
  uint64_t ts = 1'000'000'000'000ull;
  uint32_t cseq = 1000, sseq = 5000;
  auto send = [&](bool from_client, const std::string& p) {
    testing::Bytes f = from_client
        ? testing::Ethernet(testing::Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, 40001, 80, cseq, sseq,
                                             0x18, p))
        : testing::Ethernet(testing::Ipv4Tcp({10, 0, 0, 2}, {10, 0, 0, 1}, 80, 40001, sseq, cseq,
                                             0x18, p));
    obs.OnFrame(Frame{1, ts += 1000, static_cast<uint32_t>(f.size()), f});
    (from_client ? cseq : sseq) += static_cast<uint32_t>(p.size());
  };
  const std::string body = R"({"token":"abc","n":1})";
  send(true, "GET /login?token=abc&x=1 HTTP/1.1\r\nHost: web\r\n\r\n");
  send(false, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                  std::to_string(body.size()) + "\r\n\r\n" + body);
  obs.Finish(ts, {});
  Redactor r({}, "a key of sixteen+ bytes");
  const std::string marker = r.Redact("abc");
  std::vector<v1::ObserveEvent> ev = Drain(**sub, 1 << 20, nullptr);
  ASSERT_EQ(ev.size(), 3u);
  ASSERT_TRUE(ev[0].has_request());
  EXPECT_EQ(ev[0].request().path(), "/login?token=" + marker + "&x=1");
  ASSERT_TRUE(ev[2].has_exchange());
  auto x = DecodeExchange(ev[2].exchange().exchange(), ev[2].exchange().bodies());
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_EQ(x->request->path, "/login?token=" + marker + "&x=1");
  EXPECT_EQ(x->response->body.data, R"({"token":")" + marker + R"(","n":1})");

  red->clear_json_fields();
  red->add_json_fields("token");
  auto bad = obs.Subscribe(req);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(),
            "redaction.json_fields: JSON pointer \"token\": must be empty or start with \"/\" "
            "(RFC 6901 section 3)");
}

TEST(Observer, ThreePhasesInOrderWithTheEnginesExchanges) {
  v1::ObserveRequest req;
  req.set_phases(true);
  req.mutable_extract()->set_headers(true);
  req.mutable_extract()->set_bodies(true);
  std::vector<v1::ObserveEvent> ev = Observe(req);
  ASSERT_EQ(ev.size(), 9u);
  const char* paths[] = {"/small.txt", "/items.json", "/missing"};
  int statuses[] = {200, 200, 404};
  int seen_req = 0, seen_rsp = 0, seen_end = 0;
  std::map<uint64_t, int> phase;  // stream id -> last phase seen
  for (const auto& e : ev) {
    if (e.has_request()) {
      EXPECT_EQ(e.request().path(), paths[seen_req++]);
      EXPECT_EQ(e.request().direction(), v1::INBOUND);
      EXPECT_EQ(e.request().id().capture_point(), "demo/web-1");
      EXPECT_EQ(e.request().id().capture_point_id(), 7u);
      EXPECT_EQ(phase[e.request().id().stream_id()]++, 0);
    } else if (e.has_response()) {
      EXPECT_EQ(e.response().status(), static_cast<uint32_t>(statuses[seen_rsp++]));
      EXPECT_EQ(phase[e.response().id().stream_id()]++, 1);
    } else if (e.has_exchange()) {
      EXPECT_EQ(phase[e.exchange().id().stream_id()]++, 2);
      auto x = DecodeExchange(e.exchange().exchange(), e.exchange().bodies());
      ASSERT_TRUE(x.ok()) << x.status();
      EXPECT_EQ(x->request->path, paths[seen_end]);
      EXPECT_EQ(x->response->status, statuses[seen_end]);
      EXPECT_EQ(x->capture_point, 7u);
      EXPECT_EQ(x->direction, Direction::kInbound);
      EXPECT_FALSE(x->response->headers.empty());
      ++seen_end;
    }
  }
  EXPECT_EQ(seen_end, 3);
}

TEST(Observer, MatchLimitExtractAndDrops) {
  v1::ObserveRequest req;
  req.mutable_match()->mutable_http()->set_path_prefix("/i");
  std::vector<v1::ObserveEvent> ev = Observe(req);
  ASSERT_EQ(ev.size(), 1u) << "phases off: exchanges only; only /items.json matches";
  auto x = DecodeExchange(ev[0].exchange().exchange(), ev[0].exchange().bodies());
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->request->path, "/items.json");
  EXPECT_TRUE(x->request->headers.empty()) << "headers were not asked for";
  EXPECT_TRUE(x->response->body.data.empty()) << "bodies were not asked for";
  EXPECT_GT(x->response->body.length, 0u) << "the length is kept";

  v1::ObserveRequest limited;
  limited.set_limit(2);
  EXPECT_EQ(Observe(limited).size(), 2u);

  v1::ObserveRequest all;
  all.set_phases(true);
  uint64_t dropped = 0;
  EXPECT_EQ(Observe(all, /*queue=*/2, &dropped).size(), 2u);
  EXPECT_EQ(dropped, 7u) << "9 events, room for 2: the rest counted, none waited for";
}

// The stats a sidecar sends carry every named drop of its engine, as a map (whatever the names),
// and the kernel's counts as given: the live tap's trailer can then say what taprec -r's says.
// The same frames through a CaptureEngine of its own give the expected map.
TEST(Observer, StatsCarryEveryNamedDropOfTheEngine) {
  ObserverOptions o = PodOptions("10.0.0.2");
  o.engine.max_connections = 1;  // the second connection finds no room: connection_limit
  Observer obs(o);
  auto sub = obs.Subscribe(v1::ObserveRequest());
  ASSERT_TRUE(sub.ok());
  CaptureEngine offline(o.engine, [](Exchange&&) {});
  uint64_t ts = 1'000'000'000'000ull;
  // `cut`: bytes of the frame's end the snaplen did not capture.
  auto both = [&](uint16_t port, uint32_t seq, const std::string& payload, size_t cut) {
    testing::Bytes b = testing::Ethernet(
        testing::Ipv4Tcp({10, 0, 0, 1}, {10, 0, 0, 2}, port, 80, seq, 5000, 0x18, payload));
    Frame f{1, ts += 1000, static_cast<uint32_t>(b.size()),
            std::span<const uint8_t>(b.data(), b.size() - cut)};
    obs.OnFrame(f);
    offline.OnPacket(f.link_type, f.ts_ns, f.data, f.wire_length);
  };
  const std::string first = "POST /first HTTP/1.1\r\nHost: web\r\nContent-Length: 20\r\n\r\n";
  both(40001, 1000, first, 0);
  both(40002, 2000, "GET /second HTTP/1.1\r\nHost: web\r\n\r\n", 0);
  // The first request's body, its last 10 bytes not captured: snaplen_truncated_packets.
  both(40001, 1000 + static_cast<uint32_t>(first.size()), "0123456789abcdefghij", 10);
  KernelStats kernel{100, 5, 2};
  obs.Finish(ts, kernel);
  offline.Finish(ts);

  v1::Stats last;
  v1::ObserveEvents batch;
  for (bool ended = false; !ended;) {
    (*sub)->Next(0, 1 << 20, &batch, &ended);
    for (const v1::ObserveEvent& e : batch.events()) {
      if (e.has_stats()) last = e.stats();
    }
  }
  std::map<std::string, uint64_t> got(last.drops().begin(), last.drops().end());
  EXPECT_EQ(got, offline.Drops());
  EXPECT_EQ(got["connection_limit"], 1u) << "two connections, room for one";
  EXPECT_EQ(got["snaplen_truncated_packets"], 1u);
  EXPECT_EQ(last.kernel_received(), 100u);
  EXPECT_EQ(last.kernel_dropped(), 5u);
  EXPECT_EQ(last.interface_dropped(), 2u);
  EXPECT_EQ(last.capture_point(), "demo/web-1");
}

// The limit gives places in the order requests are seen, as the control plane's --max-requests
// does: with a limit of 1, /first is sent even though /second ended before it, and nothing of
// /second is sent (a live view would otherwise show a `req` with no `end`).
TEST(Observer, LimitCountsInTheOrderRequestsAreSeen) {
  for (bool phases : {true, false}) {
    Observer obs(PodOptions("10.0.0.2"));
    v1::ObserveRequest req;
    req.set_limit(1);
    req.set_phases(phases);
    auto sub = obs.Subscribe(req);
    ASSERT_TRUE(sub.ok());
    CrossedExchanges(obs);
    std::vector<v1::ObserveEvent> ev = Drain(**sub, 1 << 20, nullptr);
    ASSERT_EQ(ev.size(), phases ? 3u : 1u);
    const v1::ObserveEvent& end = ev.back();
    ASSERT_TRUE(end.has_exchange());
    auto x = DecodeExchange(end.exchange().exchange(), end.exchange().bodies());
    ASSERT_TRUE(x.ok()) << x.status();
    EXPECT_EQ(x->request->path, "/first");
    if (phases) {
      EXPECT_EQ(ev[0].request().path(), "/first");
      EXPECT_EQ(ev[1].response().id().stream_id(), ev[0].request().id().stream_id());
      EXPECT_EQ(end.exchange().id().stream_id(), ev[0].request().id().stream_id());
    }
  }
}

// What waits is handed out as one batch, in order, up to the byte bound; an exchange larger than
// the bound still goes, alone.
TEST(Observer, WaitingEventsGoOutAsOneBatch) {
  Observer obs(PodOptions("10.0.0.2"));
  v1::ObserveRequest req;
  req.set_phases(true);
  auto sub = obs.Subscribe(req);
  ASSERT_TRUE(sub.ok());
  CrossedExchanges(obs);
  size_t batches = 0;
  std::vector<v1::ObserveEvent> ev = Drain(**sub, 1 << 20, nullptr, &batches);
  ASSERT_EQ(ev.size(), 6u);
  EXPECT_EQ(batches, 1u);
  EXPECT_EQ(ev[0].request().path(), "/first");
  EXPECT_EQ(ev[1].request().path(), "/second");
  EXPECT_TRUE(ev[2].has_response());
  EXPECT_TRUE(ev[3].has_exchange());

  Observer obs2(PodOptions("10.0.0.2"));
  auto sub2 = obs2.Subscribe(req);
  ASSERT_TRUE(sub2.ok());
  CrossedExchanges(obs2);
  batches = 0;
  EXPECT_EQ(Drain(**sub2, 1, nullptr, &batches).size(), 6u);
  EXPECT_EQ(batches, 2u) << "a batch closes after the first exchange past the bound";
}

// Two subscribers asking for different views of the same exchanges each get their own: one's
// extraction does not reach the other's.
TEST(Observer, EachSubscriberGetsItsOwnExtraction) {
  Observer obs(PodOptions("10.0.0.2"));
  v1::ObserveRequest full, bare;
  full.mutable_extract()->set_headers(true);
  full.mutable_extract()->set_bodies(true);
  auto a = obs.Subscribe(full);
  auto b = obs.Subscribe(bare);
  ASSERT_TRUE(a.ok() && b.ok());
  CrossedExchanges(obs);
  for (auto* sub : {&*a, &*b}) {
    std::vector<v1::ObserveEvent> ev = Drain(**sub, 1 << 20, nullptr);
    ASSERT_EQ(ev.size(), 2u);
    for (const v1::ObserveEvent& e : ev) {
      auto x = DecodeExchange(e.exchange().exchange(), e.exchange().bodies());
      ASSERT_TRUE(x.ok()) << x.status();
      bool want = sub == &*a;
      EXPECT_EQ(x->request->headers.empty(), !want);
      EXPECT_EQ(x->response->body.data, want ? (x->request->path == "/first" ? "a!" : "b!") : "");
      EXPECT_EQ(x->response->body.length, 2u);
    }
  }
}

}  // namespace
}  // namespace tapkit
