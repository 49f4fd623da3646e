#include "bench/synth.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace tapkit {
namespace {

const char* const kWords[] = {"alpha",  "bravo",  "carbon",  "delta",  "ember",  "falcon", "garnet",
                              "harbor", "indigo", "juniper", "kepler", "lumen",  "maple",  "nectar",
                              "onyx",   "pepper", "quartz",  "raven",  "sierra", "tundra"};
const char* const kAgents[] = {"okhttp/4.12.0", "Go-http-client/1.1", "python-requests/2.31.0",
                               "curl/7.88.1", "Envoy/1.28"};
struct Route {
  const char* method;
  const char* path;
  int weight;
};
// Weighted routes of a small shop backend.
const Route kRoutes[] = {
    {"GET", "/api/v1/users/%d", 34},   {"GET", "/api/v1/products?page=%d", 16},
    {"POST", "/api/v1/orders", 12},    {"PUT", "/api/v1/carts/%d", 8},
    {"DELETE", "/api/v1/carts/%d", 3}, {"GET", "/healthz", 10},
    {"GET", "/api/v1/catalog/%d", 7},  {"GET", "/api/v1/recommendations?user=%d", 10},
};

std::string Hex(std::mt19937_64& rng, int n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s(n, '0');
  for (char& c : s) c = kDigits[rng() % 16];
  return s;
}

std::string Word(std::mt19937_64& rng) { return kWords[rng() % std::size(kWords)]; }

// A JSON document of about `target` bytes: an array of small records.
std::string JsonBody(std::mt19937_64& rng, size_t target) {
  std::string s = "{\"items\":[";
  int n = 0;
  while (s.size() + 80 < target) {
    if (n++) s += ',';
    absl::StrAppendFormat(&s, "{\"id\":%d,\"name\":\"%s %s\",\"price\":%d.%02d,\"stock\":%d}",
                          static_cast<int>(rng() % 100000), Word(rng), Word(rng),
                          static_cast<int>(rng() % 500), static_cast<int>(rng() % 100),
                          static_cast<int>(rng() % 1000));
  }
  absl::StrAppend(&s, "],\"count\":", n, "}");
  return s;
}

}  // namespace

SyntheticTraffic::SyntheticTraffic(uint64_t seed, uint64_t start_ns)
    : rng_(seed), now_ns_(start_ns) {}

