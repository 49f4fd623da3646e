#include "sidecar/http1.h"

#include <http_parser.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "format/http_text.h"

namespace tapkit {
namespace {

bool IsTokenUpper(uint8_t c) { return (c >= 'A' && c <= 'Z') || c == '-' || c == '_'; }

HttpVersion Version(unsigned short major, unsigned short minor) {
  if (major == 1 && minor == 1) return HttpVersion::kHttp11;
  if (major == 1 && minor == 0) return HttpVersion::kHttp10;
  if (major == 0 && minor == 9) return HttpVersion::kHttp09;
  return HttpVersion::kUnknown;
}

// Byte classes for the fast path, as 256-entry tables (one load per byte).
struct ByteClass {
  bool in[256] = {};
  constexpr ByteClass(const char* extra, bool alnum, int lo = 0, int hi = -1) {
    for (int c = lo; c <= hi; ++c) in[c] = true;
    if (alnum) {
      for (int c = '0'; c <= '9'; ++c) in[c] = true;
      for (int c = 'A'; c <= 'Z'; ++c) in[c] = true;
      for (int c = 'a'; c <= 'z'; ++c) in[c] = true;
    }
    for (const char* p = extra; *p; ++p) in[static_cast<uint8_t>(*p)] = true;
  }
  bool operator()(char c) const { return in[static_cast<uint8_t>(c)]; }
};
// tchar of RFC 9110 section 5.6.2: the bytes of a field name.
constexpr ByteClass kTchar("!#$%&'*+-.^_`|~", true);
// The bytes of an origin-form request target (RFC 3986 section 2: unreserved, reserved and '%').
constexpr ByteClass kUriChar("-._~:/?#[]@!$&'()*+,;=%", true);
// Field-value bytes the fast path takes (visible ASCII, space and tab); others go to the library.
constexpr ByteClass kValueChar("\t", false, 0x20, 0x7e);

// True for the methods http-parser knows (its HTTP_METHOD_MAP). Checked before every request.
// The first protocol of an Upgrade field value ("h2c", "websocket, foo"), lower-case (protocol
// names are case-insensitive, RFC 9110 section 7.8), with its "/version" if it has one.
std::string FirstUpgradeToken(std::string_view v) {
  v = v.substr(0, v.find(','));
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return absl::AsciiStrToLower(std::string(v));
}

bool IsKnownMethod(std::string_view token) {
  static const auto* const known = [] {
    auto* v = new std::vector<std::string_view>{
#define TAPKIT_KNOWN_METHOD(num, name, string) #string,
        HTTP_METHOD_MAP(TAPKIT_KNOWN_METHOD)
#undef TAPKIT_KNOWN_METHOD
    };
    std::sort(v->begin(), v->end());
    return v;
  }();
  return std::binary_search(known->begin(), known->end(), token);
}

}  // namespace

bool LooksLikeHttp1Start(std::span<const uint8_t> d, bool* is_request) {
  std::string_view s(reinterpret_cast<const char*>(d.data()), std::min<size_t>(d.size(), 16384));
  // A status line: HTTP/1.0 or HTTP/1.1, a space, three digits (RFC 9112 section 4).
  if (s.substr(0, 7) == "HTTP/1.") {
    if (s.size() >= 9 && s[7] != '0' && s[7] != '1') return false;
    if (s.size() >= 13 && !(s[8] == ' ' && absl::ascii_isdigit(static_cast<unsigned char>(s[9])) &&
                            absl::ascii_isdigit(static_cast<unsigned char>(s[10])) &&
                            absl::ascii_isdigit(static_cast<unsigned char>(s[11])))) {
      return false;
    }
    *is_request = false;
    return true;
  }
  // A request line (RFC 9112 section 3): method token, space, request target, space, version.
  // Methods are any token, but to find message starts inside other bytes we take capital
  // letters, '-' and '_' only (as every registered method and the custom ones seen in practice).
  size_t i = 0;
  while (i < s.size() && i < 24 && IsTokenUpper(static_cast<uint8_t>(s[i]))) ++i;
  if (i < 3 || i + 2 > s.size() || s[i] != ' ') return false;
  std::string_view method = s.substr(0, i);
  size_t eol = s.find('\n', i);
  if (eol != std::string_view::npos) {
    std::string_view line = s.substr(0, eol);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view version = line.size() >= 9 ? line.substr(line.size() - 9) : "";
    if (version != " HTTP/1.1" && version != " HTTP/1.0") return false;
    *is_request = true;
    return true;
  }
  // The line is not whole yet (a long URI): accept the usual target forms only.
  std::string_view target = s.substr(i + 1);
  bool ok = target[0] == '/' || target[0] == '*' || method == "CONNECT" ||
            EqualsIgnoreCase(target.substr(0, 7), "http://") ||
            EqualsIgnoreCase(target.substr(0, 8), "https://");
  if (ok) *is_request = true;
  return ok;
}

// One exchange being assembled.
struct Http1Connection::Pending {
  Exchange x;
  uint64_t id = 0;  // the stream id, given when the exchange's first message begins
  uint64_t req_start = 0, req_end = 0, rsp_start = 0, rsp_end = 0;
  bool has_req_time = false, has_rsp_time = false;
  bool request_done = false;
  bool is_head = false, is_connect = false;
  bool gap = false;
  bool malformed = false;  // with `gap`: the damage was a parse error, not lost bytes
  std::string gap_reason;
  bool written = false;  // emitted; kept only while the request side still parses its request
  // The final response ended while the request was still arriving (an early answer): written
  // when the request ends, or as truncated if it never does.
  bool response_done = false;
  // The capture holds no response for it (lost in a gap, or not told apart from another
  // request's by an ambiguous response): written so once the request ends.
  bool retired = false;
  Completion retired_how = Completion::kGap;
  std::string retired_reason;
  // Framing that a peer may have read differently (Transfer-Encoding with Content-Length).
  std::string framing_note;
  // A response paired with no request (orphan_): how it is written.
  Completion orphan_how = Completion::kNoRequest;
  std::string orphan_reason;
};

// One direction's parser and the message it is in.
struct Http1Connection::Side {
  Http1Connection* conn = nullptr;
  bool requests = false;  // the client's side
  http_parser parser{};
  uint64_t ts = 0;
  bool resync = false;  // skipping to the next message start
  bool in_message = false;
  // http-parser waits for a message start (not dead after a message that closes the connection).
  bool expect_start = true;
  // The fast path read a message's head; this many body bytes are still to come.
  uint64_t fast_remaining = 0;
  unsigned fast_status = 0;
  bool held = false;          // a request Upgrade waits for the response's verdict
  std::string custom_method;  // a method http-parser does not know, parsed by us
  std::string line_token;     // the first word of the request line, as sent
  std::string held_bytes;     // client bytes after an Upgrade request, until the verdict
  // Where each piece of held_bytes begins in it, and its place in the stream.
  std::vector<std::pair<size_t, StreamPosition>> held_at;
  // Positions (StreamPosition): the offset of the next byte fed, the ACK of the bytes being fed.
  uint64_t pos = 0;
  std::optional<int64_t> ack;
  std::optional<uint32_t> ack_seq;
  uint64_t chunk_end = 0;   // offset just after the bytes being fed
  uint64_t msg_offset = 0;  // where the message being (or about to be) parsed begins
  std::optional<int64_t> msg_ack;
  std::optional<uint32_t> msg_ack_seq;
  Pending* awaiting = nullptr;  // responses: an interim ended; the final one belongs here too
  Pending* decided = nullptr;   // responses: ResponseTarget's answer for msg_offset
  bool has_decided = false;
  // Responses: bytes skipped while looking for a status line, from the first one, kept (up to
  // the body limit) as a reply that is not HTTP/1 (an HTTP/0.9 body, an SSH banner).
  std::string junk;
  uint64_t junk_bytes = 0;
  bool junk_reply = false;        // the skipping began where a message should have begun
  uint64_t junk_from = 0;         // requests: where that message began
  bool line_done = false;         // the message's start line was seen whole
  bool in_body = false;           // http-parser reads a body framed by Content-Length
  bool body_hole = false;         // bytes of that body were lost; the rest is counted, not kept
  const char* buf_end = nullptr;  // end of the bytes http-parser is reading
  uint64_t junk_ts = 0;

  // The message being parsed.
  std::string url, status_text, field, value;
  bool last_was_value = false;
  bool in_trailers = false;
  std::vector<Header> headers, trailers;
  Body body;
  Pending* target = nullptr;

