#include "replay/serve_run.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "format/http_text.h"
#include "format/metadata.h"
#include "format/order.h"
#include "format/program.h"
#include "format/redact.h"
#include "recorder/stop_signals.h"
#include "replay/capture_report.h"
#include "replay/serve_log.h"

namespace tapkit::replay {
namespace {

// --delay D: at most 1 h, the cap serve.h puts on a recorded delay.
constexpr int64_t kMaxFixedDelayNs = int64_t{3600} * 1'000'000'000;

// Debian's Abseil has its own string_view.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status Bad(std::string_view flag, std::string_view value, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(A(flag), " ", value.empty() ? "\"\"" : A(value), ": ", A(why)));
}

// Flags of replaying against a target: with --serve they would be ignored.
constexpr std::string_view kReplayOnly[] = {"target",
                                            "speed",
                                            "rate",
                                            "max",
                                            "concurrency",
                                            "loop",
                                            "sample",
                                            "sample-seed",
                                            "drop-header",
                                            "rewrite-path",
                                            "include-incomplete",
                                            "send-truncated-bodies",
                                            "no-compare",
                                            "ignore-header",
                                            "ignore-json-path",
                                            "unordered-json-path",
                                            "no-default-ignore",
                                            "rules",
                                            "junit",
                                            "verbose"};
// Flags of the mock server: without --serve they would be ignored.
constexpr std::string_view kServeOnly[] = {
    "match-header", "match-body", "ignore-param", "match-host", "strict",      "session-header",
    "miss-status",  "upstream",   "delay",        "threads",    "idle-timeout"};

std::string Plural(uint64_t n, std::string_view one, std::string_view many) {
  return absl::StrCat(n, " ", n == 1 ? A(one) : A(many));
}

// --serve -w stores the whole body the server received: it refuses request bodies past
// kMaxRequestBody (serve.h) and fails an upstream answer past the same 64 MiB (serve.cc's
// kMaxUpstreamBody), so no body handed to on_recorded is cut.
constexpr uint64_t kPassThroughBodyLimit = kMaxRequestBody;

// The log's queue, in lines: past it a line is dropped and counted.
constexpr size_t kLogQueueLines = 65536;
// The -w capture's queue, in bytes of bodies and fields: past it a pass-through waits for room.
constexpr size_t kCaptureQueueBytes = size_t{256} << 20;
// After the server stopped, how long standard output may take to write the queued log lines.
constexpr auto kLogDrainGrace = std::chrono::seconds(5);

// Items handed from the server's callbacks to a thread of their own, so that a writer that does
// not keep up (a standard output nobody reads, a slow disk) never holds the server: the callbacks
// run under its lock, one at a time (serve.h), and a blocked one would stop every answer and Stop.
// At most `capacity` units (`cost` of each item) wait; past it Push drops the item and counts it
// (kDrop) or waits for room (kWait). The thread takes every queued item at once, writes them,
// then calls `flush` (may be empty): under load one wake-up and one flush serve many items, and
// Push wakes the thread only when the queue was empty (otherwise it is awake already). Push from
// any thread; Finish once, from the owner's.
template <typename T>
class WriterThread {
 public:
  enum class Full : uint8_t { kDrop, kWait };
  WriterThread(size_t capacity, Full full, std::function<size_t(const T&)> cost,
               std::function<void(T)> write, std::function<void()> flush = {})
      : state_(std::make_shared<State>()) {
    state_->capacity = capacity;
    state_->full = full;
    state_->cost = std::move(cost);
    state_->write = std::move(write);
    state_->flush = std::move(flush);
    thread_ = std::thread([state = state_] { Drain(*state); });
  }
  ~WriterThread() {
    if (thread_.joinable()) Finish(std::chrono::hours(1));
  }
  WriterThread(const WriterThread&) = delete;
  WriterThread& operator=(const WriterThread&) = delete;

