#include "format/har.h"

#include <cstdint>
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
#include "format/decoded_body.h"
#include "format/http_text.h"
#include "format/json_writer.h"
#include "format/program.h"
#include "format/render.h"

namespace tapkit {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
std::string_view SV(absl::string_view s) { return std::string_view(s.data(), s.size()); }
std::string Trim(std::string_view s) { return std::string(absl::StripAsciiWhitespace(AV(s))); }

// `s` with each byte that is not part of well-formed UTF-8 replaced by U+FFFD: HAR's strings are
// JSON strings, and header values and reasons are raw bytes.
std::string ReplaceNonUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    if (len && i + len <= s.size() && IsUtf8(s.substr(i, len))) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xef\xbf\xbd");
      ++i;
    }
  }
  return out;
}

// "key": "value", the value made UTF-8 where it is not.
void Put(JsonWriter& w, std::string_view key, std::string_view value) {
  w.Key(key);
  if (!w.StrIfUtf8(value)) w.Str(ReplaceNonUtf8(value));
}

// Name/value pairs of a query or a form body as HAR's [{"name","value"}] array.
void FormPairs(JsonWriter& w, std::string_view s) {
  w.Open('[');
  for (absl::string_view part : absl::StrSplit(AV(s), '&', absl::SkipEmpty())) {
    size_t eq = part.find('=');
    std::string_view name = SV(part.substr(0, eq));
    std::string_view value = eq == absl::string_view::npos ? "" : SV(part.substr(eq + 1));
    w.Open('{');
    Put(w, "name", FormDecode(name));
    Put(w, "value", FormDecode(value));
    w.Close('}');
  }
  w.Close(']');
}

// The fields an entry needs besides the header list, found while writing it (one pass).
struct KnownFields {
  std::optional<std::string_view> content_type, location;
  // Every Content-Encoding field line, joined as decoded_body.h's JoinedFieldValues joins them.
  std::optional<std::string> content_encoding;
  bool cookie = false, set_cookie = false;
};

void Headers(JsonWriter& w, const HeaderListView& h, KnownFields* known = nullptr) {
  w.Open('[');
  for (const HeaderListView::Field& f : h) {
    w.Open('{');
    Put(w, "name", f.name);
    Put(w, "value", f.value);
    w.Close('}');
    if (!known) continue;
    absl::string_view name = AV(f.name);
    if (!known->content_type && absl::EqualsIgnoreCase(name, "content-type")) {
      known->content_type = f.value;
    } else if (absl::EqualsIgnoreCase(name, "content-encoding")) {
      known->content_encoding = JoinedFieldValues(h, "content-encoding");
    } else if (!known->location && absl::EqualsIgnoreCase(name, "location")) {
      known->location = f.value;
    } else if (absl::EqualsIgnoreCase(name, "cookie")) {
      known->cookie = true;
    } else if (absl::EqualsIgnoreCase(name, "set-cookie")) {
      known->set_cookie = true;
    }
  }
  w.Close(']');
}