  void ResetMessage() {
    custom_method.clear();
    url.clear();
    status_text.clear();
    field.clear();
    value.clear();
    last_was_value = false;
    in_trailers = false;
    headers.clear();
    trailers.clear();
    body = Body{};
    target = nullptr;
  }
  void PushField() {
    if (field.empty() && value.empty()) return;
    (in_trailers ? trailers : headers).push_back(Header{std::move(field), std::move(value)});
    field.clear();
    value.clear();
    last_was_value = false;
  }
  void Init() {
    http_parser_init(&parser, requests ? HTTP_REQUEST : HTTP_RESPONSE);
    parser.data = this;
    // A passive observer reads what peers accepted: header bytes outside RFC 9110's grammar are
    // kept rather than rejected.
    parser.lenient_http_headers = 1;
    // Transfer-Encoding with Content-Length: RFC 9112 section 6.3 says the former wins; read it
    // so, rather than stop (the exchange is still seen, as the server saw it).
    parser.allow_chunked_length = 1;
    in_message = false;
    expect_start = true;
    fast_remaining = 0;
    ResetMessage();
  }
};

struct Http1Callbacks {
  // What http-parser (or the fast path) read of a message's start line and framing.
  struct Facts {
    unsigned short major = 0, minor = 0;
    unsigned status = 0;
    bool upgrade = false;
    std::string_view method;  // requests: the method as it goes into the exchange
  };
  enum class After { kGoOn, kPause, kStop };

  static Http1Connection::Side& S(http_parser* p) {
    return *static_cast<Http1Connection::Side*>(p->data);
  }

  static int OnMessageBegin(http_parser* p) {
    Begin(S(p));
    return 0;
  }

  // A message starts on `s` (from http-parser's callback or the fast path).
  static void Begin(Http1Connection::Side& s) {
    Http1Connection& c = *s.conn;
    s.ResetMessage();
    s.in_message = true;
    s.line_done = false;
    s.in_body = false;
    s.body_hole = false;
    // http-parser sets these as it reads the start line and keeps the previous message's values
    // until then; a message that fails before its status code must not inherit one.
    s.parser.status_code = 0;
    s.parser.http_major = 0;
    s.parser.http_minor = 0;
    s.parser.flags = 0;
    s.parser.content_length = ULLONG_MAX;
    if (s.requests) {
      // A request side with no response side (a one-way capture, a filter on one direction)
      // would queue requests without end: past the cap the oldest is written without response.
      constexpr size_t kMaxPending = 1024;
      if (c.pending_.size() >= kMaxPending && c.pending_.front()->request_done) {
        auto& old = *c.pending_.front();
        if (!old.written) {
          c.Finish(old, Completion::kNoResponse,
                   "no response before 1024 later requests on the connection");
          ++c.counters_->pending_limit;
        }
        c.Forget(c.pending_.front().get());
        c.pending_.pop_front();
      }
      auto pending = std::make_unique<Http1Connection::Pending>();
      pending->x = c.base_;
      pending->id = (*c.next_stream_id_)++;
      pending->req_start = s.ts;
      pending->has_req_time = true;
      s.target = pending.get();
      c.AddRequestSlot(pending.get(), s.msg_offset, s.msg_ack);
      if (!s.msg_ack && s.msg_ack_seq) c.slots_.back().ack_seq = s.msg_ack_seq;
      c.pending_.push_back(std::move(pending));
    } else {
      s.target = c.ResponseTarget(s);
      s.has_decided = false;
    }
  }

  // The start line is whole once a line end follows what the parser read of it in the same
  // bytes (a line cut by a gap or the snaplen must not give a status or a target).
  static void LineEnds(Http1Connection::Side& s, const char* after) {
    if (!s.line_done && after < s.buf_end && std::memchr(after, '\n', s.buf_end - after)) {
      s.line_done = true;
    }
  }
  static int OnUrl(http_parser* p, const char* at, size_t n) {
    S(p).url.append(at, n);
    LineEnds(S(p), at + n);
    return 0;
  }
  static int OnStatus(http_parser* p, const char* at, size_t n) {
    S(p).status_text.append(at, n);
    LineEnds(S(p), at + n);
    return 0;
  }
  static int OnHeaderField(http_parser* p, const char* at, size_t n) {
    auto& s = S(p);
    s.line_done = true;
    if (s.last_was_value) s.PushField();
    s.field.append(at, n);
    return 0;
  }
  static int OnHeaderValue(http_parser* p, const char* at, size_t n) {
    auto& s = S(p);
    s.value.append(at, n);
    s.last_was_value = true;
    return 0;
  }

  static Facts FactsOf(http_parser* p) {
    Facts f;
    f.major = p->http_major;
    f.minor = p->http_minor;
    f.status = p->status_code;
    f.upgrade = p->upgrade;
    f.method = S(p).custom_method.empty() ? http_method_str(static_cast<http_method>(p->method))
                                          : std::string_view(S(p).custom_method);
    return f;
  }

  static int OnHeadersComplete(http_parser* p) {
    auto& s = S(p);
    s.line_done = true;
    int r = HeadersComplete(s, FactsOf(p));
    // A body whose length Content-Length fixes: a gap inside it can be stepped over (Gap).
    s.in_body = r == 0 && !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
                p->content_length > 0;
    return r;
  }

  // The header section of the message on `s` ended. Returns what http-parser's on_headers_complete
  // returns: 0, 1 (no body follows) or 2 (no body, and the connection becomes a tunnel).
  static int HeadersComplete(Http1Connection::Side& s, const Facts& f) {
    s.PushField();
    if (s.parser.uses_transfer_encoding) {
      // http-parser 2.9 marks a message as framed by Transfer-Encoding once a field name begins
      // with "transfer-encoding": "Transfer-Encodingu: x" too, whose Content-Length it then
      // ignores, reading the body to the connection's end. Only the field named exactly so
      // frames a message (RFC 9112 sections 6.1 and 6.3); http-parser decides the body after
      // this callback, so the mark is cleared here when no such field came.
      bool present = false;
      for (const Header& h : s.headers) present |= EqualsIgnoreCase(h.name, "transfer-encoding");
      if (!present) s.parser.uses_transfer_encoding = 0;
    }
    Http1Connection& c = *s.conn;
    Http1Connection::Pending* t = s.target;
    if (t->written) return 0;  // answered before its headers ended; nothing more to record
    if ((s.parser.flags & F_CHUNKED) && (s.parser.flags & F_CONTENTLENGTH)) {
      // RFC 9112 section 6.3 item 3: chunked wins, but a message framed both ways is how
      // request smuggling hides (a peer that reads the Content-Length instead desynchronises).
      ++c.counters_->chunked_with_length;
      t->framing_note = absl::StrCat(
          s.requests ? "request" : "response",
          " framed by both Transfer-Encoding: chunked and Content-Length (read as chunked, RFC "
          "9112 section 6.3)");
    }
    if (s.requests) {
      Request& q = t->x.request.emplace();
      q.version = Version(f.major, f.minor);
      q.method = std::string(f.method);
      q.scheme = "http";
      q.path = s.url;
      q.headers = std::move(s.headers);
      s.headers = {};
      s.headers.reserve(16);  // one allocation per message instead of a doubling series
      for (const Header& h : q.headers) {
        if (EqualsIgnoreCase(h.name, "host")) {
          q.authority = h.value;
          break;
        }
      }
      if (q.method == "CONNECT" && q.authority.empty()) q.authority = s.url;
      t->is_head = q.method == "HEAD";
      t->is_connect = q.method == "CONNECT";
      if (c.options_.on_request_headers) c.options_.on_request_headers(t->x, t->id, t->req_start);
      return 0;
    }
    unsigned status = f.status;
    if (!t->has_rsp_time && !(status >= 100 && status < 200 && status != 101)) {
      t->rsp_start = s.ts;
      t->has_rsp_time = true;
      if (c.options_.on_response_headers) {
        c.options_.on_response_headers(t->x, t->id, static_cast<uint16_t>(status), t->rsp_start);
      }
    }
    // RFC 9112 section 6.3: no body after a response to HEAD, or a 1xx, 204 or 304, whatever
    // the headers say (a 304 often repeats the Content-Length of the representation; a 1xx
    // that announces a body would otherwise swallow the bytes of the final response).
    if (status >= 100 && status < 200 && status != 101) {
      if ((s.parser.flags & (F_CONTENTLENGTH | F_CHUNKED)) != 0) {
        ++c.counters_->interim_with_body_header;
      }
      return 1;
    }
    if (t->is_head || status == 204 || status == 304) return 1;
    if (t->is_connect && status >= 200 && status < 300) return 2;  // a tunnel follows
    (void)c;
    return 0;
  }

  static int OnBody(http_parser* p, const char* at, size_t n) {
    AppendBody(S(p), at, n);
    return 0;
  }
  static void AppendBody(Http1Connection::Side& s, const char* at, size_t n) {
    uint64_t limit = s.conn->options_.body_limit;
    s.body.length += n;
    // After a hole in the body only the length grows: the stored bytes stay one prefix.
    if (s.body.data.size() < limit && !s.body_hole) {
      s.body.data.append(at, std::min<uint64_t>(n, limit - s.body.data.size()));
    }
  }

  static int OnChunkHeader(http_parser* p) {
    if (p->content_length == 0) S(p).in_trailers = true;  // the last chunk: trailers may follow
    return 0;
  }

  static int OnMessageComplete(http_parser* p) {
    // http-parser reads on after this message only if it keeps the connection alive.
    S(p).expect_start = http_should_keep_alive(p) != 0;
    switch (MessageComplete(S(p), FactsOf(p))) {
      case After::kPause:
        http_parser_pause(p, 1);
        return 0;
      case After::kStop:
        return 1;
      case After::kGoOn:
        break;
    }
    return 0;
  }