  void Push(T item) {
    State& s = *state_;
    const size_t cost = s.cost(item);
    std::unique_lock<std::mutex> lock(s.mu);
    // An item over the whole capacity is taken when nothing else waits.
    auto room = [&] { return s.used == 0 || s.used + cost <= s.capacity; };
    if (s.full == Full::kWait) s.room.wait(lock, [&] { return s.closed || room(); });
    if (s.closed || !room()) {
      ++s.dropped;
      return;
    }
    s.used += cost;
    const bool was_empty = s.items.empty();
    s.items.emplace_back(cost, std::move(item));
    if (was_empty) s.ready.notify_one();  // a non-empty queue has its writer awake already
  }

  // Takes no more items and waits up to `grace` for those queued to be written. True when they
  // were (the thread has ended); false when the writer is still blocked: the thread is left
  // behind, detached, and the items it did not write are counted as dropped.
  bool Finish(std::chrono::steady_clock::duration grace) {
    State& s = *state_;
    std::unique_lock<std::mutex> lock(s.mu);
    s.closed = true;
    s.ready.notify_all();
    s.room.notify_all();
    if (s.done_cv.wait_for(lock, grace, [&] { return s.done; })) {
      lock.unlock();
      thread_.join();
      return true;
    }
    s.dropped += s.items.size() + s.in_hand;
    s.items.clear();
    lock.unlock();
    thread_.detach();
    return false;
  }

  // Items not written: dropped when the queue was full, or left when Finish gave up.
  uint64_t dropped() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->dropped;
  }

 private:
  // Shared with the thread, which may outlive this object (Finish giving up).
  struct State {
    std::mutex mu;
    std::condition_variable ready, room, done_cv;
    std::deque<std::pair<size_t, T>> items;  // (cost, item)
    size_t capacity = 0;
    size_t used = 0;
    Full full = Full::kDrop;
    bool closed = false;
    bool done = false;
    uint64_t dropped = 0;
    size_t in_hand = 0;  // items the thread took and has not finished writing
    std::function<size_t(const T&)> cost;
    std::function<void(T)> write;
    std::function<void()> flush;
  };

  static void Drain(State& s) {
    std::unique_lock<std::mutex> lock(s.mu);
    for (;;) {
      s.ready.wait(lock, [&] { return s.closed || !s.items.empty(); });
      if (s.items.empty()) break;
      std::deque<std::pair<size_t, T>> batch;
      batch.swap(s.items);
      s.used = 0;
      s.in_hand = batch.size();
      s.room.notify_all();
      lock.unlock();
      for (auto& [cost, item] : batch) s.write(std::move(item));
      if (s.flush) s.flush();
      lock.lock();
      s.in_hand = 0;
    }
    s.done = true;
    s.done_cv.notify_all();
  }

  std::shared_ptr<State> state_;
  std::thread thread_;
};

size_t FieldBytes(const std::vector<Header>& fields) {
  size_t n = 0;
  for (const Header& h : fields) n += h.name.size() + h.value.size();
  return n;
}

// What an exchange holds in memory, roughly: its bodies and fields.
size_t ExchangeBytes(const Exchange& x) {
  size_t n = sizeof(Exchange);
  if (x.request) n += x.request->body.data.size() + FieldBytes(x.request->headers);
  if (x.response) n += x.response->body.data.size() + FieldBytes(x.response->headers);
  return n;
}

// The -w capture's header: tapreplay wrote it; capture point 0 is the upstream (kind "replay",
// as tapreplay -w names its target), the inputs served and the listen address as extras.
CaptureMetadata PassThroughHeader(const ServePlan& plan) {
  CaptureMetadata m = NewCaptureMetadata("tapreplay");
  m.target = plan.serve.upstream;
  m.command_line = plan.command_line;
  m.capture_points = {CapturePointInfo{0, "replay", plan.serve.upstream, {}, {}}};
  m.extra.emplace_back("tapreplay.serve", plan.serve.listen);
  for (const std::string& in : plan.inputs) {
    m.extra.emplace_back("tapreplay.source", in == "-" ? "<stdin>" : in);
  }
  return m;
}

}  // namespace

