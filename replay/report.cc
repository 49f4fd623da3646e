// The text, JSON lines and JUnit reports of report.h (the capture report lives apart).
#include "replay/report.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "format/json_writer.h"
#include "format/render.h"
#include "format/verbose.h"

namespace tapkit::replay {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string IdText(const ReplayedExchange& x) {
  return x.recorded ? absl::StrCat(x.recorded->capture_point, ":", x.recorded->stream_id) : "-";
}

std::string_view Method(const ReplayedExchange& x) {
  return x.recorded && x.recorded->request ? std::string_view(x.recorded->request->method) : "";
}
std::string_view Path(const ReplayedExchange& x) {
  return x.recorded && x.recorded->request ? std::string_view(x.recorded->request->path) : "";
}

// "GET /api/orders/7 [0:17]", and " round 2" (1-based) after the first round.
std::string Name(const ReplayedExchange& x) {
  std::string out =
      absl::StrCat(TextField(Method(x)), " ", TextField(Path(x)), " [", IdText(x), "]");
  if (x.round > 0) absl::StrAppend(&out, " round ", x.round + 1);
  return out;
}

bool Failed(const ReplayedExchange& x) { return !x.error.empty(); }

// Why an exchange that was answered has no comparison.
std::string_view NotComparedWhy(const ReplayedExchange& x) {
  return x.recorded && !x.recorded->response ? "not compared: recorded without a response"
                                             : "not compared: comparison off";
}
bool Differs(const ReplayedExchange& x) { return x.comparison && !x.comparison->matched(); }

std::optional<uint16_t> RecordedStatus(const ReplayedExchange& x) {
  if (x.recorded && x.recorded->response) return x.recorded->response->status;
  return std::nullopt;
}
std::optional<uint16_t> LiveStatus(const ReplayedExchange& x) {
  if (x.live.response) return x.live.response->status;
  return std::nullopt;
}

std::string StatusText(std::optional<uint16_t> s) { return s ? std::to_string(*s) : "-"; }

// Bodies are diffed up to this size of text each: a line diff's time grows with the lines times
// the differences, and a report of megabytes of diff helps nobody.
constexpr size_t kMaxDiffBytes = size_t{1} << 20;

// A diff line is cut to this many bytes around its first difference (a one-line 10 KB body
// that changed in one place would otherwise be printed whole twice).
constexpr size_t kMaxDiffLineBytes = 512;

// One line of text for a terminal: format/verbose.h's TerminalSafe (tapcat -V's escaping: C0 and
// C1 controls, DEL, bidirectional overrides and bytes that are not UTF-8 as \xHH), TAB kept
// unless `keep_tab` is false.
std::string Escaped(std::string_view s, bool keep_tab = true) { return TerminalSafe(s, keep_tab); }

// A field's value on one text line, escaped as Escaped does, tab too (body previews come
// escaped already). "(none)" for an absent side.
std::string Shown(const std::optional<std::string>& v) { return v ? Escaped(*v, false) : "(none)"; }

// `text` (a diff line's content) cut to kMaxDiffLineBytes around byte `at` (where it first
// differs from its counterpart), on UTF-8 character boundaries, with "..." where bytes were
// left out.
std::string Window(std::string_view text, size_t at) {
  if (text.size() <= kMaxDiffLineBytes) return std::string(text);
  at = std::min(at, text.size());
  size_t begin = at > kMaxDiffLineBytes / 2 ? at - kMaxDiffLineBytes / 2 : 0;
  begin = std::min(begin, text.size() - kMaxDiffLineBytes);
  size_t end = begin + kMaxDiffLineBytes;
  auto continuation = [&](size_t i) {
    return i < text.size() && (static_cast<unsigned char>(text[i]) & 0xc0) == 0x80;
  };
  while (begin > 0 && continuation(begin)) ++begin;
  while (end < text.size() && continuation(end)) --end;
  return absl::StrCat(begin > 0 ? "..." : "", AV(text.substr(begin, end - begin)),
                      end < text.size() ? "..." : "");
}

// A unified diff's lines, each escaped (Escaped) and cut (Window): a removed line is cut around
// where it first differs from the added line at its place in the hunk, and the other way round.
std::string ReadableDiff(const std::string& diff, const std::string& indent) {
  std::vector<std::string_view> lines;
  for (size_t at = 0; at < diff.size();) {
    size_t nl = diff.find('\n', at);
    size_t end = nl == std::string::npos ? diff.size() : nl;
    lines.push_back(std::string_view(diff).substr(at, end - at));
    at = end + 1;
  }
  // The first difference of each changed line with its counterpart (0 without one); the
  // "--- recorded" / "+++ live" header comes before the first "@@" hunk line.
  std::vector<size_t> first(lines.size(), 0);
  size_t i = 0;
  while (i < lines.size() && !lines[i].starts_with("@@")) ++i;
  while (i < lines.size()) {
    if (!lines[i].starts_with("-")) {
      ++i;
      continue;
    }
    size_t minus = i;
    while (i < lines.size() && lines[i].starts_with("-")) ++i;
    size_t plus = i;
    while (plus < lines.size() && lines[plus].substr(0, 1) == "\\") ++plus;  // "\ No newline"
    size_t p = plus;
    for (size_t m = minus; m < i && p < lines.size() && lines[p].substr(0, 1) == "+"; ++m) {
      std::string_view a = lines[m].substr(1), b = lines[p].substr(1);
      size_t k = 0;
      while (k < a.size() && k < b.size() && a[k] == b[k]) ++k;
      first[m] = first[p] = k;
      ++p;
      while (p < lines.size() && lines[p].substr(0, 1) == "\\") ++p;
    }
  }
  std::string out;
  for (size_t n = 0; n < lines.size(); ++n) {
    std::string_view l = lines[n];
    std::string shown =
        l.empty() ? std::string()
                  : absl::StrCat(AV(l.substr(0, 1)), Escaped(Window(l.substr(1), first[n])));
    absl::StrAppend(&out, indent, indent, shown, "\n");
  }
  return out;
}

// The field lines and the body diff of a mismatch, each line indented by `indent`.
std::string Details(const ReplayedExchange& x, int context, const std::string& indent) {
  std::string out;
  const Comparison& c = *x.comparison;
  for (const FieldDiff& d : c.diffs) {
    absl::StrAppend(&out, indent, Shown(d.field), ": ", Shown(d.recorded), " -> ", Shown(d.live),
                    "\n");
  }
  if (c.body_prefix_only) {
    // A complete exchange whose body was not stored whole was cut at the body limit; otherwise
    // the recording's own cause (the connection closed, a gap, ...) is named.
    if (x.recorded == nullptr || x.recorded->completion == Completion::kComplete) {
      absl::StrAppend(&out, indent, "(the recorded body was cut at the body limit: compared on ",
                      "its stored prefix)\n");
    } else {
      absl::StrAppend(&out, indent, "(recorded body incomplete (",
                      AV(CompletionName(x.recorded->completion)),
                      x.recorded->reason.empty() ? "" : ": ", Shown(x.recorded->reason),
                      "): compared on its stored bytes)\n");
    }
  }
  if (c.recorded_body_text.size() > kMaxDiffBytes || c.live_body_text.size() > kMaxDiffBytes) {
    absl::StrAppend(&out, indent, "(no body diff: ", c.recorded_body_text.size(), " and ",
                    c.live_body_text.size(), " bytes of text, over ", kMaxDiffBytes, ")\n");
  } else if (c.recorded_body_text != c.live_body_text) {
    std::string diff =
        UnifiedDiff(c.recorded_body_text, c.live_body_text, "recorded", "live", context);
    absl::StrAppend(&out, ReadableDiff(diff, indent));
  }
  return out;
}

std::string SummaryLine(const ReplaySummary& s) {
  std::string out = absl::StrCat("replayed ", s.sent, ": ", s.matched, " matched, ", s.mismatched,
                                 " differ, ", s.errors, " failed");
  if (s.not_compared > 0) absl::StrAppend(&out, ", ", s.not_compared, " not compared");
  absl::StrAppend(&out, "; skipped: ", s.skipped_incomplete, " incomplete, ", s.sampled_out,
                  " sampled out, ", s.selected_out, " selected out");
  if (s.skipped_truncated_body > 0) {
    absl::StrAppend(&out, "; ", s.skipped_truncated_body,
                    " with a request body not stored whole skipped (--send-truncated-bodies)");
  }
  if (s.body_prefix_compared > 0) {
    absl::StrAppend(&out, "; ", s.body_prefix_compared,
                    s.body_prefix_compared == 1 ? " body" : " bodies",
                    " compared on the stored prefix");
  }
  if (s.redacted_headers_dropped > 0) {
    absl::StrAppend(&out, "; ", s.redacted_headers_dropped,
                    s.redacted_headers_dropped == 1 ? " redacted request field" : " redacted request fields",
                    " dropped");
  }
  if (s.redacted_values_sent > 0) {
    absl::StrAppend(&out, "; ", s.redacted_values_sent,
                    s.redacted_values_sent == 1 ? " redaction marker" : " redaction markers",
                    " sent as recorded");
  }
  if (s.stopped) out += "; stopped";
  return out;
}

class TextReport : public ReplayReport {
 public:
  TextReport(std::ostream& out, TextReportOptions options) : out_(out), options_(options) {}

