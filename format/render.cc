#include "format/render.h"

#include "format/json_writer.h"

#include <algorithm>
#include <array>
#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "format/decoded_body.h"

namespace tapkit {

absl::StatusOr<OutputFormat> ParseOutputFormat(std::string_view word) {
  if (word == "text") return OutputFormat::kText;
  if (word == "wide") return OutputFormat::kWide;
  if (word == "json") return OutputFormat::kJson;
  if (word == "har") return OutputFormat::kHar;
  if (word == "curl") return OutputFormat::kCurl;
  if (word == "pcap") return OutputFormat::kPcap;
  return absl::InvalidArgumentError(absl::StrCat(
      "-o ", std::string(word), ": unknown output (text, wide, json, har, curl, pcap)"));
}
namespace {

using nlohmann::json;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Us(uint64_t ns) { return absl::StrCat(ns / 1000, "µs"); }

// The prefix linkerd repeats on each line: id, proxy direction (padded), endpoints, tls.
std::string Prefix(const LineHead& h) {
  std::string_view dir = DirectionName(h.direction);
  return absl::StrCat("id=", h.capture_point, ":", h.stream_id, " proxy=", AV(dir),
                      dir.size() < 3 ? std::string(3 - dir.size(), ' ') : "",
                      " src=", h.source.ToString(), " dst=", h.destination.ToString(),
                      " tls=", AV(TlsName(h.tls)));
}

LineHead HeadOf(const ExchangeView& x) {
  LineHead h;
  h.capture_point = x.capture_point();
  h.stream_id = x.stream_id();
  h.direction = x.direction();
  h.source = x.source();
  h.destination = x.destination();
  h.tls = x.tls();
  return h;
}
std::string Prefix(const ExchangeView& x) { return Prefix(HeadOf(x)); }

// Printable form of raw bytes in a text line: control bytes and spaces escaped.
std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c <= ' ' || c == 0x7f || c >= 0x80) {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out.empty() ? "-" : out;
}

std::string Resource(const Endpoint& e) {
  const Labels& l = e.labels;
  if (!l.workload_kind.empty() && !l.workload_name.empty()) {
    return absl::StrCat(Printable(l.workload_kind), "/", Printable(l.workload_name));
  }
  return !l.pod.empty() ? absl::StrCat("pod/", Printable(l.pod)) : std::string("-");
}

std::string WideSuffix(const Endpoint& s, const Endpoint& d) {
  return absl::StrCat(" src_res=", Resource(s), " src_ns=", Printable(s.labels.ns),
                      " dst_res=", Resource(d), " dst_ns=", Printable(d.labels.ns));
}
std::string WideSuffix(const ExchangeView& x) { return WideSuffix(x.source(), x.destination()); }

// Text for a quoted field of a text line: control bytes, quotes, backslashes and bytes that are
// not UTF-8 escaped as \xHH (valid UTF-8 letters pass through).
std::string Quoted(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
      if (i + len <= s.size() && len > 1 && IsUtf8(s.substr(i, len))) {
        out.append(s.substr(i, len));
        i += len;
        continue;
      }
    }
    if (c < 0x20 || c == 0x7f || c >= 0x80 || c == '"' || c == '\\') {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out.push_back(static_cast<char>(c));
    }
    ++i;
  }
  return out;
}

// Sets obj[key] to `s` as text, or, when `s` is not UTF-8, to its base64 with a sibling
// "<key>Encoding": "base64" (docs/json.md).
void PutText(json& obj, const std::string& key, std::string_view s) {
  if (IsUtf8(s)) {
    obj[key] = std::string(s);
  } else {
    obj[key] = absl::Base64Escape(AV(s));
    obj[key + "Encoding"] = "base64";
  }
}

bool IsKindName(std::string_view k) {
  // A kind that would collide with another metadata key goes under workloadKind instead.
  if (k.empty() || k == "namespace" || k == "pod" || k == "service") return false;
  for (char c : k) {
    if (c < 'a' || c > 'z') return false;
  }
  return true;
}

