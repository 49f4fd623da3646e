// serve.h: a capture as a mock of the recorded service (tapreplay --serve, issue 13).
//
// MockServer listens on one address and answers each HTTP/1.1 request with the recorded response
// whose request matches it (replay/match.h: method, path, query as a multiset, optionally host,
// chosen headers and the body; sequences per key, shared or per session). It stands in for a
// service that is not there: a frontend run against the backend it talked to in a bug report's
// capture, a client tested in CI without its dependencies.
//
// The server (Boost.Beast, HTTP/1.1 per RFC 9112):
//   - listens on exactly the address given: a literal IPv4 or IPv6 address and a port (0: the
//     kernel picks one; port() tells which). No name is resolved and no other address is tried;
//     an address that cannot be bound is an error;
//   - keeps connections alive as the client asks (RFC 9112 section 9.3: HTTP/1.1 persistent
//     unless "Connection: close"; HTTP/1.0 only with "Connection: keep-alive"; every answer's
//     status line says HTTP/1.1, the highest version the server conforms to, RFC 9110 section
//     6.2, as nginx does), pipelined
//     requests answered in order; reads request bodies framed by Content-Length or chunked
//     (RFC 9112 section 6), at most kMaxRequestBody bytes (413 past it, then the connection is
//     closed); a request that does not parse gets 400 and the connection is closed, and so do
//     one whose Transfer-Encoding does not end in chunked (RFC 9112 section 6.3 item 4: its body
//     cannot be framed; the bytes after it are not read as requests), an HTTP/1.0 request with
//     Transfer-Encoding (section 6.1: faulty framing) and an HTTP/1.1 request
//     without exactly one Host (RFC 9112 section 3.2); a head past 64 KiB gets 431 (RFC 6585
//     section 5) and the connection is closed; empty lines before a request-line are ignored
//     (RFC 9112 section 2.2); HTTP/1.x with x > 1 is served as HTTP/1.1 (RFC 9110 section 6.2)
//     and a request-line saying HTTP/2.0 or higher gets 505 (RFC 9110 section 15.6.6), closed;
//   - answers a hit with the recorded status, reason phrase and header fields in recorded order,
//     except the framing and hop-by-hop fields (RFC 9110 section 7.6.1: Connection and the fields
//     it names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade) and
//     Content-Length, and frames the stored body anew with Content-Length (a recorded chunked
//     response is served de-chunked; recorded trailers are not served). Content-Encoding is
//     served as recorded, with the body as stored (still encoded). A response to HEAD, and a 304,
//     carry the recorded Content-Length and no body (RFC 9110 sections 9.3.2 and 15.4.5); 1xx,
//     204 and 304 responses carry no body (RFC 9112 section 6.3). Interim (1xx) responses
//     recorded before the final one are not served;
//   - answers a HEAD whose key was never recorded (method included) with the head of the GET
//     recorded for it, as a HEAD of it would have been (RFC 9110 section 9.3.2: HEAD is GET
//     without content); that takes the GET's turn in its sequence. A recorded HEAD comes first;
//     with strict, a HEAD whose GET's responses were all served is exhausted like the GET;
//   - serves redacted values (format/redact.h markers) as stored, unless set_headers names the
//     field: set_headers replace every recorded field of that name in every response served
//     (hits and pass-throughs; not the miss answer);
//   - a recorded response body that was not stored whole (Body::truncated, or fewer bytes than
//     its length: cut at the body limit, or emptied by redaction) is served as stored, with the
//     field `Tapkit-Truncated: stored S of L bytes` (L is "unknown" when the length is not known);
//   - a miss (no recorded request has the key), or with strict a key whose recorded responses were
//     all served, gets miss_status (404 by default) with `Content-Type: text/plain;
//     charset=utf-8`, the field `Tapkit-Miss: <LookupResult::Explanation()>` (made safe for a
//     field value: control bytes escaped) and a body of that explanation and the request line,
//     unless an upstream is set (below). A miss_status of 204 or 304 ends at the header section
//     (no body, no Content-Length: RFC 9110 sections 15.3.5 and 15.4.5), and so does a 205 with
//     "Content-Length: 0" (section 15.3.6: no content; a recorded 205's body is not served either). Only an exhausted
//     strict sequence or a miss ever gets this answer;
//   - with an upstream (`http://HOST[:PORT]` with an optional path prefix; the port defaults to
//     80), a miss is passed
//     through: the request is sent to the upstream (libcurl, on a worker thread; the same
//     hop-by-hop fields dropped, Host set to the upstream's authority unless keep_authority),
//     its answer served to the client (re-framed the same way), and the exchange handed to
//     on_recorded so it can be written to a capture. An upstream that cannot be reached or does
//     not answer within upstream_timeout_ns gets the client a 502 with Tapkit-Miss naming the
//     upstream and the error, and so does an answer whose body is past 64 MiB or whose
//     Content-Length values differ (RFC 9112 section 6.3 item 5: discarded, its connection closed). Fields libcurl
//     would add on its own (Accept, Expect, a form Content-Type) are not sent when the client did
//     not send them;
//   - waits before answering: nothing by default, the recorded latency (response_start_ns, the
//     request's first byte to the response's first byte) with kRecorded, or a fixed delay;
//     the wait is a timer, not a sleep: other connections are served meanwhile. Stop ends the
//     wait: the answer is written at once.
//
// Each answered request (hit, miss, pass-through, error) is reported once to on_event, after its
// response was written (or failed to be: the explanation then ends "; answer not written: " and
// the socket error). on_event and on_degraded are called on the server's
// threads, one at a time (never concurrently with each other or themselves: one lock); they
// must not block for long, as every answer's report waits for them. on_recorded is called on
// the pass-through's worker threads, one at a time (never concurrently with itself), under a
// lock of its own: while it waits (a full queue, a slow disk) only other pass-throughs wait for
// it; hits, misses and their on_event go on. It may run at the same time as on_event. A callback
// that throws is counted in ServeStats::internal_errors; the server goes on.
//
// Thread-safety: Start, port(), address(), Stop() and stats() may be called from any thread
// but a callback's (Stop waits for the server's threads); Stop() is idempotent. The destructor
// stops the server (a MockServer serves for its lifetime).
#ifndef TAPKIT_REPLAY_SERVE_H_
#define TAPKIT_REPLAY_SERVE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "format/exchange.h"
#include "format/select.h"
#include "replay/match.h"