// Cookie: name=value pairs separated by "; " (RFC 6265 section 4.2.1), from every Cookie field.
void RequestCookies(JsonWriter& w, const HeaderListView& h) {
  w.Open('[');
  for (const HeaderListView::Field& f : h) {
    if (!absl::EqualsIgnoreCase(AV(f.name), "cookie")) continue;
    for (absl::string_view pair : absl::StrSplit(AV(f.value), ';', absl::SkipWhitespace())) {
      size_t eq = pair.find('=');
      if (eq == absl::string_view::npos) continue;
      w.Open('{');
      Put(w, "name", Trim(SV(pair.substr(0, eq))));
      Put(w, "value", Trim(SV(pair.substr(eq + 1))));
      w.Close('}');
    }
  }
  w.Close(']');
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
void ResponseCookies(JsonWriter& w, const HeaderListView& h, uint64_t start_ns) {
  w.Open('[');
  for (const HeaderListView::Field& f : h) {
    if (!absl::EqualsIgnoreCase(AV(f.name), "set-cookie")) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(AV(f.value), ';');
    size_t eq = parts[0].find('=');
    if (eq == absl::string_view::npos) continue;
    w.Open('{');
    Put(w, "name", Trim(SV(parts[0].substr(0, eq))));
    Put(w, "value", Trim(SV(parts[0].substr(eq + 1))));
    std::optional<absl::Time> expires, max_age;
    std::string unparsed;
    for (size_t i = 1; i < parts.size(); ++i) {
      size_t aeq = parts[i].find('=');
      std::string name = absl::AsciiStrToLower(Trim(SV(parts[i].substr(0, aeq))));
      std::string value = aeq == absl::string_view::npos ? "" : Trim(SV(parts[i].substr(aeq + 1)));
      if (name == "path") {
        Put(w, "path", value);
      } else if (name == "domain") {
        Put(w, "domain", value);
      } else if (name == "secure") {
        w.Key("secure");
        w.Bool(true);
      } else if (name == "httponly") {
        w.Key("httpOnly");
        w.Bool(true);
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
        Put(w, "_sameSite", value);
      }
    }
    if (max_age) {
      Put(w, "expires", Iso(*max_age));
    } else if (expires) {
      Put(w, "expires", Iso(*expires));
    }
    if (!unparsed.empty()) Put(w, "comment", unparsed);
    w.Close('}');
  }
  w.Close(']');
}

// The header section's size as HTTP/1.1 writes it: start line, "Name: value\r\n" per field, and
// the blank line. -1 for HTTP/2 and later, whose header blocks are compressed frames.
int64_t HeadersSize(HttpVersion v, size_t start_line, const HeaderListView& h) {
  if (v == HttpVersion::kHttp2 || v == HttpVersion::kHttp3) return -1;
  int64_t n = static_cast<int64_t>(start_line) + 2;
  for (const HeaderListView::Field& f : h) n += f.name.size() + 2 + f.value.size() + 2;
  return n + 2;
}

std::string_view VersionName(HttpVersion v) {
  return v == HttpVersion::kUnknown ? std::string_view() : HttpVersionName(v);
}

// A body after undoing its Content-Encoding: what HAR's content.text and postData.text hold.
struct Content {
  std::string decoded;    // owns the text when a coding was undone
  std::string_view text;  // the decoded bytes, or the stored ones
  int64_t compression = 0;
  std::string comment;
};

void Decode(const BodyView& body, std::optional<std::string_view> coding, size_t cap, Content* c) {
  std::string_view data = body.data();
  c->text = data;
  if (body.truncated() || body.stored() < body.length()) {
    c->comment = absl::StrCat("body cut at ", body.stored(), " of ", body.length(),
                              " bytes (body limit or capture loss)");
  }
  if (!coding || coding->empty()) return;
  auto note = [&](std::string_view n) {
    absl::StrAppend(&c->comment, c->comment.empty() ? "" : "; ", AV(n));
  };
  absl::StatusOr<DecodedContent> decoded = DecodeContent(data, *coding, cap);
  if (!decoded.ok()) {
    note(absl::StrCat("Content-Encoding not undone: ", decoded.status().message()));
    return;
  }
  if (!decoded->complete) note("coded stream cut: the text is what the bytes decode to");
  c->decoded = std::move(decoded->data);
  c->text = c->decoded;
  c->compression = static_cast<int64_t>(c->text.size()) - static_cast<int64_t>(data.size());
}

// The text of a body: UTF-8 as it is, anything else in base64 (`*base64` set).
void BodyText(JsonWriter& w, std::string_view text, bool* base64) {
  w.Key("text");
  *base64 = !w.StrIfUtf8(text);
  if (*base64) w.Str(absl::Base64Escape(AV(text)));
}

struct Timing {
  std::optional<uint64_t> send, wait, receive;  // nanoseconds; empty: not seen
  uint64_t total() const { return send.value_or(0) + wait.value_or(0) + receive.value_or(0); }
};

Timing TimingOf(const ExchangeView& x) {
  Timing t;
  if (x.has_request()) t.send = x.request_end_ns();
  if (x.has_response()) {
    t.receive = x.duration_ns();
    if (x.has_request()) {
      // A response that began before the request ended (an early 413, say) waited for nothing.
      uint64_t start = x.response_start_ns(), end = x.request_end_ns();
      t.wait = start > end ? start - end : 0;
    }
  }
  return t;
}

void Timings(JsonWriter& w, const Timing& t) {
  auto put = [&](std::string_view key, std::optional<uint64_t> ns) {
    w.Key(key);
    if (ns) {
      w.Milliseconds(*ns);
    } else {
      w.Int(-1);
    }
  };
  w.Open('{');
  for (const char* k : {"blocked", "dns", "connect", "ssl"}) put(k, std::nullopt);
  put("send", t.send);
  put("wait", t.wait);
  put("receive", t.receive);
  w.Close('}');
}

void RequestJson(JsonWriter& w, const ExchangeView& x, const HarOptions& o) {
  w.Open('{');
  if (!x.has_request()) {
    Put(w, "method", "");
    Put(w, "url", RequestUrl(x));
    Put(w, "httpVersion", "");
    for (const char* k : {"cookies", "headers", "queryString"}) {
      w.Key(k);
      w.Open('[');
      w.Close(']');
    }
    w.Key("headersSize");
    w.Int(-1);
    w.Key("bodySize");
    w.Int(-1);
    Put(w, "comment", "no request captured");
    w.Close('}');
    return;
  }
  RequestView q = x.request();
  std::string_view path = q.path();
  Put(w, "method", q.method());
  Put(w, "url", RequestUrl(x));
  Put(w, "httpVersion", VersionName(q.version()));
  KnownFields known;
  w.Key("headers");
  Headers(w, q.headers(), &known);
  w.Key("cookies");
  if (known.cookie) {
    RequestCookies(w, q.headers());
  } else {
    w.Open('[');
    w.Close(']');
  }
  size_t qm = path.find('?');
  std::string_view query = qm == std::string_view::npos ? "" : path.substr(qm + 1);
  query = query.substr(0, query.find('#'));
  w.Key("queryString");
  FormPairs(w, query);
  BodyView body = q.body();
  if (body.present() && body.length() > 0) {
    std::string_view type = known.content_type.value_or("");
    w.Key("postData");
    w.Open('{');
    Put(w, "mimeType", type);
    if (body.loaded()) {
      Content c;
      Decode(body, known.content_encoding, o.decode_cap, &c);
      bool base64;
      BodyText(w, c.text, &base64);
      std::string_view mime = type.substr(0, type.find(';'));
      if (!base64 && absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(AV(mime)),
                                            "application/x-www-form-urlencoded")) {
        w.Key("params");
        FormPairs(w, c.text);
      }
      if (base64) {
        Put(w, "_encoding", "base64");
        c.comment = absl::StrCat("text is the body in base64 (not UTF-8)",
                                 c.comment.empty() ? "" : "; ", c.comment);
      }
      if (!c.comment.empty()) Put(w, "comment", c.comment);
    } else {
      Put(w, "comment", "body not read");
    }
    w.Close('}');
  }
  w.Key("headersSize");
  w.Int(HeadersSize(q.version(),
                    q.method().size() + 1 + path.size() + 1 + HttpVersionName(q.version()).size(),
                    q.headers()));
  w.Key("bodySize");
  w.Int(body.present() ? static_cast<int64_t>(body.length()) : 0);
  if (!q.trailers().empty()) {
    w.Key("_trailers");
    Headers(w, q.trailers());
  }
  w.Close('}');
}