// An endpoint's or capture point's labels as docs/json.md's `metadata` object.
json LabelsJson(const Labels& l) {
  json meta = json::object();
  if (!l.ns.empty()) PutText(meta, "namespace", l.ns);
  if (!l.pod.empty()) PutText(meta, "pod", l.pod);
  if (IsKindName(l.workload_kind)) {
    PutText(meta, l.workload_kind, l.workload_name);
  } else if (!l.workload_kind.empty() || !l.workload_name.empty()) {
    PutText(meta, "workloadKind", l.workload_kind);
    PutText(meta, "workloadName", l.workload_name);
  }
  if (!l.service.empty()) PutText(meta, "service", l.service);
  return meta;
}

}  // namespace

std::string GrpcName(int32_t code) {
  static const char* const kNames[] = {
      "OK",       "Canceled",       "Unknown",          "InvalidArgument",   "DeadlineExceeded",
      "NotFound", "AlreadyExists",  "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
      "Aborted",  "OutOfRange",     "Unimplemented",    "Internal",          "Unavailable",
      "DataLoss", "Unauthenticated"};
  if (code >= 0 && code < 17) return kNames[code];
  return absl::StrCat(code);
}

// HTTP/2 error code names (RFC 9113 section 7).
std::string H2ErrorName(uint32_t code) {
  static const char* const kNames[] = {"NO_ERROR",
                                       "PROTOCOL_ERROR",
                                       "INTERNAL_ERROR",
                                       "FLOW_CONTROL_ERROR",
                                       "SETTINGS_TIMEOUT",
                                       "STREAM_CLOSED",
                                       "FRAME_SIZE_ERROR",
                                       "REFUSED_STREAM",
                                       "CANCEL",
                                       "COMPRESSION_ERROR",
                                       "CONNECT_ERROR",
                                       "ENHANCE_YOUR_CALM",
                                       "INADEQUATE_SECURITY",
                                       "HTTP_1_1_REQUIRED"};
  if (code < 14) return kNames[code];
  return absl::StrCat("0x", absl::Hex(code));
}