  // The message on `s` ended. kPause after a request (Feed looks at the next request line for a
  // custom method), kStop when the connection became a tunnel.
  static After MessageComplete(Http1Connection::Side& s, const Facts& f) {
    s.PushField();
    s.in_message = false;
    s.in_body = false;
    Http1Connection& c = *s.conn;
    Http1Connection::Pending* t = s.target;
    if (!t) return After::kPause;
    if (s.body.data.size() < s.body.length) {
      s.body.truncated = true;
      ++c.counters_->body_truncated;
    }
    if (s.requests) {
      ++c.counters_->requests;
      if (t->written) {  // written meanwhile (the pending cap): drop the leftover
        auto it = std::find_if(c.pending_.begin(), c.pending_.end(),
                               [t](const auto& q) { return q.get() == t; });
        if (it != c.pending_.end()) {
          c.Forget(t);
          c.pending_.erase(it);
        }
        s.target = nullptr;
        return After::kPause;
      }
      t->x.request->body = std::move(s.body);
      t->x.request->trailers = std::move(s.trailers);
      t->req_end = s.ts;
      t->request_done = true;
      if (f.upgrade && !t->is_connect) s.held = true;  // wait for 101 or not
      s.target = nullptr;
      c.WriteIfWhole(t);  // answered early, or its response lost: written now
      // Stop after each request: Feed looks at the next request line for a custom method.
      return After::kPause;
    }
    unsigned status = f.status;
    if (status >= 100 && status < 200 && status != 101) {
      InterimResponse ir;
      ir.status = static_cast<uint16_t>(status);
      ir.reason = s.status_text;
      ir.headers = std::move(s.headers);
      ir.offset_ns = s.ts;  // absolute for now; made relative in Finish
      t->x.interim.push_back(std::move(ir));
      s.awaiting = t;  // the final response that follows belongs to the same exchange
      return After::kPause;
    }
    s.awaiting = nullptr;
    ++c.counters_->responses;
    Response& r = t->x.response.emplace();
    r.version = Version(f.major, f.minor);
    r.status = static_cast<uint16_t>(status);
    r.reason = s.status_text;
    r.headers = std::move(s.headers);
    s.headers = {};
    s.headers.reserve(16);
    r.body = std::move(s.body);
    r.trailers = std::move(s.trailers);
    t->rsp_end = s.ts;
    if (!t->has_rsp_time) {
      t->rsp_start = s.ts;
      t->has_rsp_time = true;
    }
    bool tunnel = status == 101 || (t->is_connect && status >= 200 && status < 300);
    // An Upgrade the server declined (any final status but 101): the client's held bytes are
    // HTTP/1 after all. Feed releases them once this parser call returns.
    if (!tunnel && c.client_->held) c.release_held_ = true;
    if (tunnel) {
      ++c.counters_->upgrades;
      for (const Header& h : r.headers) {
        if (EqualsIgnoreCase(h.name, "upgrade") && EqualsIgnoreCase(h.value, "h2c")) {
          ++c.counters_->h2c_upgrades;
        }
      }
      c.tunnel_ = true;
      if (status == 101 && c.options_.hand_off_upgrades) {
        // Reported once Feed returns (HandOff), with the bytes after the 101.
        auto sw = std::make_unique<ProtocolSwitch>();
        auto token_of = [](const std::vector<Header>& hs) -> std::string {
          for (const Header& h : hs) {
            if (EqualsIgnoreCase(h.name, "upgrade")) return FirstUpgradeToken(h.value);
          }
          return {};
        };
        sw->token = token_of(r.headers);
        if (sw->token.empty() && t->x.request) sw->token = token_of(t->x.request->headers);
        if (!(c.orphan_ && c.orphan_.get() == t)) {
          sw->upgrade = t->x;
          sw->upgrade->stream_id = t->id;
        }
        c.hand_off_ = std::move(sw);
      }
    }
    Http1Connection::Pending* done = t;
    s.target = nullptr;
    if (c.orphan_ && c.orphan_.get() == done) {
      c.Finish(*done, done->orphan_how, done->orphan_reason);
      c.orphan_.reset();
    } else {
      done->response_done = true;
      c.ResponseEnded(done, s.chunk_end);
      if (tunnel && !done->request_done) {
        // Nothing more of the request will be parsed: written with what there is.
        done->retired = true;
        done->retired_how = Completion::kTruncated;
        done->retired_reason = "the request did not end before the tunnel";
        done->request_done = true;
        if (c.client_->target == done) c.client_->target = nullptr;
      }
      // Written now if the request ended too (which frees it); an early answer waits for the
      // request's end.
      c.WriteIfWhole(done);
    }
    if (tunnel) return After::kStop;  // the rest of the connection is not HTTP/1
    // Pause after every message, so that each parser call begins at a message boundary (its
    // stream offset is where pairing looks); a declined Upgrade also hands the held requests
    // back to the client side before this side reads on.
    return After::kPause;
  }

  // The fast path: a whole message in `d` whose every byte http-parser would read the same way,
  // read without it. Returns the message's length in bytes, or 0 to leave the message to
  // http-parser. It takes only the plainest shape (HTTP/1.1; origin-form target; a header section
  // of at most 8 KiB with CRLF line ends, no folding, no empty or space-padded values, bytes
  // 0x20-0x7E; no Transfer-Encoding, Upgrade or Proxy-Connection, Connection only "keep-alive";
  // at most one Content-Length; a response with a final status other than 204 and 304, framed
  // by Content-Length, answering neither HEAD nor CONNECT) and declines everything else, so
  // every rule of RFC 9112 beyond that shape stays with the library. Http1Options::fast_path
  // turns it off; tests hold both readings equal on every capture they read.
  static size_t Fast(Http1Connection& c, Http1Connection::Side& s, std::span<const uint8_t> d) {
    constexpr size_t kMaxHead = 8192;
    constexpr size_t kMaxFields = 64;
    std::string_view in(reinterpret_cast<const char*>(d.data()), d.size());
    const char* const limit = in.data() + std::min(in.size(), kMaxHead);
    // The start line, to its CRLF.
    const char* cr = static_cast<const char*>(std::memchr(in.data(), '\r', limit - in.data()));
    if (!cr || limit - cr < 2 || cr[1] != '\n') return 0;
    std::string_view line(in.data(), cr - in.data());
    Facts f;
    f.major = 1;
    f.minor = 1;
    std::string_view url, reason;
    if (s.requests) {
      size_t sp = line.find(' ');
      if (sp == std::string_view::npos || sp == 0 || sp >= 24) return 0;
      f.method = line.substr(0, sp);
      for (char ch : f.method) {
        if (!IsTokenUpper(static_cast<uint8_t>(ch))) return 0;
      }
      if (f.method == "CONNECT") return 0;
      std::string_view rest = line.substr(sp + 1);
      size_t sp2 = rest.find(' ');
      if (sp2 == std::string_view::npos || rest.substr(sp2 + 1) != "HTTP/1.1") return 0;
      url = rest.substr(0, sp2);
      if (url.empty() || url[0] != '/') return 0;
      for (char ch : url) {
        if (!kUriChar(ch)) return 0;
      }
    } else {
      if (line.size() < 14 || line.substr(0, 9) != "HTTP/1.1 " || line[12] != ' ') return 0;
      for (size_t i = 9; i < 12; ++i) {
        if (!absl::ascii_isdigit(static_cast<unsigned char>(line[i]))) return 0;
        f.status = f.status * 10 + static_cast<unsigned>(line[i] - '0');
      }
      if (f.status < 200 || f.status == 204 || f.status == 304) return 0;
      reason = line.substr(13);
      for (char ch : reason) {
        if (ch < 0x20 || ch > 0x7e) return 0;
      }
    }
    // The fields, one pass over each line, to the empty line.
    std::string_view names[kMaxFields], values[kMaxFields];
    size_t fields = 0;
    bool has_length = false;
    uint64_t length = 0;
    const char* p = cr + 2;
    for (;;) {
      if (limit - p < 2) return 0;
      if (p[0] == '\r') {
        if (p[1] != '\n') return 0;
        p += 2;
        break;
      }
      if (fields == kMaxFields) return 0;
      const char* n0 = p;
      while (p < limit && kTchar(*p)) ++p;
      if (p == limit || *p != ':' || p == n0) return 0;
      std::string_view name(n0, p - n0);
      ++p;
      while (p < limit && (*p == ' ' || *p == '\t')) ++p;
      const char* v0 = p;
      while (p < limit && kValueChar(*p)) ++p;
      if (limit - p < 2 || p[0] != '\r' || p[1] != '\n') return 0;
      std::string_view value(v0, p - v0);
      p += 2;
      if (value.empty() || value.back() == ' ' || value.back() == '\t') return 0;
      // The fields http-parser acts on; only these lengths can name one.
      bool special = name.size() == 7 || name.size() == 10 || name.size() == 14 ||
                     name.size() == 16 || name.size() == 17;
      if (!special) {
        // an ordinary field
      } else if (EqualsIgnoreCase(name, "content-length")) {
        if (has_length || value.size() > 18) return 0;
        for (char ch : value) {
          if (!absl::ascii_isdigit(static_cast<unsigned char>(ch))) return 0;
          length = length * 10 + static_cast<uint64_t>(ch - '0');
        }
        has_length = true;
      } else if (EqualsIgnoreCase(name, "transfer-encoding") || EqualsIgnoreCase(name, "upgrade") ||
                 EqualsIgnoreCase(name, "proxy-connection")) {
        return 0;
      } else if (EqualsIgnoreCase(name, "connection") && !EqualsIgnoreCase(value, "keep-alive")) {
        return 0;
      }
      names[fields] = name;
      values[fields] = value;
      ++fields;
    }
    size_t head_len = static_cast<size_t>(p - in.data());
    if (!s.requests) {
      if (!has_length) return 0;  // chunked or read until close: http-parser's
      // The exchange it belongs to, where that is plain without deciding anything (the usual
      // case); otherwise http-parser reads it, so that both readings decide alike.
      Http1Connection::Pending* t = nullptr;
      if (!c.PlainResponseTarget(s, &t)) return 0;
      if (t && (t->is_head || t->is_connect)) return 0;
    }
    Begin(s);
    s.line_done = true;  // the fast path reads only whole heads
    // What KeepPartial reads if a gap or the end of the capture cuts the body short.
    s.parser.http_major = 1;
    s.parser.http_minor = 1;
    s.parser.status_code = static_cast<unsigned short>(f.status);
    if (s.requests) {
      s.url.assign(url);
    } else {
      s.status_text.assign(reason);
    }
    for (size_t i = 0; i < fields; ++i) {
      // Constructed from the bytes (a copy, no assignment's aliasing checks), then moved in.
      s.headers.push_back(Header{std::string(names[i]), std::string(values[i])});
    }
    if (HeadersComplete(s, f) != 0) return head_len;  // not reached: HEAD, CONNECT declined above
    s.fast_status = f.status;
    s.fast_remaining = length;
    ++c.counters_->fast_path_messages;
    return head_len + FastBody(s, d.subspan(head_len));
  }

