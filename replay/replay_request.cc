#include "replay/replay_request.h"

#include <re2/re2.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "format/http_text.h"
#include "format/redact.h"

namespace tapkit::replay::internal {
namespace {

bool EatPrefix(std::string_view* s, std::string_view p) {
  if (s->substr(0, p.size()) != p) return false;
  s->remove_prefix(p.size());
  return true;
}
bool EatSuffix(std::string_view* s, std::string_view p) {
  if (s->size() < p.size() || s->substr(s->size() - p.size()) != p) return false;
  s->remove_suffix(p.size());
  return true;
}

bool HasLineBreakOrNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool Contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

HttpVersion VersionOf(std::string_view v) {
  if (v == "HTTP/1.1") return HttpVersion::kHttp11;
  if (v == "HTTP/1.0") return HttpVersion::kHttp10;
  if (v == "HTTP/2" || v == "HTTP/2.0") return HttpVersion::kHttp2;
  if (v == "HTTP/3") return HttpVersion::kHttp3;
  return HttpVersion::kUnknown;
}

}  // namespace

void SetDirectHttp11Options(CURL* easy) {
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(easy, CURLOPT_PROXY, "");     // straight to the target: no proxy from the env
  curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");  // nor a getenv("no_proxy") per transfer
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
}

absl::StatusOr<Target> ParseTarget(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("--target ", A(text), ": ", A(why)));
  };
  if (text.empty()) return absl::InvalidArgumentError("--target is required (http://HOST:PORT)");
  std::string_view rest = text;
  // RFC 3986 section 3.1: the scheme is case-insensitive ("HTTP://" is "http://").
  if (!absl::StartsWithIgnoreCase(A(rest), "http://")) {
    return bad("not an http:// URL (http://HOST:PORT; replay speaks HTTP/1.1 in clear text)");
  }
  rest.remove_prefix(7);
  EatSuffix(&rest, "/");
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    return bad("a path prefix is not allowed (http://HOST:PORT)");
  }
  if (rest.find('@') != std::string_view::npos) return bad("user information is not allowed");
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the IPv6 address");
    host = rest.substr(0, close + 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty() && !EatPrefix(&after, ":")) return bad("junk after the address");
    port = after;
    if (!IpAddress::Parse(host.substr(1, host.size() - 2))) return bad("not an IPv6 address");
  } else if (size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty() || host == "[]") return bad("no host");
  for (unsigned char c : host) {
    if (c <= ' ' || c >= 0x7f) return bad("the host holds a space or control byte");
  }
  if (rest.size() > host.size()) {
    uint32_t p = 0;
    if (port.empty() || !absl::SimpleAtoi(A(port), &p) || p == 0 || p > 65535) {
      return bad("the port is not a number in 1..65535");
    }
  }
  Target t;
  t.authority = std::string(rest);
  t.url = absl::StrCat("http://", A(rest), "/");
  return t;
}

absl::StatusOr<RequestPlan> MakeRequestPlan(const ReplayOptions& options, Target target) {
  RequestPlan plan;
  plan.target = std::move(target);
  plan.keep_authority = options.keep_authority;
  for (const Header& h : options.set_headers) {
    if (!IsToken(h.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set-header '", h.name, ": ", h.value, "': the name is not a token"));
    }
    if (HasLineBreakOrNul(h.value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set-header '", h.name, "': the value holds a CR, LF or NUL byte"));
    }
    std::string lower = absl::AsciiStrToLower(h.name);
    if (IsHopByHop(lower)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--set-header '", h.name, ": ", h.value,
          "': the replay frames the request itself; ", h.name,
          " cannot be set (RFC 9110 section 7.6.1, RFC 9112 section 6)"));
    }
    plan.set_headers.push_back(h);
    plan.set_lower.push_back(std::move(lower));
  }
  for (const std::string& d : options.drop_headers) {
    if (!IsToken(d)) {
      return absl::InvalidArgumentError(absl::StrCat("--drop-header '", d, "': not a field name"));
    }
    plan.drop_lower.push_back(absl::AsciiStrToLower(d));
  }
  for (const PathRewrite& r : options.path_rewrites) {
    auto re = std::make_shared<const re2::RE2>(r.regex, re2::RE2::Quiet);
    if (!re->ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--rewrite-path '", r.regex, "=", r.replacement, "': ", re->error()));
    }
    std::string why;
    if (!re->CheckRewriteString(r.replacement, &why)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--rewrite-path '", r.regex, "=", r.replacement, "': ", why));
    }
    plan.rewrite_regex.push_back(std::move(re));
    plan.rewrite_replacement.push_back(r.replacement);
  }
  return plan;
}