  void Add(const ReplayedExchange& x) override {
    if (Failed(x)) {
      out_ << "FAIL " << Name(x) << ": " << Shown(x.error) << "\n";
    } else if (Differs(x)) {
      std::optional<uint16_t> r = RecordedStatus(x), l = LiveStatus(x);
      out_ << "DIFF " << Name(x) << " status " << StatusText(r);
      if (r != l) out_ << " -> " << StatusText(l);
      out_ << "\n" << Details(x, options_.diff_context, "  ");
    } else if (!options_.show_matches) {
    } else if (x.comparison) {
      out_ << "OK " << Name(x) << " status " << StatusText(LiveStatus(x)) << "\n";
    } else {
      out_ << "SENT " << Name(x) << " status " << StatusText(LiveStatus(x)) << " ("
           << NotComparedWhy(x) << ")\n";
    }
  }

  absl::Status Finish(const ReplaySummary& summary) override {
    out_ << SummaryLine(summary) << "\n";
    out_.flush();
    if (!out_) return absl::DataLossError("the text report's output: write failed");
    return absl::OkStatus();
  }

 private:
  std::ostream& out_;
  TextReportOptions options_;
};

std::string_view KindName(FieldDiff::Kind k) {
  switch (k) {
    case FieldDiff::Kind::kStatus:
      return "status";
    case FieldDiff::Kind::kHeader:
      return "header";
    case FieldDiff::Kind::kBody:
      return "body";
    case FieldDiff::Kind::kJsonValue:
      return "json";
  }
  return "body";
}

// Members in byte order, as docs/json.md's outputs print them.
class JsonReport : public ReplayReport {
 public:
  explicit JsonReport(std::ostream& out) : out_(out) {}