void ResponseJson(JsonWriter& w, const ExchangeView& x, const HarOptions& o) {
  w.Open('{');
  if (!x.has_response()) {
    w.Key("status");
    w.Int(0);
    Put(w, "statusText", "");
    Put(w, "httpVersion", "");
    for (const char* k : {"cookies", "headers"}) {
      w.Key(k);
      w.Open('[');
      w.Close(']');
    }
    w.Key("content");
    w.Open('{');
    w.Key("size");
    w.Int(0);
    Put(w, "mimeType", "x-unknown");
    w.Close('}');
    Put(w, "redirectURL", "");
    w.Key("headersSize");
    w.Int(-1);
    w.Key("bodySize");
    w.Int(-1);
    Put(w, "comment", "no response captured");
    w.Close('}');
    return;
  }
  ResponseView s = x.response();
  w.Key("status");
  w.Int(s.status());
  Put(w, "statusText", s.reason());
  Put(w, "httpVersion", VersionName(s.version()));
  KnownFields known;
  w.Key("headers");
  Headers(w, s.headers(), &known);
  w.Key("cookies");
  if (known.set_cookie) {
    ResponseCookies(w, s.headers(), x.sort_key_ns());
  } else {
    w.Open('[');
    w.Close(']');
  }
  std::string_view type = known.content_type.value_or("");
  w.Key("content");
  w.Open('{');
  Put(w, "mimeType", type.empty() ? std::string_view("x-unknown") : type);
  BodyView body = s.body();
  if (body.present() && body.length() > 0 && body.loaded()) {
    Content c;
    Decode(body, known.content_encoding, o.decode_cap, &c);
    w.Key("size");
    w.Int(static_cast<int64_t>(c.text.size()));
    if (c.compression != 0) {
      w.Key("compression");
      w.Int(c.compression);
    }
    bool base64;
    BodyText(w, c.text, &base64);
    if (base64) Put(w, "encoding", "base64");
    if (!c.comment.empty()) Put(w, "comment", c.comment);
  } else if (body.present() && body.length() > 0) {
    w.Key("size");
    w.Int(static_cast<int64_t>(body.length()));
    Put(w, "comment", "body not read");
  } else {
    w.Key("size");
    w.Int(0);
  }
  w.Close('}');
  Put(w, "redirectURL", known.location.value_or(""));
  w.Key("headersSize");
  w.Int(HeadersSize(s.version(),
                    HttpVersionName(s.version()).size() + 1 + 3 + 1 + s.reason().size(),
                    s.headers()));
  w.Key("bodySize");
  w.Int(body.present() ? static_cast<int64_t>(body.length()) : 0);
  if (!s.trailers().empty()) {
    w.Key("_trailers");
    Headers(w, s.trailers());
  }
  w.Close('}');
}

