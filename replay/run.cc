#include "replay/run.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "format/http_text.h"
#include "format/order.h"
#include "format/program.h"
#include "format/redact.h"
#include "re2/re2.h"
#include "recorder/stop_signals.h"
#include "replay/capture_report.h"
#include "replay/compare.h"
#include "replay/replay_request.h"
#include "replay/report.h"

namespace tapkit::replay {
namespace {

// Debian's Abseil has its own string_view.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status Bad(std::string_view flag, std::string_view value, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(A(flag), " ", A(value), ": ", A(why)));
}

// "" shown as "" so the line still names what was given.
std::string Shown(std::string_view value) {
  return value.empty() ? std::string("\"\"") : std::string(value);
}

// A number from lo to hi. The bounds are shown as written (1000, 10000000, 0.001).
absl::StatusOr<double> NumberIn(std::string_view flag, std::string_view text, double lo,
                                double hi) {
  auto shown = [](double v) {
    return v == std::floor(v) ? absl::StrCat(static_cast<int64_t>(v)) : absl::StrCat(v);
  };
  double v = 0;
  if (!absl::SimpleAtod(A(text), &v) || !std::isfinite(v) || v < lo || v > hi) {
    return Bad(flag, Shown(text), absl::StrCat("not a number from ", shown(lo), " to ", shown(hi)));
  }
  return v;
}

absl::StatusOr<int64_t> Integer(std::string_view flag, std::string_view text, int64_t lo,
                                int64_t hi) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(A(text), &v) || v < lo || v > hi) {
    return Bad(flag, Shown(text), absl::StrCat("not a whole number from ", lo, " to ", hi));
  }
  return v;
}

// Flags that would silently ignore one another: each pair is refused on one line.
struct Conflict {
  std::string_view a, b, why;
};
constexpr std::string_view kPacing =
    "one pacing: the recorded gaps divided by --speed, --rate requests per second, or --max";
constexpr std::string_view kNothingCompared = "--no-compare sends only; nothing is compared";
constexpr Conflict kConflicts[] = {
    {"speed", "rate", kPacing},
    {"speed", "max", kPacing},
    {"rate", "max", kPacing},
    {"no-compare", "ignore-header", kNothingCompared},
    {"no-compare", "ignore-json-path", kNothingCompared},
    {"no-compare", "unordered-json-path", kNothingCompared},
    {"no-compare", "no-default-ignore", kNothingCompared},
    {"no-compare", "rules", kNothingCompared},
    {"no-compare", "redact-key-file", kNothingCompared},
    {"no-compare", "verbose", kNothingCompared},
};

// Fans one replayed exchange out to every report, keeps the tally a report's Finish needs when
// Replay ends with an error (it then returns no summary), and flushes the stream report.
class Reports {
 public:
  explicit Reports(std::ostream* stream) : stream_(stream) {}
  // The report printed to `stream` (text or JSON lines).
  void PushStream(std::unique_ptr<ReplayReport> r) {
    stream_report_ = r.get();
    reports_.push_back(std::move(r));
  }
  // A report written to a file (JUnit, the -w capture).
  void Push(std::unique_ptr<ReplayReport> r) { reports_.push_back(std::move(r)); }

  void Add(const ReplayedExchange& x) {
    errno = 0;
    for (auto& r : reports_) r->Add(x);
    FlushStream();
    ++tally_.sent;
    tally_.redacted_headers_dropped += x.redacted_headers_dropped;
    tally_.redacted_values_sent += x.redacted_values_sent;
    if (!x.error.empty()) {
      ++tally_.errors;
    } else if (x.comparison) {
      ++(x.comparison->matched() ? tally_.matched : tally_.mismatched);
      if (x.comparison->body_prefix_only) ++tally_.body_prefix_compared;
    } else {
      ++tally_.not_compared;
    }
  }