  void Add(const ReplayedExchange& x) override {
    bool failed = Failed(x);
    if (!failed && !Differs(x)) return;
    std::string line;
    {
      JsonWriter w(&line);
      w.Open('{');
      if (!failed) {
        w.Key("bodyPrefixOnly");
        w.Bool(x.comparison->body_prefix_only);
        w.Key("diffs");
        w.Open('[');
        for (const FieldDiff& d : x.comparison->diffs) {
          w.Open('{');
          w.TextMember("field", d.field);
          w.Key("kind");
          w.Str(KindName(d.kind));
          Side(w, "live", d.live);
          Side(w, "recorded", d.recorded);
          w.Close('}');
        }
        w.Close(']');
      } else {
        w.TextMember("error", x.error);
      }
      w.Key("id");
      w.Open('{');
      w.Key("capturePoint");
      w.Uint(x.recorded ? x.recorded->capture_point : 0);
      w.Key("stream");
      w.Uint(x.recorded ? x.recorded->stream_id : 0);
      w.Close('}');
      Status(w, "liveStatus", LiveStatus(x));
      w.TextMember("method", Method(x));
      w.TextMember("path", Path(x));
      Status(w, "recordedStatus", RecordedStatus(x));
      w.Key("round");
      w.Int(x.round);
      w.Key("type");
      w.Str(failed ? "error" : "diff");
      w.Close('}');
      w.Newline();
    }
    out_ << line;
  }

  absl::Status Finish(const ReplaySummary& s) override {
    std::string line;
    {
      JsonWriter w(&line);
      w.Open('{');
      w.Key("bodyPrefixCompared");
      w.Uint(s.body_prefix_compared);
      w.Key("elapsedNs");
      w.Int(s.elapsed_ns);
      w.Key("errors");
      w.Uint(s.errors);
      w.Key("matched");
      w.Uint(s.matched);
      w.Key("mismatched");
      w.Uint(s.mismatched);
      w.Key("notCompared");
      w.Uint(s.not_compared);
      w.Key("read");
      w.Uint(s.read);
      w.Key("redactedHeadersDropped");
      w.Uint(s.redacted_headers_dropped);
      w.Key("redactedValuesSent");
      w.Uint(s.redacted_values_sent);
      w.Key("sampledOut");
      w.Uint(s.sampled_out);
      w.Key("selectedOut");
      w.Uint(s.selected_out);
      w.Key("sent");
      w.Uint(s.sent);
      w.Key("skippedIncomplete");
      w.Uint(s.skipped_incomplete);
      w.Key("skippedTruncatedBody");
      w.Uint(s.skipped_truncated_body);
      w.Key("stopped");
      w.Bool(s.stopped);
      w.Key("type");
      w.Str("summary");
      w.Close('}');
      w.Newline();
    }
    out_ << line;
    out_.flush();
    if (!out_) return absl::DataLossError("the JSON report's output: write failed");
    return absl::OkStatus();
  }