  // Body bytes of the message whose head the fast path read. Returns the bytes taken.
  static size_t FastBody(Http1Connection::Side& s, std::span<const uint8_t> d) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(s.fast_remaining, d.size()));
    if (n > 0) AppendBody(s, reinterpret_cast<const char*>(d.data()), n);
    s.fast_remaining -= n;
    s.parser.content_length = s.fast_remaining;
    if (s.fast_remaining == 0) {
      Facts f;
      f.major = 1;
      f.minor = 1;
      f.status = s.fast_status;
      MessageComplete(s, f);
      s.expect_start = true;
    }
    return n;
  }

  static const http_parser_settings& Settings() {
    static const http_parser_settings settings = [] {
      http_parser_settings st{};
      st.on_message_begin = OnMessageBegin;
      st.on_url = OnUrl;
      st.on_status = OnStatus;
      st.on_header_field = OnHeaderField;
      st.on_header_value = OnHeaderValue;
      st.on_headers_complete = OnHeadersComplete;
      st.on_body = OnBody;
      st.on_message_complete = OnMessageComplete;
      st.on_chunk_header = OnChunkHeader;
      return st;
    }();
    return settings;
  }
};

Http1Connection::Http1Connection(Exchange base, Http1Options options, uint64_t* next_stream_id,
                                 Emit emit, Http1Counters* counters, bool client_at_start,
                                 bool server_at_start)
    : base_(std::move(base)),
      options_(options),
      next_stream_id_(next_stream_id),
      emit_(std::move(emit)),
      counters_(counters),
      client_(std::make_unique<Side>()),
      server_(std::make_unique<Side>()) {
  client_->conn = this;
  client_->requests = true;
  client_->Init();
  server_->conn = this;
  server_->requests = false;
  server_->Init();
  // Both sides begin by finding a message start: at offset 0 when the capture saw the connection
  // open, further on when it was picked up in the middle of a message.
  client_->resync = !client_at_start;
  server_->resync = !server_at_start;
}

Http1Connection::~Http1Connection() = default;

bool Http1Connection::opaque() const { return tunnel_; }

void Http1Connection::OnClientData(std::span<const uint8_t> d, const StreamPosition& at) {
  Feed(*client_, d, at);
}
void Http1Connection::OnServerData(std::span<const uint8_t> d, const StreamPosition& at) {
  Feed(*server_, d, at);
}
void Http1Connection::OnClientData(std::span<const uint8_t> d, uint64_t ts) {
  Feed(*client_, d, StreamPosition{ts, client_->pos, std::nullopt, std::nullopt});
}
void Http1Connection::OnServerData(std::span<const uint8_t> d, uint64_t ts) {
  Feed(*server_, d, StreamPosition{ts, server_->pos, std::nullopt, std::nullopt});
}
void Http1Connection::OnClientGap(uint64_t offset, uint64_t n, uint64_t ts, bool snaplen) {
  Gap(*client_, offset, n, ts, snaplen);
}
void Http1Connection::OnServerGap(uint64_t offset, uint64_t n, uint64_t ts, bool snaplen) {
  Gap(*server_, offset, n, ts, snaplen);
}
void Http1Connection::OnClientGap(uint64_t n, uint64_t ts) {
  Gap(*client_, client_->pos, n, ts, false);
}
void Http1Connection::OnServerGap(uint64_t n, uint64_t ts) {
  Gap(*server_, server_->pos, n, ts, false);
}

// Fills what the exchange has of the message the parser stopped in (a parse error, a gap, the
// end of the capture): request or status line and the header fields read so far. `cut`: the
// message was cut (bytes lost or never sent), so a field the parser was still reading may be
// incomplete and is left out rather than shown as a whole value (a snaplen of 96 would make
// "Host: 127.0.0.1" read as "Host: 1").
void Http1Connection::KeepPartial(Side& side, bool cut) {
  Pending* t = side.target;
  if (!t) return;
  if (cut && (!side.field.empty() || !side.value.empty())) {
    ++counters_->partial_fields_dropped;
    side.field.clear();
    side.value.clear();
    side.last_was_value = false;
  }
  side.PushField();
  if (side.requests) {
    if (!t->x.request) {
      Request& q = t->x.request.emplace();
      // The method as sent: http-parser's guess is unreliable once it has failed.
      q.method = !side.custom_method.empty() ? side.custom_method : side.line_token;
      q.version = Version(side.parser.http_major, side.parser.http_minor);
      q.scheme = "http";
      q.path = side.url;
      q.headers = side.headers;
      for (const Header& h : q.headers) {
        if (EqualsIgnoreCase(h.name, "host")) q.authority = h.value;
      }
      if (cut && !side.line_done) {
        // The request line itself was cut: its target (and a method not followed by its
        // space) may be cut short; neither is presented as whole.
        q.path.clear();
        q.version = HttpVersion::kUnknown;
        if (side.url.empty()) q.method.clear();
      }
    } else if (side.in_message && side.target == t) {
      // Headers were whole; the body was cut: keep what arrived, and the length it declared.
      Body& b = t->x.request->body;
      b = side.body;
      b.truncated = true;
      uint64_t left =
          side.fast_remaining ? side.fast_remaining
          : (!(side.parser.flags & F_CHUNKED) && side.parser.content_length != ULLONG_MAX)
              ? side.parser.content_length
              : 0;
      b.length += left;
    }
    if (!t->request_done) ++counters_->requests;  // a request, if not a whole one
    t->request_done = true;
    t->req_end = side.ts;
  } else if (!t->x.response && side.parser.status_code && (!cut || side.line_done)) {
    // (A status line that was cut may hold part of the code: "20" of "200".)
    ++counters_->responses;  // a response, if not a whole one
    Response& r = t->x.response.emplace();
    r.version = Version(side.parser.http_major, side.parser.http_minor);
    r.status = static_cast<uint16_t>(side.parser.status_code);
    r.reason = side.status_text;
    r.headers = side.headers;
    r.body = side.body;
    r.body.truncated = true;
    // With Content-Length framing the parser knows how much of the body was still to come: the
    // full length is known even though the bytes are not (RFC 9112 section 6.3).
    if (!(side.parser.flags & F_CHUNKED) && side.parser.content_length != ULLONG_MAX &&
        side.in_message) {
      r.body.length += side.parser.content_length;
    }
    if (!t->has_rsp_time) {
      t->rsp_start = side.ts;
      t->has_rsp_time = true;
    }
    t->rsp_end = side.ts;
  }
}

