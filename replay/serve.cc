// serve.cc: the mock server of serve.h on Boost.Beast and asio; pass-through with libcurl.
//
// One io_context run by options.threads threads; with more than one, each connection runs on its
// own strand. A connection reads one request (head, then body), looks it up, waits the delay on a
// timer, writes the answer (head rendered into a buffer the connection reuses, the recorded body
// written from where the RecordedResponses keeps it: no copy), and only then reads the next
// request, so pipelined requests are answered in order. Misses with an upstream go to a small
// thread pool running libcurl's easy interface; the answer is posted back to the connection's
// executor. No exception is thrown on the data path (error_code overloads throughout); what
// still could be (std::bad_alloc, a callback that throws) is caught and counted in
// ServeStats::internal_errors: around each callback, in the accept handler (accepting is
// re-armed whatever happens), in each pass-through job (the client gets a 502) and, last, around
// the io_context's run loop (which then goes on).
#include "replay/serve.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "format/http_text.h"
#include "replay/replay_request.h"

namespace tapkit::replay {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Tcp = asio::ip::tcp;

constexpr uint32_t kHeaderLimit = 64 * 1024;                   // request head, bytes
constexpr size_t kMaxUpstreamBody = size_t{64} * 1024 * 1024;  // an upstream answer's body, bytes
// Pass-through workers per event-loop thread: each blocks in one transfer at a time.
constexpr int kUpstreamWorkersPerThread = 16;
// After the grace, transfers are aborted (libcurl calls the progress callback about once a
// second while waiting) and the clients told so: this long at most.
constexpr auto kAbortTime = std::chrono::seconds(2);
constexpr auto kLingerTime = std::chrono::seconds(2);  // LingeringClose
// A recorded latency is waited at most this long (a damaged record's huge response_start_ns
// would overflow std::chrono's nanoseconds and wrap negative).
constexpr uint64_t kMaxRecordedDelayNs = uint64_t{3600} * 1'000'000'000;
constexpr size_t kWriteChunk = size_t{1} << 20;  // bytes per write of an answer, at most
constexpr uint64_t kMaxTimeoutNs = uint64_t{86400} * 1'000'000'000;  // a timeout option's cap

std::string_view Sv(beast::string_view s) { return std::string_view(s.data(), s.size()); }

// Decimal digits only, no sign; false on anything else or overflow.
bool ParseUint(std::string_view s, uint32_t* out) {
  if (s.empty()) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

uint64_t WallNowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Endpoint ToEndpoint(const Tcp::endpoint& ep) {
  Endpoint out;
  const asio::ip::address a = ep.address();
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    out.ip = IpAddress::V4(b[0], b[1], b[2], b[3]);
  } else {
    auto b = a.to_v6().to_bytes();
    std::array<uint8_t, 16> bytes{};
    std::memcpy(bytes.data(), b.data(), 16);
    out.ip = IpAddress::V6(bytes);
  }
  out.port = ep.port();
  return out;
}

std::string EndpointText(const Tcp::endpoint& ep) {
  if (ep.address().is_v6()) return absl::StrCat("[", ep.address().to_string(), "]:", ep.port());
  return absl::StrCat(ep.address().to_string(), ":", ep.port());
}

// The upstream of a pass-through: "http://HOST[:PORT][/PREFIX]".
struct Upstream {
  std::string text;       // as given, for messages
  std::string authority;  // "HOST:PORT" (brackets kept for IPv6)
  std::string prefix;     // "" or "/api" (no trailing '/')
};

absl::StatusOr<Upstream> ParseUpstream(const std::string& s) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("upstream '", s, "': ", A(why)));
  };
  if (!absl::StartsWithIgnoreCase(A(s), "http://")) return bad("not an http:// URL");
  CURLU* u = curl_url();
  if (u == nullptr) return absl::ResourceExhaustedError("curl_url: out of memory");
  struct Free {
    CURLU* u;
    ~Free() { curl_url_cleanup(u); }
  } free_u{u};
  if (CURLUcode rc = curl_url_set(u, CURLUPART_URL, s.c_str(), 0); rc != CURLUE_OK)
    return bad(absl::StrCat("not an http:// URL (", curl_url_strerror(rc), ")"));
  auto part = [&](CURLUPart which, unsigned flags = 0) -> std::optional<std::string> {
    char* v = nullptr;
    if (curl_url_get(u, which, &v, flags) != CURLUE_OK || v == nullptr) return std::nullopt;
    std::string out(v);
    curl_free(v);
    return out;
  };
  std::optional<std::string> host = part(CURLUPART_HOST);
  if (!host || host->empty()) return bad("no host");
  if (part(CURLUPART_USER) || part(CURLUPART_QUERY) || part(CURLUPART_FRAGMENT))
    return bad("only http://HOST:PORT with an optional path prefix");
  std::optional<std::string> port = part(CURLUPART_PORT, CURLU_DEFAULT_PORT);
  Upstream up;
  up.text = s;
  up.authority = absl::StrCat(*host, ":", port.value_or("80"));
  up.prefix = part(CURLUPART_PATH).value_or("");
  while (!up.prefix.empty() && up.prefix.back() == '/') up.prefix.pop_back();
  return up;
}

// Appends a field value with CR, LF and NUL (which would end or split the field on the wire)
// replaced by a space: stored bytes are not trusted to be a single field.
void AppendValue(std::string* out, std::string_view v) {
  for (char c : v) out->push_back(c == '\r' || c == '\n' || c == '\0' ? ' ' : c);
}