  // Finishes every report; the first error is returned, the others are still finished. Without
  // `with_stream`, the stream report is left unfinished (no summary after an error that came
  // before anything was replayed: the error line says it all); files are always finished, so
  // none is left half-written.
  // A failed write to the stream is "write error on standard output: REASON" (as tapcat's),
  // `stream_name` naming it.
  absl::Status Finish(const ReplaySummary& summary, bool with_stream,
                      std::string_view stream_name) {
    absl::Status first;
    for (auto& r : reports_) {
      if (!with_stream && r.get() == stream_report_) continue;
      errno = 0;
      absl::Status s = r->Finish(summary);
      if (r.get() == stream_report_) {
        FlushStream();
        if (stream_errno_ != 0) {
          s = absl::DataLossError(
              absl::StrCat("write error on ", A(stream_name), ": ", std::strerror(stream_errno_)));
        }
      }
      if (first.ok() && !s.ok()) first = s;
    }
    FlushStream();
    return first;
  }

  const ReplaySummary& Tally() const { return tally_; }

 private:
  // Flushes the stream (its buffer goes to the descriptor: a full disk shows here) and keeps
  // the errno of its first failure (the stream's write, or a report's flush just before).
  void FlushStream() {
    if (stream_ == nullptr) return;
    if (!*stream_) {  // a report's own flush failed just before: its errno is still set
      if (stream_errno_ == 0) stream_errno_ = errno != 0 ? errno : EIO;
      return;
    }
    errno = 0;
    stream_->flush();
    if (!*stream_ && stream_errno_ == 0) stream_errno_ = errno != 0 ? errno : EIO;
  }

  std::ostream* stream_;
  int stream_errno_ = 0;
  ReplayReport* stream_report_ = nullptr;
  std::vector<std::unique_ptr<ReplayReport>> reports_;
  ReplaySummary tally_;
};

// Whether an input is standard input and a stream (a pipe from taprec -w -, a terminal): its
// end, or the Ctrl+C that ends the tap feeding it, is how such a replay ends.
bool ReadsAStreamOnStdin(const std::vector<std::string>& inputs) {
  struct stat st {};
  for (const std::string& in : inputs) {
    if (in == "-") return ::fstat(STDIN_FILENO, &st) == 0 && !S_ISREG(st.st_mode);
  }
  return false;
}

}  // namespace

absl::StatusOr<Header> ParseSetHeader(std::string_view text) {
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return Bad("--set-header", Shown(text), "give 'Name: value'");
  }
  std::string_view name = text.substr(0, colon);
  if (!IsToken(name)) {
    return Bad("--set-header", Shown(text),
               "the name is not a field name (RFC 9110 section 5.6.2: a token)");
  }
  if (internal::IsHopByHop(absl::AsciiStrToLower(A(name)))) {
    return Bad("--set-header", Shown(text),
               "tapreplay frames each message itself; a framing or hop-by-hop field cannot be "
               "set (RFC 9110 section 7.6.1, RFC 9112 section 6)");
  }
  std::string_view value = text.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos) {
    return Bad("--set-header", name,
               "the value holds CR, LF or NUL (RFC 9110 section 5.5 forbids them)");
  }
  return Header{std::string(name), std::string(value)};
}

absl::StatusOr<PathRewrite> ParsePathRewrite(std::string_view text) {
  size_t eq = std::string_view::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;  // the escaped character is the regex's
    } else if (text[i] == '=') {
      eq = i;
      break;
    }
  }
  if (eq == std::string_view::npos) {
    return Bad("--rewrite-path", Shown(text), "give 'REGEX=REPLACEMENT' (\\= for a literal =)");
  }
  PathRewrite rw{std::string(text.substr(0, eq)), std::string(text.substr(eq + 1))};
  if (rw.regex.empty()) return Bad("--rewrite-path", Shown(text), "the regex is empty");
  RE2::Options o;
  o.set_log_errors(false);
  RE2 re(rw.regex, o);
  if (!re.ok()) return Bad("--rewrite-path", Shown(text), absl::StrCat("regex: ", re.error()));
  std::string why;
  if (!re.CheckRewriteString(rw.replacement, &why)) {
    return Bad("--rewrite-path", Shown(text), absl::StrCat("replacement: ", why));
  }
  return rw;
}