// Keeps client bytes sent after an Upgrade request until the server's answer, up to a cap: a
// client that never gets an answer cannot make the observer buffer without bound.
void Http1Connection::Hold(Side& side, std::span<const uint8_t> data, const StreamPosition& at) {
  constexpr size_t kMaxHeld = 256 << 10;
  size_t room = kMaxHeld - std::min(kMaxHeld, side.held_bytes.size());
  size_t keep = std::min(room, data.size());
  // Where each held piece began, for a hand-off after a 101 (only then): at most kMaxPieces
  // entries, so that a peer sending one-byte segments cannot grow the list past the bytes'
  // bound; past it, pieces join the last one (their bytes stay; their own times are lost).
  constexpr size_t kMaxPieces = 1024;
  if (keep > 0 && options_.hand_off_upgrades && side.held_at.size() < kMaxPieces) {
    side.held_at.emplace_back(side.held_bytes.size(), at);
  }
  side.held_bytes.append(reinterpret_cast<const char*>(data.data()), keep);
  counters_->held_bytes_dropped += data.size() - keep;
}

// Writes the exchange the response side was writing with `how`, and lets it go.
void Http1Connection::EndResponse(Side& side, Completion how, const std::string& why) {
  Pending* t = side.target;
  side.target = nullptr;
  side.awaiting = nullptr;
  if (!t) return;
  if (orphan_ && orphan_.get() == t) {
    if (t->x.response || !t->x.interim.empty()) {
      if (t->orphan_how == Completion::kAmbiguousPairing) {
        Finish(*t, t->orphan_how, absl::StrCat(t->orphan_reason, "; ", why));
      } else {
        Finish(*t, how, why);
      }
    }
    orphan_.reset();
    return;
  }
  if (!t->x.request && !t->x.response && t->x.interim.empty()) return;  // nothing of it yet
  // The response is over as far as the capture goes; the exchange is written with `how` once
  // its request has ended too.
  t->retired = true;
  t->retired_how = how;
  t->retired_reason = why;
  t->response_done = true;
  if (client_->target == t) return;
  WriteIfWhole(t);
}

// --- Pairing ---------------------------------------------------------------------------------
//
// HTTP/1 answers requests in order (RFC 9112 section 9.3), so arrival order pairs them while no
// byte is lost. Once bytes are lost, the TCP acknowledgement numbers decide, as far as they can:
// a response that begins at server offset `rb` in a segment acknowledging client offset `ar`
//   (1) answers a request the server had begun to receive: request.begin < ar;
//   (2) answers a request sent before the client had received the response: request.ack <= rb;
//   (3) comes after the responses of every earlier request, which must then lie in server bytes
//       lost since the previous response (a loss ending after that request's ack), at least one
//       per loss that began at a message boundary;
//   (4) on a connection that has not pipelined (each request sent after the previous response
//       ended), answers the last request sent before it arrived: the next request's ack > rb,
//       and the next request begins at or after ar (the server had not received any of it).
// Client bytes the capture lost, or that began where a request should and did not parse, are
// slots that may hold requests never seen. When exactly one request fits, the response is paired
// with it and the requests before it are written as having lost their response; when only lost
// client bytes fit, the response is written without its request; when several fit, the response and
// those requests are written as ambiguous-pairing, and the ambiguity carries to the next response
// (limbo_).

void Http1Connection::MarkPipelined() {
  if (pipelined_) return;
  pipelined_ = true;
  ++counters_->pipelined_connections;
}

void Http1Connection::AddRequestSlot(Pending* p, uint64_t begin, std::optional<int64_t> ack) {
  const Slot* prev = nullptr;  // the last request seen (lost bytes between do not matter)
  for (auto it = slots_.rbegin(); it != slots_.rend() && !prev; ++it) {
    if (it->p) prev = &*it;
  }
  if (prev) {
    // Two requests sent with nothing received between them: the client pipelines.
    if (prev->ack && ack && *prev->ack == *ack) MarkPipelined();
  } else if (last_end_ && ack && *ack < static_cast<int64_t>(*last_end_)) {
    // Sent before the previous response had arrived whole.
    MarkPipelined();
  }
  last_end_.reset();
  Slot& q = slots_.emplace_back();
  q.p = p;
  q.begin = begin;
  q.end = begin;
  q.ack = ack;
}

void Http1Connection::AddClientLoss(uint64_t begin, uint64_t end, uint32_t min,
                                    std::optional<int64_t> ack) {
  if (end <= begin) return;
  last_end_.reset();
  if (!slots_.empty() && !slots_.back().p && slots_.back().end == begin) {
    Slot& h = slots_.back();  // adjacent to lost bytes already noted: one place
    h.end = end;
    h.min = std::max(h.min, min);
    return;
  }
  Slot& h = slots_.emplace_back();
  h.begin = begin;
  h.end = end;
  h.min = min;
  h.ack = ack;
}

void Http1Connection::AddServerLoss(uint64_t end, uint64_t bytes, uint32_t min) {
  loss_.any = true;
  loss_.min += min;
  loss_.end = std::max(loss_.end, end);
  loss_.bytes += bytes;
}

void Http1Connection::Forget(Pending* p) {
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].p != p) continue;
    slots_.erase(slots_.begin() + static_cast<std::ptrdiff_t>(i));
    if (i < limbo_) --limbo_;
    return;
  }
}

void Http1Connection::WriteIfWhole(Pending* p) {
  if (p->written || !p->request_done) return;
  if (p->retired) {
    Finish(*p, p->retired_how, p->retired_reason);
  } else if (p->response_done) {
    Finish(*p,
           p->malformed ? Completion::kMalformed
           : p->gap     ? Completion::kGap
                        : Completion::kComplete,
           p->gap ? p->gap_reason : "");
  } else {
    return;
  }
  auto it =
      std::find_if(pending_.begin(), pending_.end(), [p](const auto& q) { return q.get() == p; });
  if (it != pending_.end()) {
    Forget(p);
    pending_.erase(it);
  }
}

void Http1Connection::Retire(const Slot& slot) {
  Pending* p = slot.p;
  if (!p || p->written || p->response_done) return;
  p->retired = true;
  if (slot.ambiguous) {
    ++counters_->ambiguous_requests;
    p->retired_how = Completion::kAmbiguousPairing;
    p->retired_reason =
        "ambiguous-pairing: TCP evidence cannot tell whether a response the capture holds "
        "answered this request";
  } else {
    ++counters_->responses_lost;
    p->retired_how = Completion::kGap;
    p->retired_reason = absl::StrCat("the response was lost: ", loss_.bytes,
                                     " bytes of the server stream are missing");
  }
  if (client_->target == p) return;  // its request is still arriving: written when it ends
  WriteIfWhole(p);
}

void Http1Connection::ResponseEnded(Pending* p, uint64_t end) {
  // A sequential client sends its next request only after this response ended.
  if (pipelined_ || limbo_ != 0) return;
  for (const Slot& next : slots_) {
    if (!next.p || next.p == p) continue;  // the first request after it that was seen
    if (next.ack && *next.ack < static_cast<int64_t>(end)) MarkPipelined();
    return;
  }
  last_end_ = end;
}

bool Http1Connection::PlainResponseTarget(const Side& side, Pending** target) const {
  *target = nullptr;
  if (side.awaiting) {
    *target = side.awaiting;
    return true;
  }
  // PairResponse's fast path, without its effects.
  if (limbo_ != 0 || loss_.any || slots_.empty()) return false;
  const Slot& q = slots_.front();
  if (!q.p || q.ack_seq) return false;
  // The first response's checks (PairResponse) would change nothing: no ACK left to map, none
  // before the server stream's first byte.
  if (!start_checked_) {
    if (q.ack && *q.ack < 0) return false;
    for (const Slot& o : slots_) {
      if (o.ack_seq) return false;
    }
  }
  if (side.msg_ack && static_cast<int64_t>(q.begin) >= *side.msg_ack) return false;
  if (q.ack && *q.ack > static_cast<int64_t>(side.msg_offset)) return false;
  *target = q.p;
  return true;
}

Http1Connection::Pending* Http1Connection::ResponseTarget(Side& side) {
  if (side.awaiting) return side.awaiting;  // after an interim response: the same exchange
  if (side.has_decided) return side.decided;
  side.decided = PairResponse(side.msg_offset, side.msg_ack);
  side.has_decided = true;
  return side.decided;
}