 private:
  static void Side(JsonWriter& w, std::string_view key, const std::optional<std::string>& v) {
    if (v) {
      w.TextMember(key, *v);
    } else {
      w.Key(key);
      w.Null();
    }
  }
  static void Status(JsonWriter& w, std::string_view key, std::optional<uint16_t> s) {
    w.Key(key);
    if (s) {
      w.Uint(*s);
    } else {
      w.Null();
    }
  }

  std::ostream& out_;
};

// Text for an XML 1.0 document (section 2.2's Char production): markup characters as
// references, and every byte that is not part of an allowed UTF-8 character (control bytes,
// broken sequences, U+FFFE) written as the four characters \xHH. "]]>" cannot appear: ">" is
// always &gt;.
std::string Xml(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&apos;";
          break;
        case '\t':
        case '\n':
        case '\r':
          absl::StrAppendFormat(&out, "&#%d;", c);
          break;
        default:
          if (c < 0x20 || c == 0x7f) {
            absl::StrAppendFormat(&out, "\\x%02x", c);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // A multi-byte UTF-8 sequence (RFC 3629 section 4): its length and smallest value.
    size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
    uint32_t cp = n == 4 ? c & 0x07 : n == 3 ? c & 0x0f : c & 0x1f;
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (ok) {
      uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
      ok = cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) && cp != 0xfffe &&
           cp != 0xffff;
    }
    if (!ok) {
      absl::StrAppendFormat(&out, "\\x%02x", c);
      ++i;
      continue;
    }
    out.append(s.data() + i, n);
    i += n;
  }
  return out;
}

std::string Seconds(int64_t ns) { return absl::StrFormat("%.6f", static_cast<double>(ns) / 1e9); }

// write(2) until all of `data` is out; 0 or the errno.
int WriteAll(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}

// Whether `path` names something that exists and must be written into rather than replaced: a
// symbolic link (replacing it would drop the link) or anything but a regular file (a FIFO, a
// device such as /dev/full or /dev/stdout). A rename onto such a path would replace the node.
bool WriteInPlace(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode);
}

// The cases are spooled to an unnamed temporary file as they come (the counts that head the
// document are known only at the end), so memory does not grow with the run.
class JUnitReport : public ReplayReport {
 public:
  JUnitReport(std::string path, int spool) : path_(std::move(path)), spool_(spool) {}
  ~JUnitReport() override { ::close(spool_); }

  void Add(const ReplayedExchange& x) override {
    ++tests_;
    // The target: the address the live request went to, else its authority.
    std::string target;
    if (x.live.destination.ip.family != 0) {
      target = "http://" + x.live.destination.ToString();
    } else if (x.live.request) {
      target = x.live.request->scheme.empty() ? "http://" : x.live.request->scheme + "://";
      target += x.live.request->authority;
    }
    uint64_t ns = x.live.response_end_ns;
    std::string c =
        absl::StrCat("    <testcase name=\"", Xml(Name(x)), "\" classname=\"", Xml(target),
                     "\" time=\"", Seconds(static_cast<int64_t>(ns)), "\"");
    if (Failed(x)) {
      ++errors_;
      absl::StrAppend(&c, ">\n      <error type=\"transport\" message=\"", Xml(x.error), "\">",
                      Xml(x.error), "</error>\n    </testcase>\n");
    } else if (Differs(x)) {
      ++failures_;
      std::string message;
      for (const FieldDiff& d : x.comparison->diffs) {
        if (!message.empty()) message += ", ";
        message += d.field;
      }
      std::optional<uint16_t> r = RecordedStatus(x), l = LiveStatus(x);
      std::string text =
          absl::StrCat("status ", StatusText(r), " -> ", StatusText(l), "\n", Details(x, 3, "  "));
      absl::StrAppend(&c, ">\n      <failure type=\"mismatch\" message=\"differs: ", Xml(message),
                      "\">", Xml(text), "</failure>\n    </testcase>\n");
    } else if (!x.comparison) {
      ++skipped_;
      absl::StrAppend(&c, ">\n      <skipped message=\"", Xml(NotComparedWhy(x)),
                      "\"/>\n    </testcase>\n");
    } else {
      c += "/>\n";
    }
    if (spool_error_ == 0) spool_error_ = WriteAll(spool_, c);
  }