class HarOutput final : public ExchangeOutput {
 public:
  explicit HarOutput(HarOptions o) : o_(std::move(o)) {}
  bool NeedsBodies() const override { return true; }
  void Begin(const OutputContext&, std::string* out) override {
    JsonWriter w(out);
    w.Open('{');
    w.Key("log");
    w.Open('{');
    Put(w, "version", "1.2");
    w.Key("creator");
    w.Open('{');
    Put(w, "name", o_.creator_name);
    Put(w, "version", o_.creator_version.empty() ? kVersion : o_.creator_version);
    w.Close('}');
    w.Key("entries");
    w.Open('[');  // closed by Finish
  }
  void Add(const ExchangeView& x, std::string* out) override {
    out->append(first_ ? "\n" : ",\n");
    first_ = false;
    AppendHarEntry(x, o_, out);
  }
  void Finish(std::string* out) override { out->append("\n]}}\n"); }

 private:
  HarOptions o_;
  bool first_ = true;
};

}  // namespace

void AppendHarEntry(const ExchangeView& x, const HarOptions& o, std::string* out) {
  JsonWriter w(out);
  w.Open('{');
  Put(w, "startedDateTime", Rfc3339(x.sort_key_ns()));
  Timing timing = TimingOf(x);
  w.Key("time");  // the sum of the known timings
  w.Milliseconds(timing.total());
  w.Key("request");
  RequestJson(w, x, o);
  w.Key("response");
  ResponseJson(w, x, o);
  w.Key("cache");
  w.Open('{');
  w.Close('}');
  w.Key("timings");
  Timings(w, timing);
  if (x.destination().ip.family != 0) Put(w, "serverIPAddress", x.destination().ip.ToString());
  Put(w, "connection", absl::StrCat(x.capture_point(), ":", x.source().ToString()));
  Put(w, "_id", absl::StrCat(x.capture_point(), ":", x.stream_id()));
  if (x.completion() != Completion::kComplete) {
    std::string why = absl::StrCat("incomplete: ", AV(CompletionName(x.completion())));
    if (!x.reason().empty()) absl::StrAppend(&why, ": ", AV(x.reason()));
    Put(w, "comment", why);
  }
  w.Close('}');
}

std::string HarEntry(const ExchangeView& x, const HarOptions& o) {
  std::string out;
  AppendHarEntry(x, o, &out);
  return out;
}

std::unique_ptr<ExchangeOutput> MakeHarOutput(const HarOptions& options) {
  return std::make_unique<HarOutput>(options);
}

}  // namespace tapkit
