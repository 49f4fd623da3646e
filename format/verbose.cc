#include "format/verbose.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "format/decoded_body.h"
#include "format/render.h"

namespace tapkit {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

void AppendEscapedByte(unsigned char c, std::string* out) {
  absl::StrAppend(out, "\\x", absl::Hex(c, absl::kZeroPad2));
}

// Code points shown escaped although they are valid UTF-8: C1 controls (a terminal may act on
// them, e.g. U+009B CSI), the line and paragraph separators, and the bidirectional embeddings,
// overrides and isolates that can make text read differently from its bytes.
bool Unsafe(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
         (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

}  // namespace

std::string TerminalSafe(std::string_view s, bool keep_tab) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      if ((c < 0x20 && !(keep_tab && c == '\t')) || c == 0x7f) {
        AppendEscapedByte(c, &out);
      } else {
        out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4
                                          : 0;
    if (len == 0 || i + len > n || !IsUtf8(s.substr(i, len))) {
      AppendEscapedByte(c, &out);
      ++i;
      continue;
    }
    uint32_t cp = c & (len == 2 ? 0x1f : len == 3 ? 0x0f : 0x07);
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (p[i + k] & 0x3f);
    if (Unsafe(cp)) {
      for (size_t k = 0; k < len; ++k) AppendEscapedByte(p[i + k], &out);
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  return out;
}

namespace {

// A duration for people: absl's units ("312us", "1.2ms", "6s"); "0s" for nothing.
std::string Duration(uint64_t ns) {
  if (ns == 0) return "0s";
  if (ns > uint64_t{INT64_MAX}) return absl::StrCat(ns, "ns");
  return absl::FormatDuration(absl::Nanoseconds(static_cast<int64_t>(ns)));
}

// "  key             value\n": the block's detail lines, values in one column.
void Detail(std::string_view key, std::string_view value, std::string* out) {
  absl::StrAppend(out, "  ", AV(key), std::string(key.size() < 16 ? 16 - key.size() : 1, ' '),
                  AV(value), "\n");
}

// An instant as RFC 3339 with its offset from the exchange's first instant.
std::string Instant(uint64_t base_ns, uint64_t offset_ns) {
  return absl::StrCat(Rfc3339(base_ns + offset_ns), " (+", Duration(offset_ns), ")");
}

std::string EndpointText(const Endpoint& e) {
  std::string s = e.ToString();
  const Labels& l = e.labels;
  std::vector<std::string> parts;
  if (!l.ns.empty()) parts.push_back(absl::StrCat("namespace ", TerminalSafe(l.ns)));
  if (!l.pod.empty()) parts.push_back(absl::StrCat("pod ", TerminalSafe(l.pod)));
  if (!l.workload_kind.empty() || !l.workload_name.empty()) {
    parts.push_back(absl::StrCat(TerminalSafe(l.workload_kind), "/", TerminalSafe(l.workload_name)));
  }
  if (!l.service.empty()) parts.push_back(absl::StrCat("service ", TerminalSafe(l.service)));
  if (!parts.empty()) {
    absl::StrAppend(&s, " (");
    for (size_t i = 0; i < parts.size(); ++i) absl::StrAppend(&s, i ? ", " : "", parts[i]);
    absl::StrAppend(&s, ")");
  }
  return s;
}

std::string_view DirectionWord(Direction d) {
  switch (d) {
    case Direction::kInbound:
      return "inbound";
    case Direction::kOutbound:
      return "outbound";
    default:
      return "unknown";
  }
}

std::string_view TlsWord(TlsState t) {
  switch (t) {
    case TlsState::kYes:
      return "yes";
    case TlsState::kNo:
      return "no";
    default:
      return "unknown";
  }
}

// Header fields in wire order, one line each after `mark` ("> " or "< ").
void Fields(const HeaderListView& fields, std::string_view mark, std::string* out) {
  for (const HeaderListView::Field& f : fields) {
    absl::StrAppend(out, "  ", AV(mark), TerminalSafe(f.name), ": ", TerminalSafe(f.value), "\n");
  }
}

// Text as body lines: split at LF (a CR before it is dropped and counted), each line made visible
// with TAB kept. Returns the number of CR LF line ends.
size_t TextLines(std::string_view text, std::string* out) {
  size_t crlf = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (nl != std::string_view::npos && !line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
      ++crlf;
    }
    absl::StrAppend(out, "    ", TerminalSafe(line, true), "\n");
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return crlf;
}

// The start of `text` of at most `cap` bytes, ending at a line end when one is in it.
std::string_view TextUpTo(std::string_view text, size_t cap) {
  if (text.size() <= cap) return text;
  std::string_view head = text.substr(0, cap);
  size_t nl = head.rfind('\n');
  return nl == std::string_view::npos ? head : head.substr(0, nl + 1);
}

// Why a cut body is cut (see VerboseOptions::body_limits).
std::string CutReason(const ExchangeView& x, const BodyView& b, const VerboseOptions& o) {
  bool at_limit =
      x.completion() == Completion::kComplete ||
      std::find(o.body_limits.begin(), o.body_limits.end(), b.stored()) != o.body_limits.end();
  if (at_limit) return "truncated at the body limit";
  std::string why = absl::StrCat("cut: the exchange ended ", AV(CompletionName(x.completion())));
  if (!x.reason().empty()) absl::StrAppend(&why, " (", TerminalSafe(x.reason()), ")");
  return why;
}

void ShowBody(const ExchangeView& x, std::string_view which, const BodyView& b,
              const HeaderListView& headers, const VerboseOptions& o, std::string* out) {
  if (!b.present() || (b.length() == 0 && b.stored() == 0 && !b.truncated())) return;
  std::string head = absl::StrCat("  ", AV(which), " body: ", b.length(), " bytes");
  if (!b.loaded()) {
    absl::StrAppend(out, head, "\n  ! not shown: the segment's body frame could not be read\n");
    return;
  }
  DecodedBody d = DecodeBody(b.data(), headers, b.truncated(), o.decode_cap);
  if (d.status.ok() && !d.content_encoding.empty()) {
    absl::StrAppend(&head, ", ", TerminalSafe(d.content_encoding), " decoded to ", d.data.size(),
                    " bytes");
  }
  absl::StrAppend(&head, ", ", AV(BodyKindName(d.kind)));
  if (!d.media_type.empty()) absl::StrAppend(&head, " (", TerminalSafe(d.media_type), ")");
  absl::StrAppend(out, head, "\n");

  if (b.truncated()) {
    if (b.stored() < b.length()) {
      absl::StrAppend(out, "  ! stored ", b.stored(), " of ", b.length(),
                      " bytes: ", CutReason(x, b, o), "\n");
    } else {
      absl::StrAppend(out, "  ! ", b.stored(),
                      " bytes seen, the full length is unknown: ", CutReason(x, b, o), "\n");
    }
  }
  if (!d.status.ok()) {
    absl::StrAppend(out, "  ! not decoded: ", TerminalSafe(std::string(d.status.message())),
                    "; the stored bytes follow\n");
  } else if (!d.complete) {
    absl::StrAppend(out, "  ! the ", TerminalSafe(d.content_encoding),
                    " stream ends early: shown is what the stored bytes decode to\n");
  }
  if (d.json_text == JsonText::kTooManyMembers) {
    absl::StrAppend(out, "  ! an object in the JSON has more than ", kMaxJsonMembers,
                    " members, too many to lay out: shown as text\n");
  }
  if (d.json_expected) {
    absl::StrAppend(out, "  ! Content-Type says JSON, but the body is not JSON",
                    b.truncated() || !d.complete ? " (it is cut)" : "",
                    d.kind == BodyKind::kText ? ": shown as text" : ": shown in hex", "\n");
  }

  // What is shown stops at o.show_cap bytes (a text's at the line end before it), with a line
  // saying how much more there is: a small body that decodes to a great many bytes cannot flood
  // the terminal.
  std::string_view shown;
  size_t total = 0;
  std::string pretty;
  switch (d.kind) {
    case BodyKind::kJson: {
      nlohmann::ordered_json j = nlohmann::ordered_json::parse(d.data, nullptr, false);
      if (!j.is_discarded()) {
        pretty = j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
        shown = TextUpTo(pretty, o.show_cap);
        total = pretty.size();
        TextLines(shown, out);
        break;
      }
      // ClassifyBody accepted it, so this does not happen; fall back to the text.
      [[fallthrough]];
    }
    case BodyKind::kText: {
      shown = TextUpTo(d.data, o.show_cap);
      total = d.data.size();
      size_t crlf = TextLines(shown, out);
      if (crlf) absl::StrAppend(out, "  ! ", crlf, " CR LF line ends shown as line ends\n");
      if (shown.size() == total && !d.data.empty() && d.data.back() != '\n') {
        absl::StrAppend(out, "  \\ no newline at end of body\n");
      }
      break;
    }
    case BodyKind::kBinary:
      shown = std::string_view(d.data).substr(0, o.show_cap);
      total = d.data.size();
      AppendHexDump(shown, "    ", out);
      break;
  }
  if (shown.size() < total) {
    absl::StrAppend(out, "  ! shown the first ", shown.size(), " of ", total,
                    d.kind == BodyKind::kJson && !pretty.empty() ? " bytes of pretty-printed JSON"
                                                                 : " bytes",
                    "; ", total - shown.size(), " more not shown\n");
  }
}

std::string_view VersionText(HttpVersion v) { return HttpVersionName(v); }

// " reason" after a status code; nothing when the reason is empty (HTTP/2 has none).
std::string Reason(std::string_view reason) {
  return reason.empty() ? std::string() : absl::StrCat(" ", TerminalSafe(reason));
}

class VerboseOutput final : public ExchangeOutput {
 public:
  explicit VerboseOutput(size_t decode_cap) { options_.decode_cap = decode_cap; }
  bool NeedsBodies() const override { return true; }
  void Begin(const OutputContext& context, std::string* out) override {
    (void)out;
    for (const CaptureMetadata* m : context.inputs) {
      if (m) options_.body_limits.push_back(m->body_limit);
    }
  }
  void Add(const ExchangeView& x, std::string* out) override { AppendVerbose(x, options_, out); }

 private:
  VerboseOptions options_;
};

}  // namespace

void AppendHexDump(std::string_view data, std::string_view indent, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  bool starred = false;  // the previous row repeated the one before it, and "*" is out
  for (size_t at = 0; at < data.size(); at += 16) {
    std::string_view row = data.substr(at, 16);
    if (at >= 16 && row.size() == 16 && row == data.substr(at - 16, 16)) {
      if (!starred) absl::StrAppend(out, AV(indent), "*\n");
      starred = true;
      continue;
    }
    starred = false;
    std::string line(indent);
    absl::StrAppend(&line, absl::Hex(at, absl::kZeroPad8), "  ");
    for (size_t i = 0; i < 16; ++i) {
      if (i < row.size()) {
        unsigned char c = static_cast<unsigned char>(row[i]);
        line.push_back(kHex[c >> 4]);
        line.push_back(kHex[c & 15]);
        line.push_back(' ');
      } else {
        line.append("   ");
      }
      if (i == 7) line.push_back(' ');
    }
    line.append(" |");
    for (char ch : row) line.push_back(ch >= 0x20 && ch < 0x7f ? ch : '.');
    line.append("|\n");
    out->append(line);
  }
}

void AppendVerbose(const ExchangeView& x, const VerboseOptions& o, std::string* out) {
  // Title: id, request line in short, status.
  std::string title = absl::StrCat("exchange ", x.capture_point(), ":", x.stream_id(), ": ");
  if (x.has_request()) {
    RequestView q = x.request();
    absl::StrAppend(&title, TerminalSafe(q.method()), " ",
                    q.authority().empty() ? "-" : TerminalSafe(q.authority()), " ", TerminalSafe(q.path()));
  } else {
    absl::StrAppend(&title, "(no request)");
  }
  if (x.has_response()) {
    absl::StrAppend(&title, " -> ", x.response().status(), Reason(x.response().reason()));
  } else {
    absl::StrAppend(&title, " -> (no response)");
  }
  absl::StrAppend(out, title, "\n");

  // Timing (docs/architecture.md section 2): without a request the sort key is the response's
  // first byte.
  uint64_t base = x.sort_key_ns();
  if (x.has_request()) {
    Detail("request start", Rfc3339(base), out);
    Detail("request end", Instant(base, x.request_end_ns()), out);
  } else {
    Detail("request start", "- (no request captured)", out);
  }
  if (x.has_response()) {
    Detail("response start", Instant(base, x.response_start_ns()), out);
    Detail("response end", Instant(base, x.response_end_ns()), out);
    Detail("latency", x.has_request() ? Duration(x.latency_ns()) : "-", out);
    Detail("duration", Duration(x.duration_ns()), out);
  } else {
    Detail("response start", "- (no response captured)", out);
  }
  Detail("source", EndpointText(x.source()), out);
  Detail("destination", EndpointText(x.destination()), out);
  Detail("direction", DirectionWord(x.direction()), out);
  Detail("tls", TlsWord(x.tls()), out);
  if (x.h2_stream_id()) Detail("h2 stream", absl::StrCat(x.h2_stream_id()), out);
  std::string completion(CompletionName(x.completion()));
  if (!x.reason().empty()) absl::StrAppend(&completion, ": ", TerminalSafe(x.reason()));
  Detail("completion", completion, out);
  if (x.grpc_status()) {
    std::string g = absl::StrCat(GrpcName(*x.grpc_status()), " (", *x.grpc_status(), ")");
    if (!x.grpc_message().empty()) absl::StrAppend(&g, ": ", TerminalSafe(x.grpc_message()));
    Detail("grpc status", g, out);
  }
  if (x.h2_reset_code()) Detail("h2 reset", H2ErrorName(*x.h2_reset_code()), out);

  // The request as the client sent it.
  if (x.has_request()) {
    RequestView q = x.request();
    absl::StrAppend(out, "  > ", TerminalSafe(q.method()), " ", TerminalSafe(q.path()), " ",
                    AV(VersionText(q.version())), "\n");
    Fields(q.headers(), "> ", out);
    absl::StrAppend(out, "  >\n");
    ShowBody(x, "request", q.body(), q.headers(), o, out);
    if (!q.trailers().empty()) {
      absl::StrAppend(out, "  request trailers:\n");
      Fields(q.trailers(), "> ", out);
    }
  }
  // Interim responses, then the final one, as the server sent them.
  HttpVersion version = x.has_response()  ? x.response().version()
                        : x.has_request() ? x.request().version()
                                          : HttpVersion::kUnknown;
  for (size_t i = 0; i < x.interim_count(); ++i) {
    InterimView v = x.interim(i);
    absl::StrAppend(out, "  interim response at +", Duration(v.offset_ns()), ":\n");
    absl::StrAppend(out, "  < ", AV(VersionText(version)), " ", v.status(), Reason(v.reason()),
                    "\n");
    Fields(v.headers(), "< ", out);
    absl::StrAppend(out, "  <\n");
  }
  if (x.has_response()) {
    ResponseView s = x.response();
    absl::StrAppend(out, "  < ", AV(VersionText(s.version())), " ", s.status(), Reason(s.reason()),
                    "\n");
    Fields(s.headers(), "< ", out);
    absl::StrAppend(out, "  <\n");
    ShowBody(x, "response", s.body(), s.headers(), o, out);
    if (!s.trailers().empty()) {
      absl::StrAppend(out, "  response trailers:\n");
      Fields(s.trailers(), "< ", out);
    }
  }
  out->push_back('\n');
}

std::unique_ptr<ExchangeOutput> MakeVerboseOutput(size_t decode_cap) {
  return std::make_unique<VerboseOutput>(decode_cap);
}

}  // namespace tapkit