namespace tapkit::replay {

// Request bodies past this many bytes are refused with 413 (the connection is then closed).
inline constexpr size_t kMaxRequestBody = 64 * 1024 * 1024;

enum class ServeDelay : uint8_t {
  kNone,      // answer at once
  kRecorded,  // wait the recorded exchange's response_start_ns (hits only; at most 1 h)
  kFixed,     // wait delay_ns before every answer
};

struct ServeOptions {
  // "127.0.0.1:8080", "[::1]:8080"; port 0 lets the kernel choose. A literal address only.
  std::string listen;
  MatchOptions match;          // replay/match.h; tapreplay sets ignore_host unless --match-host
  std::string session_header;  // empty: one sequence per key across all clients
  uint16_t miss_status = 404;  // 200..599: a 1xx is interim (ParseMissStatus checks the flag)
  ServeDelay delay = ServeDelay::kNone;
  uint64_t delay_ns = 0;  // kFixed: nanoseconds
  // Replace the recorded fields of these names (see above). Framing and hop-by-hop fields
  // (replay_request.h IsHopByHop: Content-Length, Transfer-Encoding, Connection, ...) are refused.
  std::vector<Header> set_headers;
  // Pass-through for misses: "http://HOST[:PORT][/PREFIX]" (port 80 by default); empty: misses
  // get miss_status.
  std::string upstream;
  bool keep_authority = false;  // pass-through keeps the client's Host
  // Per passed-through request, from its head's arrival (1 ns..24 h; checked with an upstream;
  // held by the connection's own timer too, so a libcurl retry cannot overrun it: then 502 and
  // the connection closed, the late answer not recorded):
  // 16 workers per thread each send one at a time (connections to the upstream kept and reused
  // by any worker); a miss still queued when its time is up gets the 502 without being sent.
  uint64_t upstream_timeout_ns = 30'000'000'000;
  // Timeouts (nanoseconds, 1 ns..24 h), nginx's of the same names with its defaults, so that a
  // client that stalls (a slowloris sending half a head, an idle keep-alive connection, a client
  // that never reads) does not hold a connection forever:
  //   header_timeout (client_header_timeout): the whole request head, from its first byte (the
  //     first request's: from the accept; a pipelined one already buffered: from the end of the
  //     previous answer); past it 408 and close (a connection that sent nothing is closed
  //     without an answer);
  //   body_timeout (client_body_timeout): between two reads of a request body; 408 and close;
  //   keepalive_timeout: between an answer and the next request's first byte; closed silently;
  //   send_timeout: between two writes of an answer (a client that does not read); closed.
  // A 408 is reported as kBadRequest.
  uint64_t header_timeout_ns = 60'000'000'000;
  uint64_t body_timeout_ns = 60'000'000'000;
  uint64_t keepalive_timeout_ns = 75'000'000'000;
  uint64_t send_timeout_ns = 60'000'000'000;
  // Stop lets answers being written and pass-throughs in flight finish this long (0..24 h); then
  // the pass-throughs still waiting are ended and their clients get 503 with Tapkit-Miss saying the
  // mock is stopping (kUpstreamError).
  uint64_t stop_grace_ns = 5'000'000'000;
  // Threads running the server's event loop (1..16). bench/README.md ("The mock server against
  // nginx") measured one thread at 0.69 of nginx's rate (one worker) on a 2-core machine; two
  // threads were no faster there.
  int threads = 1;
};

// One answered request, for the log (text or JSON lines: replay/serve_log.h).
struct ServeEvent {
  enum class Kind : uint8_t {
    kHit,            // a recorded response was served
    kMiss,           // no recorded request matched: miss_status was served
    kExhausted,      // strict: the key's recorded responses were all served: miss_status
    kPassThrough,    // a miss answered by the upstream (and handed to on_recorded)
    kUpstreamError,  // a miss the upstream did not answer: 502 (503: not awaited, Stop)
    kBadRequest,     // the request was refused: 400, 408 (a timeout), 413, 431 or 505
    // The key matched a recorded response whose status (past 599: a damaged record) cannot be
    // served over HTTP/1.1: 502 with Tapkit-Miss saying so; `recorded` names it. Not a hit.
    kBadRecorded,
  };
  Kind kind = Kind::kMiss;
  uint64_t time_ns = 0;     // wall clock (Unix epoch, ns) when the request's head was read
  Endpoint client;          // the peer of the connection
  std::string method;       // as received (empty for a request that did not parse)
  std::string target;       // the request-target as received
  uint16_t status = 0;      // the status served
  uint64_t latency_ns = 0;  // head read -> response written, delay included
  // kHit: the recorded exchange served, its place in its key's sequence and the sequence's
  // length; kMiss/kExhausted: the closest recorded exchange (id 0/0 and position 0 when none).
  ExchangeId recorded;
  size_t position = 0;
  size_t sequence_length = 0;
  std::string explanation;  // LookupResult::Explanation(), or the upstream's or parser's error
  // kHit: a HEAD whose key was never recorded, answered with the head of the GET recorded for it
  // (the explanation also ends "(the recorded GET's head)").
  bool head_of_get = false;
  std::string session;  // the session header's value, when one is configured
};

struct ServeStats {
  uint64_t hits = 0;
  uint64_t misses = 0;  // kMiss and kExhausted
  uint64_t passed_through = 0;
  uint64_t upstream_errors = 0;
  uint64_t bad_requests = 0;
  uint64_t bad_recorded = 0;  // kBadRecorded: a match whose recorded status cannot be served
  uint64_t connections = 0;   // accepted
  // Accepts that failed (EMFILE, ENFILE, ENOBUFS: out of descriptors or buffers); the server
  // then waits before accepting again (50 ms, doubling up to 1 s) rather than spinning.
  uint64_t accept_errors = 0;
  // Exceptions caught where none is meant to be thrown (std::bad_alloc, a callback that threw);
  // serving went on.
  uint64_t internal_errors = 0;
};

struct ServeCallbacks {
  std::function<void(const ServeEvent&)> on_event;  // may be empty
  // A passed-through exchange (request as received, response as the upstream sent it, times,
  // endpoints: source the client, destination the upstream). May be empty.
  std::function<void(Exchange)> on_recorded;
  // One line when accepting starts failing (ServeStats::accept_errors), e.g. "accept on
  // 127.0.0.1:8080: Too many open files; retrying after 50 ms, doubling up to 1 s"; again only
  // after an accept succeeded. Called on the server's threads, like on_event. May be empty.
  std::function<void(const std::string&)> on_degraded;
};

// A listen address: a literal IP address and a port.
struct ListenAddress {
  std::string ip;     // "127.0.0.1", "::1" (no brackets)
  uint16_t port = 0;  // 0: the kernel picks
  bool ipv6 = false;
};

// Parses "IPv4:PORT" or "[IPv6]:PORT": a literal address (no name resolved; an IPv6 address in
// brackets, RFC 3986 section 3.2.2) and a port of decimal digits, 0..65535 (leading zeros
// allowed: "000080" is 80). The one parser of a listen address: Start and tapreplay --serve use
// it. Errors: InvalidArgument whose message is the reason only ("the port is not a number from 0
// to 65535"), for the caller to prefix with the field or flag it names. Thread-safe.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text);

class MockServer {
 public:
  // Indexes `exchanges` (their order is the recording order for sequences: sort them by
  // sort_key_ns first), binds options.listen and starts serving on options.threads threads.
  // Errors: InvalidArgument naming the field: listen not an address ParseListenAddress takes
  // ("listen address 'localhost:80': not a literal IP address and port (...)"); threads out of
  // 1..16; header, body, keep-alive or send timeout out of 1 ns..24 h; stop_grace_ns past 24 h;
  // miss_status out of 200..599; with an upstream, upstream_timeout_ns out of 1 ns..24 h and an
  // upstream that is not http://HOST[:PORT][/PREFIX]; a set_headers name that is not a token or
  // is a framing or hop-by-hop field. Internal when libcurl's curl_global_init fails and
  // ResourceExhausted when curl_url cannot allocate (only with an upstream). Unavailable for an
  // address that cannot be bound ("listen 127.0.0.1:80: Permission denied").
  static absl::StatusOr<std::unique_ptr<MockServer>> Start(std::vector<Exchange> exchanges,
                                                           ServeOptions options,
                                                           ServeCallbacks callbacks = {});
  ~MockServer();  // Stop(), then waits for the threads
  MockServer(const MockServer&) = delete;
  MockServer& operator=(const MockServer&) = delete;

