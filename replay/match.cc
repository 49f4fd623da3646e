// match.cc: the request key, the index and the sequences of match.h.
#include "replay/match.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <nlohmann/json.hpp>
#include <tuple>

#include "format/content_coding.h"
#include "format/http_text.h"
#include "format/redact.h"

namespace tapkit {
namespace {

char Lower(char c) { return AsciiLower(c); }
char Upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }

bool Unreserved(unsigned char c) {  // RFC 3986 section 2.3
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// RFC 3986 section 6.2.2.1 and 6.2.2.2: %xx upper-cased, encoded unreserved characters decoded.
// A '%' not followed by two hex digits is kept as it is.
std::string NormalizePath(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size() && HexDigitValue(in[i + 1]) >= 0 &&
        HexDigitValue(in[i + 2]) >= 0) {
      unsigned char c =
          static_cast<unsigned char>(HexDigitValue(in[i + 1]) * 16 + HexDigitValue(in[i + 2]));
      if (Unreserved(c)) {
        out.push_back(static_cast<char>(c));
      } else {
        out.push_back('%');
        out.push_back(Upper(in[i + 1]));
        out.push_back(Upper(in[i + 2]));
      }
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// RFC 3986 section 5.2.4 (remove_dot_segments), as section 6.2.2.3 asks of a normalised path:
// "/a/./b/../c" is "/a/c". Run after NormalizePath, so "%2E" has become "." already.
std::string RemoveDotSegments(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  while (!in.empty()) {
    if (in.starts_with("../")) {
      in.remove_prefix(3);
    } else if (in.starts_with("./")) {
      in.remove_prefix(2);
    } else if (in.starts_with("/./")) {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.starts_with("/../") || in == "/..") {
      in = in.size() == 3 ? std::string_view("/") : in.substr(3);
      size_t last = out.rfind('/');
      out.resize(last == std::string::npos ? 0 : last);
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      size_t next = in.find('/', 1);
      if (next == std::string_view::npos) next = in.size();
      out.append(in.substr(0, next));
      in.remove_prefix(next);
    }
  }
  return out;
}

// The edit distance (Levenshtein) of two paths, for ranking the closest recorded request; paths
// past 512 bytes are compared on their first 512 (the rank only needs to be sensible).
size_t PathDistance(std::string_view a, std::string_view b) {
  a = a.substr(0, std::min<size_t>(a.size(), 512));
  b = b.substr(0, std::min<size_t>(b.size(), 512));
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<std::string> HeaderValues(const Request& r, std::string_view name) {
  std::vector<std::string> values;
  for (const Header& h : r.headers) {
    if (EqualsIgnoreCase(h.name, name)) values.push_back(h.value);
  }
  return values;
}

void AppendField(std::string* out, std::string_view field) {
  *out += std::to_string(field.size());
  *out += ':';
  *out += field;
}

// The names of the parameters in one sorted multiset and not the other, each once, sorted.
std::vector<std::string> DifferentParams(const RequestKey& a, const RequestKey& b) {
  std::vector<std::pair<std::string, std::string>> only;
  std::set_symmetric_difference(a.query.begin(), a.query.end(), b.query.begin(), b.query.end(),
                                std::back_inserter(only));
  std::vector<std::string> names;
  for (auto& [name, value] : only) names.push_back(std::move(name));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

// The decoded-body cap for matching: larger bodies are compared as stored.
constexpr size_t kMatchDecodeCap = size_t{16} << 20;

}  // namespace

std::string RecordedResponses::BodyForMatch(const Request& r) const {
  if (!options_.match_body) return "";
  std::string coding;
  for (const Header& h : r.headers) {
    if (!EqualsIgnoreCase(h.name, "content-encoding")) continue;
    if (!coding.empty()) coding += ", ";
    coding += h.value;
  }
  if (coding.empty()) return r.body.data;
  absl::StatusOr<DecodedContent> decoded = DecodeContent(r.body.data, coding, kMatchDecodeCap);
  if (!decoded.ok() || !decoded->complete) return r.body.data;
  return std::move(decoded->data);
}

std::string_view MatchFieldName(MatchField f) {
  switch (f) {
    case MatchField::kNone:
      return "none";
    case MatchField::kMethod:
      return "method";
    case MatchField::kPath:
      return "path";
    case MatchField::kQuery:
      return "query parameter";
    case MatchField::kQueryParams:
      return "query parameters";
    case MatchField::kHost:
      return "host";
    case MatchField::kHeader:
      return "header";
    case MatchField::kBody:
      return "body";
  }
  return "none";
}

std::string LookupResult::Explanation() const {
  switch (outcome) {
    case Outcome::kHit:
      return "matched recorded response " + std::to_string(position) + " of " +
             std::to_string(recorded) + (head_of_get ? " (the recorded GET's head)" : "");
    case Outcome::kExhausted:
      return "all " + std::to_string(recorded) + " recorded responses to this request were served";
    case Outcome::kMiss:
      break;
  }
  if (exchange == nullptr || !exchange->request)
    return "no recorded request matches; none recorded";
  std::string out = "no recorded request matches; closest: " + exchange->request->method + " " +
                    exchange->request->path + " (differs on ";
  out += MatchFieldName(differs_on);
  // A body has no name: what is said of it is a note, as for a redacted header.
  if (!differs_name.empty()) out += (differs_on == MatchField::kBody ? "; " : " ") + differs_name;
  // A redacted recorded value is a marker: no live value equals it.
  if (differs_redacted) out += "; the recorded value is redacted";
  out += ")";
  return out;
}

std::string_view SessionValue(const Request& request, std::string_view header_name) {
  for (const Header& h : request.headers) {
    if (EqualsIgnoreCase(h.name, header_name)) return h.value;
  }
  return {};
}

RequestKey RecordedResponses::KeyOf(const Request& r) const {
  RequestKey key;
  key.method = r.method;
  // RFC 9112 section 3.2.2: a server accepts the absolute form ("http://svc/a?b") and takes the
  // authority from it; a proxy sends it. The key holds origin-form path and query either way.
  const RequestTargetParts parts = SplitRequestTarget(r.path);
  std::string_view absolute_authority = parts.authority;
  std::string_view query = parts.query;
  // An empty path in the absolute form is "/" (RFC 9112 section 3.2.4: "http://svc?x=1").
  key.path =
      parts.path.empty() && parts.absolute ? "/" : RemoveDotSegments(NormalizePath(parts.path));
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    std::string name = PercentDecode(piece.substr(0, eq));
    std::string value = eq == std::string_view::npos ? "" : PercentDecode(piece.substr(eq + 1));
    if (std::find(options_.ignore_params.begin(), options_.ignore_params.end(), name) !=
        options_.ignore_params.end()) {
      continue;
    }
    key.query.emplace_back(std::move(name), std::move(value));
  }
  std::sort(key.query.begin(), key.query.end());
  if (!options_.ignore_host) {
    // The absolute form's authority wins over Host (RFC 9112 section 3.2.2).
    std::string_view host = absolute_authority;
    if (host.empty()) host = r.authority;
    if (host.empty()) host = SessionValue(r, "host");
    key.host.reserve(host.size());
    for (char c : host) key.host.push_back(Lower(c));
  }
  for (const std::string& name : options_.match_headers)
    key.headers.push_back(HeaderValues(r, name));
  return key;
}

std::string RecordedResponses::KeyString(const RequestKey& key) {
  std::string s;
  AppendField(&s, key.method);
  AppendField(&s, key.path);
  s += std::to_string(key.query.size()) + "q";
  for (const auto& [name, value] : key.query) {
    AppendField(&s, name);
    AppendField(&s, value);
  }
  AppendField(&s, key.host);
  for (const auto& values : key.headers) {
    s += std::to_string(values.size()) + "h";
    for (const std::string& v : values) AppendField(&s, v);
  }
  return s;
}

std::shared_ptr<const nlohmann::json> RecordedResponses::ParseBody(std::string_view body) const {
  if (!options_.match_body || body.empty()) return nullptr;
  // As tapreplay's comparison: only JSON text without duplicate names is compared as a value
  // (nlohmann keeps the last of duplicates, so {"a":1,"a":2} would equal {"a":2}).
  if (CheckJsonText(body) != JsonText::kOk) return nullptr;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return nullptr;
  return std::make_shared<const nlohmann::json>(std::move(j));
}

bool RecordedResponses::BodiesMatch(const Group& g, std::string_view body,
                                    const nlohmann::json* request_json,
                                    std::string_view raw_body) const {
  if (!options_.match_body) return true;
  if (g.body_cut) {
    // Only a prefix was stored: the live body (as received) starts with it and, when the full
    // length is known, has that length (as replay's comparison treats a cut body).
    return raw_body.starts_with(g.body) &&
           (g.body_length <= g.body.size() || raw_body.size() == g.body_length);
  }
  if (g.body == body) return true;
  return g.body_json != nullptr && request_json != nullptr && *g.body_json == *request_json;
}

std::string RecordedResponses::CutNote(const Group& g) {
  return "the recorded body was stored cut: " + std::to_string(g.body.size()) + " of " +
         std::to_string(g.body_length) + " bytes";
}

RecordedResponses::RecordedResponses(std::vector<Exchange> exchanges, MatchOptions options)
    : options_(std::move(options)) {
  exchanges_.reserve(exchanges.size());
  for (Exchange& x : exchanges) {
    // A final status below 200 cannot be served as a final answer: 0 is an HTTP/0.9 reply (no
    // status line), 101 switched to a protocol the mock does not speak.
    if (x.request && x.response && x.response->status >= 200) {
      exchanges_.push_back(std::move(x));
    } else {
      ++skipped_;
    }
  }
  // exchanges_ no longer grows: pointers into it stay valid.
  for (const Exchange& x : exchanges_) {
    RequestKey key = KeyOf(*x.request);
    std::string ks = KeyString(key);
    const Body& stored = x.request->body;
    const bool cut =
        options_.match_body && (stored.truncated || stored.data.size() < stored.length);
    std::string body = cut ? stored.data : BodyForMatch(*x.request);
    std::shared_ptr<const nlohmann::json> json = cut ? nullptr : ParseBody(body);
    bool placed = false;
    for (auto [it, end] = by_key_.equal_range(ks); it != end; ++it) {
      Group& g = groups_[it->second];
      if (g.body_cut == cut && BodiesMatch(g, body, json.get(), stored.data)) {
        g.exchanges.push_back(&x);
        placed = true;
        break;
      }
    }
    if (placed) continue;
    Group g;
    g.key = std::move(key);
    g.body = std::move(body);
    g.body_json = std::move(json);
    g.body_cut = cut;
    g.body_length = stored.length;
    g.exchanges.push_back(&x);
    by_key_.emplace(std::move(ks), groups_.size());
    groups_.push_back(std::move(g));
  }
}

bool RecordedResponses::TakeTurn(const std::string& key_string, std::string_view body,
                                 const nlohmann::json* json, std::string_view raw_body,
                                 std::string_view session, LookupResult* result) {
  for (auto [it, end] = by_key_.equal_range(key_string); it != end; ++it) {
    Group& g = groups_[it->second];
    if (!BodiesMatch(g, body, json, raw_body)) continue;
    result->recorded = g.exchanges.size();
    size_t use;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto next = g.next.find(session);
      if (next == g.next.end()) {
        // Past kMaxSessionsPerKey distinct sessions a new one shares the common sequence:
        // memory stays bounded whatever session values clients send.
        std::string_view kept = g.next.size() < kMaxSessionsPerKey ? session : std::string_view();
        next = g.next.find(kept);
        if (next == g.next.end()) next = g.next.emplace(std::string(kept), 0).first;
      }
      use = next->second;
      if (use < g.exchanges.size() || !options_.strict) ++next->second;
    }
    if (use >= g.exchanges.size()) {
      if (options_.strict) {
        result->outcome = LookupResult::Outcome::kExhausted;
        result->exchange = g.exchanges.back();
        return true;
      }
      use = g.exchanges.size() - 1;
    }
    result->outcome = LookupResult::Outcome::kHit;
    result->exchange = g.exchanges[use];
    result->position = use + 1;
    return true;
  }
  return false;
}

LookupResult RecordedResponses::Lookup(const Request& request, std::string_view session,
                                       bool explain_miss) {
  LookupResult result;
  RequestKey key = KeyOf(request);
  std::string body = BodyForMatch(request);
  std::shared_ptr<const nlohmann::json> json = ParseBody(body);
  if (TakeTurn(KeyString(key), body, json.get(), request.body.data, session, &result))
    return result;
  // RFC 9110 section 9.3.2: HEAD is GET without the content. A HEAD whose key was never
  // recorded is answered from the GET recorded for it (taking that GET's turn in its sequence;
  // with strict, a GET whose responses were all served leaves the HEAD exhausted too).
  if (key.method == "HEAD") {
    RequestKey as_get = key;
    as_get.method = "GET";
    if (TakeTurn(KeyString(as_get), body, json.get(), request.body.data, session, &result)) {
      result.head_of_get = result.outcome == LookupResult::Outcome::kHit;
      return result;
    }
  }

  // A miss: the closest recorded request is the one with the same path if any, else the nearest
  // path (edit distance), then the same method, then the fewest differing fields (each matched
  // header and each query parameter name counting once); the earliest recorded on a tie. The path
  // ranks first as WireMock's near misses weigh the URL most: "GET /api/price?sku=C-3" is closest
  // to "/api/price?sku=B-2", and "/api/item" to "/api/items".
  result.outcome = LookupResult::Outcome::kMiss;
  if (!explain_miss) return result;
  using Rank = std::tuple<bool, size_t, bool, size_t>;
  Rank best{true, SIZE_MAX, true, SIZE_MAX};
  bool found = false;
  for (const Group& g : groups_) {
    size_t diffs = 0;
    MatchField first = MatchField::kNone;
    std::string first_name;
    bool first_redacted = false;
    auto differ = [&](MatchField f, std::string name, size_t n, bool redacted = false) {
      if (first == MatchField::kNone) {
        first = f;
        first_name = std::move(name);
        first_redacted = redacted;
      }
      diffs += n;
    };
    const bool path_differs = g.key.path != key.path;
    const bool method_differs = g.key.method != key.method;
    if (path_differs) differ(MatchField::kPath, "", 1);
    if (method_differs) differ(MatchField::kMethod, "", 1);
    if (g.key.query != key.query) {
      std::vector<std::string> names = DifferentParams(g.key, key);
      std::string joined;
      for (const std::string& n : names) joined += (joined.empty() ? "" : ", ") + n;
      differ(names.size() > 1 ? MatchField::kQueryParams : MatchField::kQuery, joined,
             std::max<size_t>(1, names.size()));
    }
    if (g.key.host != key.host) differ(MatchField::kHost, "", 1);
    for (size_t i = 0; i < key.headers.size() && i < g.key.headers.size(); ++i) {
      if (g.key.headers[i] == key.headers[i]) continue;
      bool redacted = std::any_of(g.key.headers[i].begin(), g.key.headers[i].end(),
                                  [](const std::string& v) { return IsRedactionMarker(v); });
      differ(MatchField::kHeader, options_.match_headers[i], 1, redacted);
    }
    if (!BodiesMatch(g, body, json.get(), request.body.data))
      differ(MatchField::kBody, g.body_cut ? CutNote(g) : "", 1);
    Rank rank{path_differs, path_differs ? PathDistance(g.key.path, key.path) : 0, method_differs,
              diffs};
    if (!found || rank < best) {
      found = true;
      best = rank;
      result.exchange = g.exchanges.front();
      result.differs_on = first;
      result.differs_name = first_name;
      result.differs_redacted = first_redacted;
    }
  }
  return result;
}

}  // namespace tapkit
