#include "format/curl_export.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "format/http_text.h"
#include "format/render.h"

namespace tapkit {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool NameIs(std::string_view name, std::string_view want) {
  return absl::EqualsIgnoreCase(AV(name), AV(want));
}

// True when `s` can be --data-binary's single-quoted word on one line: UTF-8 text without
// control bytes (tab aside) not starting with '@'. Anything else goes through printf's escapes.
bool PlainText(std::string_view s) {
  if (!s.empty() && s[0] == '@') return false;  // --data-binary @NAME would read a file
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  }
  return IsUtf8(s);
}

// `data` as a printf format string that prints exactly `data`: printable ASCII as itself ('%' as
// "%%", '\\' as "\\\\"), every other byte as a three-digit octal escape (POSIX printf), quoted.
// A leading '-' is written as the escape too: bash's and dash's printf would take "-..." as an
// option, fail, and print nothing.
std::string PrintfWord(std::string_view data) {
  std::string fmt;
  fmt.reserve(data.size() * 2);
  for (size_t i = 0; i < data.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    if (c == '%') {
      fmt += "%%";
    } else if (c == '\\') {
      fmt += "\\\\";
    } else if (c >= 0x20 && c < 0x7f && !(i == 0 && c == '-')) {
      fmt.push_back(static_cast<char>(c));
    } else {
      fmt.push_back('\\');
      fmt.push_back(static_cast<char>('0' + (c >> 6)));
      fmt.push_back(static_cast<char>('0' + ((c >> 3) & 7)));
      fmt.push_back(static_cast<char>('0' + (c & 7)));
    }
  }
  return ShellQuote(fmt);
}

// A line of text for a '#' comment: control bytes shown as \xHH.
std::string CommentText(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

// Dot segments ("/./", "/../", a trailing "/." or "/..") in the path part of a URL, which curl
// would squash without --path-as-is (RFC 3986 section 5.2.4).
bool HasDotSegment(std::string_view path) {
  path = path.substr(0, path.find('?'));
  size_t i = 0;
  while ((i = path.find("/.", i)) != std::string_view::npos) {
    std::string_view rest = path.substr(i + 2);
    if (rest.empty() || rest[0] == '/' || rest == "." || absl::StartsWith(AV(rest), "./")) {
      return true;
    }
    ++i;
  }
  return false;
}

class CurlOutput final : public ExchangeOutput {
 public:
  bool NeedsBodies() const override { return true; }
  void Add(const ExchangeView& x, std::string* out) override { AppendCurlCommand(x, out); }
};

}  // namespace

std::string ShellQuote(std::string_view word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

void AppendCurlCommand(const ExchangeView& x, std::string* out) {
  std::string id = absl::StrCat(x.capture_point(), ":", x.stream_id());
  if (!x.has_request()) {
    absl::StrAppend(out, "# id=", id, ": no request captured (", AV(CompletionName(x.completion())),
                    ")\n");
    return;
  }
  RequestView q = x.request();
  BodyView body = q.body();
  const bool has_body = body.present() && body.length() > 0;
  if (has_body && (body.truncated() || body.stored() < body.length())) {
    absl::StrAppend(out, "# id=", id, ": request body cut at ", body.stored(), " of ",
                    body.length(), " bytes; the command sends what was stored\n");
  }
  if (has_body && !body.loaded()) {
    absl::StrAppend(out, "# id=", id, ": request body not read; the command sends none\n");
  }
  if (!q.trailers().empty()) {
    absl::StrAppend(out, "# id=", id, ": request trailers not sent (curl cannot send them)");
    for (const HeaderListView::Field& f : q.trailers()) {
      absl::StrAppend(out, " ", CommentText(f.name), ": ", CommentText(f.value), ";");
    }
    out->push_back('\n');
  }
  const bool send_body = has_body && body.loaded();
  std::string cmd;
  if (send_body && !PlainText(body.data())) {
    absl::StrAppend(&cmd, "printf ", PrintfWord(body.data()), " | ");
  }
  cmd += "curl";
  std::string_view method = q.method();
  if (method == "HEAD") {
    cmd += " --head";
  } else if (!(method == "GET" && !send_body) && !(method == "POST" && send_body)) {
    absl::StrAppend(&cmd, " -X ", ShellQuote(method));
  }
  if (q.version() == HttpVersion::kHttp10) cmd += " --http1.0";
  if (q.version() == HttpVersion::kHttp11 && x.tls() == TlsState::kYes) cmd += " --http1.1";
  std::string url = RequestUrl(x);
  if (HasDotSegment(q.path())) cmd += " --path-as-is";
  if (url.find_first_of("[]{}") != std::string::npos) cmd += " -g";
  // --url, not a bare word: a recorded absolute-form path is used verbatim and may start with '-'.
  absl::StrAppend(&cmd, " --url ", ShellQuote(url));
  bool user_agent = false, accept = false, content_type = false, expect = false, host = false;
  std::string unsent;
  for (const HeaderListView::Field& f : q.headers()) {
    if (NameIs(f.name, "content-length") && send_body) continue;
    // A field name must be a token (RFC 9110 section 5.1; http_text.h): curl's -H would read a
    // file for a name starting with '@' and mangle one holding ':' or ';'. A value holding NUL
    // cannot be a command-line word (curl got "ab" for "a\0b"), and CR or LF would make curl send
    // a header line the recording did not hold (RFC 9110 section 5.5).
    if (!IsToken(f.name) ||
        f.value.find_first_of(std::string_view("\0\r\n", 3)) != std::string_view::npos) {
      absl::StrAppend(&unsent, " ", CommentText(f.name), ": ", CommentText(f.value), ";");
      continue;
    }
    user_agent |= NameIs(f.name, "user-agent");
    accept |= NameIs(f.name, "accept");
    content_type |= NameIs(f.name, "content-type");
    expect |= NameIs(f.name, "expect");
    host |= NameIs(f.name, "host");
    std::string h(f.name);
    if (f.value.empty()) {
      h += ";";
    } else {
      absl::StrAppend(&h, ": ", AV(f.value));
    }
    absl::StrAppend(&cmd, " -H ", ShellQuote(h));
  }
  if (!host && q.authority().empty()) cmd += " -H 'Host:'";
  if (!user_agent) cmd += " -H 'User-Agent:'";
  if (!accept) cmd += " -H 'Accept:'";
  if (send_body && !content_type) cmd += " -H 'Content-Type:'";
  if (send_body && !expect) cmd += " -H 'Expect:'";
  if (send_body) {
    cmd += PlainText(body.data()) ? absl::StrCat(" --data-binary ", ShellQuote(body.data()))
                                  : std::string(" --data-binary @-");
  }
  if (!unsent.empty()) {
    absl::StrAppend(out, "# id=", id,
                    ": request headers not sent (name not an RFC 9110 token, or NUL, CR or LF in "
                    "the value)",
                    unsent, "\n");
  }
  out->append(cmd);
  out->push_back('\n');
}

std::unique_ptr<ExchangeOutput> MakeCurlOutput() { return std::make_unique<CurlOutput>(); }

}  // namespace tapkit