  uint16_t port() const;        // the bound port
  std::string address() const;  // "127.0.0.1:PORT", "[::1]:PORT"
  std::string url() const;      // "http://127.0.0.1:PORT"

  // Stops accepting, cuts pending delays short (those answers are written at once, with
  // "Connection: close"), lets the responses being written and the pass-throughs in flight finish
  // (their answers written, reported and counted) for stop_grace_ns; past it, a pass-through
  // still waiting is ended and its client gets 503 (reported, counted); then every connection is
  // closed. After Stop returns no callback runs.
  void Stop();
  // Blocks until Stop has been called and has finished (from another thread or a signal
  // handler's thread).
  void Wait();

  ServeStats stats() const;
  size_t recorded() const;  // exchanges indexed (RecordedResponses::size)
  size_t skipped() const;   // exchanges without a request or a response

 private:
  struct Impl;
  explicit MockServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The exchanges to serve: every exchange of the .tap files `paths` that `selection` matches (all
// when it is null; it is bound here over the inputs), merged in sort-key order across files (ties:
// the files' order), so that sequences follow the recording. Torn files (a cut-off end) are read
// up to the damage and a line saying so is appended to `notices` (tapcat's notice; may be null).
// Errors name the file: one that cannot be opened or is not a capture; damage in the middle of a
// file is DataLoss naming the file and the offset. A --max-count (-c) stops after N.
// `read` (may be null) says where the exchanges came from.
struct ServedInputs {
  // Exchanges read from the inputs, kept or not (so that a selection that kept none can say of
  // how many).
  size_t examined = 0;
  // For each exchange returned, in order: the index in `paths` of the file it came from
  // (exchange ids are unique per capture only).
  std::vector<size_t> input_of;
};
absl::StatusOr<std::vector<Exchange>> ReadServedExchanges(
    const std::vector<std::string>& paths, Selection* selection = nullptr,
    std::vector<std::string>* notices = nullptr, ServedInputs* read = nullptr);

}  // namespace tapkit::replay

#endif  // TAPKIT_REPLAY_SERVE_H_