Http1Connection::Pending* Http1Connection::PairResponse(uint64_t rb, std::optional<int64_t> ar) {
  // Requests sent before the server stream was first seen: their acknowledgements map now.
  if (mapper_) {
    bool mapped = false;
    for (Slot& q : slots_) {
      if (q.ack || !q.ack_seq) continue;
      q.ack = mapper_(/*server_stream=*/true, *q.ack_seq);
      if (q.ack) q.ack_seq.reset();
      mapped = mapped || q.ack.has_value();
    }
    // Two requests sent with nothing received between them, now that their ACKs are known.
    const Slot* prev = nullptr;
    for (const Slot& q : slots_) {
      if (!mapped || pipelined_ || !q.p) continue;
      if (prev && prev->ack && q.ack && *prev->ack == *q.ack) MarkPipelined();
      prev = &q;
    }
  }
  if (!start_checked_) {
    // A request that acknowledged server bytes before the first one captured (offset < 0): the
    // server sent them after it, and the capture lost them (its response, perhaps).
    start_checked_ = true;
    for (const Slot& q : slots_) {
      if (!q.p || !q.ack) continue;
      if (*q.ack < 0) {
        AddServerLoss(0, static_cast<uint64_t>(-*q.ack), 0);
        counters_->unseen_server_bytes += static_cast<uint64_t>(-*q.ack);
      }
      break;
    }
  }
  // The usual case, decided at once: nothing lost, no ambiguity left, and the first waiting
  // request fits (rules 1 and 2). Rule 3 then rules out every later slot (skipping a request
  // needs lost server bytes), so it is the one.
  if (limbo_ == 0 && !loss_.any && !slots_.empty() && slots_.front().p) {
    const Slot& q = slots_.front();
    if ((!ar || static_cast<int64_t>(q.begin) < *ar) &&
        (!q.ack || *q.ack <= static_cast<int64_t>(rb))) {
      Pending* p = q.p;
      slots_.pop_front();
      return p;
    }
  }
  const size_t n = std::min<size_t>(slots_.size(), limbo_ + 64);  // bounded work per response
  const size_t lim = std::min(limbo_, n);
  const int64_t rb_ = static_cast<int64_t>(rb);
  auto fits = [&](size_t j) {  // rules (1) and (2)
    const Slot& q = slots_[j];
    if (ar && static_cast<int64_t>(q.begin) >= *ar) return false;
    if (q.ack && *q.ack > rb_) return false;
    return true;
  };
  auto skippable = [&](size_t k) {  // rule (3): slot k's response may lie in the lost bytes
    const Slot& q = slots_[k];
    if (!loss_.any) return !q.p && q.min == 0;
    return !q.ack || *q.ack < static_cast<int64_t>(loss_.end);
  };
  auto sequential = [&](size_t j) {  // rule (4)
    // The request after j was sent only once R had arrived whole, so the server had not begun
    // to receive it when it sent R's first byte: it begins at or after ar. Lost client bytes
    // right after j that began at a message boundary hold that next request.
    if (ar && j + 1 < slots_.size() && !slots_[j + 1].p && slots_[j + 1].min > 0 &&
        static_cast<int64_t>(slots_[j + 1].begin) < *ar) {
      return false;
    }
    for (size_t k = j + 1; k < slots_.size(); ++k) {
      if (!slots_[k].p) continue;
      // ... and it acknowledged all of R: its ack is past R's first byte.
      if (ar && static_cast<int64_t>(slots_[k].begin) < *ar) return false;
      return !slots_[k].ack || *slots_[k].ack > rb_;
    }
    return true;
  };
  auto feasible = [&](size_t j) {
    if (!fits(j)) return false;
    // The first unanswered slot p is in [0, top]; slots [p, j) were answered in lost bytes, at
    // least loss_.min responses (a skipped request holds one, lost client bytes any number).
    size_t capacity = slots_[j].p ? 0 : SIZE_MAX;
    auto skip = [&](size_t k) {
      if (!skippable(k)) return false;
      capacity = slots_[k].p && capacity != SIZE_MAX ? capacity + 1 : SIZE_MAX;
      return true;
    };
    const size_t top = std::min(lim, j);
    for (size_t k = top; k < j; ++k) {
      if (!skip(k)) return false;
    }
    if (capacity >= loss_.min) return true;
    for (size_t p = top; p-- > 0;) {
      if (!skip(p)) return false;
      if (capacity >= loss_.min) return true;
    }
    return false;
  };
  std::vector<size_t> fit;
  for (size_t j = 0; j < n; ++j) {
    if (feasible(j)) fit.push_back(j);
  }
  if (!pipelined_ && fit.size() > 1) {
    std::vector<size_t> seq;
    for (size_t j : fit) {
      if (sequential(j)) seq.push_back(j);
    }
    if (seq.empty()) {
      // No slot fits a sequential client: this one pipelines.
      MarkPipelined();
    } else {
      fit = std::move(seq);
    }
  }
  auto orphan = [this](Completion how, std::string why) {
    orphan_ = std::make_unique<Pending>();
    orphan_->x = base_;
    orphan_->id = (*next_stream_id_)++;
    orphan_->orphan_how = how;
    orphan_->orphan_reason = std::move(why);
    return orphan_.get();
  };
  ServerLoss loss = loss_;
  loss_ = ServerLoss{};
  if (fit.empty()) {
    if (!slots_.empty() || loss.any) ++counters_->requests_lost;
    // No captured request, and no lost client bytes, fits the response's acknowledgement.
    return orphan(Completion::kNoRequest, "the request was not captured");
  }
  // Slots before the first candidate have had their answer (lost, or an earlier ambiguous one).
  size_t first = fit.front(), last = fit.back();
  // (Taken out of slots_ before Retire writes them: writing an exchange forgets its slot.)
  std::vector<Slot> answered(slots_.begin(), slots_.begin() + static_cast<std::ptrdiff_t>(first));
  slots_.erase(slots_.begin(), slots_.begin() + static_cast<std::ptrdiff_t>(first));
  size_t last_left = last - first;
  std::swap(loss, loss_);  // Retire names the lost bytes
  for (const Slot& q : answered) Retire(q);
  std::swap(loss, loss_);
  if (fit.size() == 1) {
    Slot chosen = slots_.front();
    limbo_ = 0;
    if (chosen.p) {
      slots_.pop_front();
      chosen.p->retired = false;  // an earlier ambiguity is settled
      return chosen.p;
    }
    // Only lost client bytes fit: the response answers a request the capture lost.
    slots_.front().min = 0;  // they held at least this one
    ++counters_->requests_lost;
    return orphan(Completion::kNoRequest,
                  absl::StrCat("the request was lost: ", chosen.end - chosen.begin,
                               " bytes of the client stream are missing"));
  }
  // Several fit: none of them is paired.
  ++counters_->ambiguous_responses;
  std::vector<uint64_t> ids;
  size_t lost_places = 0;
  for (size_t j : fit) {
    Slot& q = slots_[j - first];
    if (q.p) {
      q.ambiguous = true;
      ids.push_back(q.p->id);
    } else {
      ++lost_places;
    }
  }
  // The next response answers a slot from just after the first candidate (lost client bytes
  // may hold more requests: from that place itself) to just after the last one.
  const size_t next_hi = slots_[last_left].p ? last_left + 1 : last_left;
  if (slots_.front().p) {
    // The first candidate is answered now, by this response or by a lost one before it.
    Slot front = slots_.front();
    slots_.pop_front();
    limbo_ = next_hi - 1;
    Retire(front);
  } else {
    slots_.front().min = 0;
    limbo_ = next_hi;
  }
  std::string why = absl::StrCat("ambiguous-pairing: TCP evidence fits ", fit.size(),
                                 " places for its request: captured requests with stream ids ",
                                 absl::StrJoin(ids, ", "));
  if (lost_places) absl::StrAppend(&why, " and requests lost in the client stream");
  return orphan(Completion::kAmbiguousPairing, std::move(why));
}

