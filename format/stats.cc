#include "format/stats.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "format/render.h"

namespace tapkit {

struct StatsTable::Sample {
  std::string ns, workload, method, route, key;
  int status = -1;  // -1: no response
  Direction direction = Direction::kUnknown;
  bool success = false;
  std::optional<uint64_t> latency_ns;
  uint64_t first_ns = 0, last_ns = 0;
};

namespace {

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

// The workload a destination names: kind/name, else pod/name, else ip:port.
std::string WorkloadOf(const Endpoint& d) {
  const Labels& l = d.labels;
  if (!l.workload_kind.empty() && !l.workload_name.empty()) {
    return absl::StrCat(l.workload_kind, "/", l.workload_name);
  }
  if (!l.pod.empty()) return absl::StrCat("pod/", l.pod);
  return d.ToString();
}

// "1.203ms": whole microseconds of `ns` as milliseconds.
std::string Millis(uint64_t ns) {
  uint64_t us = ns / 1000;
  return absl::StrFormat("%d.%03dms", us / 1000, us % 1000);
}

const char* DirectionJson(Direction d) {
  switch (d) {
    case Direction::kInbound:
      return "INBOUND";
    case Direction::kOutbound:
      return "OUTBOUND";
    case Direction::kUnknown:
      break;
  }
  return "UNKNOWN";
}

int DirectionOrder(Direction d) {
  return d == Direction::kInbound ? 0 : d == Direction::kOutbound ? 1 : 2;
}

}  // namespace

bool IsIdSegment(std::string_view s) {
  if (s.empty()) return false;
  if (std::all_of(s.begin(), s.end(), IsDigit)) return true;
  if (IsUuid(s)) return true;
  bool digit = std::any_of(s.begin(), s.end(), IsDigit);
  if (s.size() >= 16 && digit && std::all_of(s.begin(), s.end(), IsHex)) return true;
  if (s.size() >= 20 && digit && std::any_of(s.begin(), s.end(), IsLetter) &&
      std::all_of(s.begin(), s.end(), [](char c) {
        return IsDigit(c) || IsLetter(c) || c == '+' || c == '-' || c == '_' || c == '=';
      })) {
    return true;
  }
  return false;
}

std::string RoutePattern(std::string_view path) {
  path = path.substr(0, path.find_first_of("?#"));
  std::string out;
  out.reserve(path.size());
  size_t i = 0;
  while (true) {
    size_t slash = path.find('/', i);
    std::string_view seg = path.substr(i, slash == std::string_view::npos ? slash : slash - i);
    if (IsIdSegment(seg)) {
      out += "{id}";
    } else {
      out.append(seg);
    }
    if (slash == std::string_view::npos) break;
    out.push_back('/');
    i = slash + 1;
  }
  return out;
}

absl::StatusOr<StatKey> ParseStatKey(std::string_view word) {
  if (word == "authority") return StatKey::kAuthority;
  if (word == "path") return StatKey::kPath;
  if (word == "status") return StatKey::kStatus;
  if (word == "direction") return StatKey::kDirection;
  return absl::InvalidArgumentError(absl::StrCat(
      "--by ", std::string(word), ": unknown key (authority, path, status, direction)"));
}

uint64_t NearestRank(const std::vector<uint64_t>& sorted, double p) {
  // p in hundredths of a percent, so 95 and 99.9 are exact integers.
  unsigned __int128 hundredths = static_cast<unsigned __int128>(std::llround(p * 100));
  unsigned __int128 n = sorted.size();
  unsigned __int128 rank = (hundredths * n + 9999) / 10000;  // ceil(p/100 * n)
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[static_cast<size_t>(rank - 1)];
}

StatsTable::StatsTable(StatKey by) : by_(by) {}

void StatsTable::Add(const ExchangeView& x) {
  Sample s;
  s.ns = x.destination().labels.ns;
  s.workload = WorkloadOf(x.destination());
  if (x.has_request()) {
    RequestView q = x.request();
    s.method = q.method();
    s.route = RoutePattern(q.path());
    if (by_ == StatKey::kAuthority) s.key = q.authority();
  }
  if (x.has_response()) s.status = x.response().status();
  s.direction = x.direction();
  std::optional<int32_t> grpc = x.grpc_status();
  s.success = x.completion() == Completion::kComplete && x.has_response() &&
              x.response().status() < 500 && (!grpc || *grpc == 0);
  if (x.has_request() && x.has_response()) s.latency_ns = x.latency_ns();
  s.first_ns = x.sort_key_ns();
  s.last_ns =
      s.first_ns + std::max({x.request_end_ns(), x.response_start_ns(), x.response_end_ns()});
  AddSample(s);
}

void StatsTable::Add(const Exchange& x) {
  Sample s;
  s.ns = x.destination.labels.ns;
  s.workload = WorkloadOf(x.destination);
  if (x.request) {
    s.method = x.request->method;
    s.route = RoutePattern(x.request->path);
    if (by_ == StatKey::kAuthority) s.key = x.request->authority;
  }
  if (x.response) s.status = x.response->status;
  s.direction = x.direction;
  s.success = x.completion == Completion::kComplete && x.response && x.response->status < 500 &&
              (!x.grpc_status || *x.grpc_status == 0);
  if (x.request && x.response) s.latency_ns = x.latency_ns();
  s.first_ns = x.sort_key_ns;
  s.last_ns = s.first_ns + std::max({x.request_end_ns, x.response_start_ns, x.response_end_ns});
  AddSample(s);
}

void StatsTable::AddSample(const Sample& s) {
  if (exchanges_ == 0) {
    first_ns_ = s.first_ns;
    last_ns_ = s.last_ns;
  } else {
    first_ns_ = std::min(first_ns_, s.first_ns);
    last_ns_ = std::max(last_ns_, s.last_ns);
  }
  ++exchanges_;
  GroupKey key;
  switch (by_) {
    case StatKey::kRoute:
      key = {s.ns, s.workload, s.route, s.method, 0, 0};
      break;
    case StatKey::kAuthority:
      key = {"", "", s.key, "", 0, 0};
      break;
    case StatKey::kPath:
      key = {"", "", s.route, "", 0, 0};
      break;
    case StatKey::kStatus:
      key = {"", "", "", "", s.status, 0};
      break;
    case StatKey::kDirection:
      key = {"", "", "", "", 0, static_cast<int>(s.direction)};
      break;
  }
  auto [it, fresh] = groups_.try_emplace(key);
  Group& g = it->second;
  if (fresh) {
    StatRow& r = g.row;
    switch (by_) {
      case StatKey::kRoute:
        r.ns = s.ns;
        r.workload = s.workload;
        r.method = s.method;
        r.route = s.route;
        break;
      case StatKey::kAuthority:
        r.key = s.key;
        break;
      case StatKey::kPath:
        r.key = s.route;
        break;
      case StatKey::kStatus:
        if (s.status >= 0) r.status = static_cast<uint16_t>(s.status);
        break;
      case StatKey::kDirection:
        r.direction = s.direction;
        break;
    }
  }
  ++g.row.count;
  if (s.success) ++g.row.successes;
  if (s.latency_ns) g.latencies_ns.push_back(*s.latency_ns);
}

std::optional<double> StatsTable::Rate(uint64_t count) const {
  uint64_t span = span_ns();
  if (span == 0) return std::nullopt;
  return static_cast<double>(count) * 1e9 / static_cast<double>(span);
}

std::vector<StatRow> StatsTable::Rows() const {
  std::vector<StatRow> rows;
  rows.reserve(groups_.size());
  for (const auto& [key, g] : groups_) {
    StatRow r = g.row;
    std::vector<uint64_t>& lat = g.latencies_ns;
    std::sort(lat.begin(), lat.end());
    r.latency_count = lat.size();
    if (!lat.empty()) {
      r.p50_ns = NearestRank(lat, 50);
      r.p95_ns = NearestRank(lat, 95);
      r.p99_ns = NearestRank(lat, 99);
    }
    rows.push_back(std::move(r));
  }
  auto by_count = [](const StatRow& a, const StatRow& b, const std::string& ka,
                     const std::string& kb) {
    if (a.count != b.count) return a.count > b.count;
    return ka < kb;
  };
  std::stable_sort(rows.begin(), rows.end(), [&](const StatRow& a, const StatRow& b) {
    switch (by_) {
      case StatKey::kRoute:
        if (a.ns != b.ns) return a.ns < b.ns;
        if (a.workload != b.workload) return a.workload < b.workload;
        if (a.count != b.count) return a.count > b.count;
        if (a.route != b.route) return a.route < b.route;
        return a.method < b.method;
      case StatKey::kAuthority:
      case StatKey::kPath:
        return by_count(a, b, a.key, b.key);
      case StatKey::kStatus:
        // No response (absent) after every code.
        return (a.status ? int{*a.status} : 1 << 20) < (b.status ? int{*b.status} : 1 << 20);
      case StatKey::kDirection:
        return DirectionOrder(a.direction) < DirectionOrder(b.direction);
    }
    return false;
  });
  return rows;
}

std::string StatsTable::FormatText() const {
  std::vector<StatRow> rows = Rows();
  std::vector<std::string> head;
  bool namespaces = false;
  for (const StatRow& r : rows) namespaces |= !r.ns.empty();
  switch (by_) {
    case StatKey::kRoute:
      if (namespaces) head.push_back("NAMESPACE");
      head.insert(head.end(), {"WORKLOAD", "ROUTE"});
      break;
    case StatKey::kAuthority:
      head.push_back("AUTHORITY");
      break;
    case StatKey::kPath:
      head.push_back("PATH");
      break;
    case StatKey::kStatus:
      head.push_back("STATUS");
      break;
    case StatKey::kDirection:
      head.push_back("DIRECTION");
      break;
  }
  const size_t keys = head.size();  // left-aligned key columns; the numbers are right-aligned
  head.insert(head.end(), {"COUNT", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99"});
  std::vector<std::vector<std::string>> cells{head};
  for (const StatRow& r : rows) {
    std::vector<std::string> line;
    switch (by_) {
      case StatKey::kRoute:
        if (namespaces) line.push_back(TextField(r.ns));
        line.push_back(TextField(r.workload));
        line.push_back(r.method.empty() && r.route.empty()
                           ? "-"
                           : absl::StrCat(TextField(r.method), " ", TextField(r.route)));
        break;
      case StatKey::kAuthority:
      case StatKey::kPath:
        line.push_back(TextField(r.key));
        break;
      case StatKey::kStatus:
        line.push_back(r.status ? absl::StrCat(*r.status) : "-");
        break;
      case StatKey::kDirection:
        line.push_back(std::string(DirectionName(r.direction)));
        break;
    }
    std::optional<double> rate = Rate(r.count);
    line.push_back(absl::StrCat(r.count));
    line.push_back(absl::StrFormat(
        "%.2f%%", 100.0 * static_cast<double>(r.successes) / static_cast<double>(r.count)));
    line.push_back(rate ? absl::StrFormat("%.2frps", *rate) : "-");
    for (const std::optional<uint64_t>& p : {r.p50_ns, r.p95_ns, r.p99_ns}) {
      line.push_back(p ? Millis(*p) : "-");
    }
    cells.push_back(std::move(line));
  }
  std::vector<size_t> width(head.size(), 0);
  for (const auto& line : cells) {
    for (size_t i = 0; i < line.size(); ++i) width[i] = std::max(width[i], line[i].size());
  }
  std::string out;
  for (const auto& line : cells) {
    std::string text;
    for (size_t i = 0; i < line.size(); ++i) {
      if (i) text += "   ";
      std::string pad(width[i] - line[i].size(), ' ');
      absl::StrAppend(&text, i < keys ? "" : pad, line[i], i < keys ? pad : "");
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    absl::StrAppend(&out, text, "\n");
  }
  return out;
}

std::string StatsTable::FormatJson() const {
  using nlohmann::json;
  std::string out;
  for (const StatRow& r : Rows()) {
    json o = json::object();
    auto text_or_null = [&o](const char* key, const std::string& s) {
      if (s.empty()) {
        o[key] = nullptr;
      } else {
        PutJsonText(o, key, s);
      }
    };
    switch (by_) {
      case StatKey::kRoute:
        text_or_null("namespace", r.ns);
        PutJsonText(o, "workload", r.workload);
        text_or_null("method", r.method);
        text_or_null("route", r.route);
        break;
      case StatKey::kAuthority:
        text_or_null("authority", r.key);
        break;
      case StatKey::kPath:
        text_or_null("route", r.key);
        break;
      case StatKey::kStatus:
        o["httpStatus"] = r.status ? json(*r.status) : json(nullptr);
        break;
      case StatKey::kDirection:
        o["proxyDirection"] = DirectionJson(r.direction);
        break;
    }
    o["count"] = r.count;
    o["successes"] = r.successes;
    o["successRate"] = static_cast<double>(r.successes) / static_cast<double>(r.count);
    std::optional<double> rate = Rate(r.count);
    o["rps"] = rate ? json(*rate) : json(nullptr);
    o["spanNs"] = span_ns();
    o["latencyCount"] = r.latency_count;
    o["latencyP50Ns"] = r.p50_ns ? json(*r.p50_ns) : json(nullptr);
    o["latencyP95Ns"] = r.p95_ns ? json(*r.p95_ns) : json(nullptr);
    o["latencyP99Ns"] = r.p99_ns ? json(*r.p99_ns) : json(nullptr);
    out += o.dump(-1, ' ', false, json::error_handler_t::replace);
    out.push_back('\n');
  }
  return out;
}

}  // namespace tapkit