absl::Status CheckModeFlags(const std::set<std::string>& given) {
  const bool serve = given.count("serve") > 0;
  if (serve) {
    for (std::string_view name : kReplayOnly) {
      if (given.count(std::string(name))) {
        return absl::InvalidArgumentError(
            absl::StrCat(WrittenFlag(name),
                         " cannot be used with --serve (it belongs to replaying against "
                         "--target; --serve stands in for the recorded service)"));
      }
    }
  } else {
    for (std::string_view name : kServeOnly) {
      if (given.count(std::string(name))) {
        return absl::InvalidArgumentError(
            absl::StrCat(WrittenFlag(name),
                         " goes with --serve ADDR:PORT (it is an option of the "
                         "mock server)"));
      }
    }
  }
  return absl::OkStatus();
}

ServeToolFlags WithSharedFlags(ServeToolFlags s, const ReplayToolFlags& f) {
  s.inputs = f.inputs;
  s.command_line = f.command_line;
  s.set_headers = f.set_headers;
  s.keep_authority = f.keep_authority;
  s.timeout = f.timeout;
  s.write = f.write;
  s.no_redact = f.no_redact;
  s.redact_key_file = f.redact_key_file;
  s.output = f.output;
  s.selection = f.selection;
  s.given = f.given;
  return s;
}

absl::StatusOr<uint16_t> ParseMissStatus(std::string_view text) {
  int v = 0;
  if (!absl::SimpleAtoi(A(text), &v)) {
    return Bad("--miss-status", text, "not a number (give a status from 200 to 599)");
  }
  if (v >= 100 && v <= 199) {
    return Bad("--miss-status", text,
               "1xx is interim (RFC 9110 section 15.2): it cannot end an exchange; give a final "
               "status from 200 to 599");
  }
  if (v < 200 || v > 599) {
    return Bad("--miss-status", text,
               "out of range: give a status from 200 to 599 (RFC 9110 section 15)");
  }
  return static_cast<uint16_t>(v);
}

std::string RedactedHeadersNotice(const std::vector<Exchange>& recorded,
                                  const std::vector<Header>& set_headers) {
  std::set<std::string> replaced;
  for (const Header& h : set_headers) replaced.insert(absl::AsciiStrToLower(h.name));
  std::set<std::string> names;  // lower-cased, sorted
  uint64_t responses = 0;
  for (const Exchange& x : recorded) {
    if (!x.response) continue;
    bool marked = false;
    for (const Header& h : x.response->headers) {
      if (!IsRedactionMarker(h.value)) continue;
      std::string name = absl::AsciiStrToLower(h.name);
      if (replaced.count(name)) continue;
      names.insert(std::move(name));
      marked = true;
    }
    if (marked) ++responses;
  }
  if (responses == 0) return "";
  constexpr size_t kNamesShown = 5;
  std::string list;
  size_t shown = 0;
  for (const std::string& name : names) {
    if (shown == kNamesShown) {
      absl::StrAppend(&list, ", ...");
      break;
    }
    absl::StrAppend(&list, shown == 0 ? "" : ", ", name);
    ++shown;
  }
  return absl::StrCat(Plural(responses, "recorded response carries", "recorded responses carry"),
                      " redacted header values (", list,
                      "): served as their markers; --set-header NAME: VALUE replaces them");
}

absl::Status CheckListenAddress(std::string_view text) {
  absl::StatusOr<ListenAddress> parsed = ParseListenAddress(text);  // serve.h: Start's parser
  if (!parsed.ok()) return Bad("--serve", text, std::string(parsed.status().message()));
  return absl::OkStatus();
}