void Http1Connection::Feed(Side& side, std::span<const uint8_t> data, const StreamPosition& at) {
  side.pos = at.offset + data.size();
  if (tunnel_) {
    counters_->opaque_bytes += data.size();
    return;
  }
  if (side.held) {  // after an Upgrade request: hold until the server says 101 or not
    Hold(side, data, at);
    return;
  }
  side.ts = at.ts_ns;
  side.ack = at.peer_ack;
  side.ack_seq = at.peer_ack_seq;
  side.chunk_end = side.pos;
  const uint64_t ts = at.ts_ns;
  const uint8_t* const origin = data.data();
  auto offset_of = [&](const uint8_t* p) { return at.offset + static_cast<uint64_t>(p - origin); };
  auto position_of = [&](const uint8_t* p) {
    return StreamPosition{ts, offset_of(p), at.peer_ack, at.peer_ack_seq};
  };
  while (!data.empty()) {
    bool resynced_here = false;  // this iteration's parse starts where resync found a start
    if (side.fast_remaining > 0) {
      data = data.subspan(Http1Callbacks::FastBody(side, data));
      ReleaseHeld(ts);
      continue;
    }
    if (side.resync) {
      // Find the next message start at the beginning of a line.
      size_t found = data.size();
      for (size_t i = 0; i < data.size(); ++i) {
        if (i > 0 && data[i - 1] != '\n') continue;
        bool is_request = false;
        if (LooksLikeHttp1Start(data.subspan(i), &is_request) && is_request == side.requests) {
          found = i;
          break;
        }
      }
      counters_->skipped_bytes += found;
      if (found > 0) {
        uint64_t from = offset_of(data.data());
        if (side.requests) {
          // Client bytes seen but holding no request start: the tail of a message the parser
          // rejected hold no request; bytes where a request should have begun may be one the
          // server answers (a 400): a place a response may answer.
          if (side.junk_reply) AddClientLoss(side.junk_from, from + found, 0, side.ack);
        } else {
          AddServerLoss(from + found, found, 0);
          if (side.junk_reply) {
            // Kept as a reply that is not HTTP/1, for the request it answers (Close).
            if (side.junk_bytes == 0) side.junk_ts = ts;
            side.junk_bytes += found;
            size_t room = options_.body_limit > side.junk.size()
                              ? static_cast<size_t>(options_.body_limit - side.junk.size())
                              : 0;
            side.junk.append(reinterpret_cast<const char*>(data.data()), std::min(room, found));
          }
        }
      }
      data = data.subspan(found);
      if (data.empty()) return;
      side.resync = false;
      resynced_here = true;
      side.Init();
      side.junk.clear();
      side.junk_bytes = 0;
      side.junk_reply = false;
    }
    if (!side.in_message) {
      // A message begins here (after any empty lines, which RFC 9112 section 2.2 lets a
      // recipient skip): where it begins, and what the segment carrying it acknowledged, is
      // the evidence that pairs it (PairResponse).
      size_t blank = 0;
      while (blank < data.size() && (data[blank] == '\r' || data[blank] == '\n')) ++blank;
      data = data.subspan(blank);
      if (data.empty()) return;
      side.msg_offset = offset_of(data.data());
      side.msg_ack = side.ack;
      side.msg_ack_seq = side.ack_seq;
      side.has_decided = false;
    }
    if (side.requests && !side.in_message) {
      size_t k = 0;
      while (k < data.size() && k < 32 && data[k] > ' ' && data[k] < 0x7f) ++k;
      side.line_token.assign(reinterpret_cast<const char*>(data.data()), k);
    }
    if (options_.fast_path && !side.in_message && side.expect_start) {
      if (size_t n = Http1Callbacks::Fast(*this, side, data)) {
        data = data.subspan(n);
        ReleaseHeld(ts);
        continue;
      }
    }
    if (side.requests && !side.in_message) {
      side.custom_method.clear();  // the previous request's, if it had one
      // http-parser knows a fixed list of methods; RFC 9110 allows any token. A request line
      // with another method is read with the method swapped for one it knows (the framing of a
      // request body does not depend on the method) and the real one recorded.
      size_t i = 0;
      while (i < data.size() && i < 24 && IsTokenUpper(data[i])) ++i;
      if (i >= 1 && i < data.size() && data[i] == ' ') {
        std::string_view token(reinterpret_cast<const char*>(data.data()), i);
        if (!IsKnownMethod(token)) {
          http_parser_execute(&side.parser, &Http1Callbacks::Settings(), "PUT", 3);
          side.custom_method = std::string(token);  // after on_message_begin reset the message
          data = data.subspan(i);
        }
      }
    }
    side.buf_end = reinterpret_cast<const char*>(data.data()) + data.size();
    size_t n = http_parser_execute(&side.parser, &Http1Callbacks::Settings(),
                                   reinterpret_cast<const char*>(data.data()), data.size());
    ReleaseHeld(ts);
    if (tunnel_) {
      std::span<const uint8_t> tail = data.subspan(std::min(n, data.size()));
      if (hand_off_) {
        HandOff(tail, position_of(tail.data()));
      } else {
        // Not HTTP/1 any more: the server's bytes after the 101 (or CONNECT 2xx), and the
        // client's held since the upgrade request (they were left uncounted before).
        counters_->opaque_bytes += tail.size() + client_->held_bytes.size();
        client_->held_bytes.clear();
        client_->held_at.clear();
      }
      return;
    }
    http_errno err = HTTP_PARSER_ERRNO(&side.parser);
    if (err == HPE_PAUSED) {  // a message ended: look at the next one from its first byte
      http_parser_pause(&side.parser, 0);
      data = data.subspan(std::min(n, data.size()));
      if (side.held) {
        Hold(side, data, position_of(data.data()));
        return;
      }
      continue;
    }
    if (err == HPE_OK && side.held) {
      // The request asked for an Upgrade; http-parser stops after it. Hold the rest.
      if (n < data.size()) Hold(side, data.subspan(n), position_of(data.data() + n));
      return;
    }
    if (err == HPE_OK && n >= data.size()) return;
    if (err == HPE_OK) {  // stopped without error (should not happen): skip what was read
      data = data.subspan(std::max<size_t>(n, 1));
      continue;
    }
    // A message the parser rejects: record what it had, and look for the next message.
    ++counters_->malformed;
    ++counters_->resyncs;
    std::string why = absl::StrCat("malformed: ", http_errno_description(err));
    if (Pending* t = side.target) {
      KeepPartial(side, /*cut=*/false);
      t->gap = true;
      t->malformed = true;
      t->gap_reason = why;
      if (side.requests) {
        if (t->x.request && t->x.request->method.empty() && t->x.request->path.empty()) {
          // Not even a request line: no exchange, only the count; the bytes may still be
          // what the server answers (with a 400), so they are a place for pairing (Feed).
          side.junk_reply = true;
          side.junk_from = side.msg_offset;
          auto it = std::find_if(pending_.begin(), pending_.end(),
                                 [t](const auto& q) { return q.get() == t; });
          if (it != pending_.end() && !(*it)->written) {
            Forget(t);
            pending_.erase(it);
          }
        } else {
          side.target = nullptr;
          WriteIfWhole(t);
        }
        side.target = nullptr;
      } else {
        EndResponse(side, Completion::kMalformed, why);
      }
    } else if (!resynced_here) {
      // Not even a start line where a message should begin: for a response, an HTTP/0.9 reply
      // or another protocol, whose bytes are kept for the request it answers (Close); for a
      // request, bytes the server may still answer (Feed makes them a place for pairing).
      side.junk_reply = true;
      side.junk_from = side.msg_offset;
    }
    side.in_message = false;
    side.resync = true;
    // Resynchronise from the byte that failed, whether or not it began this parser call (the
    // same bytes read the same way however TCP cut them). A start that fails at its first byte
    // right after resync found it is skipped, so the search always moves on.
    size_t skip = (n == 0 && resynced_here) ? 1 : n;
    data = data.subspan(std::min(skip, data.size()));
  }
}

// After a declined Upgrade: the client bytes held since the request are HTTP/1 after all.
void Http1Connection::ReleaseHeld(uint64_t ts) {
  if (!release_held_) return;
  release_held_ = false;
  client_->held = false;
  std::string held = std::move(client_->held_bytes);
  client_->held_bytes.clear();
  client_->held_at.clear();
  client_->Init();  // the request parser stopped at the Upgrade; start it afresh
  // The held bytes begin where the Upgrade request ended: at a message boundary.
  client_->resync = false;
  uint64_t end = client_->pos;
  Feed(*client_,
       std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(held.data()), held.size()),
       StreamPosition{ts, end - std::min<uint64_t>(end, held.size()), client_->ack, std::nullopt});
  client_->pos = std::max(client_->pos, end);
}

// The client bytes held since the upgrade request and the server's bytes after the 101 go to the
// parser of the new protocol, each piece with its own position (ProtocolSwitch::bytes).
void Http1Connection::HandOff(std::span<const uint8_t> tail, const StreamPosition& at) {
  std::unique_ptr<ProtocolSwitch> sw = std::move(hand_off_);
  Side& c = *client_;
  for (size_t i = 0; i < c.held_at.size(); ++i) {
    size_t from = c.held_at[i].first;
    size_t to = i + 1 < c.held_at.size() ? c.held_at[i + 1].first : c.held_bytes.size();
    sw->bytes.push_back(ProtocolSwitch::Bytes{true, c.held_bytes.substr(from, to - from),
                                              c.held_at[i].second});
  }
  c.held_bytes.clear();
  c.held_at.clear();
  c.held = false;
  if (!tail.empty()) {
    sw->bytes.push_back(ProtocolSwitch::Bytes{
        false, std::string(reinterpret_cast<const char*>(tail.data()), tail.size()), at});
  }
  ReportSwitch(std::move(sw));
}