Exchange SyntheticTraffic::Next() {
  std::mt19937_64& rng = rng_;
  int total = 0;
  for (const Route& r : kRoutes) total += r.weight;
  int pick = static_cast<int>(rng() % total);
  const Route* route = &kRoutes[0];
  for (const Route& r : kRoutes) {
    if (pick < r.weight) {
      route = &r;
      break;
    }
    pick -= r.weight;
  }
  std::string method = route->method;
  std::string path = route->path;
  if (size_t at = path.find("%d"); at != std::string::npos) {
    path.replace(at, 2, absl::StrCat(rng() % 5000));
  }

  Exchange x;
  // Requests arrive about every 50 µs; completion order lets keys drift by the latency.
  now_ns_ += 20'000 + rng() % 60'000;
  std::lognormal_distribution<double> latency(std::log(900'000.0), 0.9);  // ~0.9 ms median
  uint64_t lat = std::clamp<uint64_t>(static_cast<uint64_t>(latency(rng)), 50'000, 80'000'000);
  x.sort_key_ns = now_ns_ - std::min<uint64_t>(lat, now_ns_);
  x.request_end_ns = 5'000 + rng() % 20'000;
  x.response_start_ns = x.request_end_ns + lat;
  x.response_end_ns = x.response_start_ns + 2'000 + rng() % 100'000;
  x.capture_point = static_cast<uint32_t>(rng() % 3);
  x.stream_id = ++stream_;
  x.source.ip = IpAddress::V4(10, 42, 0, static_cast<uint8_t>(10 + rng() % 20));
  x.source.port = static_cast<uint16_t>(32768 + rng() % 28000);
  x.source.labels =
      Labels{"shop", absl::StrCat("frontend-", Hex(rng, 5)), "deployment", "frontend", ""};
  x.destination.ip = IpAddress::V4(10, 42, 1, static_cast<uint8_t>(20 + x.capture_point));
  x.destination.port = 8080;
  x.destination.labels =
      Labels{"shop", absl::StrCat("backend-", x.capture_point), "deployment", "backend", "backend"};
  x.direction = Direction::kInbound;
  x.tls = TlsState::kNo;

  Request& q = x.request.emplace();
  q.version = HttpVersion::kHttp11;
  q.method = method;
  q.scheme = "http";
  q.authority = "backend.shop.svc.cluster.local:8080";
  q.path = path;
  q.headers = {{"Host", q.authority},
               {"User-Agent", kAgents[rng() % std::size(kAgents)]},
               {"Accept", "application/json"},
               {"X-Request-Id", absl::StrCat(Hex(rng, 8), "-", Hex(rng, 4), "-", Hex(rng, 4), "-",
                                             Hex(rng, 4), "-", Hex(rng, 12))},
               {"traceparent", absl::StrCat("00-", Hex(rng, 32), "-", Hex(rng, 16), "-01")}};
  if (rng() % 4 == 0) q.headers.push_back({"Accept-Encoding", "gzip"});
  if (rng() % 2 == 0) {
    q.headers.push_back({"Authorization", absl::StrCat("tapkit-redacted:", Hex(rng, 12))});
  }
  if (method == "POST" || method == "PUT") {
    q.body.data = JsonBody(rng, 90 + rng() % 250);
    q.body.length = q.body.data.size();
    q.headers.push_back({"Content-Type", "application/json"});
    q.headers.push_back({"Content-Length", absl::StrCat(q.body.data.size())});
  }

  Response& s = x.response.emplace();
  s.version = HttpVersion::kHttp11;
  uint64_t roll = rng() % 100;
  s.status = roll < 3             ? 404
             : roll < 4           ? 500
             : method == "POST"   ? 201
             : method == "DELETE" ? 204
                                  : 200;
  s.reason = s.status == 200   ? "OK"
             : s.status == 201 ? "Created"
             : s.status == 204 ? "No Content"
             : s.status == 404 ? "Not Found"
                               : "Internal Server Error";
  // Response sizes by route, as a shop API returns them: single records a few hundred bytes,
  // list pages and recommendations a few KiB, the catalog up to 16 KiB.
  std::string_view tmpl = route->path;
  auto lognormal = [&rng](double median, double sigma) {
    std::lognormal_distribution<double> d(std::log(median), sigma);
    return std::min<size_t>(static_cast<size_t>(d(rng)), 16 * 1024);
  };
  size_t body = 0;
  if (s.status == 204) {
    body = 0;
  } else if (s.status >= 400) {
    body = 40 + rng() % 80;
  } else if (path == "/healthz") {
    body = 2;
  } else if (tmpl.rfind("/api/v1/catalog", 0) == 0) {
    body = 2048 + rng() % (14 * 1024);
  } else if (tmpl.rfind("/api/v1/products", 0) == 0) {
    body = lognormal(2500, 0.6);
  } else if (tmpl.rfind("/api/v1/recommendations", 0) == 0) {
    body = lognormal(1200, 0.5);
  } else {
    body = lognormal(140, 0.6);
  }
  s.body.data = body == 2 ? "ok" : body ? JsonBody(rng, body) : "";
  s.body.length = s.body.data.size();
  s.headers = {{"Server", "envoy"},
               {"Date", "Sun, 30 Nov 2025 00:00:00 GMT"},
               {"Content-Type", "application/json"},
               {"Content-Length", absl::StrCat(s.body.data.size())},
               {"X-Request-Id", q.headers[3].value},
               {"x-envoy-upstream-service-time", absl::StrCat(lat / 1'000'000)}};
  if (rng() % 3 == 0) s.headers.push_back({"Cache-Control", "no-store"});
  return x;
}

uint64_t WireSize(const Exchange& x) {
  uint64_t n = 0;
  auto headers = [&n](const std::vector<Header>& hs) {
    for (const Header& h : hs) n += h.name.size() + h.value.size() + 4;
    n += 2;
  };
  if (x.request) {
    n += x.request->method.size() + x.request->path.size() + 11;
    headers(x.request->headers);
    n += x.request->body.length;
  }
  if (x.response) {
    n += 13 + x.response->reason.size() + 2;
    headers(x.response->headers);
    n += x.response->body.length;
  }
  return n;
}

}  // namespace tapkit