// Control bytes of `s` as \xHH (a Tapkit-Miss value and the miss body's request line).
std::string EscapeControl(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

std::string_view ReasonFor(unsigned status) {
  http::status s = http::int_to_status(status);
  if (s == http::status::unknown) return "Status";
  return Sv(http::obsolete_reason(s));
}

// RFC 9110 section 7.6.1: the hop-by-hop fields, and Content-Length (the body is framed anew).
bool AlwaysDropped(std::string_view name) {
  char lower[24];
  if (name.size() > sizeof lower) return false;  // longer than every such name
  for (size_t i = 0; i < name.size(); ++i) lower[i] = AsciiLower(name[i]);
  return internal::IsHopByHop(std::string_view(lower, name.size()));
}

// True when `name` is one of `named` (replay_request.h ConnectionNamed: lower-case).
bool Named(const std::vector<std::string>& named, std::string_view name) {
  for (const std::string& n : named)
    if (EqualsIgnoreCase(n, name)) return true;
  return false;
}

// RFC 9110 section 6.2: a server sends its highest conformant version, HTTP/1.1, to an HTTP/1.0
// client too (nginx does); the 1.0 keep-alive rules stay (AppendConnection).
void AppendStatusLine(std::string* out, unsigned status, std::string_view reason) {
  out->append("HTTP/1.1 ");
  absl::StrAppend(out, status);
  out->push_back(' ');
  AppendValue(out, reason);
  out->append("\r\n");
}

void AppendConnection(std::string* out, unsigned version, bool keep_alive) {
  if (!keep_alive) {
    out->append("Connection: close\r\n");
  } else if (version == 10) {
    out->append("Connection: keep-alive\r\n");
  }
}

// Renders `rsp` (recorded or from the upstream) as serve.h says into `head`; `*body` is the body
// to write after it (a view of rsp's bytes, empty when none is sent).
void RenderResponse(const Response& rsp, bool head_request, unsigned version, bool keep_alive,
                    const std::vector<Header>& set_headers, std::string* head,
                    std::string_view* body) {
  head->clear();
  AppendStatusLine(head, rsp.status, rsp.reason);
  const unsigned status = rsp.status;
  const bool no_body_status = status < 200 || status == 204 || status == 304;
  // HEAD and 304 keep the recorded Content-Length (RFC 9110 sections 9.3.2, 15.4.5).
  const bool keep_length = head_request || status == 304;
  const std::vector<std::string> named = internal::ConnectionNamed(rsp.headers);
  std::vector<bool> set_done;  // which set_headers were placed (small; only with set_headers)
  if (!set_headers.empty()) set_done.assign(set_headers.size(), false);
  for (const Header& h : rsp.headers) {
    if (!IsToken(h.name)) continue;
    const bool is_length = EqualsIgnoreCase(h.name, "content-length");
    if (is_length && keep_length) {
      // served as recorded (below, with the set_headers check)
    } else if (AlwaysDropped(h.name) || Named(named, h.name)) {
      continue;
    }
    bool replaced = false;
    for (size_t i = 0; i < set_headers.size(); ++i) {
      if (!EqualsIgnoreCase(set_headers[i].name, h.name)) continue;
      replaced = true;
      if (set_done[i]) continue;
      // Every set_headers entry of this name goes where the first recorded field of it was.
      for (size_t j = i; j < set_headers.size(); ++j) {
        if (!EqualsIgnoreCase(set_headers[j].name, h.name)) continue;
        set_done[j] = true;
        head->append(set_headers[j].name);
        head->append(": ");
        AppendValue(head, set_headers[j].value);
        head->append("\r\n");
      }
      break;
    }
    if (replaced) continue;
    head->append(h.name);
    head->append(": ");
    AppendValue(head, h.value);
    head->append("\r\n");
  }
  for (size_t i = 0; i < set_headers.size(); ++i) {
    if (set_done[i] || !IsToken(set_headers[i].name)) continue;
    head->append(set_headers[i].name);
    head->append(": ");
    AppendValue(head, set_headers[i].value);
    head->append("\r\n");
  }
  *body = {};
  if (status == 205 && !head_request) {
    // RFC 9110 section 15.3.6: a 205 MUST NOT carry content; a recorded body is not served.
    head->append("Content-Length: 0\r\n");
  } else if (!no_body_status && !head_request) {
    const Body& b = rsp.body;
    if (b.cut()) {
      head->append("Tapkit-Truncated: stored ");
      absl::StrAppend(head, b.data.size(), " of ");
      if (b.length > b.data.size()) {
        absl::StrAppend(head, b.length);
      } else {
        head->append("unknown");
      }
      head->append(" bytes\r\n");
    }
    head->append("Content-Length: ");
    absl::StrAppend(head, b.data.size());
    head->append("\r\n");
    *body = b.data;
  }
  AppendConnection(head, version, keep_alive);
  head->append("\r\n");
}

ExchangeId IdOf(const Exchange* x) {
  return x == nullptr ? ExchangeId{} : ExchangeId{x->capture_point, x->stream_id};
}

class Connection;

// What every connection shares; kept alive by the connections themselves, so a connection
// destroyed late (its handler dropped by the io_context's destructor) still finds it.
struct Shared {
  Shared(std::vector<Exchange> xs, ServeOptions o, ServeCallbacks c)
      : options(std::move(o)), callbacks(std::move(c)), recorded(std::move(xs), options.match) {}

  // A callback, one call of its kind at a time under `mu`; one that throws is counted
  // (internal_errors), not let out into the handler that called it. on_recorded has a mutex of
  // its own: a tool's on_recorded may wait (its capture queue full, a slow disk) on a worker
  // thread, and the hits' on_event must not wait behind it.
  template <typename F, typename... A>
  void Call(std::mutex& mu, const F& f, A&&... args) {
    std::lock_guard<std::mutex> lock(mu);
    if (callbacks_closed || !f) return;
    try {
      f(std::forward<A>(args)...);
    } catch (...) {
      internal_errors.fetch_add(1, std::memory_order_relaxed);
    }
  }
  void Emit(const ServeEvent& e) { Call(callback_mu, callbacks.on_event, e); }
  void Record(Exchange x) { Call(recorded_mu, callbacks.on_recorded, std::move(x)); }
  void Degraded(const std::string& why) { Call(callback_mu, callbacks.on_degraded, why); }
  // After it no callback runs (Stop): both locks taken, so a call in progress has ended.
  void CloseCallbacks() {
    std::scoped_lock lock(callback_mu, recorded_mu);
    callbacks_closed = true;
  }
  void Add(Connection* c, std::weak_ptr<Connection> w) {
    std::lock_guard<std::mutex> lock(conns_mu);
    conns.emplace(c, std::move(w));
  }
  void Remove(Connection* c) {
    std::lock_guard<std::mutex> lock(conns_mu);
    conns.erase(c);
    if (conns.empty()) conns_cv.notify_all();
  }
  // The connections still open (kept alive while the caller holds them).
  std::vector<std::shared_ptr<Connection>> Live() {
    std::vector<std::shared_ptr<Connection>> live;
    std::lock_guard<std::mutex> lock(conns_mu);
    for (auto& [ptr, weak] : conns)
      if (auto c = weak.lock()) live.push_back(std::move(c));
    return live;
  }
  // Until every connection is gone, or `most` passed.
  template <typename Duration>
  void WaitNoConnections(Duration most) {
    std::unique_lock<std::mutex> lock(conns_mu);
    conns_cv.wait_for(lock, most, [&] { return conns.empty(); });
  }

  // The pass-through workers' connection cache, shared so that any worker reuses a connection
  // another one left open (CURL_LOCK_DATA_CONNECT; libcurl locks it through these mutexes).
  void ShareConnections() {
    share = curl_share_init();
    if (share == nullptr) return;
    curl_share_setopt(
        share, CURLSHOPT_LOCKFUNC, +[](CURL*, curl_lock_data d, curl_lock_access, void* user) {
          static_cast<Shared*>(user)->share_mu[static_cast<size_t>(d) % kShareLocks].lock();
        });
    curl_share_setopt(
        share, CURLSHOPT_UNLOCKFUNC, +[](CURL*, curl_lock_data d, void* user) {
          static_cast<Shared*>(user)->share_mu[static_cast<size_t>(d) % kShareLocks].unlock();
        });
    curl_share_setopt(share, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  }
  ~Shared() {
    if (share != nullptr) curl_share_cleanup(share);  // the workers' handles are gone by now
  }

  const ServeOptions options;
  const ServeCallbacks callbacks;
  RecordedResponses recorded;
  std::optional<Upstream> upstream;
  static constexpr size_t kShareLocks = 16;
  CURLSH* share = nullptr;
  std::array<std::mutex, kShareLocks> share_mu;
  asio::thread_pool* pool = nullptr;  // with an upstream; joined before the Shared goes

  std::atomic<uint64_t> hits{0}, misses{0}, passed_through{0}, upstream_errors{0}, bad_requests{0},
      bad_recorded{0}, connections{0}, accept_errors{0}, internal_errors{0};
  std::atomic<uint64_t> next_stream_id{1};
  std::atomic<bool> stopping{false};        // no new requests: close after the answer
  std::atomic<bool> abort_upstream{false};  // the grace period is over: end transfers

  std::mutex callback_mu;         // on_event, on_degraded
  std::mutex recorded_mu;         // on_recorded
  bool callbacks_closed = false;  // written under both mutexes, read under either

  std::mutex conns_mu;
  std::condition_variable conns_cv;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> conns;  // guarded by conns_mu
};

// The answer libcurl got from the upstream, or the error.
struct UpstreamAnswer {
  bool ok = false;
  bool stopping = false;  // not awaited: the server is stopping and its grace is over
  std::string error;
  Response response;
};

// The upstream's answer through the replay engine's reader (replay_request.h ResponseReader:
// status lines, interim responses, fields, obs-fold, trailers); a body past kMaxUpstreamBody
// ends the transfer (CURLE_WRITE_ERROR).
size_t CurlWrite(char* data, size_t size, size_t n, void* user) {
  auto* reader = static_cast<internal::ResponseReader*>(user);
  if (reader->response().body.data.size() + size * n > kMaxUpstreamBody) return 0;
  reader->BodyBytes(std::string_view(data, size * n));
  return size * n;
}

uint64_t NoOffset(const void*) { return 0; }  // interim responses are not kept

// The upstream answer's header lines into the reader; a final response whose Content-Length
// values differ ends the transfer (RFC 9112 section 6.3 item 5: a proxy MUST discard it, close
// the connection to the server and answer 502; libcurl would frame the body by the last value).
// The check is here, not in the ResponseReader: the replay engine records what the live service
// sent, differing lengths included, and compares it with the recording.
struct UpstreamHead {
  internal::ResponseReader* reader;
  bool differing_lengths = false;
};

// True when the Content-Length fields of `headers` (each possibly a comma-separated list) do not
// all carry the same value.
bool DifferingContentLengths(const std::vector<Header>& headers) {
  std::optional<std::string_view> first;
  for (const Header& h : headers) {
    if (!EqualsIgnoreCase(h.name, "content-length")) continue;
    std::string_view rest = h.value;
    for (;;) {
      size_t comma = rest.find(',');
      std::string_view v = TrimOws(rest.substr(0, comma));
      if (!first) {
        first = v;
      } else if (v != *first) {
        return true;
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

size_t CurlHeader(char* data, size_t size, size_t n, void* user) {
  auto* head = static_cast<UpstreamHead*>(user);
  const std::string_view line(data, size * n);
  head->reader->HeaderLine(line, NoOffset, nullptr);
  if (absl::StartsWithIgnoreCase(A(line), "content-length") &&
      DifferingContentLengths(head->reader->response().headers)) {
    head->differing_lengths = true;
    return 0;  // CURLE_WRITE_ERROR: libcurl closes the connection
  }
  return size * n;
}

int CurlProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<Shared*>(user)->abort_upstream.load(std::memory_order_relaxed) ? 1 : 0;
}

// One client connection. All its handlers run on its strand.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<Shared> shared, Tcp::socket socket, const Tcp::endpoint& peer)
      : shared_(std::move(shared)),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        watchdog_(socket_.get_executor()),
        client_(ToEndpoint(peer)) {}
  ~Connection() { shared_->Remove(this); }

  void Start() { ReadHead(); }

  // Stop(): an idle connection (waiting for a request) is closed now; one answering closes
  // after its answer.
  void Close() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      if (self->reading_) {
        beast::error_code ignored;
        self->socket_.cancel(ignored);
        self->socket_.close(ignored);
      } else if (self->delaying_) {
        // The delay is a courtesy; the recorded answer is what the client waits for: it is
        // written now (AnswerAfter's handler), within the stop grace, and reported.
        self->timer_.cancel();
      }
    });
  }

  // Stop(), once no thread runs handlers any more: a connection still open (its answer did not
  // come within the grace period; the handler holding it will never run) is closed now rather
  // than when the io_context is destroyed.
  void ForceClose() {
    beast::error_code ignored;
    socket_.shutdown(Tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  // The phases a deadline watches (serve.h's timeouts, as nginx's).
  enum class Phase : uint8_t {
    kNone,  // no deadline: looking up, waiting the delay, passing through, lingering
    kIdle,  // keepalive_timeout: between requests, nothing of the next one seen yet
    kHead,  // header_timeout: the whole head
    kBody,  // body_timeout: between two reads of the body
    kSend,  // send_timeout: between two writes of the answer
  };

  // Starts the deadline of `phase`, `ns` from now. One timer serves every phase: a later
  // deadline is seen when it fires (OnWatchdog waits on), an earlier one re-arms it.
  void Expect(Phase phase, uint64_t ns) {
    phase_ = phase;
    deadline_ = std::chrono::steady_clock::now() + std::chrono::nanoseconds(ns);
    if (watchdog_waiting_ && watchdog_.expiry() <= deadline_) return;
    ArmWatchdog();
  }

  void ArmWatchdog() {
    watchdog_waiting_ = true;
    watchdog_.expires_at(deadline_);  // a wait still pending ends with operation_aborted
    watchdog_.async_wait([weak = weak_from_this()](beast::error_code ec) {
      if (ec == asio::error::operation_aborted) return;
      if (auto self = weak.lock()) self->OnWatchdog();
    });
  }

  void OnWatchdog() {
    watchdog_waiting_ = false;
    if (phase_ == Phase::kNone) return;
    if (std::chrono::steady_clock::now() < deadline_) return ArmWatchdog();
    const bool head_begun = buffer_.size() > 0 || (parser_ && parser_->got_some());
    switch (phase_) {
      case Phase::kIdle:
        return Shutdown();  // nginx closes an idle keep-alive connection without a word
      case Phase::kHead:
        if (!head_begun) return Shutdown();  // nothing sent at all: nobody to answer
        [[fallthrough]];
      case Phase::kBody: {
        // 408 (RFC 9110 section 15.5.9) once the read is cancelled (OnReadError).
        timed_out_ = phase_;
        beast::error_code ignored;
        socket_.cancel(ignored);
        return;
      }
      case Phase::kSend:
        return Shutdown();  // a client that does not read: the write ends with an error
      case Phase::kNone:
        return;
    }
  }

  // The next request. After an answer with nothing of the next request buffered, the connection
  // is idle (keepalive_timeout) until a byte can be read; the head's header_timeout runs from
  // there (its first byte, as nginx's client_header_timeout), or from the end of the previous
  // answer when bytes of it were already buffered (pipelined), or from the accept for the first.
  void ReadHead() {
    if (shared_->stopping.load()) return Shutdown();
    if (answered_ == 0 || buffer_.size() > 0) return ReadHeadBytes();
    Expect(Phase::kIdle, shared_->options.keepalive_timeout_ns);
    reading_ = true;
    socket_.async_wait(Tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      self->reading_ = false;
      self->phase_ = Phase::kNone;
      if (ec) return self->Shutdown();
      self->ReadHeadBytes();
    });
  }

  // `restart`: the header_timeout starts now (false: the head's deadline runs on, the parse
  // starting again over bytes already read: ignored empty lines, a version rewritten).
  void ReadHeadBytes(bool restart = true) {
    if (shared_->stopping.load()) return Shutdown();
    if (restart) {
      Expect(Phase::kHead, shared_->options.header_timeout_ns);
      empty_line_bytes_ = 0;
    } else {
      KeepHeadDeadline();
    }
    parser_.emplace();
    parser_->body_limit(kMaxRequestBody);
    parser_->header_limit(kHeaderLimit);
    reading_ = true;
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHead(ec); });
  }

  void OnHead(beast::error_code ec) {
    reading_ = false;
    phase_ = Phase::kNone;
    head_wall_ns_ = WallNowNs();
    head_steady_ = std::chrono::steady_clock::now();
    if (ec == http::error::bad_method && SkipEmptyLines()) return;
    if (ec == http::error::bad_version) {
      if (std::optional<std::string> why = RewriteMinorVersion()) {
        if (why->empty()) return ReadHeadBytes(/*restart=*/false);
        return Refuse(505, *why);
      }
    }
    if (ec) return OnReadError(ec);
    if (std::string why = HeadError(parser_->get()); !why.empty()) return Refuse(400, why);
    if (parser_->is_done()) return OnRequest();
    // RFC 9110 section 10.1.1: a client waiting for 100 (Continue) before the body gets it.
    auto expect = parser_->get().find(http::field::expect);
    if (expect != parser_->get().end() && EqualsIgnoreCase(Sv(expect->value()), "100-continue") &&
        parser_->get().version() == 11) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      Expect(Phase::kSend, shared_->options.send_timeout_ns);
      asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) return self->Shutdown();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  // The body one read at a time, so that body_timeout runs between reads (as nginx's).
  void ReadBody() {
    reading_ = true;
    Expect(Phase::kBody, shared_->options.body_timeout_ns);
    http::async_read_some(socket_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) {
                            self->reading_ = false;
                            self->phase_ = Phase::kNone;
                            if (ec) return self->OnReadError(ec);
                            if (!self->parser_->is_done()) return self->ReadBody();
                            self->OnRequest();
                          });
  }

  // The head's header_timeout runs on (deadline_ unchanged) over a read started again.
  void KeepHeadDeadline() {
    phase_ = Phase::kHead;
    if (!watchdog_waiting_) ArmWatchdog();
  }

  // RFC 9112 section 2.2: a server SHOULD ignore at least one empty line (CRLF) received before
  // the request-line (nginx does; LF alone too, section 2.2's lenient line ending). Drops the
  // buffered empty lines before the head and parses again (false when the buffer does not start
  // with one, or past kHeaderLimit bytes of them: a parse error). A lone CR at the end waits for
  // the next byte.
  bool SkipEmptyLines() {
    std::string_view b(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    size_t n = 0;
    while (n < b.size()) {
      if (b[n] == '\n') {
        ++n;
      } else if (b[n] == '\r' && n + 1 < b.size() && b[n + 1] == '\n') {
        n += 2;
      } else {
        break;
      }
    }
    const bool lone_cr = n + 1 == b.size() && b[n] == '\r';
    if (n == 0 && !lone_cr) return false;
    empty_line_bytes_ += n;
    if (empty_line_bytes_ > kHeaderLimit) return false;
    buffer_.consume(n);
    if (!lone_cr) {
      ReadHeadBytes(/*restart=*/false);
      return true;
    }
    // "\r" alone: one more read (under the head's deadline), then the parse again.
    KeepHeadDeadline();
    reading_ = true;
    socket_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t got) {
                              self->reading_ = false;
                              if (ec) return self->OnReadError(ec);
                              self->buffer_.commit(got);
                              self->ReadHeadBytes(/*restart=*/false);
                            });
    return true;
  }

  // The request-line's version, which the parser (Boost.Beast: 1.0 and 1.1 only) refused:
  // HTTP/1.x with x > 1 is rewritten in the buffer to HTTP/1.1 (RFC 9110 section 6.2: processed
  // as the highest minor version the server conforms to) and "" returned; a major version past 1
  // returns why it gets 505 (RFC 9110 section 15.6.6); nullopt for anything else (a parse error).
  std::optional<std::string> RewriteMinorVersion() {
    auto* data = static_cast<char*>(buffer_.data().data());
    std::string_view b(data, buffer_.size());
    std::string_view line = b.substr(0, b.find('\n'));
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.size() < sp2 + 9) return std::nullopt;
    char* v = data + sp2 + 1;  // "HTTP/d.d"
    std::string_view version(v, 8);
    auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (version.substr(0, 5) != "HTTP/" || !digit(version[5]) || version[6] != '.' ||
        !digit(version[7]))
      return std::nullopt;
    if (version[5] == '1' && version[7] > '1') {
      v[7] = '1';
      return std::string();
    }
    if (version[5] >= '2')
      return absl::StrCat(A(version),
                          " in an HTTP/1 request-line: only HTTP/1.x is served (RFC 9110 section ",
                          "15.6.6)");
    return std::nullopt;
  }

  void OnReadError(beast::error_code ec) {
    if (timed_out_ != Phase::kNone) {
      const bool head = timed_out_ == Phase::kHead;
      const uint64_t ns =
          head ? shared_->options.header_timeout_ns : shared_->options.body_timeout_ns;
      timed_out_ = Phase::kNone;
      return Refuse(408, absl::StrCat(head ? "request head not received within "
                                           : "no request body bytes received for ",
                                      ns / 1000000, " ms"));
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec.category() != http::make_error_code(http::error::bad_method).category()) {
      return Shutdown();  // the client went away (or the socket failed): nobody to answer
    }
    if (ec == http::error::body_limit)
      return Refuse(413, absl::StrCat("request body past ", kMaxRequestBody, " bytes"));
    // RFC 6585 section 5: a header section too large is 431, not a parse error.
    if (ec == http::error::header_limit)
      return Refuse(431, absl::StrCat("request header section past ", kHeaderLimit, " bytes"));
    Refuse(400, absl::StrCat("request did not parse: ", ec.message()));
  }

  // A head that parsed but must not be served (empty when it may), RFC 9112:
  //   - section 6.3 item 4: a Transfer-Encoding whose last coding is not chunked cannot frame a
  //     request's body (the server must answer 400 and close: the bytes after it are not a next
  //     request; reading them as one is request smuggling);
  //   - section 6.1: an HTTP/1.0 request with Transfer-Encoding is faulty framing (400, close);
  //   - section 3.2: an HTTP/1.1 request without Host, or with more than one, gets 400.
  static std::string HeadError(const http::request<http::string_body>& req) {
    size_t hosts = 0;
    std::string_view last_coding;
    bool has_te = false;
    for (const auto& f : req) {
      if (f.name() == http::field::host) ++hosts;
      if (f.name() != http::field::transfer_encoding) continue;
      has_te = true;
      std::string_view v = Sv(f.value());
      size_t comma = v.rfind(',');
      last_coding = TrimOws(comma == std::string_view::npos ? v : v.substr(comma + 1));
    }
    // Section 6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing (a 1.0 recipient
    // may not know chunked): 400 and close.
    if (has_te && req.version() == 10)
      return "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 section 6.1)";
    if (has_te && !EqualsIgnoreCase(last_coding, "chunked"))
      return "Transfer-Encoding does not end in chunked (RFC 9112 section 6.3)";
    if (req.version() == 11 && hosts != 1)
      return absl::StrCat(hosts == 0 ? "no Host field" : "more than one Host field",
                          " in an HTTP/1.1 request (RFC 9112 section 3.2)");
    return {};
  }

  // Answers `status` with `why` as a text/plain body, then closes (the rest of the connection's
  // bytes cannot be trusted to be requests).
  void Refuse(unsigned status, const std::string& why) {
    shared_->bad_requests.fetch_add(1, std::memory_order_relaxed);
    ResetEvent(ServeEvent::Kind::kBadRequest, status);
    bool head_request = false;
    if (parser_ && parser_->got_some()) {
      // The head may be partly parsed; its method and target are still useful in the log.
      event_.method = std::string(Sv(parser_->get().method_string()));
      event_.target = std::string(Sv(parser_->get().target()));
      head_request = parser_->get().method() == http::verb::head;
    }
    event_.explanation = why;
    head_.clear();
    AppendStatusLine(&head_, status, ReasonFor(status));
    body_owned_ = why + "\n";
    absl::StrAppend(&head_, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: ",
                    body_owned_.size(), "\r\nConnection: close\r\n\r\n");
    // RFC 9110 section 9.3.2: no content in the answer to a HEAD (its length still said).
    body_ = head_request ? std::string_view() : std::string_view(body_owned_);
    keep_alive_ = false;
    Write();
  }

  // The event restarted for an answer to the request whose head came at head_wall_ns_.
  // keep_request: what was filled in for this request before (method, target, session,
  // explanation, latency) stays, as for an upstream's answer to a miss.
  void ResetEvent(ServeEvent::Kind kind, unsigned status, bool keep_request = false) {
    event_.kind = kind;
    event_.time_ns = head_wall_ns_;
    event_.status = static_cast<uint16_t>(status);
    event_.recorded = {};
    event_.position = 0;
    event_.sequence_length = 0;
    event_.head_of_get = false;
    if (!keep_request) {
      event_.latency_ns = 0;
      event_.explanation.clear();
      event_.session.clear();
      event_.method.clear();
      event_.target.clear();
    }
    if (keep_request || shared_->callbacks.on_event) event_.client = client_;
  }

  // The request as tapkit::Request (reusing the member's capacity), looked up, answered.
  void OnRequest() {
    auto& req = parser_->get();
    version_ = req.version() == 10 ? 10 : 11;
    keep_alive_ = req.keep_alive() && !shared_->stopping.load();
    head_request_ = req.method() == http::verb::head;
    request_.version = version_ == 10 ? HttpVersion::kHttp10 : HttpVersion::kHttp11;
    request_.method.assign(Sv(req.method_string()));
    request_.scheme = "http";
    request_.path.assign(Sv(req.target()));
    request_.authority.clear();
    size_t n = 0;
    for (const auto& f : req) {
      if (n == request_.headers.size()) request_.headers.emplace_back();
      Header& h = request_.headers[n++];
      h.name.assign(Sv(f.name_string()));
      h.value.assign(Sv(f.value()));
      if (request_.authority.empty() && f.name() == http::field::host) request_.authority = h.value;
    }
    request_.headers.resize(n);
    request_.body.data = std::move(req.body());
    request_.body.length = request_.body.data.size();
    request_body_end_ = std::chrono::steady_clock::now();

    const ServeOptions& opt = shared_->options;
    std::string_view session;
    if (!opt.session_header.empty()) session = SessionValue(request_, opt.session_header);
    // A HEAD never recorded is answered from the recorded GET (match.h; head_of_get).
    // With an upstream a miss is passed through: the closest recorded request is not needed.
    LookupResult r =
        shared_->recorded.Lookup(request_, session, /*explain_miss=*/opt.upstream.empty());
    const bool head_of_get = r.head_of_get;
    const bool with_events = static_cast<bool>(shared_->callbacks.on_event);
    auto fill = [&](ServeEvent::Kind kind, unsigned status) {
      ResetEvent(kind, status);
      if (!with_events) return;
      event_.method = request_.method;
      event_.target = request_.path;
      event_.session.assign(session);
      event_.explanation = r.Explanation();
    };
    uint64_t delay_ns = opt.delay == ServeDelay::kFixed ? opt.delay_ns : 0;
    if (r.outcome == LookupResult::Outcome::kHit) {
      const Response& rsp = *r.exchange->response;
      // A final status past 599 (a damaged record; match.h already skips those under 200)
      // cannot be answered over HTTP/1.1 here: 502 saying so, reported and counted as
      // kBadRecorded, not as a hit.
      const bool servable = rsp.status >= 200 && rsp.status <= 599;
      (servable ? shared_->hits : shared_->bad_recorded).fetch_add(1, std::memory_order_relaxed);
      fill(servable ? ServeEvent::Kind::kHit : ServeEvent::Kind::kBadRecorded,
           servable ? rsp.status : 502);
      event_.recorded = IdOf(r.exchange);
      event_.position = r.position;
      event_.sequence_length = r.recorded;
      event_.head_of_get = head_of_get;
      if (servable) {
        RenderResponse(rsp, head_request_, version_, keep_alive_, opt.set_headers, &head_, &body_);
      } else {
        std::string why = absl::StrCat("recorded response with status ", rsp.status,
                                       " cannot be served (HTTP/1.1 final status 200..599)");
        if (with_events) event_.explanation = why;
        RenderText(502, why, why + "\n");
      }
      if (opt.delay == ServeDelay::kRecorded)
        delay_ns = std::min(r.exchange->response_start_ns, kMaxRecordedDelayNs);
      return AnswerAfter(delay_ns);
    }
    if (shared_->upstream) {
      if (with_events) {
        event_.method = request_.method;
        event_.target = request_.path;
        event_.session.assign(session);
      }
      return PassThrough(delay_ns);
    }
    shared_->misses.fetch_add(1, std::memory_order_relaxed);
    const bool exhausted = r.outcome == LookupResult::Outcome::kExhausted;
    fill(exhausted ? ServeEvent::Kind::kExhausted : ServeEvent::Kind::kMiss, opt.miss_status);
    event_.recorded = IdOf(r.exchange);
    if (exhausted) event_.sequence_length = r.recorded;
    std::string explanation = EscapeControl(r.Explanation());
    std::string body =
        absl::StrCat(explanation, "\n", EscapeControl(request_.method), " ",
                     EscapeControl(request_.path), " HTTP/1.", version_ == 10 ? 0 : 1, "\n");
    RenderText(opt.miss_status, explanation, std::move(body));
    AnswerAfter(delay_ns);
  }

  // A text/plain answer of the server's own (miss, upstream error, unservable recording):
  // `why` in Tapkit-Miss (already escaped) and `body` (no body for HEAD, its length still said).
  void RenderText(unsigned status, std::string_view why, std::string body) {
    // RFC 9110 sections 15.3.5 and 15.4.5, RFC 9112 section 6.3: a 204 or 304 ends at its
    // header section (no body, no Content-Length).
    // RFC 9110 section 15.3.6: a 205 MUST NOT carry content either; it says so with
    // "Content-Length: 0" (the section's first way).
    const bool no_body = status == 204 || status == 304;
    body_owned_ = no_body || status == 205 ? std::string() : std::move(body);
    head_.clear();
    AppendStatusLine(&head_, status, ReasonFor(status));
    absl::StrAppend(&head_, "Content-Type: text/plain; charset=utf-8\r\nTapkit-Miss: ", A(why),
                    "\r\n");
    if (!no_body) absl::StrAppend(&head_, "Content-Length: ", body_owned_.size(), "\r\n");
    AppendConnection(&head_, version_, keep_alive_);
    head_.append("\r\n");
    body_ = head_request_ ? std::string_view() : std::string_view(body_owned_);
  }

  // Waits `delay_ns`, then writes the answer. Stop cuts a wait short (Close): the answer is
  // written at once, saying "Connection: close".
  void AnswerAfter(uint64_t delay_ns) {
    if (delay_ns == 0 || shared_->stopping.load()) return WriteClosing();
    delaying_ = true;
    timer_.expires_after(std::chrono::nanoseconds(delay_ns));
    timer_.async_wait([self = shared_from_this()](beast::error_code) {
      self->delaying_ = false;
      self->WriteClosing();
    });
  }

  // Write(), with the head's connection field made "close" when Stop came meanwhile (the head
  // was rendered for a kept-alive connection; the connection is closed after this answer).
  void WriteClosing() {
    if (keep_alive_ && shared_->stopping.load()) {
      keep_alive_ = false;
      constexpr std::string_view kKeepAlive = "Connection: keep-alive\r\n\r\n";
      if (head_.size() >= kKeepAlive.size() &&
          std::string_view(head_).substr(head_.size() - kKeepAlive.size()) == kKeepAlive) {
        head_.resize(head_.size() - kKeepAlive.size());  // HTTP/1.0 said keep-alive
      } else if (head_.size() >= 2) {
        head_.resize(head_.size() - 2);  // the empty line ending the head
      }
      head_.append("Connection: close\r\n\r\n");
    }
    Write();
  }

  void Write() {
    std::array<asio::const_buffer, 2> bufs{asio::buffer(head_.data(), head_.size()),
                                           asio::buffer(body_.data(), body_.size())};
    const uint64_t send_ns = shared_->options.send_timeout_ns;
    Expect(Phase::kSend, send_ns);
    // Called before each write of the answer's parts (on this connection's strand): each write
    // that moved bytes gives send_timeout again.
    auto progress = [this, send_ns](const beast::error_code& ec, size_t) -> size_t {
      deadline_ = std::chrono::steady_clock::now() + std::chrono::nanoseconds(send_ns);
      return ec ? 0 : kWriteChunk;
    };
    asio::async_write(
        socket_, bufs, progress,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnWritten(ec); });
  }

  void OnWritten(beast::error_code ec) {
    phase_ = Phase::kNone;
    ++answered_;
    event_.latency_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                  std::chrono::steady_clock::now() - head_steady_)
                                                  .count());
    // A client gone before the answer (during a delay) still gets its event, which says the
    // answer was not written.
    if (ec) absl::StrAppend(&event_.explanation, "; answer not written: ", ec.message());
    if (shared_->callbacks.on_event) shared_->Emit(event_);
    if (ec || shared_->stopping.load()) return Shutdown();
    if (!keep_alive_) return LingeringClose();
    ReadHead();
  }

  // After the last answer: the sending side is shut, and what the client still sends (the rest
  // of a refused body, pipelined requests after "Connection: close") is read and dropped until
  // it closes or kLingerTime passed, so that closing with unread bytes (a TCP reset) does not
  // destroy the answer before the client read it (as nginx's lingering_close).
  void LingeringClose() {
    beast::error_code ignored;
    socket_.shutdown(Tcp::socket::shutdown_send, ignored);
    buffer_.clear();
    reading_ = true;
    timer_.expires_after(kLingerTime);
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec != asio::error::operation_aborted) self->Shutdown();
    });
    Drain();
  }

  void Drain() {
    socket_.async_read_some(asio::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) {
                                self->timer_.cancel();
                                return self->Shutdown();
                              }
                              self->Drain();
                            });
  }

  void Shutdown() {
    phase_ = Phase::kNone;
    watchdog_.cancel();
    beast::error_code ignored;
    socket_.shutdown(Tcp::socket::shutdown_send, ignored);
    socket_.close(ignored);
  }

  // A miss sent to the upstream on the worker pool; the answer comes back to this strand.
  // libcurl's timeout is what is left of upstream_timeout_ns, but a retry (a kept-alive
  // upstream connection found closed) can overrun it: the connection's own timer answers 502 at
  // the deadline, the worker's late answer is then dropped (not recorded), and the connection is
  // closed after the 502 (the worker may still read request_).
  void PassThrough(uint64_t delay_ns) {
    upstream_pending_ = true;
    upstream_abandoned_.store(false);
    timer_.expires_at(head_steady_ +
                      std::chrono::nanoseconds(shared_->options.upstream_timeout_ns));
    timer_.async_wait([self = shared_from_this(), delay_ns](beast::error_code ec) {
      if (ec == asio::error::operation_aborted || !self->upstream_pending_) return;
      self->upstream_pending_ = false;
      self->upstream_abandoned_.store(true);
      self->keep_alive_ = false;
      UpstreamAnswer late;
      late.error = absl::StrCat("timed out: no answer within ",
                                self->shared_->options.upstream_timeout_ns / 1000000, " ms");
      self->OnUpstream(late, delay_ns);
    });
    asio::post(*shared_->pool, [self = shared_from_this(), delay_ns] {
      auto answer = std::make_shared<UpstreamAnswer>();
      try {
        *answer = self->RunUpstream();
      } catch (const std::exception& e) {  // std::bad_alloc: the client gets a 502 saying so
        self->shared_->internal_errors.fetch_add(1, std::memory_order_relaxed);
        answer->ok = false;
        answer->error = absl::StrCat("internal error: ", e.what());
      }
      asio::post(self->socket_.get_executor(), [self, answer, delay_ns] {
        if (!self->upstream_pending_) return;  // answered 502 at the deadline already
        self->upstream_pending_ = false;
        self->timer_.cancel();
        self->OnUpstream(*answer, delay_ns);
      });
    });
  }

  // This worker thread's libcurl handle, kept across transfers so that its connections to the
  // upstream are reused (curl_easy_reset keeps them); cleaned up when the pool's thread ends.
  static CURL* WorkerHandle() {
    struct Handle {
      CURL* curl = curl_easy_init();
      ~Handle() {
        if (curl != nullptr) curl_easy_cleanup(curl);
      }
    };
    thread_local Handle h;
    if (h.curl != nullptr) curl_easy_reset(h.curl);
    return h.curl;
  }

  // Runs on a worker thread while the connection waits: reads request_ only.
  UpstreamAnswer RunUpstream() {
    UpstreamAnswer a;
    const Upstream& up = *shared_->upstream;
    // The absolute form ("http://svc?x=1") goes to the upstream in origin form ("/?x=1"),
    // split as the key is (format/http_text.h SplitRequestTarget, RFC 9112 section 3.2).
    const RequestTargetParts parts = SplitRequestTarget(request_.path);
    const std::string target = parts.absolute ? parts.OriginForm() : request_.path;
    if (target.empty() || target.front() != '/') {
      a.error =
          absl::StrCat("request-target '", EscapeControl(request_.path), "' is not in origin form");
      return a;
    }
    // The deadline runs from the head's arrival: a miss that waited in the queue has only what
    // is left, and one with nothing left is not sent at all.
    const auto deadline =
        head_steady_ + std::chrono::nanoseconds(shared_->options.upstream_timeout_ns);
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (shared_->abort_upstream.load()) {
      a.stopping = true;
      return a;
    }
    if (left.count() <= 0) {
      a.error = absl::StrCat("no worker free within ",
                             shared_->options.upstream_timeout_ns / 1000000, " ms: not sent");
      return a;
    }
    CURL* curl = WorkerHandle();
    if (curl == nullptr) {
      a.error = "curl_easy_init failed";
      return a;
    }
    if (shared_->share != nullptr) curl_easy_setopt(curl, CURLOPT_SHARE, shared_->share);
    std::string url = absl::StrCat("http://", up.authority, up.prefix, target);
    curl_slist* list = nullptr;
    const std::vector<std::string> named = internal::ConnectionNamed(request_.headers);
    for (const Header& h : request_.headers) {
      if (AlwaysDropped(h.name) || Named(named, h.name) || EqualsIgnoreCase(h.name, "expect"))
        continue;
      if (EqualsIgnoreCase(h.name, "host") && !shared_->options.keep_authority) continue;
      std::string line =
          h.value.empty() ? absl::StrCat(h.name, ";") : absl::StrCat(h.name, ": ", h.value);
      for (char& c : line)
        if (c == '\r' || c == '\n') c = ' ';
      list = curl_slist_append(list, line.c_str());
    }
    if (!shared_->options.keep_authority)
      list = curl_slist_append(list, ("Host: " + up.authority).c_str());
    // libcurl's own defaults the client did not send are left out.
    list = curl_slist_append(list, "Expect:");
    bool client_accept = false;
    for (const Header& h : request_.headers)
      client_accept = client_accept || EqualsIgnoreCase(h.name, "accept");
    if (!client_accept) list = curl_slist_append(list, "Accept:");
    // CURLOPT_POSTFIELDS would add "Content-Type: application/x-www-form-urlencoded".
    bool client_type = false;
    for (const Header& h : request_.headers)
      client_type = client_type || EqualsIgnoreCase(h.name, "content-type");
    if (!client_type) list = curl_slist_append(list, "Content-Type:");
    char errbuf[CURL_ERROR_SIZE] = {0};
    internal::ResponseReader reader;
    reader.Reset(kMaxUpstreamBody);
    UpstreamHead upstream_head{&reader};
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    internal::SetDirectHttp11Options(curl);  // as the replay engine: never via a proxy
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, CurlWrite);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reader);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, CurlHeader);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &upstream_head);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, CurlProgress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, shared_.get());
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(left.count()));
    if (head_request_) {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request_.method.c_str());
      if (!request_.body.data.empty() || request_.method == "POST" || request_.method == "PUT" ||
          request_.method == "PATCH") {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request_.body.data.data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(request_.body.data.size()));
      }
    }
    const auto started = std::chrono::steady_clock::now();
    CURLcode rc = curl_easy_perform(curl);
    const auto ended = std::chrono::steady_clock::now();
    a.response = std::move(reader.response());
    if (rc == CURLE_ABORTED_BY_CALLBACK && shared_->abort_upstream.load()) {
      a.stopping = true;
    } else if (upstream_head.differing_lengths) {
      a.error = "differing Content-Length values in its answer (RFC 9112 section 6.3)";
    } else if (rc != CURLE_OK) {
      a.error = rc == CURLE_WRITE_ERROR
                    ? absl::StrCat("response body past ", kMaxUpstreamBody, " bytes")
                    : std::string(errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
    } else if (a.response.status < 200 || a.response.status > 599) {
      a.error = absl::StrCat("final status ", a.response.status, " not in 200..599");
    } else {
      a.ok = true;
      a.response.body.length = a.response.body.data.size();
      // The exchange for on_recorded: times relative to the head's arrival (sort key).
      Exchange x;
      x.sort_key_ns = head_wall_ns_;
      auto rel = [&](std::chrono::steady_clock::time_point t) {
        return static_cast<uint64_t>(std::max<int64_t>(
            0, std::chrono::duration_cast<std::chrono::nanoseconds>(t - head_steady_).count()));
      };
      x.request_end_ns = rel(request_body_end_);
      curl_off_t start_us = 0;
      curl_easy_getinfo(curl, CURLINFO_STARTTRANSFER_TIME_T, &start_us);
      x.response_start_ns = rel(started) + static_cast<uint64_t>(start_us) * 1000;
      x.response_end_ns = std::max(rel(ended), x.response_start_ns);
      x.stream_id = shared_->next_stream_id.fetch_add(1);
      x.source = client_;
      char* ip = nullptr;
      long port = 0;
      curl_easy_getinfo(curl, CURLINFO_PRIMARY_IP, &ip);
      curl_easy_getinfo(curl, CURLINFO_PRIMARY_PORT, &port);
      if (ip != nullptr) {
        if (auto parsed = IpAddress::Parse(ip)) x.destination.ip = *parsed;
      }
      x.destination.port = static_cast<uint16_t>(port);
      x.direction = Direction::kUnknown;
      x.tls = TlsState::kNo;
      x.request = request_;
      x.response = a.response;
      x.completion = Completion::kComplete;
      if (!upstream_abandoned_.load()) shared_->Record(std::move(x));
    }
    curl_slist_free_all(list);
    return a;
  }

  void OnUpstream(UpstreamAnswer& a, uint64_t delay_ns) {
    const ServeOptions& opt = shared_->options;
    if (a.ok) {
      shared_->passed_through.fetch_add(1, std::memory_order_relaxed);
      upstream_response_ = std::move(a.response);
      ResetEvent(ServeEvent::Kind::kPassThrough, upstream_response_.status, /*keep_request=*/true);
      event_.explanation = absl::StrCat("passed through to ", shared_->upstream->text);
      RenderResponse(upstream_response_, head_request_, version_, keep_alive_, opt.set_headers,
                     &head_, &body_);
      return AnswerAfter(delay_ns);
    }
    shared_->upstream_errors.fetch_add(1, std::memory_order_relaxed);
    // 503: the server is going away (RFC 9110 section 15.6.4); 502: the upstream failed.
    const unsigned status = a.stopping ? 503 : 502;
    std::string why = EscapeControl(
        a.stopping ? absl::StrCat("the mock is stopping: upstream ", shared_->upstream->text,
                                  " not awaited past the stop grace")
                   : absl::StrCat("upstream ", shared_->upstream->text, ": ", a.error));
    ResetEvent(ServeEvent::Kind::kUpstreamError, status, /*keep_request=*/true);
    event_.explanation = why;
    keep_alive_ = keep_alive_ && !a.stopping;
    RenderText(status, why, why + "\n");
    AnswerAfter(delay_ns);
  }

  std::shared_ptr<Shared> shared_;
  Tcp::socket socket_;
  asio::steady_timer timer_;     // the delay, LingeringClose
  asio::steady_timer watchdog_;  // the timeouts (Expect)
  Phase phase_ = Phase::kNone;
  Phase timed_out_ = Phase::kNone;  // the read was cancelled by this phase's timeout
  std::chrono::steady_clock::time_point deadline_;
  bool watchdog_waiting_ = false;
  uint64_t answered_ = 0;  // requests answered on this connection
  Endpoint client_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool reading_ = false;
  bool delaying_ = false;          // AnswerAfter's timer is waiting
  size_t empty_line_bytes_ = 0;    // empty lines skipped before this head (SkipEmptyLines)
  bool upstream_pending_ = false;  // a pass-through's answer is awaited (PassThrough)
  std::atomic<bool> upstream_abandoned_{false};  // answered 502 at the deadline: do not record
  // The request being answered.
  Request request_;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_request_ = false;
  uint64_t head_wall_ns_ = 0;
  std::chrono::steady_clock::time_point head_steady_, request_body_end_;
  // Its answer: head_ then body_ (a view of the recorded body, body_owned_ or
  // upstream_response_'s body).
  std::string head_;
  std::string_view body_;
  std::string body_owned_;
  Response upstream_response_;
  ServeEvent event_;
  std::array<char, 4096> drain_{};  // LingeringClose's scratch
};