void Http1Connection::Gap(Side& side, uint64_t offset, uint64_t bytes, uint64_t ts, bool snaplen) {
  side.pos = offset + bytes;
  if (tunnel_ || bytes == 0) return;  // (no bytes: nothing was lost)
  std::string why = snaplen ? absl::StrCat(bytes, " bytes cut by the snaplen")
                            : absl::StrCat(bytes, " bytes lost in the TCP stream");
  Completion how = snaplen ? Completion::kTruncated : Completion::kGap;
  // side.ts stays the time of the last bytes seen: a message the gap cuts ends there (when the
  // capture noticed the gap depends on later packets, not on the message).
  const uint64_t end = offset + bytes;
  if (!snaplen && side.in_message && side.target && !side.resync) {
    // A gap inside a body whose length Content-Length fixes, ending where the body does or
    // before: the message goes on past it (no other message can begin there), its body
    // counted but no longer kept, and the exchange written as gap. Pairing loses nothing.
    uint64_t left = side.fast_remaining > 0 ? side.fast_remaining
                    : side.in_body          ? side.parser.content_length
                                            : 0;
    if (bytes > 0 && bytes <= left) {
      side.body.length += bytes;
      side.body_hole = true;
      side.target->gap = true;
      side.target->gap_reason = why;
      side.chunk_end = end;
      if (side.fast_remaining > 0) {
        side.fast_remaining -= bytes;
        side.parser.content_length = side.fast_remaining;
        if (side.fast_remaining == 0) Http1Callbacks::FastBody(side, {});  // the message ends
      } else if (bytes < left) {
        side.parser.content_length -= bytes;
      } else {
        // The body ends with the gap: http-parser, which cannot be told so, starts afresh at
        // the message boundary after the message is written.
        Http1Callbacks::MessageComplete(side, Http1Callbacks::FactsOf(&side.parser));
        side.Init();
      }
      ReleaseHeld(ts);
      return;
    }
  }
  // Where the message the gap cut would have ended, when its framing says (Content-Length).
  std::optional<uint64_t> message_end;
  bool at_boundary = !side.in_message && !side.resync;
  if (side.in_message && side.target) {
    Pending* t = side.target;
    if (side.fast_remaining > 0) {
      message_end = offset + side.fast_remaining;
    } else if (side.in_body) {  // http-parser's Content-Length body, of either side
      message_end = offset + side.parser.content_length;
    }
    KeepPartial(side, /*cut=*/true);
    t->gap = true;
    t->gap_reason = why;
    if (side.requests) {
      side.target = nullptr;
      if (snaplen) {
        t->retired_how = how;  // used if its response is lost too
      }
      WriteIfWhole(t);
    } else {
      EndResponse(side, how, why);
    }
  } else if (!side.requests && side.awaiting && !side.in_message) {
    // An interim response ended; the final one was in the lost bytes.
    side.target = side.awaiting;
    EndResponse(side, how, absl::StrCat("the final response was lost: ", why));
    at_boundary = false;
  }
  // What the lost bytes may hold beyond the message they cut: whole messages, at least one when
  // the gap began where a message would begin (more than an empty line's two bytes).
  uint64_t from = message_end ? std::max(*message_end, offset) : offset;
  uint32_t min = 0;
  if (at_boundary && bytes > 2) min = 1;
  if (message_end && end > *message_end + 2) min = 1;
  if (message_end && end <= *message_end) from = end;  // all inside the message's body
  if (side.requests) {
    if (from < end) AddClientLoss(from, end, min, side.ack);
  } else {
    AddServerLoss(end, bytes, min);
  }
  side.target = nullptr;
  side.in_message = false;
  side.fast_remaining = 0;
  side.resync = true;
  side.awaiting = nullptr;
  side.junk_reply = false;
  side.in_body = false;
  side.ts = ts;
}

void Http1Connection::OnServerEnd(uint64_t ts) {
  // A body delimited by the close of the connection ends here (RFC 9112 section 6.3 item 8).
  if (tunnel_ || server_->resync || !server_->in_message) return;
  server_->ts = ts;
  http_parser_execute(&server_->parser, &Http1Callbacks::Settings(), nullptr, 0);
}

void Http1Connection::Finish(Pending& p, Completion how, std::string_view reason) {
  Exchange& x = p.x;
  uint64_t key = p.has_req_time ? p.req_start : p.rsp_start;
  x.sort_key_ns = key;
  x.request_end_ns = p.request_done && p.req_end >= key ? p.req_end - key : 0;
  x.response_start_ns = p.has_rsp_time && p.rsp_start >= key ? p.rsp_start - key : 0;
  x.response_end_ns = x.response && p.rsp_end >= key ? p.rsp_end - key : 0;
  for (InterimResponse& ir : x.interim) ir.offset_ns = ir.offset_ns >= key ? ir.offset_ns - key : 0;
  x.completion = how;
  x.reason = std::string(reason);
  if (!p.framing_note.empty()) {
    x.reason = x.reason.empty() ? p.framing_note : absl::StrCat(x.reason, "; ", p.framing_note);
  }
  x.stream_id = p.id ? p.id : (*next_stream_id_)++;
  emit_(std::move(x));
  p.x = Exchange{};
  p.written = true;
}

namespace {

// The first bytes of a reply that is not HTTP/1, printable, for a reason text.
std::string Preview(std::string_view bytes) {
  std::string out;
  for (char ch : bytes.substr(0, 32)) {
    unsigned char u = static_cast<unsigned char>(ch);
    if (u >= 0x20 && u < 0x7f && u != '"' && u != '\\') {
      out.push_back(ch);
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    }
  }
  return out;
}

}  // namespace

void Http1Connection::Close(Completion how, std::string_view reason, uint64_t ts) {
  // Responses still open end here, then requests without a response.
  OnServerEnd(ts);
  if (server_->in_message && server_->target && !tunnel_) {
    // A response whose body did not end: keep its status, headers and the bytes seen.
    server_->ts = ts;
    KeepPartial(*server_, /*cut=*/true);
    EndResponse(*server_, how == Completion::kNoResponse ? Completion::kTruncated : how,
                how == Completion::kNoResponse ? "the connection closed before the response ended"
                                               : std::string(reason));
    server_->in_message = false;
  }
  if (orphan_) {
    Finish(*orphan_, orphan_->orphan_how, orphan_->orphan_reason);
    orphan_.reset();
  }
  if (server_->junk_reply && server_->junk_bytes > 0 && !tunnel_) {
    // The server answered, but not in HTTP/1: the bytes are the reply of the request they
    // follow (the first one still waiting), recorded as malformed.
    for (const Slot& q : slots_) {
      if (!q.p) break;
      Pending* t = q.p;
      if (t->written || t->response_done || t->retired) continue;
      ++counters_->non_http_replies;
      // Kept as the reply, these bytes are no longer lost: not skipped, not a parse error.
      counters_->skipped_bytes -= std::min(counters_->skipped_bytes, server_->junk_bytes);
      if (counters_->malformed) --counters_->malformed;
      Response& r = t->x.response.emplace();
      bool http09 = t->x.request && !server_->junk.empty() && server_->junk[0] == '<';
      r.version = http09 ? HttpVersion::kHttp09 : HttpVersion::kUnknown;
      r.body.data = server_->junk;
      r.body.length = server_->junk_bytes;
      r.body.truncated = r.body.data.size() < r.body.length;
      t->rsp_start = t->rsp_end = server_->junk_ts;
      t->has_rsp_time = true;
      t->rsp_end = ts;
      t->response_done = true;
      t->retired = true;
      t->retired_how = Completion::kMalformed;
      t->retired_reason =
          absl::StrCat("the reply is not HTTP/1: ", server_->junk_bytes,
                       " bytes with no status line, beginning ", Preview(server_->junk));
      break;
    }
  }
  // Server bytes were lost after the last response (the FIN's sequence number proves they were
  // sent): the requests whose response they may hold have lost it.
  if (loss_.any) {
    std::vector<Slot> open(slots_.begin(), slots_.end());
    for (const Slot& q : open) {
      if (!q.p || q.ambiguous || q.p->written || q.p->response_done || q.p->retired) continue;
      if (q.ack && *q.ack >= static_cast<int64_t>(loss_.end)) break;
      Retire(q);
    }
    loss_ = ServerLoss{};
  }
  // Requests an ambiguous response may have answered get no other: ambiguous, not unanswered.
  for (const Slot& q : slots_) {
    if (!q.p || !q.ambiguous || q.p->written || q.p->response_done || q.p->retired) continue;
    ++counters_->ambiguous_requests;
    q.p->retired = true;
    q.p->retired_how = Completion::kAmbiguousPairing;
    q.p->retired_reason =
        "ambiguous-pairing: TCP evidence cannot tell whether a response the capture holds "
        "answered this request";
  }
  Pending* cut = nullptr;
  if (client_->in_message && client_->target && !client_->target->written) {
    // A request the connection's end cut short: what arrived, and the length it declared.
    cut = client_->target;
    client_->ts = ts;
    KeepPartial(*client_, /*cut=*/true);
    client_->target = nullptr;
  }
  for (auto& p : pending_) {
    if (p->written) continue;
    if (!p->x.request) {  // the request line never completed: keep what there is
      p->x.request.emplace().path = client_->url;
    }
    Completion c = p->malformed ? Completion::kMalformed : p->gap ? Completion::kGap : how;
    std::string why = p->gap ? p->gap_reason : std::string(reason);
    if (p->retired) {
      c = p->retired_how;
      why = p->retired_reason;
    } else if (p->response_done && p.get() == cut) {
      // The server answered before the request ended, and the rest never came.
      c = Completion::kTruncated;
      const Body& b = p->x.request->body;
      why = absl::StrCat("the server answered before the request ended: ", b.data.size(), " of ",
                         b.length, " body bytes arrived");
    } else if (p->response_done) {
      c = p->gap ? Completion::kGap : Completion::kComplete;
    } else if (!p->request_done && c == Completion::kNoResponse) {
      c = Completion::kCaptureEnded;
      why = "the request did not end";
    } else if (p.get() == cut && c == Completion::kNoResponse) {
      c = Completion::kCaptureEnded;
      why = "the request did not end";
    }
    if (!p->request_done) p->req_end = ts;
    p->request_done = true;
    Finish(*p, c, why);
  }
  pending_.clear();
  slots_.clear();
  limbo_ = 0;
}

}  // namespace tapkit