absl::StatusOr<ServePlan> PlanServe(const ServeToolFlags& f) {
  auto given = [&](std::string_view name) { return f.given.count(std::string(name)) > 0; };
  ServePlan plan;
  if (f.output == "text") {
    plan.log = ServeLog::kText;
  } else if (f.output == "json") {
    plan.log = ServeLog::kJson;
  } else {
    return Bad("-o", f.output, "not text or json");
  }
  if (f.inputs.empty()) {
    return absl::InvalidArgumentError("no input file (give IN.tap..., or - for standard input)");
  }
  if (f.serve.empty()) return Bad("--serve", f.serve, "give ADDRESS:PORT (127.0.0.1:8080)");
  if (absl::Status s = CheckListenAddress(f.serve); !s.ok()) return s;
  plan.inputs = f.inputs;
  plan.command_line = f.command_line;

  ServeOptions& o = plan.serve;
  o.listen = f.serve;
  for (const std::string& name : f.match_headers) {
    if (!IsToken(name)) {
      return Bad("--match-header", name, "not a field name (RFC 9110 section 5.6.2: a token)");
    }
    o.match.match_headers.push_back(name);
  }
  o.match.match_body = f.match_body;
  for (const std::string& name : f.ignore_params) {
    if (name.empty()) return Bad("--ignore-param", name, "give a query parameter name");
    o.match.ignore_params.push_back(name);
  }
  // Clients address the mock itself, as a server-side mock (WireMock) is addressed: the recorded
  // host is part of the key only when asked.
  o.match.ignore_host = !f.match_host;
  o.match.strict = f.strict;
  if (given("session-header")) {
    if (!IsToken(f.session_header)) {
      return Bad("--session-header", f.session_header,
                 "not a field name (RFC 9110 section 5.6.2: a token)");
    }
    o.session_header = f.session_header;
  }
  if (given("miss-status")) {
    absl::StatusOr<uint16_t> status = ParseMissStatus(f.miss_status);
    if (!status.ok()) return status.status();
    o.miss_status = *status;
  }
  if (given("delay")) {
    if (f.delay == "recorded") {
      o.delay = ServeDelay::kRecorded;
    } else {
      absl::StatusOr<int64_t> ns = ParseDurationNs(f.delay);
      if (!ns.ok()) {
        return Bad("--delay", f.delay, "give recorded, or a duration (50ms, 1.5s)");
      }
      // The server caps a recorded delay at 1 h (serve.h); a fixed one above it is a typo, and
      // would hold every client past any timeout it has.
      if (*ns > kMaxFixedDelayNs) {
        return Bad("--delay", f.delay, "above the cap of 1h (give recorded, or 50ms, 1.5s)");
      }
      o.delay = *ns > 0 ? ServeDelay::kFixed : ServeDelay::kNone;
      o.delay_ns = static_cast<uint64_t>(*ns);
    }
  }
  if (given("threads")) {
    int n = 0;
    if (!absl::SimpleAtoi(A(f.threads), &n) || n < 1 || n > 16) {
      return Bad("--threads", f.threads, "not a whole number from 1 to 16");
    }
    o.threads = n;
  }
  if (given("idle-timeout")) {
    // serve.h: a timeout is 1 ns..24 h.
    absl::StatusOr<int64_t> ns = ParseDurationNs(f.idle_timeout);
    if (!ns.ok() || *ns <= 0 || *ns > int64_t{86400} * 1'000'000'000) {
      return Bad("--idle-timeout", f.idle_timeout,
                 "give a duration above 0 and at most 24h (75s, 500ms)");
    }
    o.keepalive_timeout_ns = static_cast<uint64_t>(*ns);
  }
  for (const std::string& s : f.set_headers) {
    absl::StatusOr<Header> h = ParseSetHeader(s);
    if (!h.ok()) return h.status();
    o.set_headers.push_back(*std::move(h));
  }

  const bool upstream = given("upstream");
  if (upstream) {
    if (!absl::StartsWithIgnoreCase(A(f.upstream), "http://") || f.upstream.size() <= 7) {
      return Bad("--upstream", f.upstream,
                 "give http://HOST:PORT, optionally with a path prefix (https is not supported)");
    }
    o.upstream = f.upstream;
  }
  for (std::string_view name : {"timeout", "keep-authority", "write"}) {
    if (given(name) && !upstream) {
      return absl::InvalidArgumentError(
          absl::StrCat(WrittenFlag(name),
                       " goes with --upstream in --serve mode (it concerns the requests "
                       "passed through to the upstream)"));
    }
  }
  if (given("timeout")) {
    absl::StatusOr<int64_t> t = ParseDurationNs(f.timeout);
    if (!t.ok())
      return absl::InvalidArgumentError(absl::StrCat("--timeout ", t.status().message()));
    if (*t <= 0) return Bad("--timeout", f.timeout, "must be above 0");
    o.upstream_timeout_ns = static_cast<uint64_t>(*t);
  }
  o.keep_authority = f.keep_authority;

  absl::StatusOr<Selection> selection = Selection::Parse(f.selection);
  if (!selection.ok()) return selection.status();
  plan.warnings = selection->Warnings();
  plan.selection = *std::move(selection);

  if (given("write")) {
    if (f.write.empty()) return Bad("-w", f.write, "give a file name");
    if (f.write == "-") {
      return Bad("-w", f.write, "give a file name (standard output carries the log)");
    }
    for (const std::string& in : f.inputs) {
      if (in != "-" && SameFile(in, f.write)) {
        return Bad("-w", f.write, "is an input; it would be overwritten");
      }
    }
    plan.capture_path = f.write;
  }
  if (f.no_redact && given("redact-key-file")) {
    return absl::InvalidArgumentError(
        "--no-redact and --redact-key-file cannot be used together (the key keys a redaction "
        "--no-redact turns off)");
  }
  for (std::string_view name : {"no-redact", "redact-key-file"}) {
    if (given(name) && plan.capture_path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(WrittenFlag(name),
                       " goes with -w (only the -w capture of passed-through exchanges is "
                       "redacted; recorded values are served as stored)"));
    }
  }
  if (!plan.capture_path.empty()) {
    absl::StatusOr<std::optional<Redactor>> redactor =
        CaptureRedactor(f.no_redact, f.redact_key_file);
    if (!redactor.ok()) return redactor.status();
    plan.capture_redactor = *std::move(redactor);
  }
  return plan;
}

