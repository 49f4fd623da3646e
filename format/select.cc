#include "format/select.h"

#include <re2/re2.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "controlplane/inventory.h"
#include "format/http_text.h"
#include "format/order.h"

namespace tapkit {
namespace {

// An address form of --to/--from: a network (CIDR; a single IP is a /32 or /128) and a port.
struct AddressRule {
  IpAddress net;
  int prefix = 0;     // bits
  uint16_t port = 0;  // 0 = any
};

// A resource form of --to/--from.
struct ResourceRule {
  TargetRef ref;
  std::string ns;  // empty = any namespace
};

struct EndpointRule {
  std::vector<AddressRule> addresses;
  std::vector<ResourceRule> resources;
  bool empty() const { return addresses.empty() && resources.empty(); }
};

struct HeaderRule {
  bool request = true, response = true;
  std::string name;
  std::shared_ptr<const RE2> value;
};

}  // namespace

struct Selection::Rules {
  SelectionFlags flags;  // as given, for Describe
  EndpointRule to, from;
  std::vector<Direction> directions;
  std::vector<std::string> methods, authorities, paths;
  std::vector<std::shared_ptr<const RE2>> path_regexes;
  std::vector<std::pair<int, int>> statuses;  // inclusive ranges
  std::optional<uint64_t> min_latency, max_latency;
  // --since/--until: absolute (ns since the epoch), or relative to the bound start.
  std::optional<int64_t> since, until;
  bool since_relative = false, until_relative = false;
  uint64_t start_ns = 0;
  std::vector<HeaderRule> headers;
  std::vector<int32_t> grpc_statuses;
  bool incomplete = false;              // --incomplete given
  std::vector<Completion> completions;  // empty with `incomplete`: any but complete
  std::vector<std::string> namespaces;  // -n
  int64_t count = -1;