// libcurl's global state, once per process. A function-static is initialised once even with
// MockServers started on several threads; curl_global_init itself is thread-safe only where
// libcurl says so (CURL_VERSION_THREADSAFE, libcurl 7.84 and later: Debian 12 has 7.88), and
// then it may run beside other libraries' use of libcurl (the replay engine's); serve_test checks
// the feature on the machine's libcurl.
bool CurlGlobalInit() {
  static const bool kOk = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  return kOk;
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text) {
  auto bad = [](std::string_view why) { return absl::InvalidArgumentError(std::string(why)); };
  constexpr std::string_view kNotLiteral =
      "not a literal IP address and port (the mock listens on exactly the address given; no "
      "name is resolved; IPv6 in brackets: [::1]:8080)";
  std::string_view host, port;
  const bool bracketed = !text.empty() && text.front() == '[';
  if (bracketed) {
    size_t close = text.find("]:");
    if (close == std::string_view::npos)
      return bad("give ADDRESS:PORT (127.0.0.1:8080, [::1]:8080)");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return bad("give ADDRESS:PORT (127.0.0.1:8080, [::1]:8080)");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return bad(kNotLiteral);
  }
  uint32_t p = 0;
  if (!ParseUint(port, &p) || p > 65535) return bad("the port is not a number from 0 to 65535");
  boost::system::error_code ec;
  asio::ip::address addr = asio::ip::make_address(std::string(host), ec);
  if (ec || bracketed != addr.is_v6()) return bad(kNotLiteral);
  ListenAddress out;
  out.ip = addr.to_string();
  out.port = static_cast<uint16_t>(p);
  out.ipv6 = addr.is_v6();
  return out;
}

