#include "format/har.h"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "format/content_coding.h"
#include "format/program.h"
#include "format/render.h"

namespace tapkit {
namespace {

using nlohmann::json;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }
std::string Trim(std::string_view s) { return std::string(absl::StripAsciiWhitespace(AV(s))); }

double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

// application/x-www-form-urlencoded parsing as the WHATWG URL standard defines it: '&'-separated
// pairs, the first '=' splits name from value, '+' is a space and %XX a byte.
std::string FormDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < s.size() && absl::ascii_isxdigit(s[i + 1]) &&
               absl::ascii_isxdigit(s[i + 2])) {
      auto hex = [](char h) { return absl::ascii_isdigit(h) ? h - '0' : (h | 0x20) - 'a' + 10; };
      out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

json FormPairs(std::string_view s) {
  json arr = json::array();
  for (absl::string_view part : absl::StrSplit(AV(s), '&', absl::SkipEmpty())) {
    size_t eq = part.find('=');
    std::string_view name = SV(part.substr(0, eq));
    std::string_view value = eq == absl::string_view::npos ? "" : SV(part.substr(eq + 1));
    arr.push_back({{"name", FormDecode(name)}, {"value", FormDecode(value)}});
  }
  return arr;
}

json Headers(const HeaderListView& h) {
  json arr = json::array();
  for (const HeaderListView::Field& f : h) {
    arr.push_back({{"name", std::string(f.name)}, {"value", std::string(f.value)}});
  }
  return arr;
}

// Cookie: name=value pairs separated by "; " (RFC 6265 section 4.2.1), from every Cookie field.
json RequestCookies(const HeaderListView& h) {
  json arr = json::array();
  for (const HeaderListView::Field& f : h) {
    if (!absl::EqualsIgnoreCase(AV(f.name), "cookie")) continue;
    for (absl::string_view pair : absl::StrSplit(AV(f.value), ';', absl::SkipWhitespace())) {
      size_t eq = pair.find('=');
      if (eq == absl::string_view::npos) continue;
      arr.push_back({{"name", Trim(SV(pair.substr(0, eq)))},
                     {"value", Trim(SV(pair.substr(eq + 1)))}});
    }
  }
  return arr;
}

// A cookie-date (RFC 6265 section 5.1.1) in the forms servers send: IMF-fixdate (RFC 9110
// section 5.6.7), RFC 850's, and Netscape's dashed one.
std::optional<absl::Time> CookieDate(std::string_view text) {
  std::string s = Trim(text);
  for (const char* fmt : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT",
                          "%a, %d-%b-%Y %H:%M:%S GMT", "%a, %d %b %Y %H:%M:%S %z"}) {
    absl::Time t;
    if (absl::ParseTime(fmt, s, absl::UTCTimeZone(), &t, nullptr)) return t;
  }
  return std::nullopt;
}