namespace {

void HeadersOut(JsonWriter& j, const HeaderListView& h) {
  j.Open('[');
  for (const HeaderListView::Field& f : h) {
    // Written as text first; a name or value that is not UTF-8 rewinds it (rare).
    JsonWriter::Mark m = j.Here();
    j.Open('{');
    j.Key("name");
    if (j.StrIfUtf8(f.name)) {
      j.Key("value");
      if (j.StrIfUtf8(f.value)) {
        j.Close('}');
        continue;
      }
    }
    j.Rewind(m);
    j.Open('{');
    j.Key("encoding");
    j.Str("base64");
    j.Key("name");
    j.Str(absl::Base64Escape(AV(f.name)));
    j.Key("value");
    j.Str(absl::Base64Escape(AV(f.value)));
    j.Close('}');
  }
  j.Close(']');
}

// --body: the body with its Content-Encoding undone (docs/json.md, `*.body.decoded`); members in
// byte order.
void DecodedOut(JsonWriter& j, const BodyView& b, const HeaderListView& headers, size_t cap) {
  DecodedBody d = DecodeBody(b.data(), headers, b.truncated(), cap);
  j.Open('{');
  if (d.status.ok()) {
    j.Key("complete");
    j.Bool(d.complete);
  }
  j.TextMember("contentEncoding", d.content_encoding);
  if (!d.status.ok()) {
    j.TextMember("error", std::string(d.status.message()));
  } else {
    j.Key("kind");
    j.Str(BodyKindName(d.kind));
    j.Key("length");
    j.Uint(d.data.size());
    if (d.kind != BodyKind::kBinary) {
      // A UTF-8 sequence cut at the end of a cut body is left out of the text.
      j.Key("text");
      j.Str(std::string_view(d.data).substr(0, Utf8CompletePrefix(d.data)));
    }
  }
  j.Close('}');
}

void BodyOut(JsonWriter& j, const BodyView& b, const HeaderListView& headers,
             const JsonOptions& options) {
  j.Open('{');
  if (b.loaded()) {
    std::string_view d = b.data();
    j.Key("data");
    bool text = j.StrIfUtf8(d);
    if (!text) j.Str(absl::Base64Escape(AV(d)));
    if (options.decoded_bodies) {
      j.Key("decoded");
      DecodedOut(j, b, headers, options.decode_cap);
    }
    j.Key("encoding");
    j.Str(text ? "utf8" : "base64");
  }
  j.Key("length");
  j.Uint(b.length());
  j.Key("stored");
  j.Uint(b.stored());
  j.Key("truncated");
  j.Bool(b.truncated());
  j.Close('}');
}

template <typename L>  // Labels or LabelsView
void LabelsOut(JsonWriter& j, const L& l) {
  // The common case: every value UTF-8, so the members are the fixed names and the kind's name.
  if (IsUtf8(l.ns) && IsUtf8(l.pod) && IsUtf8(l.workload_kind) && IsUtf8(l.workload_name) &&
      IsUtf8(l.service)) {
    std::pair<std::string_view, std::string_view> m[5];
    size_t n = 0;
    if (!l.ns.empty()) m[n++] = {"namespace", l.ns};
    if (!l.pod.empty()) m[n++] = {"pod", l.pod};
    if (!l.service.empty()) m[n++] = {"service", l.service};
    if (IsKindName(l.workload_kind)) {
      m[n++] = {l.workload_kind, l.workload_name};
    } else if (!l.workload_kind.empty() || !l.workload_name.empty()) {
      m[n++] = {"workloadKind", l.workload_kind};
      m[n++] = {"workloadName", l.workload_name};
    }
    for (size_t a = 1; a < n; ++a) {  // insertion sort, at most 5 members
      for (size_t b = a; b > 0 && m[b].first < m[b - 1].first; --b) std::swap(m[b], m[b - 1]);
    }
    j.Open('{');
    for (size_t a = 0; a < n; ++a) {
      j.Key(m[a].first);
      j.Str(m[a].second);
    }
    j.Close('}');
    return;
  }
  // The kind's key is dynamic (docs/json.md), and a value that is not UTF-8 brings a
  // "<key>Encoding" member: sort the few members as std::map would.
  struct Member {
    std::string_view key, value;
    bool base64;  // `value` is to be written in base64
    bool encoding_marker;  // the "<key>Encoding": "base64" member
  };
  Member m[12];
  std::string keys[6];  // "<key>Encoding" names
  size_t n = 0, nkeys = 0;
  auto add = [&](std::string_view key, std::string_view value) {
    bool text = IsUtf8(value);
    m[n] = {key, value, !text, false};
    ++n;
    if (!text) {
      std::string& name = keys[nkeys++];
      name = std::string(key) + "Encoding";
      m[n] = {name, "base64", false, true};
      ++n;
    }
  };
  if (!l.ns.empty()) add("namespace", l.ns);
  if (!l.pod.empty()) add("pod", l.pod);
  if (IsKindName(l.workload_kind)) {
    add(l.workload_kind, l.workload_name);
  } else if (!l.workload_kind.empty() || !l.workload_name.empty()) {
    add("workloadKind", l.workload_kind);
    add("workloadName", l.workload_name);
  }
  if (!l.service.empty()) add("service", l.service);
  // Insertion sort: at most 12 members.
  for (size_t a = 1; a < n; ++a) {
    for (size_t b = a; b > 0 && m[b].key < m[b - 1].key; --b) std::swap(m[b], m[b - 1]);
  }
  j.Open('{');
  for (size_t a = 0; a < n; ++a) {
    j.Key(m[a].key);
    if (m[a].base64) {
      j.Str(absl::Base64Escape(AV(m[a].value)));
    } else {
      j.Str(m[a].value);
    }
  }
  j.Close('}');
}

void EndpointOut(JsonWriter& j, const EndpointView& e) {
  j.Open('{');
  j.Key("ip");
  if (e.ip.family == 4) {
    // Dotted decimal without a std::string (this runs twice per exchange).
    char buf[16];
    char* w = buf;
    for (int i = 0; i < 4; ++i) {
      unsigned v = e.ip.bytes[i];
      if (v >= 100) *w++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *w++ = static_cast<char>('0' + v / 10 % 10);
      *w++ = static_cast<char>('0' + v % 10);
      if (i < 3) *w++ = '.';
    }
    j.Str(std::string_view(buf, static_cast<size_t>(w - buf)));
  } else {
    j.Str(e.ip.ToString());
  }
  j.Key("metadata");
  LabelsOut(j, e.labels);
  j.Key("port");
  j.Uint(e.port);
  j.Close('}');
}

}  // namespace