std::string WrittenFlag(std::string_view name) {
  if (name == "verbose") return "-v";
  if (name == "output") return "-o";
  if (name == "write") return "-w";
  return absl::StrCat("--", A(name));
}

bool SameFile(const std::string& a, const std::string& b) {
  if (a == b) return true;
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

absl::StatusOr<ReplayPlan> PlanReplay(const ReplayToolFlags& f) {
  auto given = [&](std::string_view name) { return f.given.count(std::string(name)) > 0; };
  for (const Conflict& c : kConflicts) {
    // With -w the key file keys the capture's redaction too: not ignored.
    if (c.b == "redact-key-file" && given("write") && !f.no_redact) continue;
    if (given(c.a) && given(c.b)) {
      return absl::InvalidArgumentError(absl::StrCat(WrittenFlag(c.a), " and ", WrittenFlag(c.b),
                                                     " cannot be used together (", A(c.why), ")"));
    }
  }
  ReplayPlan plan;
  if (f.output == "text") {
    plan.output = ReplayOutput::kText;
  } else if (f.output == "json") {
    plan.output = ReplayOutput::kJson;
  } else {
    return Bad("-o", Shown(f.output), "not text or json");
  }
  if (f.verbose && plan.output == ReplayOutput::kJson) {
    return absl::InvalidArgumentError(
        "-v and -o json cannot be used together (-o json prints the exchanges that differ or "
        "failed, and a summary)");
  }
  if (given("sample-seed") && !given("sample")) {
    return Bad("--sample-seed", Shown(f.sample_seed), "goes with --sample PERCENT");
  }
  if (!f.selection.incomplete.empty() && !f.include_incomplete) {
    return absl::InvalidArgumentError(
        absl::StrCat("--incomplete ", absl::StrJoin(f.selection.incomplete, ","),
                     ": selects exchanges that did not complete, which tapreplay skips unless "
                     "--include-incomplete is given too"));
  }
  if (f.inputs.empty()) {
    return absl::InvalidArgumentError("no input file (give IN.tap, or - for standard input)");
  }
  if (f.inputs.size() > 1) {
    // Exchange ids are unique within one capture only (replay.h, ReplayOptions::inputs).
    return absl::InvalidArgumentError(absl::StrCat(
        Shown(f.inputs[1]), ": tapreplay takes one capture (or -); merge several first: ",
        "tapfilter a.tap b.tap -w - | tapreplay - ..."));
  }
  if (f.target.empty()) {
    return absl::InvalidArgumentError("--target is required (--target http://HOST:PORT)");
  }

  ReplayOptions& o = plan.replay;
  o.inputs = f.inputs;
  o.target = f.target;
  o.command_line = f.command_line;
  o.keep_authority = f.keep_authority;
  o.include_incomplete = f.include_incomplete;
  o.send_truncated_bodies = f.send_truncated_bodies;

  absl::StatusOr<Selection> selection = Selection::Parse(f.selection);
  if (!selection.ok()) return selection.status();
  plan.warnings = selection->Warnings();
  o.selection = *std::move(selection);

  o.pacing = Pacing::kRecorded;  // the tool's default (the C++ API's is kMax)
  if (given("speed")) {
    absl::StatusOr<double> v = NumberIn("--speed", f.speed, kMinSpeed, kMaxSpeed);
    if (!v.ok()) return v.status();
    o.speed = *v;
  } else if (given("rate")) {
    absl::StatusOr<double> v = NumberIn("--rate", f.rate, kMinRate, kMaxRate);
    if (!v.ok()) return v.status();
    o.pacing = Pacing::kRate;
    o.rate = *v;
  } else if (f.max) {
    o.pacing = Pacing::kMax;
  }
  if (given("concurrency")) {
    absl::StatusOr<int64_t> v = Integer("--concurrency", f.concurrency, 0, kMaxLanes);
    if (!v.ok()) return v.status();
    o.concurrency = static_cast<int>(*v);
  }
  if (given("loop")) {
    absl::StatusOr<int64_t> v = Integer("--loop", f.loop, 1, 1'000'000'000);
    if (!v.ok()) return v.status();
    o.loop = static_cast<int>(*v);
  }
  if (given("sample")) {
    absl::string_view text = absl::StripSuffix(f.sample, "%");
    double v = 0;
    if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) || v <= 0 || v > 100) {
      return Bad("--sample", Shown(f.sample), "not a percentage above 0 and at most 100");
    }
    o.sample_percent = v;
  }
  if (given("sample-seed")) {
    uint64_t seed = 0;
    if (!absl::SimpleAtoi(f.sample_seed, &seed)) {
      return Bad("--sample-seed", Shown(f.sample_seed), "not a whole number from 0 to 2^64-1");
    }
    o.sample_seed = seed;
  }
  for (const std::string& s : f.set_headers) {
    absl::StatusOr<Header> h = ParseSetHeader(s);
    if (!h.ok()) return h.status();
    o.set_headers.push_back(*std::move(h));
  }
  for (const std::string& name : f.drop_headers) {
    if (!IsToken(name)) {
      return Bad("--drop-header", Shown(name),
                 "not a field name (RFC 9110 section 5.6.2: a token)");
    }
    o.drop_headers.push_back(name);
  }
  for (const std::string& s : f.rewrite_paths) {
    absl::StatusOr<PathRewrite> rw = ParsePathRewrite(s);
    if (!rw.ok()) return rw.status();
    o.path_rewrites.push_back(*std::move(rw));
  }
  if (given("timeout")) {
    absl::StatusOr<int64_t> t = ParseDurationNs(f.timeout);
    if (!t.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--timeout ", t.status().message()));
    }
    if (*t <= 0) return Bad("--timeout", Shown(f.timeout), "must be above 0");
    o.timeout_ns = *t;
  }

  o.compare = !f.no_compare;
  CompareOptions& c = o.compare_options;
  c.default_ignore_headers = !f.no_default_ignore;
  c.flags.ignore_headers = f.ignore_headers;
  c.flags.ignore_json_paths = f.ignore_json_paths;
  c.flags.unordered_json_paths = f.unordered_json_paths;
  c.rules_file = f.rules_file;
  if (given("redact-key-file")) {
    absl::StatusOr<std::string> key = ReadRedactionKey(f.redact_key_file);
    if (!key.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--redact-key-file ", key.status().message()));
    }
    c.redaction_key = *std::move(key);
  }
  if (o.compare) {
    // The rules and patterns are checked now, before any report file is created.
    absl::StatusOr<std::shared_ptr<const Comparer>> comparer = Comparer::Create(c);
    if (!comparer.ok()) return comparer.status();
    for (const std::string& w : (*comparer)->warnings()) plan.warnings.push_back(w);
  }

  plan.show_matches = f.verbose;
  if (given("junit")) {
    if (f.junit.empty() || f.junit == "-") {
      return Bad("--junit", Shown(f.junit),
                 "give a file name (the XML is written whole at the end)");
    }
    plan.junit_path = f.junit;
  }
  if (given("write")) {
    if (f.write.empty())
      return Bad("-w", Shown(f.write), "give a file name, or - for standard output");
    plan.capture_path = f.write;
  }
  for (const std::string& in : f.inputs) {
    if (in == "-") continue;
    for (const auto& [flag, out] :
         {std::pair<std::string_view, const std::string*>{"-w", &plan.capture_path},
          {"--junit", &plan.junit_path}}) {
      if (!out->empty() && *out != "-" && SameFile(in, *out)) {
        return Bad(flag, *out, "is an input; it would be overwritten");
      }
    }
  }
  if (!plan.junit_path.empty() && !plan.capture_path.empty() &&
      SameFile(plan.junit_path, plan.capture_path)) {
    return Bad("--junit", plan.junit_path, "is -w's file too");
  }
  if (f.no_redact && plan.capture_path.empty()) {
    return absl::InvalidArgumentError(
        "--no-redact goes with -w (only the -w capture is redacted; the reports show values as "
        "they are)");
  }
  if (!plan.capture_path.empty()) {
    absl::StatusOr<std::optional<Redactor>> redactor =
        CaptureRedactor(f.no_redact, f.redact_key_file);
    if (!redactor.ok()) return redactor.status();
    plan.capture_redactor = *std::move(redactor);
  }
  return plan;
}