std::vector<std::string> ConnectionNamed(const std::vector<Header>& headers) {
  std::vector<std::string> named;
  for (const Header& h : headers) {
    if (!absl::EqualsIgnoreCase(h.name, "connection")) continue;
    for (absl::string_view t : absl::StrSplit(h.value, ',')) {
      named.push_back(absl::AsciiStrToLower(A(TrimOws(std::string_view(t.data(), t.size())))));
    }
  }
  return named;
}

bool IsHopByHop(std::string_view n) {
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "te" ||
         n == "trailer" || n == "transfer-encoding" || n == "upgrade" || n == "content-length";
}

uint64_t CountRedactionMarkers(std::string_view text) {
  uint64_t n = 0;
  const size_t whole = kRedactedPrefix.size() + 12;
  for (size_t at = text.find(kRedactedPrefix); at != std::string_view::npos;
       at = text.find(kRedactedPrefix, at + 1)) {
    if (text.size() - at >= whole && IsRedactionMarker(text.substr(at, whole))) {
      ++n;
      at += whole - 1;
    }
  }
  return n;
}

uint64_t LiveBodyLimit(const Exchange& recorded) {
  uint64_t need = recorded.response ? recorded.response->body.data.size() + 1 : 0;
  return std::max(kLiveBodyFloorBytes, need);
}

void BuildRequest(const RequestPlan& plan, const Request& recorded, OutgoingRequest* out) {
  *out = OutgoingRequest();
  out->method = recorded.method;
  out->target = recorded.path.empty() ? "/" : recorded.path;
  auto invalid = [](const std::string& t) {
    return t.empty() || t.find_first_of(std::string_view(" \r\n\0", 4)) != std::string::npos;
  };
  for (size_t i = 0; i < plan.rewrite_regex.size(); ++i) {
    const bool was_valid = !invalid(out->target);
    const bool was_origin = !out->target.empty() && out->target.front() == '/';
    re2::RE2::GlobalReplace(&out->target, *plan.rewrite_regex[i], plan.rewrite_replacement[i]);
    // RFC 9112 section 3.2.1: an origin-form target starts with "/".
    if ((was_valid && invalid(out->target)) ||
        (was_origin && (out->target.empty() || out->target.front() != '/'))) {
      out->usage_error = absl::StrCat(
          "--rewrite-path '", plan.rewrite_regex[i]->pattern(), "=", plan.rewrite_replacement[i],
          "': turns the recorded path ", absl::CHexEscape(recorded.path.empty() ? "/" : recorded.path), " into '",
          absl::CHexEscape(out->target), "', not a request target (RFC 9112 section 3.2)");
      return;
    }
  }
  if (!IsToken(out->method)) {
    out->error = "the recorded method is not a token";
    return;
  }
  if (invalid(out->target)) {
    out->error = "the request target holds a space, CR, LF or NUL byte";
    return;
  }
  // RFC 9110 section 7.6.1: the fields Connection names are hop-by-hop too.
  const std::vector<std::string> named = ConnectionNamed(recorded.headers);
  bool had_length = false;
  for (const Header& h : recorded.headers) {
    if (absl::EqualsIgnoreCase(h.name, "content-length") ||
        absl::EqualsIgnoreCase(h.name, "transfer-encoding")) {
      had_length = true;
    }
  }
  // One allocation each for the fields and the suppressed names (they would grow 1, 2, 4, ...).
  out->headers.reserve(recorded.headers.size() + plan.set_headers.size() + 2);
  out->suppress.reserve(4);
  std::vector<bool> set_done(plan.set_headers.size(), false);
  auto emit_set = [&](std::string_view lower) {
    for (size_t i = 0; i < plan.set_headers.size(); ++i) {
      if (!set_done[i] && plan.set_lower[i] == lower) {
        out->headers.push_back(plan.set_headers[i]);
        set_done[i] = true;
      }
    }
  };
  bool host_seen = false, accept = false, expect = false, content_type = false;
  auto note = [&](std::string_view lower) {
    if (lower == "host") host_seen = true;
    if (lower == "accept") accept = true;
    if (lower == "expect") expect = true;
    if (lower == "content-type") content_type = true;
  };
  for (const Header& h : recorded.headers) {
    std::string lower = absl::AsciiStrToLower(h.name);
    if (Contains(plan.drop_lower, lower)) continue;
    if (Contains(plan.set_lower, lower)) {
      emit_set(lower);
      note(lower);
      continue;
    }
    if (IsHopByHop(lower) || Contains(named, lower)) continue;
    if (lower == "host") {
      if (host_seen) continue;  // one Host (RFC 9112 section 3.2)
      host_seen = true;
      out->headers.push_back({h.name, plan.keep_authority ? h.value : plan.target.authority});
      continue;
    }
    if (IsRedactionMarker(h.value)) {
      ++out->redacted_dropped;
      continue;
    }
    if (!IsToken(h.name) || HasLineBreakOrNul(h.value)) continue;  // cannot be sent as a field
    note(lower);
    out->headers.push_back(h);
  }
  for (size_t i = 0; i < plan.set_headers.size(); ++i) {
    if (!set_done[i]) {
      out->headers.push_back(plan.set_headers[i]);
      note(plan.set_lower[i]);
      set_done[i] = true;
    }
  }
  if (!host_seen && !Contains(plan.drop_lower, "host")) {
    std::string host = plan.keep_authority && !recorded.authority.empty() ? recorded.authority
                                                                          : plan.target.authority;
    out->headers.insert(out->headers.begin(), Header{"Host", std::move(host)});
    host_seen = true;
  }
  for (const Header& h : out->headers) {
    if (absl::EqualsIgnoreCase(h.name, "host")) out->authority = h.value;
  }
  out->redacted_sent = CountRedactionMarkers(out->target);
  out->has_body = had_length || recorded.body.length > 0 || !recorded.body.data.empty();
  if (out->has_body) {
    out->redacted_sent += CountRedactionMarkers(recorded.body.data);
    out->body = &recorded.body.data;
    out->headers.push_back({"Content-Length", absl::StrCat(recorded.body.data.size())});
  }
  if (!host_seen) out->suppress.push_back("Host:");
  if (!accept) out->suppress.push_back("Accept:");
  if (!expect) out->suppress.push_back("Expect:");
  if (out->has_body && !content_type) out->suppress.push_back("Content-Type:");
}