int RunServeTool(const ServeToolFlags& flags, std::ostream& out, std::ostream& err,
                 bool* out_blocked) {
  absl::StatusOr<ServePlan> plan = PlanServe(flags);
  if (!ToldPlan(plan, err)) return kExitError;

  // The inputs are read to their end before anything is served: a pipe from a live tap
  // (taprec -w - | tapreplay - --serve) would wait silently forever.
  for (const std::string& in : plan->inputs) {
    struct stat st {};
    if (in == "-" && (::fstat(STDIN_FILENO, &st) != 0 || !S_ISREG(st.st_mode))) {
      err << "tapreplay: reading standard input to its end before serving (a live tap never "
             "ends: write it to a file first)"
          << std::endl;
      break;
    }
  }
  std::vector<std::string> notices;
  ServedInputs read;
  absl::StatusOr<std::vector<Exchange>> exchanges =
      ReadServedExchanges(plan->inputs, &plan->selection, &notices, &read);
  for (const std::string& n : notices) err << "tapreplay: " << n << "\n";
  if (!exchanges.ok()) {
    err << "tapreplay: " << exchanges.status().message() << "\n";
    return kExitError;
  }

  if (exchanges->empty()) {
    // Still served: every request is then a miss, or passed through to --upstream (a record
    // mode starting from an empty capture).
    err << "tapreplay: nothing to serve: "
        << (read.examined == 0 ? std::string("the inputs hold no exchanges")
                               : absl::StrCat("the selection matched none of ",
                                              Plural(read.examined, "exchange", "exchanges")))
        << "\n";
  }

  // With several inputs an id names no exchange by itself (ids are unique per capture only): each
  // served exchange's capture point is renumbered as an index into `origins` (its input and
  // recorded capture point) and the log maps the events' ids back. The server keys on requests,
  // never on ids, so what is served is the same.
  std::vector<std::pair<size_t, uint32_t>> origins;
  const bool several = plan->inputs.size() > 1;
  if (several) {
    std::map<std::pair<size_t, uint32_t>, uint32_t> numbered;
    for (size_t i = 0; i < exchanges->size(); ++i) {
      Exchange& x = (*exchanges)[i];
      auto [it, added] = numbered.emplace(std::make_pair(read.input_of[i], x.capture_point),
                                          static_cast<uint32_t>(origins.size()));
      if (added) origins.push_back(it->first);
      x.capture_point = it->second;
    }
  }

  std::unique_ptr<ExchangeCapture> capture;
  if (!plan->capture_path.empty()) {
    absl::StatusOr<std::unique_ptr<ExchangeCapture>> c =
        ExchangeCapture::Open(plan->capture_path, PassThroughHeader(*plan),
                              std::move(plan->capture_redactor), kPassThroughBodyLimit);
    if (!c.ok()) {
      err << "tapreplay: " << c.status().message() << "\n";
      return kExitError;
    }
    capture = *std::move(c);
  }

  // SIGINT and SIGTERM end the serving; SIGPIPE ignored: a closed standard output is a write
  // error on the log, not the end of the process.
  StopSignals signals(/*restart=*/true, /*ignore_sigpipe=*/true);

  const bool with_session = !plan->serve.session_header.empty();
  const ServeLog log = plan->log;
  // The log and the -w capture are written on threads of their own (WriterThread): the server's
  // callbacks only queue. A log line that finds the queue full is dropped and counted (the log
  // is for people watching; the serving goes on); a passed-through exchange waits for room
  // instead, holding its pass-through: -w is the record of what the upstream said, and a local
  // file drains at disk speed, so nothing recorded is lost.
  auto out_errno = std::make_shared<std::atomic<int>>(0);
  WriterThread<std::string> log_writer(
      kLogQueueLines, WriterThread<std::string>::Full::kDrop,
      [](const std::string&) { return size_t{1}; },
      [&out, out_errno](std::string line) {
        if (out_errno->load() != 0) return;
        errno = 0;
        out << line << '\n';
        if (!out) out_errno->store(errno != 0 ? errno : EIO);
      },
      // Flushed after each batch: a line reaches a watching terminal as soon as the writer
      // gets to it, and a busy server pays one write(2) for many lines.
      [&out, out_errno] {
        if (out_errno->load() != 0) return;
        errno = 0;
        out.flush();
        if (!out) out_errno->store(errno != 0 ? errno : EIO);
      });
  std::optional<WriterThread<Exchange>> capture_writer;
  if (capture) {
    capture_writer.emplace(kCaptureQueueBytes, WriterThread<Exchange>::Full::kWait, ExchangeBytes,
                           [c = capture.get()](Exchange x) { c->Add(std::move(x)); });
  }
  // Lines on `err` from the server's threads (on_degraded) and from this one (the serving line)
  // are written one at a time; after Stop no callback runs, so the summary needs no lock.
  std::mutex err_mu;
  ServeCallbacks callbacks;
  callbacks.on_degraded = [&err, &err_mu](const std::string& why) {
    std::lock_guard<std::mutex> lock(err_mu);
    err << "tapreplay: " << why << std::endl;
  };
  callbacks.on_event = [&log_writer, log, with_session, several, &origins,
                        &inputs = plan->inputs](const ServeEvent& e) {
    if (!several) {
      log_writer.Push(log == ServeLog::kJson ? ServeEventJson(e, with_session)
                                             : ServeEventText(e, with_session));
      return;
    }
    ServeEvent shown = e;
    std::string_view input;
    // A miss's "none" (0:0) stays none; a pass-through or error names no recorded exchange.
    const bool none = e.recorded.capture_point == 0 && e.recorded.stream_id == 0 &&
                      e.kind != ServeEvent::Kind::kHit;
    if (!none && e.recorded.capture_point < origins.size()) {
      const auto& [in, point] = origins[e.recorded.capture_point];
      input = inputs[in];
      shown.recorded.capture_point = point;
    }
    log_writer.Push(log == ServeLog::kJson ? ServeEventJson(shown, with_session, input, true)
                                           : ServeEventText(shown, with_session, input));
  };
  if (capture_writer) {
    callbacks.on_recorded = [&capture_writer](Exchange x) {
      x.capture_point = 0;
      capture_writer->Push(std::move(x));
    };
  }

  // Said at start: a redacted Set-Cookie served as its marker is silently dropped by a browser.
  const std::string redacted_notice = RedactedHeadersNotice(*exchanges, plan->serve.set_headers);
  absl::StatusOr<std::unique_ptr<MockServer>> server =
      MockServer::Start(*std::move(exchanges), plan->serve, std::move(callbacks));
  if (!server.ok()) {
    err << "tapreplay: " << server.status().message() << "\n";
    if (capture) {
      // Nothing was served: leave no empty capture behind.
      (void)capture->Close({});
      ::unlink(plan->capture_path.c_str());
    }
    return kExitError;
  }
  {
    std::lock_guard<std::mutex> lock(err_mu);
    err << "tapreplay: serving "
        << Plural((*server)->recorded(), "recorded exchange", "recorded exchanges") << " ("
        << (*server)->skipped() << " skipped) on " << (*server)->url() << std::endl;
    // After the serving line, which scripts read as the first (tools/serve_e2e_test.py).
    if (!redacted_notice.empty()) err << "tapreplay: " << redacted_notice << std::endl;
  }

  while (!StopSignals::stopped().load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // The server first (no callback runs after Stop), then what it queued: the capture whole, the
  // log for at most kLogDrainGrace.
  (*server)->Stop();
  const ServeStats stats = (*server)->stats();
  if (capture_writer) capture_writer->Finish(std::chrono::hours(24));
  const bool log_written = log_writer.Finish(kLogDrainGrace);
  if (out_blocked != nullptr) *out_blocked = !log_written;

  int code = kExitOk;
  if (capture) {
    absl::Status closed = capture->Close({{"serve_hits", stats.hits},
                                          {"serve_misses", stats.misses},
                                          {"serve_passed_through", stats.passed_through},
                                          {"serve_upstream_errors", stats.upstream_errors},
                                          {"serve_bad_requests", stats.bad_requests},
                                          {"serve_bad_recorded", stats.bad_recorded},
                                          {"serve_accept_errors", stats.accept_errors},
                                          {"serve_internal_errors", stats.internal_errors}});
    if (!closed.ok()) {
      err << "tapreplay: " << closed.message() << "\n";
      code = kExitError;
    }
  }
  if (const int e = out_errno->load(); e != 0) {
    err << "tapreplay: write error on standard output: " << std::strerror(e) << "\n";
    code = kExitError;
  }
  if (const uint64_t dropped = log_writer.dropped(); dropped > 0) {
    err << "tapreplay: " << Plural(dropped, "log line", "log lines")
        << " dropped: standard output did not keep up\n";
  }
  err << "tapreplay: served " << Plural(stats.hits, "hit", "hits") << ", "
      << Plural(stats.misses, "miss", "misses") << ", " << stats.passed_through
      << " passed through";
  if (stats.upstream_errors > 0) {
    err << ", " << Plural(stats.upstream_errors, "upstream error", "upstream errors");
  }
  if (stats.bad_requests > 0) {
    err << ", " << Plural(stats.bad_requests, "bad request", "bad requests");
  }
  if (stats.bad_recorded > 0) {
    err << ", "
        << Plural(stats.bad_recorded, "unservable recorded response",
                  "unservable recorded responses");
  }
  if (stats.accept_errors > 0) {
    err << ", " << Plural(stats.accept_errors, "failed accept", "failed accepts");
  }
  if (stats.internal_errors > 0) {
    err << ", " << Plural(stats.internal_errors, "internal error", "internal errors");
  }
  err << std::endl;
  return code;
}

}  // namespace tapkit::replay