std::string Iso(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

// Set-Cookie fields as RFC 6265 section 5.2 parses them: the name-value pair before the first
// ';' (a pair without '=' is ignored), then attributes. Max-Age wins over Expires (5.3 step 3),
// counted from `start_ns`.
json ResponseCookies(const HeaderListView& h, uint64_t start_ns) {
  json arr = json::array();
  for (const HeaderListView::Field& f : h) {
    if (!absl::EqualsIgnoreCase(AV(f.name), "set-cookie")) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(AV(f.value), ';');
    size_t eq = parts[0].find('=');
    if (eq == absl::string_view::npos) continue;
    json c = {{"name", Trim(SV(parts[0].substr(0, eq)))},
              {"value", Trim(SV(parts[0].substr(eq + 1)))}};
    std::optional<absl::Time> expires, max_age;
    std::string unparsed;
    for (size_t i = 1; i < parts.size(); ++i) {
      size_t aeq = parts[i].find('=');
      std::string name = absl::AsciiStrToLower(Trim(SV(parts[i].substr(0, aeq))));
      std::string value = aeq == absl::string_view::npos ? "" : Trim(SV(parts[i].substr(aeq + 1)));
      if (name == "path") {
        c["path"] = value;
      } else if (name == "domain") {
        c["domain"] = value;
      } else if (name == "secure") {
        c["secure"] = true;
      } else if (name == "httponly") {
        c["httpOnly"] = true;
      } else if (name == "expires") {
        expires = CookieDate(value);
        if (!expires) unparsed = absl::StrCat("Expires=", value, " is not a date tapkit reads");
      } else if (name == "max-age") {
        int64_t seconds;
        if (absl::SimpleAtoi(value, &seconds)) {
          absl::Time start = absl::FromUnixNanos(static_cast<int64_t>(start_ns));
          max_age = seconds <= 0 ? absl::UnixEpoch() : start + absl::Seconds(seconds);
        }
      } else if (name == "samesite") {
        c["_sameSite"] = value;
      }
    }
    if (max_age) {
      c["expires"] = Iso(*max_age);
    } else if (expires) {
      c["expires"] = Iso(*expires);
    }
    if (!unparsed.empty()) c["comment"] = unparsed;
    arr.push_back(std::move(c));
  }
  return arr;
}

// The header section's size as HTTP/1.1 writes it: start line, "Name: value\r\n" per field, and
// the blank line. -1 for HTTP/2 and later, whose header blocks are compressed frames.
int64_t HeadersSize(HttpVersion v, std::string_view start_line, const HeaderListView& h) {
  if (v == HttpVersion::kHttp2 || v == HttpVersion::kHttp3) return -1;
  int64_t n = static_cast<int64_t>(start_line.size()) + 2;
  for (const HeaderListView::Field& f : h) n += f.name.size() + 2 + f.value.size() + 2;
  return n + 2;
}

std::string VersionName(HttpVersion v) {
  return v == HttpVersion::kUnknown ? std::string() : std::string(HttpVersionName(v));
}

// A body after undoing its Content-Encoding: what HAR's content.text and postData.text hold.
struct Content {
  std::string text;  // decoded bytes (or stored ones when decoding failed)
  uint64_t size = 0;
  int64_t compression = 0;
  std::string comment;
};

Content Decode(const BodyView& body, const HeaderListView& headers, size_t cap) {
  Content c;
  std::string_view data = body.data();
  std::vector<std::string> notes;
  if (body.truncated() || body.stored() < body.length()) {
    notes.push_back(absl::StrCat("body cut at ", body.stored(), " of ", body.length(),
                                 " bytes (body limit or capture loss)"));
  }
  std::string_view coding = headers.Find("content-encoding").value_or("");
  absl::StatusOr<DecodedContent> decoded = DecodeContent(data, coding, cap);
  if (decoded.ok()) {
    c.text = std::move(decoded->data);
    if (!decoded->complete) notes.push_back("coded stream cut: the text is what the bytes decode to");
  } else {
    c.text = std::string(data);
    notes.push_back(absl::StrCat("Content-Encoding not undone: ", decoded.status().message()));
  }
  c.size = c.text.size();
  if (!coding.empty() && decoded.ok()) {
    c.compression = static_cast<int64_t>(c.size) - static_cast<int64_t>(data.size());
  }
  for (const std::string& n : notes) {
    if (!c.comment.empty()) c.comment += "; ";
    c.comment += n;
  }
  return c;
}

json Timings(const ExchangeView& x) {
  double send = -1, wait = -1, receive = -1;
  if (x.has_request()) send = Ms(x.request_end_ns());
  if (x.has_response()) {
    receive = Ms(x.duration_ns());
    if (x.has_request()) {
      // A response that began before the request ended (an early 413, say) waited for nothing.
      uint64_t start = x.response_start_ns(), end = x.request_end_ns();
      wait = Ms(start > end ? start - end : 0);
    }
  }
  return {{"blocked", -1}, {"dns", -1},        {"connect", -1}, {"ssl", -1},
          {"send", send},  {"wait", wait},     {"receive", receive}};
}

json RequestJson(const ExchangeView& x, const HarOptions& o) {
  json r = json::object();
  if (!x.has_request()) {
    r = {{"method", ""},          {"url", RequestUrl(x)}, {"httpVersion", ""},
         {"cookies", json::array()}, {"headers", json::array()}, {"queryString", json::array()},
         {"headersSize", -1},     {"bodySize", -1},        {"comment", "no request captured"}};
    return r;
  }
  RequestView q = x.request();
  std::string_view path = q.path();
  r["method"] = std::string(q.method());
  r["url"] = RequestUrl(x);
  r["httpVersion"] = VersionName(q.version());
  r["cookies"] = RequestCookies(q.headers());
  r["headers"] = Headers(q.headers());
  size_t qm = path.find('?');
  std::string_view query = qm == std::string_view::npos ? "" : path.substr(qm + 1);
  query = query.substr(0, query.find('#'));
  r["queryString"] = FormPairs(query);
  BodyView body = q.body();
  if (body.present() && body.length() > 0) {
    std::string_view type = q.headers().Find("content-type").value_or("");
    json post = {{"mimeType", std::string(type)}};
    if (body.loaded()) {
      Content c = Decode(body, q.headers(), o.decode_cap);
      std::string comment = c.comment;
      if (IsUtf8(c.text)) {
        post["text"] = c.text;
        std::string_view mime = type.substr(0, type.find(';'));
        if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(AV(mime)),
                                   "application/x-www-form-urlencoded")) {
          post["params"] = FormPairs(c.text);
        }
      } else {
        post["text"] = absl::Base64Escape(c.text);
        post["_encoding"] = "base64";
        comment = absl::StrCat("text is the body in base64 (not UTF-8)",
                               comment.empty() ? "" : "; ", comment);
      }
      if (!comment.empty()) post["comment"] = comment;
    } else {
      post["comment"] = "body not read";
    }
    r["postData"] = std::move(post);
  }
  std::string start_line = absl::StrCat(AV(q.method()), " ", AV(path), " ",
                                        AV(HttpVersionName(q.version())));
  r["headersSize"] = HeadersSize(q.version(), start_line, q.headers());
  r["bodySize"] = body.present() ? static_cast<int64_t>(body.length()) : 0;
  if (!q.trailers().empty()) r["_trailers"] = Headers(q.trailers());
  return r;
}