int RunReplayTool(const ReplayToolFlags& flags, std::ostream& out, std::ostream& err) {
  absl::StatusOr<ReplayPlan> plan = PlanReplay(flags);
  if (!ToldPlan(plan, err)) return kExitError;

  // -w - takes standard output; the readable report moves to standard error.
  std::ostream& stream = plan->capture_path == "-" ? err : out;
  Reports reports(&stream);
  if (plan->output == ReplayOutput::kJson) {
    reports.PushStream(MakeJsonReport(stream));
  } else {
    TextReportOptions text;
    text.show_matches = plan->show_matches;
    reports.PushStream(MakeTextReport(stream, text));
  }
  if (!plan->junit_path.empty()) {
    absl::StatusOr<std::unique_ptr<ReplayReport>> junit = MakeJUnitReport(plan->junit_path);
    if (!junit.ok()) {
      err << "tapreplay: " << junit.status().message() << "\n";
      return kExitError;
    }
    reports.Push(*std::move(junit));
  }
  if (!plan->capture_path.empty()) {
    absl::StatusOr<std::unique_ptr<ReplayReport>> capture =
        MakeCaptureReport(plan->capture_path, plan->replay, plan->capture_redactor);
    if (!capture.ok()) {
      err << "tapreplay: " << capture.status().message() << "\n";
      return kExitError;
    }
    reports.Push(*std::move(capture));
  }

  // SA_RESTART: a read of standard input goes on after the signal and the engine stops at its
  // next check; SIGPIPE ignored: a closed standard output is a write error, the reports finish.
  StopSignals signals(/*restart=*/true, /*ignore_sigpipe=*/true);
  plan->replay.stop = [] { return StopSignals::stopped().load(); };
  plan->replay.notice = [&err](const std::string& line) { err << "tapreplay: " << line << "\n"; };

  bool warned_markers = false;
  absl::StatusOr<ReplaySummary> result = Replay(plan->replay, [&](const ReplayedExchange& x) {
    if (x.redacted_values_sent > 0 && !warned_markers) {
      warned_markers = true;
      err << "tapreplay: warning: redaction markers (" << kRedactedPrefix
          << "...) in a recorded path or body are sent as recorded; the target sees the markers, "
             "not the original values\n";
    }
    reports.Add(x);
  });
  ReplaySummary summary = result.ok() ? *result : reports.Tally();
  if (!result.ok()) summary.stopped = StopSignals::stopped();
  absl::Status finished =
      reports.Finish(summary, result.ok() || summary.sent > 0,
                     plan->capture_path == "-" ? "standard error" : "standard output");
  if (!result.ok()) {
    err << "tapreplay: " << result.status().message() << "\n";
    return kExitError;
  }
  if (!finished.ok()) {
    err << "tapreplay: " << finished.message() << "\n";
    return kExitError;
  }
  if (summary.stopped) {
    const int sig = StopSignals::last_signal();
    err << "tapreplay: interrupted by " << (sig == SIGTERM ? "SIGTERM" : "SIGINT") << ": "
        << summary.sent << (summary.sent == 1 ? " request" : " requests")
        << " sent; the reports hold those\n";
    // Most of the capture may never have been sent: not a pass. A live stream on standard
    // input (shadowing) has no end but an interrupt: its results decide.
    if (!ReadsAStreamOnStdin(plan->replay.inputs)) return kExitError;
  }
  return summary.mismatched > 0 || summary.errors > 0 ? kExitMismatch : kExitOk;
}

}  // namespace tapkit::replay