  absl::Status Finish(const ReplaySummary& summary) override {
    if (spool_error_ != 0) {
      return absl::DataLossError(
          absl::StrCat("--junit ", path_, ": the temporary file: ", std::strerror(spool_error_)));
    }
    std::string counts =
        absl::StrCat("tests=\"", tests_, "\" failures=\"", failures_, "\" errors=\"", errors_,
                     "\" skipped=\"", skipped_, "\" time=\"", Seconds(summary.elapsed_ns), "\"");
    const std::string head =
        absl::StrCat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tapreplay\" ",
                     counts, ">\n  <testsuite name=\"tapreplay\" ", counts, ">\n");
    const std::string tail = "  </testsuite>\n</testsuites>\n";
    // A regular file (or none) is written beside the target and renamed into place: a reader
    // never sees half a file. Anything else is written into (a rename would replace the node).
    const bool in_place = WriteInPlace(path_);
    std::string tmp = path_ + ".XXXXXX";
    int fd = in_place ? ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                      : ::mkstemp(tmp.data());
    if (fd < 0) {
      return absl::PermissionDeniedError(absl::StrCat(
          "--junit ", path_, in_place ? ": open: " : ": cannot create: ", std::strerror(errno)));
    }
    if (!in_place) ::fchmod(fd, 0644);
    int err = WriteAll(fd, head);
    if (err == 0 && ::lseek(spool_, 0, SEEK_SET) != 0) err = errno;
    std::string buf(size_t{1} << 16, '\0');
    while (err == 0) {
      ssize_t n = ::read(spool_, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) err = errno;
      if (n <= 0) break;
      err = WriteAll(fd, std::string_view(buf.data(), static_cast<size_t>(n)));
    }
    if (err == 0) err = WriteAll(fd, tail);
    if (err != 0) {
      ::close(fd);
      if (!in_place) ::unlink(tmp.c_str());
      return absl::DataLossError(
          absl::StrCat("--junit ", path_, ": write failed: ", std::strerror(err)));
    }
    if (::close(fd) != 0 || (!in_place && ::rename(tmp.c_str(), path_.c_str()) != 0)) {
      err = errno;
      if (!in_place) ::unlink(tmp.c_str());
      return absl::DataLossError(absl::StrCat("--junit ", path_, ": ", std::strerror(err)));
    }
    return absl::OkStatus();
  }

 private:
  std::string path_;
  int spool_;
  int spool_error_ = 0;
  uint64_t tests_ = 0, failures_ = 0, errors_ = 0, skipped_ = 0;
};

// The directory TMPDIR names, else /tmp.
std::string TempDir() {
  const char* dir = std::getenv("TMPDIR");
  return dir != nullptr && *dir != '\0' ? dir : "/tmp";
}

}  // namespace

std::unique_ptr<ReplayReport> MakeTextReport(std::ostream& out, TextReportOptions options) {
  return std::make_unique<TextReport>(out, options);
}

std::unique_ptr<ReplayReport> MakeJsonReport(std::ostream& out) {
  return std::make_unique<JsonReport>(out);
}

absl::StatusOr<std::unique_ptr<ReplayReport>> MakeJUnitReport(const std::string& path) {
  if (WriteInPlace(path)) {
    if (::access(path.c_str(), W_OK) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("--junit ", path, ": cannot write: ", std::strerror(errno)));
    }
  } else {
    // The file is created at the end: a directory it cannot be created in is found now.
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "."
                            : slash == 0               ? "/"
                                                       : path.substr(0, slash);
    if (::access(dir.c_str(), W_OK | X_OK) != 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("--junit ", path, ": cannot create: ", std::strerror(errno)));
    }
  }
  std::string spool = TempDir() + "/tapreplay-junit.XXXXXX";
  int fd = ::mkstemp(spool.data());
  if (fd < 0) {
    return absl::PermissionDeniedError(absl::StrCat("--junit ", path, ": a temporary file in ",
                                                    TempDir(), ": ", std::strerror(errno)));
  }
  ::unlink(spool.c_str());  // unnamed: gone with the descriptor
  return std::make_unique<JUnitReport>(path, fd);
}

}  // namespace tapkit::replay