json ResponseJson(const ExchangeView& x, const HarOptions& o) {
  if (!x.has_response()) {
    return {{"status", 0},
            {"statusText", ""},
            {"httpVersion", ""},
            {"cookies", json::array()},
            {"headers", json::array()},
            {"content", {{"size", 0}, {"mimeType", "x-unknown"}}},
            {"redirectURL", ""},
            {"headersSize", -1},
            {"bodySize", -1},
            {"comment", "no response captured"}};
  }
  ResponseView s = x.response();
  json r = {{"status", s.status()},
            {"statusText", std::string(s.reason())},
            {"httpVersion", VersionName(s.version())},
            {"cookies", ResponseCookies(s.headers(), x.sort_key_ns())},
            {"headers", Headers(s.headers())}};
  std::string_view type = s.headers().Find("content-type").value_or("");
  json content = {{"size", 0}, {"mimeType", type.empty() ? "x-unknown" : std::string(type)}};
  BodyView body = s.body();
  if (body.present() && body.length() > 0) {
    if (body.loaded()) {
      Content c = Decode(body, s.headers(), o.decode_cap);
      content["size"] = c.size;
      if (c.compression != 0) content["compression"] = c.compression;
      if (IsUtf8(c.text)) {
        content["text"] = std::move(c.text);
      } else {
        content["text"] = absl::Base64Escape(c.text);
        content["encoding"] = "base64";
      }
      if (!c.comment.empty()) content["comment"] = c.comment;
    } else {
      content["size"] = body.length();
      content["comment"] = "body not read";
    }
  }
  r["content"] = std::move(content);
  r["redirectURL"] = std::string(s.headers().Find("location").value_or(""));
  std::string start_line = absl::StrCat(AV(HttpVersionName(s.version())), " ", s.status(), " ",
                                        AV(s.reason()));
  r["headersSize"] = HeadersSize(s.version(), start_line, s.headers());
  r["bodySize"] = body.present() ? static_cast<int64_t>(body.length()) : 0;
  if (!s.trailers().empty()) r["_trailers"] = Headers(s.trailers());
  return r;
}

class HarOutput final : public ExchangeOutput {
 public:
  explicit HarOutput(HarOptions o) : o_(std::move(o)) {}
  bool NeedsBodies() const override { return true; }
  void Begin(const OutputContext&, std::string* out) override {
    json creator = {{"name", o_.creator_name},
                    {"version", o_.creator_version.empty() ? std::string(kVersion)
                                                           : o_.creator_version}};
    absl::StrAppend(out, "{\"log\":{\"version\":\"1.2\",\"creator\":",
                    creator.dump(-1, ' ', false, json::error_handler_t::replace),
                    ",\"entries\":[");
  }
  void Add(const ExchangeView& x, std::string* out) override {
    out->append(first_ ? "\n" : ",\n");
    first_ = false;
    out->append(HarEntry(x, o_));
  }
  void Finish(std::string* out) override { out->append("\n]}}\n"); }

 private:
  HarOptions o_;
  bool first_ = true;
};

}  // namespace

std::string HarEntry(const ExchangeView& x, const HarOptions& o) {
  json e = json::object();
  e["startedDateTime"] = Rfc3339(x.sort_key_ns());
  json timings = Timings(x);
  double time = 0;
  for (const char* k : {"send", "wait", "receive"}) {
    if (timings[k].get<double>() > 0) time += timings[k].get<double>();
  }
  e["time"] = time;
  e["request"] = RequestJson(x, o);
  e["response"] = ResponseJson(x, o);
  e["cache"] = json::object();
  e["timings"] = std::move(timings);
  if (x.destination().ip.family != 0) e["serverIPAddress"] = x.destination().ip.ToString();
  e["connection"] = absl::StrCat(x.capture_point(), ":", x.source().ToString());
  e["_id"] = absl::StrCat(x.capture_point(), ":", x.stream_id());
  if (x.completion() != Completion::kComplete) {
    std::string why = absl::StrCat("incomplete: ", AV(CompletionName(x.completion())));
    if (!x.reason().empty()) absl::StrAppend(&why, ": ", AV(x.reason()));
    e["comment"] = why;
  }
  // Header values and reasons are raw bytes: bytes that are not UTF-8 become U+FFFD here (HAR
  // strings are JSON strings); bodies that are not UTF-8 went to base64 above.
  return e.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::unique_ptr<ExchangeOutput> MakeHarOutput(const HarOptions& options) {
  return std::make_unique<HarOutput>(options);
}

}  // namespace tapkit