  bool empty() const {
    return to.empty() && from.empty() && directions.empty() && methods.empty() &&
           authorities.empty() && paths.empty() && path_regexes.empty() && statuses.empty() &&
           !min_latency && !max_latency && !since && !until && headers.empty() &&
           grpc_statuses.empty() && !incomplete && namespaces.empty();
  }
};

namespace {

// Debian 12's Abseil has a string_view of its own: views cross into it here.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }

absl::Status Bad(std::string_view flag, std::string_view value, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(AV(flag), " ", AV(value), ": ", AV(why)));
}

// Every value of a repeatable flag whose values may be comma lists, trimmed, empty ones kept
// (so that "--method ," is refused by the value's check, not ignored).
std::vector<std::string> Values(const std::vector<std::string>& given, bool comma_list) {
  std::vector<std::string> out;
  for (const std::string& g : given) {
    if (!comma_list) {
      out.push_back(g);
      continue;
    }
    for (absl::string_view v : absl::StrSplit(g, ',')) {
      out.emplace_back(absl::StripAsciiWhitespace(v));
    }
  }
  return out;
}

// A duration as every tapkit flag takes it (format/order.h ParseDurationNs): nanoseconds.
std::optional<uint64_t> ParseDuration(std::string_view text) {
  absl::StatusOr<int64_t> ns = ParseDurationNs(text);
  if (!ns.ok()) return std::nullopt;
  return static_cast<uint64_t>(*ns);
}

// A --since/--until bound in nanoseconds since the Unix epoch: `t` itself, or for a relative one
// `start_ns` + `t`, saturating at UINT64_MAX rather than wrapping (durations reach INT64_MAX and a
// hostile file's start may be near 2^64). `t` >= 0: ParseTimeFlag accepts no negative value.
uint64_t BoundNs(uint64_t start_ns, int64_t t, bool relative) {
  uint64_t u = static_cast<uint64_t>(std::max<int64_t>(t, 0));
  if (!relative) return u;
  return u > UINT64_MAX - start_ns ? UINT64_MAX : start_ns + u;
}

constexpr const char* kDurationHelp =
    "not a duration (a number and ns, us, ms, s, m or h: 250ms, 1.5s)";

// RFC 3339 date-time (section 5.6), or "+D" from the capture's start.
absl::Status ParseTimeFlag(std::string_view flag, const std::string& text,
                           std::optional<int64_t>* out, bool* relative) {
  if (text.empty()) return absl::OkStatus();
  if (text[0] == '+') {
    std::optional<uint64_t> d = ParseDuration(std::string_view(text).substr(1));
    if (!d) return Bad(flag, text, kDurationHelp);
    *out = static_cast<int64_t>(*d);
    *relative = true;
    return absl::OkStatus();
  }
  absl::Time t;
  std::string err;
  // RFC 3339 allows 't' and 'z' in lower case (section 5.6, note).
  std::string upper = absl::AsciiStrToUpper(text);
  if (!absl::ParseTime(absl::RFC3339_full, upper, &t, &err)) {
    return Bad(flag, text,
               "not an RFC 3339 time (2026-12-04T10:00:00Z, 2026-12-04T11:00:00.25+01:00) nor "
               "+DURATION from the capture's start");
  }
  int64_t ns = absl::ToUnixNanos(t);
  if (ns < 0) return Bad(flag, text, "before 1970");
  *out = ns;
  *relative = false;
  return absl::OkStatus();
}

absl::Status ParseStatus(const std::string& v, std::vector<std::pair<int, int>>* out) {
  auto code = [](std::string_view s, int* c) {
    return s.size() == 3 &&
           std::all_of(
               s.begin(), s.end(),
               [](char ch) { return absl::ascii_isdigit(static_cast<unsigned char>(ch)); }) &&
           absl::SimpleAtoi(AV(s), c);
  };
  const std::string lower = absl::AsciiStrToLower(v);
  int a = 0, b = 0;
  if (lower.size() == 3 && absl::EndsWith(lower, "xx")) {
    if (lower[0] < '1' || lower[0] > '5') {
      return Bad("--status", v, "unknown status class (1xx..5xx)");
    }
    a = (lower[0] - '0') * 100;
    out->push_back({a, a + 99});
    return absl::OkStatus();
  }
  // RFC 9110 section 15: three digits, 100..599 in use.
  constexpr const char* kForms = "not a status (500), class (5xx) or range (400-499) of 100..599";
  if (size_t dash = v.find('-'); dash != std::string::npos) {
    if (!code(std::string_view(v).substr(0, dash), &a) ||
        !code(std::string_view(v).substr(dash + 1), &b)) {
      return Bad("--status", v, kForms);
    }
    if (a > b) return Bad("--status", v, "the range's start is above its end");
  } else {
    if (!code(v, &a)) return Bad("--status", v, kForms);
    b = a;
  }
  if (a < 100 || b > 599) return Bad("--status", v, kForms);
  out->push_back({a, b});
  return absl::OkStatus();
}

// grpc/include/grpcpp/impl/codegen/status_code_enum.h, as the gRPC status codes document names
// them (doc/statuscodes.md).
constexpr std::string_view kGrpcCodes[] = {
    "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
    "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
    "DATA_LOSS", "UNAUTHENTICATED"};

// The bits of an address from `prefix` on are zero.
bool HostBitsClear(const IpAddress& ip, int prefix) {
  for (size_t i = 0; i < ip.size(); ++i) {
    int first = static_cast<int>(i) * 8;
    uint8_t mask = prefix >= first + 8 ? 0xff
                   : prefix <= first   ? 0
                                       : uint8_t(0xff << (8 - (prefix - first)));
    if (ip.bytes[i] & ~mask) return false;
  }
  return true;
}

bool InNetwork(const IpAddress& ip, const AddressRule& r) {
  if (ip.family != r.net.family) return false;
  for (size_t i = 0; i < ip.size(); ++i) {
    int first = static_cast<int>(i) * 8;
    if (r.prefix <= first) break;
    uint8_t mask = r.prefix >= first + 8 ? 0xff : uint8_t(0xff << (8 - (r.prefix - first)));
    if ((ip.bytes[i] & mask) != (r.net.bytes[i] & mask)) return false;
  }
  return true;
}

// --to/--from VALUE: a resource (TYPE/NAME, TYPE) or an address form.
absl::Status ParseEndpoint(std::string_view flag, const std::string& v, const std::string& ns,
                           EndpointRule* out) {
  constexpr const char* kForms =
      "neither a resource (TYPE/NAME: deploy/web, svc/api, po/x, ...) nor an address (IP, "
      "CIDR, IP:PORT, [IPv6]:PORT)";
  if (v.empty()) return Bad(flag, "\"\"", kForms);
  std::string host = v;
  uint16_t port = 0;
  // [IPv6]:PORT, or IPv4:PORT (one colon).
  auto split_port = [&](size_t colon) -> bool {
    int p = 0;
    std::string_view digits = std::string_view(v).substr(colon + 1);
    if (digits.empty() || digits.size() > 5 ||
        !std::all_of(digits.begin(), digits.end(),
                     [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) ||
        !absl::SimpleAtoi(AV(digits), &p) || p < 1 || p > 65535) {
      return false;
    }
    port = static_cast<uint16_t>(p);
    return true;
  };
  if (v[0] == '[') {
    size_t close = v.find(']');
    if (close == std::string::npos || close + 1 >= v.size() || v[close + 1] != ':' ||
        !split_port(close + 1)) {
      return Bad(flag, v, "not [IPv6]:PORT (port 1..65535)");
    }
    host = v.substr(1, close - 1);
    std::optional<IpAddress> ip = IpAddress::Parse(host);
    if (!ip || ip->family != 6) return Bad(flag, v, "not [IPv6]:PORT");
    out->addresses.push_back({*ip, 128, port});
    return absl::OkStatus();
  }
  if (std::count(v.begin(), v.end(), ':') == 1 && v.find('/') == std::string::npos) {
    size_t colon = v.find(':');
    std::optional<IpAddress> ip = IpAddress::Parse(v.substr(0, colon));
    if (!ip || ip->family != 4) return Bad(flag, v, kForms);
    if (!split_port(colon)) return Bad(flag, v, "the port is not 1..65535");
    out->addresses.push_back({*ip, 32, port});
    return absl::OkStatus();
  }
  if (std::optional<IpAddress> ip = IpAddress::Parse(v)) {
    out->addresses.push_back({*ip, ip->family == 4 ? 32 : 128, 0});
    return absl::OkStatus();
  }
  if (size_t slash = v.find('/'); slash != std::string::npos) {
    if (std::optional<IpAddress> ip = IpAddress::Parse(v.substr(0, slash))) {
      int bits = -1;
      std::string_view b = std::string_view(v).substr(slash + 1);
      int max = ip->family == 4 ? 32 : 128;
      if (b.empty() || b.size() > 3 ||
          !std::all_of(b.begin(), b.end(),
                       [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }) ||
          !absl::SimpleAtoi(AV(b), &bits) || bits > max) {
        return Bad(flag, v, absl::StrCat("the prefix length is not 0..", max));
      }
      if (!HostBitsClear(*ip, bits)) {
        return Bad(flag, v, "the address has host bits set past the prefix length");
      }
      out->addresses.push_back({*ip, bits, 0});
      return absl::OkStatus();
    }
  }
  absl::StatusOr<TargetRef> ref = ParseTarget(v);
  if (!ref.ok()) {
    // "deploy/x/y", "foo/bar": say what ParseTarget found when it looked like a resource.
    return Bad(flag, v, v.find('/') != std::string::npos ? SV(ref.status().message()) : kForms);
  }
  out->resources.push_back({*ref, ns});
  return absl::OkStatus();
}

bool LabelsMatch(const Labels& l, const ResourceRule& r) {
  if (r.ref.type == ResourceType::kNamespace)
    return r.ref.name.empty() ? !l.ns.empty() : l.ns == r.ref.name;
  if (!r.ns.empty() && l.ns != r.ns) return false;
  switch (r.ref.type) {
    case ResourceType::kPod:
      return r.ref.name.empty() ? !l.pod.empty() : l.pod == r.ref.name;
    case ResourceType::kService:
      return r.ref.name.empty() ? !l.service.empty() : l.service == r.ref.name;
    default:
      // The label names the top of the pod's chain of owners (Inventory::LabelsFor).
      return l.workload_kind == ResourceTypeName(r.ref.type) &&
             (r.ref.name.empty() || l.workload_name == r.ref.name);
  }
}

bool EndpointMatches(const Endpoint& e, const EndpointRule& r) {
  for (const AddressRule& a : r.addresses) {
    if (InNetwork(e.ip, a) && (a.port == 0 || a.port == e.port)) return true;
  }
  for (const ResourceRule& res : r.resources) {
    if (LabelsMatch(e.labels, res)) return true;
  }
  return false;
}

// RFC 3986 section 6.2.2.1: the host is compared without case; the rest as written.
bool AuthorityEquals(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(AV(a), AV(b));
}

// What the predicate reads of an exchange, over the stored view or the owned form.
struct ViewAccess {
  const ExchangeView& x;
  uint64_t sort_key_ns() const { return x.sort_key_ns(); }
  bool has_request() const { return x.has_request(); }
  bool has_response() const { return x.has_response(); }
  std::string_view method() const { return x.request().method(); }
  std::string_view authority() const { return x.request().authority(); }
  std::string_view path() const { return x.request().path(); }
  uint16_t status() const { return x.response().status(); }
  uint64_t latency_ns() const { return x.latency_ns(); }
  Direction direction() const { return x.direction(); }
  Completion completion() const { return x.completion(); }
  std::optional<int32_t> grpc_status() const { return x.grpc_status(); }
  Endpoint source() const { return x.source(); }
  Endpoint destination() const { return x.destination(); }
  template <typename F>
  bool AnyRequestHeader(F f) const {
    for (const HeaderListView::Field& h : x.request().headers()) {
      if (f(h.name, h.value)) return true;
    }
    return false;
  }
  template <typename F>
  bool AnyResponseHeader(F f) const {
    for (const HeaderListView::Field& h : x.response().headers()) {
      if (f(h.name, h.value)) return true;
    }
    return false;
  }
};

struct OwnedAccess {
  const Exchange& x;
  uint64_t sort_key_ns() const { return x.sort_key_ns; }
  bool has_request() const { return x.request.has_value(); }
  bool has_response() const { return x.response.has_value(); }
  std::string_view method() const { return x.request->method; }
  std::string_view authority() const { return x.request->authority; }
  std::string_view path() const { return x.request->path; }
  uint16_t status() const { return x.response->status; }
  uint64_t latency_ns() const { return x.latency_ns(); }
  Direction direction() const { return x.direction; }
  Completion completion() const { return x.completion; }
  std::optional<int32_t> grpc_status() const { return x.grpc_status; }
  const Endpoint& source() const { return x.source; }
  const Endpoint& destination() const { return x.destination; }
  template <typename F>
  bool AnyRequestHeader(F f) const {
    for (const Header& h : x.request->headers) {
      if (f(h.name, h.value)) return true;
    }
    return false;
  }
  template <typename F>
  bool AnyResponseHeader(F f) const {
    for (const Header& h : x.response->headers) {
      if (f(h.name, h.value)) return true;
    }
    return false;
  }
};

template <typename T>
bool Contains(const std::vector<T>& v, const T& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

void AddSelectionOptions(boost::program_options::options_description* opts, SelectionFlags* f,
                         bool with_namespace) {
  namespace po = boost::program_options;
  using Strings = std::vector<std::string>;
  auto add = opts->add_options();
  add("to", po::value<Strings>(&f->to),
      "exchanges to R: TYPE/NAME (deploy/web, svc/api, po/x; endpoint labels), IP, CIDR, "
      "IP:PORT or [IPv6]:PORT; repeat or comma-list to OR")(
      "to-namespace", po::value(&f->to_namespace), "namespace of --to's TYPE/NAME (default -n)")(
      "from", po::value<Strings>(&f->from), "exchanges from R (as --to)")(
      "from-namespace", po::value(&f->from_namespace),
      "namespace of --from's TYPE/NAME (default -n)")(
      "direction", po::value<Strings>(&f->direction), "in or out (seen from the tapped pod)")(
      "method", po::value<Strings>(&f->method), "request method, case-sensitive: GET,POST")(
      "authority", po::value<Strings>(&f->authority),
      "request authority, exact (host without case): api.example:8080")(
      "path", po::value<Strings>(&f->path), "path (with query) starting with P")(
      "path-regex", po::value<Strings>(&f->path_regex),
      "path (with query) partly matching this RE2 regex, as grep")(
      "status", po::value<Strings>(&f->status), "response status: 500, 5xx, 400-499, lists")(
      "min-latency", po::value(&f->min_latency),
      "latency (request start to response start) at least D: 250ms, 1.5s, 2m, 800us")(
      "max-latency", po::value(&f->max_latency), "latency at most D")(
      "since", po::value(&f->since),
      "requests starting at or after T: RFC 3339 (2026-12-04T10:00:00Z) or +D from the "
      "capture's start (+30s)")("until", po::value(&f->until),
                                "requests starting before T (as --since)")(
      "header", po::value<Strings>(&f->header),
      "'NAME: REGEX' on a request or response field; 'req:NAME: RE' or 'rsp:NAME: RE' picks one")(
      "grpc-status", po::value<Strings>(&f->grpc_status), "gRPC status: 0..16 or UNAVAILABLE, ...")(
      "incomplete", po::value<Strings>(&f->incomplete)->value_name("[=LIST]"),
      "exchanges that did not complete; --incomplete=gap,reset,... picks those completions")(
      "count,c", po::value(&f->count)->notifier([f](int64_t) { f->count_given = true; }),
      "stop after N selected exchanges");
  if (with_namespace) {
    add("namespace,n", po::value<Strings>(&f->ns), "exchanges with an endpoint in namespace NS");
  }
}

std::pair<std::string, std::string> SelectionExtraParser(const std::string& token) {
  if (token == "--incomplete") return {"incomplete", "any"};
  return {"", ""};
}

bool EndpointsLabelled(const CaptureMetadata& m) {
  if (!m.target.empty()) return true;
  for (const auto& [k, v] : m.filters) {
    if (k == "inventory" && !v.empty()) return true;
  }
  for (const CapturePointInfo& cp : m.capture_points) {
    if (!cp.labels.empty()) return true;
  }
  for (const auto& [k, v] : m.extra) {
    if (k == "endpoint-labels" && v == "yes") return true;
  }
  return false;
}

SelectionInput SelectionInputOf(std::string name, const CaptureMetadata& m,
                                const std::optional<FileSummary>& summary) {
  SelectionInput in;
  in.name = std::move(name);
  in.start_ns = summary && summary->exchanges ? summary->min_sort_key : m.start_time_ns;
  in.labelled = EndpointsLabelled(m);
  return in;
}

Selection::Selection() : rules_(std::make_unique<Rules>()) {}
Selection::~Selection() = default;
Selection::Selection(const Selection& o) : rules_(std::make_unique<Rules>(*o.rules_)) {}
Selection& Selection::operator=(const Selection& o) {
  rules_ = std::make_unique<Rules>(*o.rules_);
  return *this;
}
// A moved-from Selection selects everything, as a new one (never a null rules_).
Selection::Selection(Selection&& o) : rules_(std::exchange(o.rules_, std::make_unique<Rules>())) {}
Selection& Selection::operator=(Selection&& o) {
  rules_ = std::exchange(o.rules_, std::make_unique<Rules>());
  return *this;
}

absl::StatusOr<Selection> Selection::Parse(const SelectionFlags& f) {
  Selection s;
  Rules& r = *s.rules_;
  r.flags = f;
  for (const std::string& n : Values(f.ns, true)) {
    if (n.empty()) return Bad("-n", "\"\"", "give a namespace");
    r.namespaces.push_back(n);
  }
  // --to deploy/x's namespace: --to-namespace, else -n when it names one, else any.
  auto resource_ns = [&](const std::string& given) {
    return !given.empty() ? given : r.namespaces.size() == 1 ? r.namespaces[0] : std::string();
  };
  if (!f.to_namespace.empty() && f.to.empty()) {
    return Bad("--to-namespace", f.to_namespace, "goes with --to TYPE/NAME");
  }
  if (!f.from_namespace.empty() && f.from.empty()) {
    return Bad("--from-namespace", f.from_namespace, "goes with --from TYPE/NAME");
  }
  for (const std::string& v : Values(f.to, true)) {
    if (absl::Status st = ParseEndpoint("--to", v, resource_ns(f.to_namespace), &r.to); !st.ok())
      return st;
  }
  for (const std::string& v : Values(f.from, true)) {
    if (absl::Status st = ParseEndpoint("--from", v, resource_ns(f.from_namespace), &r.from);
        !st.ok())
      return st;
  }
  for (const std::string& v : Values(f.direction, true)) {
    if (v == "in" || v == "inbound") {
      r.directions.push_back(Direction::kInbound);
    } else if (v == "out" || v == "outbound") {
      r.directions.push_back(Direction::kOutbound);
    } else {
      return Bad("--direction", v, "not in or out");
    }
  }
  for (const std::string& v : Values(f.method, true)) {
    if (!IsToken(v))
      return Bad("--method", v.empty() ? "\"\"" : v, "not a method token (RFC 9110 section 9.1)");
    r.methods.push_back(v);
  }
  for (const std::string& v : Values(f.authority, true)) {
    if (v.empty()) return Bad("--authority", "\"\"", "give HOST or HOST:PORT");
    r.authorities.push_back(v);
  }
  for (const std::string& v : f.path) {
    if (v.empty()) return Bad("--path", "\"\"", "give a prefix, e.g. /api");
    r.paths.push_back(v);
  }
  auto compile = [](std::string_view flag, const std::string& text,
                    std::string_view pattern) -> absl::StatusOr<std::shared_ptr<const RE2>> {
    RE2::Options o;
    o.set_log_errors(false);
    auto re = std::make_shared<const RE2>(pattern, o);
    if (!re->ok()) return Bad(flag, text, absl::StrCat("invalid regex: ", re->error()));
    return re;
  };
  for (const std::string& v : f.path_regex) {
    absl::StatusOr<std::shared_ptr<const RE2>> re = compile("--path-regex", v, v);
    if (!re.ok()) return re.status();
    r.path_regexes.push_back(*std::move(re));
  }
  for (const std::string& v : Values(f.status, true)) {
    if (absl::Status st = ParseStatus(v, &r.statuses); !st.ok()) return st;
  }
  if (!f.min_latency.empty() || !f.max_latency.empty()) {
    for (auto [flag, text, out] : {std::tuple{"--min-latency", &f.min_latency, &r.min_latency},
                                   std::tuple{"--max-latency", &f.max_latency, &r.max_latency}}) {
      if (text->empty()) continue;
      std::optional<uint64_t> d = ParseDuration(*text);
      if (!d) return Bad(flag, *text, kDurationHelp);
      *out = d;
    }
    if (r.min_latency && r.max_latency && *r.min_latency > *r.max_latency) {
      return Bad("--min-latency", f.min_latency,
                 absl::StrCat("above --max-latency ", f.max_latency));
    }
  }
  if (absl::Status st = ParseTimeFlag("--since", f.since, &r.since, &r.since_relative); !st.ok())
    return st;
  if (absl::Status st = ParseTimeFlag("--until", f.until, &r.until, &r.until_relative); !st.ok())
    return st;
  if (r.since && r.until && r.since_relative == r.until_relative && *r.since > *r.until) {
    return Bad("--since", f.since, absl::StrCat("after --until ", f.until));
  }
  for (const std::string& v : f.header) {
    HeaderRule h;
    std::string_view rest = v;
    // 'req:NAME: RE' / 'rsp:NAME: RE'; 'req: RE' is a field named req.
    if ((rest.substr(0, 4) == "req:" || rest.substr(0, 4) == "rsp:") && rest.size() > 4 &&
        rest[4] != ' ' && rest[4] != '\t') {
      h.response = rest[1] == 's';
      h.request = !h.response;
      rest.remove_prefix(4);
    }
    size_t colon = rest.find(':');
    if (colon == std::string_view::npos || !IsToken(rest.substr(0, colon))) {
      return Bad("--header", v,
                 "not 'NAME: REGEX' (NAME a field name; req: or rsp: first to pick a side)");
    }
    h.name = std::string(rest.substr(0, colon));
    std::string_view pattern = SV(absl::StripLeadingAsciiWhitespace(AV(rest.substr(colon + 1))));
    absl::StatusOr<std::shared_ptr<const RE2>> re = compile("--header", v, pattern);
    if (!re.ok()) return re.status();
    h.value = *std::move(re);
    r.headers.push_back(std::move(h));
  }
  for (const std::string& v : Values(f.grpc_status, true)) {
    int code = -1;
    if (!v.empty() && std::all_of(v.begin(), v.end(), [](char c) {
          return absl::ascii_isdigit(static_cast<unsigned char>(c));
        })) {
      if (v.size() > 2 || !absl::SimpleAtoi(v, &code) || code > 16) code = -1;
    } else {
      for (int i = 0; i <= 16; ++i) {
        if (absl::EqualsIgnoreCase(v, AV(kGrpcCodes[i]))) code = i;
      }
    }
    if (code < 0)
      return Bad("--grpc-status", v.empty() ? "\"\"" : v,
                 "not a gRPC status code (0..16, OK, CANCELLED, ..., UNAVAILABLE, ...)");
    r.grpc_statuses.push_back(code);
  }
  if (!f.incomplete.empty()) {
    r.incomplete = true;
    bool any = false;
    for (const std::string& given : f.incomplete) {
      for (const std::string& v : Values({given}, true)) {
        if (v == "any") {
          any = true;
          continue;
        }
        std::optional<Completion> found;
        std::string names;
        for (int i = 0; i <= static_cast<int>(Completion::kAmbiguousPairing); ++i) {
          auto c = static_cast<Completion>(i);
          if (c == Completion::kComplete) continue;
          absl::StrAppend(&names, names.empty() ? "" : ", ", AV(CompletionName(c)));
          if (v == CompletionName(c)) found = c;
        }
        if (!found) {
          return Bad("--incomplete", v.empty() ? "\"\"" : v,
                     absl::StrCat("not a way an exchange ends incomplete (any, ", names, ")"));
        }
        r.completions.push_back(*found);
      }
    }
    if (any) r.completions.clear();
  }
  if (f.count < -1 || (f.count_given && f.count < 0))
    return Bad("-c", std::to_string(f.count), "must be 0 or more");
  r.count = f.count;
  return s;
}

bool Selection::empty() const { return rules_->empty(); }
int64_t Selection::count() const { return rules_->count; }

bool Selection::needs_inputs() const {
  const Rules& r = *rules_;
  return r.since_relative || r.until_relative || !r.to.resources.empty() ||
         !r.from.resources.empty() || !r.namespaces.empty();
}

absl::Status Selection::Bind(const std::vector<SelectionInput>& inputs) {
  Rules& r = *rules_;
  uint64_t start = UINT64_MAX;
  for (const SelectionInput& in : inputs) start = std::min(start, in.start_ns);
  r.start_ns = inputs.empty() ? 0 : start;
  if (r.since && r.until && r.since_relative != r.until_relative) {
    if (BoundNs(r.start_ns, *r.since, r.since_relative) >
        BoundNs(r.start_ns, *r.until, r.until_relative)) {
      return Bad("--since", r.flags.since, absl::StrCat("after --until ", r.flags.until));
    }
  }
  for (const SelectionInput& in : inputs) {
    if (in.labelled) continue;
    auto refuse = [&](std::string_view flag, const std::string& value) {
      return absl::FailedPreconditionError(absl::StrCat(
          AV(flag), " ", value, ": ", in.name,
          " has no endpoint labels (recorded without --inventory): select by address instead"));
    };
    for (const auto& [flag, given, rule] :
         {std::tuple{"--to", &r.flags.to, &r.to}, std::tuple{"--from", &r.flags.from, &r.from}}) {
      if (!rule->resources.empty()) {
        for (const std::string& v : Values(*given, true)) {
          EndpointRule probe;
          if (ParseEndpoint(flag, v, "", &probe).ok() && !probe.resources.empty()) {
            return refuse(flag, v);
          }
        }
      }
    }
    if (!r.namespaces.empty()) return refuse("-n", r.namespaces[0]);
  }
  return absl::OkStatus();
}

absl::Status Selection::Bind(const std::vector<const Reader*>& readers) {
  std::vector<SelectionInput> inputs;
  for (const Reader* r : readers) {
    if (r) inputs.push_back(SelectionInputOf(r->name(), r->metadata(), r->summary()));
  }
  return Bind(inputs);
}

template <typename Access>
bool Selection::MatchesImpl(const Access& a) const {
  const Rules& r = *rules_;
  // Cheapest first: fixed fields, then strings, then regexes and endpoints.
  if (r.since || r.until) {
    uint64_t key = a.sort_key_ns();
    if (r.since && key < BoundNs(r.start_ns, *r.since, r.since_relative)) return false;
    if (r.until && key >= BoundNs(r.start_ns, *r.until, r.until_relative)) return false;
  }
  if (!r.statuses.empty()) {
    if (!a.has_response()) return false;
    int s = a.status();
    if (std::none_of(r.statuses.begin(), r.statuses.end(),
                     [s](const std::pair<int, int>& p) { return s >= p.first && s <= p.second; })) {
      return false;
    }
  }
  if (r.min_latency || r.max_latency) {
    if (!a.has_request() || !a.has_response()) return false;
    uint64_t l = a.latency_ns();
    if (r.min_latency && l < *r.min_latency) return false;
    if (r.max_latency && l > *r.max_latency) return false;
  }
  if (!r.directions.empty() && !Contains(r.directions, a.direction())) return false;
  if (r.incomplete) {
    Completion c = a.completion();
    if (r.completions.empty() ? c == Completion::kComplete : !Contains(r.completions, c)) {
      return false;
    }
  }
  if (!r.grpc_statuses.empty()) {
    std::optional<int32_t> g = a.grpc_status();
    if (!g || !Contains(r.grpc_statuses, *g)) return false;
  }
  if (!r.methods.empty() || !r.authorities.empty() || !r.paths.empty() || !r.path_regexes.empty()) {
    if (!a.has_request()) return false;
    if (!r.methods.empty() &&
        std::none_of(r.methods.begin(), r.methods.end(),
                     [m = a.method()](const std::string& x) { return x == m; })) {
      return false;
    }
    if (!r.authorities.empty() && std::none_of(r.authorities.begin(), r.authorities.end(),
                                               [au = a.authority()](const std::string& x) {
                                                 return AuthorityEquals(x, au);
                                               })) {
      return false;
    }
    std::string_view path = a.path();
    if (!r.paths.empty() &&
        std::none_of(r.paths.begin(), r.paths.end(),
                     [path](const std::string& p) { return path.substr(0, p.size()) == p; })) {
      return false;
    }
    if (!r.path_regexes.empty() &&
        std::none_of(r.path_regexes.begin(), r.path_regexes.end(),
                     [path](const std::shared_ptr<const RE2>& re) {
                       return RE2::PartialMatch(re2::StringPiece(path.data(), path.size()), *re);
                     })) {
      return false;
    }
  }
  if (!r.headers.empty()) {
    bool any = false;
    for (const HeaderRule& h : r.headers) {
      auto field = [&h](std::string_view name, std::string_view value) {
        return absl::EqualsIgnoreCase(AV(name), h.name) &&
               RE2::PartialMatch(re2::StringPiece(value.data(), value.size()), *h.value);
      };
      if ((h.request && a.has_request() && a.AnyRequestHeader(field)) ||
          (h.response && a.has_response() && a.AnyResponseHeader(field))) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  if (!r.to.empty() && !EndpointMatches(a.destination(), r.to)) return false;
  if (!r.from.empty() && !EndpointMatches(a.source(), r.from)) return false;
  if (!r.namespaces.empty()) {
    const Endpoint& src = a.source();
    const Endpoint& dst = a.destination();
    if (!Contains(r.namespaces, src.labels.ns) && !Contains(r.namespaces, dst.labels.ns)) {
      return false;
    }
  }
  return true;
}

bool Selection::Matches(const ExchangeView& x) const {
  return rules_->empty() || MatchesImpl(ViewAccess{x});
}
bool Selection::Matches(const Exchange& x) const {
  return rules_->empty() || MatchesImpl(OwnedAccess{x});
}

TapPushdown Selection::ForTap() const {
  const Rules& r = *rules_;
  TapPushdown p;
  SelectionFlags rest = r.flags;
  rest.count = -1;
  rest.count_given = false;
  // One value, which the sidecars' match tree takes as it is: moved from `rest` to the request.
  auto push = [](std::vector<std::string>* given, bool pushable, std::string* out) {
    std::vector<std::string> values = Values(*given, true);
    if (values.size() == 1 && pushable) {
      *out = values[0];
      given->clear();
    }
  };
  push(&rest.to, r.to.addresses.empty() && r.to.resources.size() == 1 && r.namespaces.empty(),
       &p.to);
  if (!p.to.empty()) p.to_namespace = std::exchange(rest.to_namespace, "");
  push(&rest.from, r.from.addresses.empty() && r.from.resources.size() == 1 && r.namespaces.empty(),
       &p.from);
  if (!p.from.empty()) p.from_namespace = std::exchange(rest.from_namespace, "");
  push(&rest.method, true, &p.method);
  push(&rest.authority, true, &p.authority);
  if (rest.path.size() == 1) p.path = std::exchange(rest.path, {})[0];
  // Every value was checked by Parse already; a subset of them parses the same.
  absl::StatusOr<Selection> parsed = Parse(rest);
  if (parsed.ok()) p.rest = *std::move(parsed);
  return p;
}

std::vector<std::pair<std::string, std::string>> Selection::Describe() const {
  const SelectionFlags& f = rules_->flags;
  std::vector<std::pair<std::string, std::string>> out;
  auto each = [&out](const char* name, const std::vector<std::string>& values) {
    for (const std::string& v : values) out.emplace_back(name, v);
  };
  auto one = [&out](const char* name, const std::string& v) {
    if (!v.empty()) out.emplace_back(name, v);
  };
  each("namespace", f.ns);
  each("to", f.to);
  one("to-namespace", f.to_namespace);
  each("from", f.from);
  one("from-namespace", f.from_namespace);
  each("direction", f.direction);
  each("method", f.method);
  each("authority", f.authority);
  each("path", f.path);
  each("path-regex", f.path_regex);
  each("status", f.status);
  one("min-latency", f.min_latency);
  one("max-latency", f.max_latency);
  one("since", f.since);
  one("until", f.until);
  each("header", f.header);
  each("grpc-status", f.grpc_status);
  each("incomplete", f.incomplete);
  return out;
}

}  // namespace tapkit