namespace {
// An empty response that keeps the room its fields vector had: a typical answer's fields then
// take one allocation, not one per doubling.
void ClearKeepingRoom(Response* r) {
  std::vector<Header> fields = std::move(r->headers);
  fields.clear();
  if (fields.capacity() < 16) fields.reserve(16);
  *r = Response();
  r->headers = std::move(fields);
}
}  // namespace

void ResponseReader::Reset(uint64_t max_body) {
  ClearKeepingRoom(&response_);
  max_body_ = max_body;
  interim_.clear();
  final_started_ = in_headers_ = final_done_ = false;
}

void ResponseReader::HeaderLine(std::string_view line, uint64_t (*offset_ns)(const void*),
                                const void* arg) {
  EatSuffix(&line, "\n");
  EatSuffix(&line, "\r");
  if (!in_headers_ && !final_done_ && line.substr(0, 5) == "HTTP/") {
    // RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ].
    ClearKeepingRoom(&response_);
    std::string_view version = line.substr(0, line.find(' '));
    response_.version = VersionOf(version);
    std::string_view rest = line.substr(std::min(line.size(), version.size() + 1));
    uint32_t status = 0;
    if (rest.size() >= 3 && absl::SimpleAtoi(A(rest.substr(0, 3)), &status)) {
      response_.status = static_cast<uint16_t>(status);
    }
    if (rest.size() > 4) response_.reason = std::string(rest.substr(4));
    final_started_ = true;
    in_headers_ = true;
    return;
  }
  if (line.empty()) {
    if (!in_headers_) return;
    in_headers_ = false;
    if (response_.status >= 100 && response_.status < 200 && response_.status != 101) {
      InterimResponse i;
      i.status = response_.status;
      i.reason = std::move(response_.reason);
      i.headers = std::move(response_.headers);
      i.offset_ns = offset_ns(arg);
      interim_.push_back(std::move(i));
      response_ = Response();
    } else {
      final_done_ = true;
    }
    return;
  }
  std::vector<Header>* fields = in_headers_   ? &response_.headers
                                : final_done_ ? &response_.trailers
                                              : nullptr;
  if (!fields) return;
  if ((line.front() == ' ' || line.front() == '\t') && !fields->empty()) {
    // obs-fold (RFC 9112 section 5.2): a continuation of the previous value.
    absl::StrAppend(&fields->back().value, " ", A(TrimOws(line)));
    return;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return;
  fields->push_back(
      {std::string(line.substr(0, colon)), std::string(TrimOws(line.substr(colon + 1)))});
}

void ResponseReader::BodyBytes(std::string_view data) {
  Body& b = response_.body;
  b.length += data.size();
  size_t room = b.data.size() < max_body_ ? max_body_ - b.data.size() : 0;
  if (data.size() > room) b.truncated = true;
  b.data.append(data.substr(0, std::min(room, data.size())));
}

}  // namespace tapkit::replay::internal