std::string TextField(std::string_view s) { return Printable(s); }

void PutJsonText(json& obj, const std::string& key, std::string_view s) { PutText(obj, key, s); }

bool IsUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    // ASCII runs, 8 bytes at a time (most of what tapkit prints).
    while (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (word & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

std::string RequestUrl(const ExchangeView& x) {
  std::string_view scheme, authority, path;
  if (x.has_request()) {
    RequestView q = x.request();
    scheme = q.scheme();
    authority = q.authority();
    path = q.path();
  }
  if (path.find("://") != std::string_view::npos && !path.empty() && path[0] != '/') {
    return std::string(path);
  }
  std::string url(scheme.empty() ? (x.tls() == TlsState::kYes ? "https" : "http") : scheme);
  url += "://";
  if (authority.empty()) {
    url += x.destination().ToString();
  } else {
    url.append(authority);
  }
  // "*" (OPTIONS *) and an empty path name the server itself.
  if (path.empty() || path == "*") return url + "/";
  url.append(path);
  return url;
}

namespace {
// Rfc3339 into `buf` (30 bytes), without a std::string: the JSON writer calls it per exchange.
void FormatRfc3339(uint64_t unix_ns, char* buf);
}  // namespace

std::string Rfc3339(uint64_t unix_ns) {
  char buf[32];
  FormatRfc3339(unix_ns, buf);
  return std::string(buf, 30);
}

namespace {
void FormatRfc3339(uint64_t unix_ns, char* buf) {
  // Hand-formatted (it is on the JSON hot path): the civil date from days since the epoch by the
  // proleptic Gregorian calendar, as absl::FormatTime's "%Y-%m-%dT%H:%M:%E9SZ" in UTC would
  // print it (render_test compares the two). uint64 nanoseconds reach the year 2554 at most.
  uint64_t secs = unix_ns / 1'000'000'000;
  uint32_t nanos = static_cast<uint32_t>(unix_ns % 1'000'000'000);
  int64_t days = static_cast<int64_t>(secs / 86400);
  uint32_t sod = static_cast<uint32_t>(secs % 86400);
  // Days to civil (H. Hinnant's algorithm, eras of 400 years from 0000-03-01).
  int64_t z = days + 719468;
  int64_t era = z / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  auto put = [buf](int at, uint64_t v, int width) {
    for (int k = width - 1; k >= 0; --k) {
      buf[at + k] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  };
  put(0, static_cast<uint64_t>(y), 4);
  buf[4] = '-';
  put(5, static_cast<uint64_t>(m), 2);
  buf[7] = '-';
  put(8, static_cast<uint64_t>(d), 2);
  buf[10] = 'T';
  put(11, sod / 3600, 2);
  buf[13] = ':';
  put(14, sod / 60 % 60, 2);
  buf[16] = ':';
  put(17, sod % 60, 2);
  buf[19] = '.';
  put(20, nanos, 9);
  buf[29] = 'Z';
}
}  // namespace

void AppendRequestLine(const LineHead& h, std::string_view method, std::string_view authority,
                       std::string_view path, bool wide, std::string* out) {
  absl::StrAppend(out, "req ", Prefix(h), " :method=", Printable(method),
                  " :authority=", Printable(authority), " :path=", Printable(path),
                  wide ? WideSuffix(h.source, h.destination) : "", "\n");
}

void AppendResponseLine(const LineHead& h, uint16_t status, uint64_t latency_ns, bool wide,
                        std::string* out) {
  absl::StrAppend(out, "rsp ", Prefix(h), " :status=", status, " latency=", Us(latency_ns),
                  wide ? WideSuffix(h.source, h.destination) : "", "\n");
}

void AppendText(const ExchangeView& x, bool wide, std::string* out, LineClock* clock) {
  std::string prefix = Prefix(x);
  std::string suffix = wide ? WideSuffix(x) : "";
  // Each line's event time (line_time.h).
  uint64_t start = x.sort_key_ns();
  auto stamp = [&](uint64_t offset_ns) {
    if (clock) clock->Stamp(start + offset_ns, out);
  };
  if (x.has_request()) {
    RequestView q = x.request();
    stamp(0);
    AppendRequestLine(HeadOf(x), q.method(), q.authority(), q.path(), wide, out);
  }
  for (size_t i = 0; i < x.interim_count(); ++i) {
    InterimView v = x.interim(i);
    stamp(v.offset_ns());
    absl::StrAppend(out, "rsp ", prefix, " :status=", v.status(),
                    " interim latency=", Us(v.offset_ns()), suffix, "\n");
  }
  if (x.has_response()) {
    stamp(x.response_start_ns());
    AppendResponseLine(HeadOf(x), x.response().status(), x.latency_ns(), wide, out);
  }
  stamp(std::max({x.request_end_ns(), x.response_start_ns(), x.response_end_ns()}));
  AppendEndLine(x, wide, out);
}

void AppendEndLine(const ExchangeView& x, bool wide, std::string* out) {
  std::string prefix = Prefix(x);
  std::string suffix = wide ? WideSuffix(x) : "";
  std::string end = absl::StrCat("end ", prefix);
  if (x.grpc_status()) absl::StrAppend(&end, " grpc-status=", GrpcName(*x.grpc_status()));
  if (x.h2_reset_code()) absl::StrAppend(&end, " reset-error=", H2ErrorName(*x.h2_reset_code()));
  if (x.has_response()) {
    absl::StrAppend(&end, " duration=", Us(x.duration_ns()),
                    " response-length=", x.response().body().length(), "B");
  }
  if (x.completion() != Completion::kComplete) {
    absl::StrAppend(&end, " state=", AV(CompletionName(x.completion())));
    if (!x.reason().empty()) absl::StrAppend(&end, " reason=\"", Quoted(x.reason()), "\"");
  }
  absl::StrAppend(out, end, suffix, "\n");
}

void AppendJson(const ExchangeView& x, std::string* out) { AppendJson(x, JsonOptions(), out); }

void AppendJson(const ExchangeView& x, const JsonOptions& options, std::string* out) {
  // Members in byte order (see JsonWriter).
  JsonWriter j(out);
  j.Open('{');
  j.Key("destination");
  EndpointOut(j, x.destination_view());
  j.Key("durationNs");
  j.Uint(x.duration_ns());
  j.Key("end");
  j.Open('{');
  j.Key("completion");
  j.Str(CompletionName(x.completion()));
  if (!x.grpc_message().empty()) j.TextMember("grpcMessage", x.grpc_message());
  if (x.grpc_status()) {
    j.Key("grpcStatusCode");
    j.Int(*x.grpc_status());
  }
  if (!x.reason().empty()) j.TextMember("reason", x.reason());
  if (x.h2_reset_code()) {
    j.Key("resetErrorCode");
    j.Uint(*x.h2_reset_code());
  }
  j.Key("responseBytes");
  j.Uint(x.has_response() ? x.response().body().length() : 0);
  j.Close('}');
  if (x.h2_stream_id()) {
    j.Key("h2StreamId");
    j.Uint(x.h2_stream_id());
  }
  j.Key("id");
  j.Open('{');
  j.Key("capturePoint");
  j.Uint(x.capture_point());
  j.Key("stream");
  j.Uint(x.stream_id());
  j.Close('}');
  j.Key("interim");
  j.Open('[');
  for (size_t i = 0; i < x.interim_count(); ++i) {
    InterimView v = x.interim(i);
    j.Open('{');
    j.Key("headers");
    HeadersOut(j, v.headers());
    j.Key("httpStatus");
    j.Uint(v.status());
    j.TextMember("reason", v.reason());
    j.Key("sinceRequestInitNs");
    j.Uint(v.offset_ns());
    j.Close('}');
  }
  j.Close(']');
  j.Key("latencyNs");
  j.Uint(x.latency_ns());
  j.Key("proxyDirection");
  j.Str(x.direction() == Direction::kInbound    ? "INBOUND"
        : x.direction() == Direction::kOutbound ? "OUTBOUND"
                                                : "UNKNOWN");
  if (std::optional<ExchangeId> of = x.replay_of()) {  // format 1.3, tapreplay -w
    j.Key("replayOf");
    j.Open('{');
    j.Key("capturePoint");
    j.Uint(of->capture_point);
    j.Key("stream");
    j.Uint(of->stream_id);
    j.Close('}');
  }
  j.Key("request");
  if (x.has_request()) {
    RequestView q = x.request();
    j.Open('{');
    j.TextMember("authority", q.authority());
    if (q.body().present()) {
      j.Key("body");
      BodyOut(j, q.body(), q.headers(), options);
    }
    j.Key("headers");
    HeadersOut(j, q.headers());
    j.Key("httpVersion");
    j.Str(HttpVersionName(q.version()));
    j.TextMember("method", q.method());
    j.TextMember("path", q.path());
    j.TextMember("scheme", q.scheme());
    j.Key("trailers");
    HeadersOut(j, q.trailers());
    j.Close('}');
  } else {
    j.Null();
  }
  j.Key("requestEndNs");
  j.Uint(x.request_end_ns());
  j.Key("requestTime");
  {
    char when[32];
    FormatRfc3339(x.sort_key_ns(), when);
    j.Str(std::string_view(when, 30));
  }
  j.Key("requestTimeNs");
  j.Uint(x.sort_key_ns());
  j.Key("response");
  if (x.has_response()) {
    ResponseView s = x.response();
    j.Open('{');
    if (s.body().present()) {
      j.Key("body");
      BodyOut(j, s.body(), s.headers(), options);
    }
    j.Key("headers");
    HeadersOut(j, s.headers());
    j.Key("httpStatus");
    j.Uint(s.status());
    j.Key("httpVersion");
    j.Str(HttpVersionName(s.version()));
    j.TextMember("reason", s.reason());
    j.Key("trailers");
    HeadersOut(j, s.trailers());
    j.Close('}');
  } else {
    j.Null();
  }
  j.Key("responseEndNs");
  j.Uint(x.response_end_ns());
  j.Key("responseStartNs");
  j.Uint(x.response_start_ns());
  j.Key("source");
  EndpointOut(j, x.source_view());
  j.Key("tls");
  if (x.tls() == TlsState::kUnknown) {
    j.Null();
  } else {
    j.Bool(x.tls() == TlsState::kYes);
  }
  j.Close('}');
  j.Newline();
}

std::string FormatInfoJson(const Reader& reader, const InfoCounts& counts) {
  const CaptureMetadata& m = reader.metadata();
  const ReaderStats& st = reader.stats();
  const std::optional<FileSummary>& sum = reader.summary();
  // A list of strings (the command line, redacted header names): text, or, when any of them is
  // not UTF-8, all in base64 with "<key>Encoding": "base64".
  auto put_list = [](json& obj, const std::string& key, const std::vector<std::string>& words) {
    bool utf8 =
        std::all_of(words.begin(), words.end(), [](const std::string& w) { return IsUtf8(w); });
    json arr = json::array();
    for (const std::string& w : words) arr.push_back(utf8 ? w : absl::Base64Escape(w));
    obj[key] = std::move(arr);
    if (!utf8) obj[key + "Encoding"] = "base64";
  };
  // name=value pairs (filters, extra) as the headers' {"name","value"} objects.
  auto pairs = [](const std::vector<std::pair<std::string, std::string>>& kv) {
    json arr = json::array();
    for (const auto& [k, v] : kv) {
      json o = json::object();
      if (IsUtf8(k) && IsUtf8(v)) {
        o["name"] = k;
        o["value"] = v;
      } else {
        o["name"] = absl::Base64Escape(k);
        o["value"] = absl::Base64Escape(v);
        o["encoding"] = "base64";
      }
      arr.push_back(std::move(o));
    }
    return arr;
  };
  // Counter names are keys: one that is not UTF-8 is escaped as the text output does (\xHH).
  auto counts_json = [](const std::map<std::string, uint64_t>& named) {
    json o = json::object();
    for (const auto& [k, v] : named) o[IsUtf8(k) ? k : Quoted(k)] = v;
    return o;
  };

  json o = json::object();
  PutText(o, "file", reader.name());
  o["format"] = {{"major", reader.major_version()}, {"minor", reader.minor_version()}};
  json meta = json::object();
  PutText(meta, "writerName", m.writer_name);
  PutText(meta, "writerVersion", m.writer_version);
  PutText(meta, "host", m.host);
  if (m.start_time_ns) {
    meta["startTime"] = Rfc3339(m.start_time_ns);
    meta["startTimeNs"] = m.start_time_ns;
  } else {
    meta["startTime"] = nullptr;
    meta["startTimeNs"] = nullptr;
  }
  put_list(meta, "commandLine", m.command_line);
  PutText(meta, "target", m.target);
  PutText(meta, "namespace", m.ns);
  meta["filters"] = pairs(m.filters);
  meta["bodyLimit"] = m.body_limit;
  json red = {{"enabled", m.redaction.enabled}, {"keyed", m.redaction.keyed}};
  put_list(red, "headers", m.redaction.headers);
  put_list(red, "queryParams", m.redaction.query_params);
  put_list(red, "jsonFields", m.redaction.json_fields);
  meta["redaction"] = std::move(red);
  meta["extra"] = pairs(m.extra);
  o["metadata"] = std::move(meta);

  const std::vector<CapturePointInfo>& points =
      sum && !sum->capture_points.empty() ? sum->capture_points : m.capture_points;
  json cps = json::array();
  for (const CapturePointInfo& p : points) {
    json c = {{"id", p.id}, {"linkTypes", p.link_types}};
    PutText(c, "kind", p.kind);
    PutText(c, "name", p.name);
    c["metadata"] = LabelsJson(p.labels);
    cps.push_back(std::move(c));
  }
  o["capturePoints"] = std::move(cps);

  o["exchanges"] = counts.exchanges;
  o["segments"] = st.segments;
  if (counts.exchanges) {
    o["firstRequest"] = Rfc3339(counts.min_key);
    o["firstRequestNs"] = counts.min_key;
    o["lastRequest"] = Rfc3339(counts.max_key);
    o["lastRequestNs"] = counts.max_key;
    o["spanNs"] = counts.max_key - counts.min_key;
  } else {
    for (const char* k :
         {"firstRequest", "firstRequestNs", "lastRequest", "lastRequestNs", "spanNs"}) {
      o[k] = nullptr;
    }
  }
  o["rawBytes"] = st.raw_bytes;
  o["storedBytes"] = st.stored_bytes;

  json trailer = json::object();
  if (sum && sum->rebuilt) {
    trailer["state"] = "rebuilt";
  } else if (sum) {
    trailer["state"] = "present";
    trailer["closedTime"] = Rfc3339(sum->end_time_ns);
    trailer["closedTimeNs"] = sum->end_time_ns;
  } else {
    trailer["state"] = "absent";
  }
  o["trailer"] = std::move(trailer);
  // Known only from a trailer the writer wrote itself.
  bool known = sum && !sum->rebuilt;
  o["drops"] = known ? counts_json(sum->drops) : json(nullptr);
  o["counters"] = known ? counts_json(sum->counters) : json(nullptr);
  o["damage"] = {{"corruptRanges", st.corrupt_ranges},
                 {"corruptBytes", st.corrupt_bytes},
                 {"tornTail", st.torn_tail},
                 {"tornBytes", st.torn_bytes}};
  std::string out = o.dump(-1, ' ', false, json::error_handler_t::replace);
  out.push_back('\n');
  return out;
}

std::string FormatInfo(const Reader& reader, const InfoCounts& counts) {
  const CaptureMetadata& m = reader.metadata();
  const ReaderStats& st = reader.stats();
  const std::optional<FileSummary>& sum = reader.summary();
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    absl::StrAppend(&out, AV(key), std::string(18 - std::min<size_t>(key.size(), 17), ' '), value,
                    "\n");
  };
  auto q = [](const std::string& v) { return Quoted(v); };
  auto pairs = [&q](const std::vector<std::pair<std::string, std::string>>& kv) {
    std::vector<std::string> parts;
    for (const auto& [k, v] : kv) parts.push_back(absl::StrCat(q(k), "=", q(v)));
    return absl::StrJoin(parts, " ");
  };
  line("File:", q(reader.name()));
  line("Format:", absl::StrCat(".tap ", reader.major_version(), ".", reader.minor_version()));
  line("Writer:", absl::StrCat(m.writer_name.empty() ? "-" : q(m.writer_name), " ",
                               q(m.writer_version), m.host.empty() ? "" : " on " + q(m.host)));
  line("Started:", m.start_time_ns ? Rfc3339(m.start_time_ns) : "-");
  if (!m.command_line.empty()) {
    std::vector<std::string> words;
    for (const std::string& w : m.command_line) words.push_back(q(w));
    line("Command:", absl::StrJoin(words, " "));
  }
  if (!m.target.empty() || !m.ns.empty()) {
    line("Target:", absl::StrCat(m.target.empty() ? "-" : q(m.target),
                                 m.ns.empty() ? "" : " (namespace " + q(m.ns) + ")"));
  }
  if (!m.filters.empty()) line("Filters:", pairs(m.filters));
  line("Body limit:", absl::StrCat(m.body_limit, " bytes"));
  auto quoted = [&](const std::vector<std::string>& words) {
    std::vector<std::string> out;
    for (const std::string& w : words) out.push_back(q(w));
    return absl::StrJoin(out, ", ");
  };
  std::string redaction = "off";
  if (m.redaction.enabled) {
    redaction = absl::StrCat("on (", quoted(m.redaction.headers), "; ");
    if (!m.redaction.query_params.empty()) {
      absl::StrAppend(&redaction, "query parameters ", quoted(m.redaction.query_params), "; ");
    }
    if (!m.redaction.json_fields.empty()) {
      absl::StrAppend(&redaction, "JSON fields ", quoted(m.redaction.json_fields), "; ");
    }
    absl::StrAppend(&redaction, m.redaction.keyed ? "key file" : "random key", ")");
  }
  line("Redaction:", redaction);
  const std::vector<CapturePointInfo>& points =
      sum && !sum->capture_points.empty() ? sum->capture_points : m.capture_points;
  for (const CapturePointInfo& p : points) {
    line(absl::StrCat("Capture point ", p.id, ":"),
         absl::StrCat(q(p.kind), " ", q(p.name), p.link_types.empty() ? "" : " (link types ",
                      absl::StrJoin(p.link_types, ","), p.link_types.empty() ? "" : ")"));
  }
  if (!m.extra.empty()) line("Extra:", pairs(m.extra));
  line("Exchanges:", absl::StrCat(counts.exchanges));
  line("Segments:", absl::StrCat(st.segments));
  if (counts.exchanges) {
    line("First request:", Rfc3339(counts.min_key));
    line("Last request:", Rfc3339(counts.max_key));
    uint64_t span = counts.max_key - counts.min_key;
    line("Span:", span <= uint64_t{INT64_MAX}
                      ? absl::FormatDuration(absl::Nanoseconds(static_cast<int64_t>(span)))
                      : absl::StrCat(span, "ns"));
  }
  if (st.stored_bytes) {
    line("Compression:",
         absl::StrCat(st.raw_bytes, " bytes in ", st.stored_bytes, " bytes, ",
                      absl::SixDigits(double(st.raw_bytes) / st.stored_bytes), ":1"));
  }
  if (sum && sum->rebuilt) {
    line("Trailer:", "rebuilt by tapcat --reindex (the writer did not finish; drops unknown)");
  } else if (sum) {
    line("Trailer:", absl::StrCat("present, closed ", Rfc3339(sum->end_time_ns)));
    std::vector<std::string> drops, counters;
    for (const auto& [k, v] : sum->drops) drops.push_back(absl::StrCat(q(k), "=", v));
    for (const auto& [k, v] : sum->counters) counters.push_back(absl::StrCat(q(k), "=", v));
    line("Drops:", drops.empty() ? std::string("none") : absl::StrJoin(drops, " "));
    if (!counters.empty()) line("Counters:", absl::StrJoin(counters, " "));
  } else {
    line("Trailer:", "absent (the writer did not finish; drop counters unknown)");
  }
  std::string damage = st.corrupt_ranges ? absl::StrCat(st.corrupt_ranges, " corrupt range(s), ",
                                                        st.corrupt_bytes, " bytes skipped")
                                         : std::string("none");
  if (st.torn_tail) absl::StrAppend(&damage, "; torn tail of ", st.torn_bytes, " bytes");
  line("Damage:", damage);
  return out;
}

}  // namespace tapkit