struct MockServer::Impl {
  std::shared_ptr<Shared> shared;
  asio::io_context ioc;
  // Keeps run() going while a connection waits for the upstream with no operation pending on
  // the io_context (the acceptor closed by Stop is then the only other source of work).
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::optional<Tcp::acceptor> acceptor;
  std::optional<asio::thread_pool> pool;
  std::vector<std::thread> threads;
  Tcp::endpoint bound;

  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop_started = false;  // guarded by stop_mu
  bool stopped = false;       // guarded by stop_mu

  const int thread_count;

  explicit Impl(int n) : ioc(n), thread_count(n) {}

  // Accepting fails while the process is out of descriptors or buffers (EMFILE, ENFILE,
  // ENOBUFS, ENOMEM): trying again at once would spin a core, so it waits, 50 ms doubling up
  // to 1 s, until an accept succeeds again.
  static constexpr auto kAcceptBackoffFirst = std::chrono::milliseconds(50);
  static constexpr auto kAcceptBackoffMax = std::chrono::seconds(1);
  std::chrono::milliseconds accept_backoff = kAcceptBackoffFirst;
  bool accept_degraded = false;  // on the acceptor's executor only
  std::optional<asio::steady_timer> accept_timer;

  void Accept() {
    // One thread: the io_context itself serialises a connection's handlers (a strand would only
    // add its locking to every handler).
    asio::any_io_executor executor = thread_count == 1
                                         ? asio::any_io_executor(ioc.get_executor())
                                         : asio::any_io_executor(asio::make_strand(ioc));
    acceptor->async_accept(executor, [this](beast::error_code ec, Tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      if (ec) return AcceptFailed(ec);
      // Whatever happens below (a std::bad_alloc), accepting goes on.
      struct ReArm {
        Impl* im;
        ~ReArm() { im->Accept(); }
      } re_arm{this};
      accept_backoff = kAcceptBackoffFirst;
      accept_degraded = false;
      if (shared->stopping.load()) {
        beast::error_code ignored;
        s.close(ignored);
        return;
      }
      try {
        shared->connections.fetch_add(1, std::memory_order_relaxed);
        beast::error_code ignored;
        s.set_option(Tcp::no_delay(true), ignored);
        Tcp::endpoint peer = s.remote_endpoint(ignored);
        auto c = std::make_shared<Connection>(shared, std::move(s), peer);
        shared->Add(c.get(), c);
        c->Start();
      } catch (const std::exception&) {
        shared->internal_errors.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }

  void AcceptFailed(beast::error_code ec) {
    shared->accept_errors.fetch_add(1, std::memory_order_relaxed);
    if (!accept_degraded) {
      accept_degraded = true;
      shared->Degraded(absl::StrCat("accept on ", EndpointText(bound), ": ", ec.message(),
                                    "; retrying after ", kAcceptBackoffFirst.count(),
                                    " ms, doubling up to ", kAcceptBackoffMax.count(), " s"));
    }
    if (!accept_timer) accept_timer.emplace(acceptor->get_executor());
    accept_timer->expires_after(accept_backoff);
    accept_backoff = std::min<std::chrono::milliseconds>(accept_backoff * 2, kAcceptBackoffMax);
    accept_timer->async_wait([this](beast::error_code wait_ec) {
      if (wait_ec || !acceptor->is_open()) return;
      Accept();
    });
  }
};

absl::StatusOr<std::unique_ptr<MockServer>> MockServer::Start(std::vector<Exchange> exchanges,
                                                              ServeOptions options,
                                                              ServeCallbacks callbacks) {
  absl::StatusOr<ListenAddress> listen = ParseListenAddress(options.listen);
  if (!listen.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("listen address '", options.listen,
                                                   "': ", std::string(listen.status().message())));
  }
  std::optional<Tcp::endpoint> ep;
  {
    boost::system::error_code ec;
    ep.emplace(asio::ip::make_address(listen->ip, ec), listen->port);
  }
  if (options.threads < 1 || options.threads > 16)
    return absl::InvalidArgumentError(
        absl::StrCat("threads ", options.threads, ": out of range 1..16"));
  for (auto [name, ns] : {std::pair<const char*, uint64_t>{"header", options.header_timeout_ns},
                          {"body", options.body_timeout_ns},
                          {"keep-alive", options.keepalive_timeout_ns},
                          {"send", options.send_timeout_ns}}) {
    if (ns == 0 || ns > kMaxTimeoutNs)
      return absl::InvalidArgumentError(
          absl::StrCat(name, " timeout ", ns, " ns: out of range 1 ns..24 h"));
  }
  if (!options.upstream.empty() &&
      (options.upstream_timeout_ns == 0 || options.upstream_timeout_ns > kMaxTimeoutNs)) {
    return absl::InvalidArgumentError(absl::StrCat("upstream timeout ", options.upstream_timeout_ns,
                                                   " ns: out of range 1 ns..24 h"));
  }
  if (options.stop_grace_ns > kMaxTimeoutNs)
    return absl::InvalidArgumentError(
        absl::StrCat("stop grace ", options.stop_grace_ns, " ns: out of range 0..24 h"));
  // A 1xx is interim (RFC 9110 section 15.2): the client would wait for a final answer.
  if (options.miss_status < 200 || options.miss_status > 599)
    return absl::InvalidArgumentError(
        absl::StrCat("miss status ", options.miss_status, ": out of range 200..599"));
  std::optional<Upstream> upstream;
  if (!options.upstream.empty()) {
    if (!CurlGlobalInit()) return absl::InternalError("upstream: curl_global_init failed");
    absl::StatusOr<Upstream> up = ParseUpstream(options.upstream);
    if (!up.ok()) return up.status();
    upstream = *std::move(up);
  }
  for (const Header& h : options.set_headers) {
    if (!IsToken(h.name))
      return absl::InvalidArgumentError(
          absl::StrCat("set header '", h.name, "': not a field name"));
    if (internal::IsHopByHop(absl::AsciiStrToLower(h.name)))
      return absl::InvalidArgumentError(absl::StrCat(
          "set header '", h.name,
          "': the server frames its answers itself; a framing or "
          "hop-by-hop field cannot be set (RFC 9110 section 7.6.1, RFC 9112 section 6)"));
  }

  const int threads = options.threads;
  auto impl = std::make_unique<Impl>(threads);
  impl->shared =
      std::make_shared<Shared>(std::move(exchanges), std::move(options), std::move(callbacks));
  impl->shared->upstream = std::move(upstream);
  beast::error_code ec;
  if (threads == 1) {
    impl->acceptor.emplace(impl->ioc);
  } else {
    impl->acceptor.emplace(asio::make_strand(impl->ioc));
  }
  Tcp::acceptor& acc = *impl->acceptor;
  auto fail = [&] {
    return absl::UnavailableError(absl::StrCat("listen ", EndpointText(*ep), ": ", ec.message()));
  };
  acc.open(ep->protocol(), ec);
  if (ec) return fail();
  if (ep->address().is_v6()) acc.set_option(asio::ip::v6_only(true), ec);
  acc.set_option(asio::socket_base::reuse_address(true), ec);
  acc.bind(*ep, ec);
  if (ec) return fail();
  acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail();
  impl->bound = acc.local_endpoint(ec);
  if (ec) return fail();
  if (impl->shared->upstream) {
    impl->pool.emplace(static_cast<size_t>(kUpstreamWorkersPerThread * threads));
    impl->shared->pool = &*impl->pool;
    impl->shared->ShareConnections();
  }
  impl->work.emplace(impl->ioc.get_executor());
  impl->Accept();
  for (int i = 0; i < threads; ++i) {
    impl->threads.emplace_back([ioc = &impl->ioc, shared = impl->shared.get()] {
      for (;;) {
        try {
          ioc->run();
          return;
        } catch (...) {
          // Last resort: no handler is meant to throw; counted, and the loop goes on serving.
          shared->internal_errors.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  return std::unique_ptr<MockServer>(new MockServer(std::move(impl)));
}

MockServer::MockServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MockServer::~MockServer() { Stop(); }

uint16_t MockServer::port() const { return impl_->bound.port(); }

std::string MockServer::address() const { return EndpointText(impl_->bound); }

std::string MockServer::url() const { return "http://" + address(); }

void MockServer::Stop() {
  Impl& im = *impl_;
  {
    std::unique_lock<std::mutex> lock(im.stop_mu);
    if (im.stop_started) {
      im.stop_cv.wait(lock, [&] { return im.stopped; });
      return;
    }
    im.stop_started = true;
  }
  Shared& sh = *im.shared;
  sh.stopping.store(true);
  asio::post(im.acceptor->get_executor(), [&im] {
    beast::error_code ignored;
    im.acceptor->close(ignored);
    if (im.accept_timer) im.accept_timer->cancel();
  });
  // Idle connections close now; the others after their answer (at most stop_grace_ns).
  for (auto& c : sh.Live()) c->Close();
  sh.WaitNoConnections(std::chrono::nanoseconds(sh.options.stop_grace_ns));
  // Pass-throughs still waiting for the upstream end now; their clients get a 503 saying so.
  sh.abort_upstream.store(true);
  sh.WaitNoConnections(kAbortTime);
  im.work.reset();
  im.ioc.stop();
  for (std::thread& t : im.threads) t.join();
  if (im.pool) im.pool->join();
  for (auto& c : sh.Live()) c->ForceClose();
  sh.CloseCallbacks();
  {
    beast::error_code ignored;
    im.acceptor->close(ignored);
  }
  {
    std::lock_guard<std::mutex> lock(im.stop_mu);
    im.stopped = true;
  }
  im.stop_cv.notify_all();
}

void MockServer::Wait() {
  std::unique_lock<std::mutex> lock(impl_->stop_mu);
  impl_->stop_cv.wait(lock, [&] { return impl_->stopped; });
}

ServeStats MockServer::stats() const {
  const Shared& sh = *impl_->shared;
  ServeStats s;
  s.hits = sh.hits.load();
  s.misses = sh.misses.load();
  s.passed_through = sh.passed_through.load();
  s.upstream_errors = sh.upstream_errors.load();
  s.bad_requests = sh.bad_requests.load();
  s.bad_recorded = sh.bad_recorded.load();
  s.connections = sh.connections.load();
  s.accept_errors = sh.accept_errors.load();
  s.internal_errors = sh.internal_errors.load();
  return s;
}

size_t MockServer::recorded() const { return impl_->shared->recorded.size(); }

size_t MockServer::skipped() const { return impl_->shared->recorded.skipped(); }

}  // namespace tapkit::replay
