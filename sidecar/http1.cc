#include "sidecar/http1.h"

#include <http_parser.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tapkit {
namespace {

bool IsTokenUpper(uint8_t c) { return (c >= 'A' && c <= 'Z') || c == '-' || c == '_'; }

HttpVersion Version(unsigned short major, unsigned short minor) {
  if (major == 1 && minor == 1) return HttpVersion::kHttp11;
  if (major == 1 && minor == 0) return HttpVersion::kHttp10;
  if (major == 0 && minor == 9) return HttpVersion::kHttp09;
  return HttpVersion::kUnknown;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return absl::ascii_tolower(static_cast<unsigned char>(x)) ==
                  absl::ascii_tolower(static_cast<unsigned char>(y));
         });
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
        c.pending_.pop_front();
      }
      auto pending = std::make_unique<Http1Connection::Pending>();
      pending->x = c.base_;
      pending->id = (*c.next_stream_id_)++;
      pending->req_start = s.ts;
      pending->has_req_time = true;
      s.target = pending.get();
      c.pending_.push_back(std::move(pending));
    } else {
      Http1Connection::Pending* t = nullptr;
      for (auto& q : c.pending_) {
        if (!q->written) {
          t = q.get();
          break;
        }
      }
      if (!t) {
        if (!c.orphan_) {
          c.orphan_ = std::make_unique<Http1Connection::Pending>();
          c.orphan_->x = c.base_;
          c.orphan_->id = (*c.next_stream_id_)++;
        }
        t = c.orphan_.get();
      }
      s.target = t;
    }
  }

  static int OnUrl(http_parser* p, const char* at, size_t n) {
    S(p).url.append(at, n);
    return 0;
  }
  static int OnStatus(http_parser* p, const char* at, size_t n) {
    S(p).status_text.append(at, n);
    return 0;
  }
  static int OnHeaderField(http_parser* p, const char* at, size_t n) {
    auto& s = S(p);
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

  static int OnHeadersComplete(http_parser* p) { return HeadersComplete(S(p), FactsOf(p)); }

  // The header section of the message on `s` ended. Returns what http-parser's on_headers_complete
  // returns: 0, 1 (no body follows) or 2 (no body, and the connection becomes a tunnel).
  static int HeadersComplete(Http1Connection::Side& s, const Facts& f) {
    s.PushField();
    Http1Connection& c = *s.conn;
    Http1Connection::Pending* t = s.target;
    if (t->written) return 0;  // answered before its headers ended; nothing more to record
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
    // RFC 9112 section 6.3: no body after a response to HEAD, or a 204 or 304, whatever the
    // headers say (a 304 often repeats the Content-Length of the representation).
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
    if (s.body.data.size() < limit) {
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
    Http1Connection& c = *s.conn;
    Http1Connection::Pending* t = s.target;
    if (!t) return After::kGoOn;
    if (s.body.data.size() < s.body.length) {
      s.body.truncated = true;
      ++c.counters_->body_truncated;
    }
    if (s.requests) {
      ++c.counters_->requests;
      if (t->written) {  // the response came first and was written: drop the leftover
        auto it = std::find_if(c.pending_.begin(), c.pending_.end(),
                               [t](const auto& q) { return q.get() == t; });
        if (it != c.pending_.end()) c.pending_.erase(it);
        s.target = nullptr;
        return After::kPause;
      }
      t->x.request->body = std::move(s.body);
      t->x.request->trailers = std::move(s.trailers);
      t->req_end = s.ts;
      t->request_done = true;
      if (f.upgrade && !t->is_connect) s.held = true;  // wait for 101 or not
      s.target = nullptr;
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
      return After::kGoOn;
    }
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
    }
    // Emit now: the exchange is whole. The request side may still be parsing (pipelining).
    Http1Connection::Pending* done = t;
    if (c.orphan_ && c.orphan_.get() == done) {
      c.Finish(*done, Completion::kNoRequest, "the request was not captured");
      c.orphan_.reset();
    } else {
      bool whole = done->request_done;
      c.Finish(*done,
               done->malformed ? Completion::kMalformed
               : done->gap     ? Completion::kGap
                               : Completion::kComplete,
               done->gap ? done->gap_reason : (whole ? "" : "response before the request ended"));
      auto it = std::find_if(c.pending_.begin(), c.pending_.end(),
                             [done](const auto& q) { return q.get() == done; });
      // The request side may still be writing this exchange's request: keep it until it ends.
      if (it != c.pending_.end() && done->request_done) c.pending_.erase(it);
    }
    s.target = nullptr;
    if (tunnel) return After::kStop;  // the rest of the connection is not HTTP/1
    // A declined Upgrade: Feed gives the held requests back to the client side before this side
    // reads on, so the next response finds its request.
    if (c.release_held_) return After::kPause;
    return After::kGoOn;
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
      for (auto& q : c.pending_) {
        if (q->written) continue;
        if (q->is_head || q->is_connect) return 0;
        break;
      }
    }
    Begin(s);
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
      Header& h = s.headers.emplace_back();  // built in place: no temporary to move
      h.name.assign(names[i]);
      h.value.assign(values[i]);
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

void Http1Connection::OnClientData(std::span<const uint8_t> d, uint64_t ts) {
  Feed(*client_, d, ts);
}
void Http1Connection::OnServerData(std::span<const uint8_t> d, uint64_t ts) {
  Feed(*server_, d, ts);
}
void Http1Connection::OnClientGap(uint64_t n, uint64_t ts) { Gap(*client_, n, ts); }
void Http1Connection::OnServerGap(uint64_t n, uint64_t ts) { Gap(*server_, n, ts); }

// Fills what the exchange has of the message the parser stopped in (a parse error or a gap):
// request or status line and the header fields read so far.
void Http1Connection::KeepPartial(Side& side) {
  Pending* t = side.target;
  if (!t) return;
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
    }
    t->request_done = true;
    t->req_end = side.ts;
  } else if (!t->x.response && side.parser.status_code) {
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
void Http1Connection::Hold(Side& side, std::span<const uint8_t> data) {
  constexpr size_t kMaxHeld = 256 << 10;
  size_t room = kMaxHeld - std::min(kMaxHeld, side.held_bytes.size());
  size_t keep = std::min(room, data.size());
  side.held_bytes.append(reinterpret_cast<const char*>(data.data()), keep);
  counters_->held_bytes_dropped += data.size() - keep;
}

// Drops the exchange the response side was writing, after writing it with `how`.
void Http1Connection::EndResponse(Side& side, Completion how, const std::string& why) {
  Pending* t = side.target;
  side.target = nullptr;
  if (!t) return;
  if (!t->x.request && !t->x.response && t->x.interim.empty()) {
    // Nothing but a failed first byte: not an exchange.
  } else {
    Finish(*t, how, why);
  }
  if (orphan_ && orphan_.get() == t) {
    orphan_.reset();
    return;
  }
  auto it =
      std::find_if(pending_.begin(), pending_.end(), [t](const auto& q) { return q.get() == t; });
  if (it != pending_.end() && (*it)->request_done) pending_.erase(it);
}

void Http1Connection::Feed(Side& side, std::span<const uint8_t> data, uint64_t ts) {
  if (tunnel_) {
    counters_->opaque_bytes += data.size();
    return;
  }
  if (side.held) {  // after an Upgrade request: hold until the server says 101 or not
    Hold(side, data);
    return;
  }
  side.ts = ts;
  while (!data.empty()) {
    bool resynced_here = false;  // this iteration's parse starts where resync found a start
    if (side.fast_remaining > 0) {
      data = data.subspan(Http1Callbacks::FastBody(side, data));
      ReleaseHeld(ts);
      continue;
    }
    if (side.resync) {
      // Find the next message start at the beginning of a line.
      size_t at = data.size();
      for (size_t i = 0; i < data.size(); ++i) {
        if (i > 0 && data[i - 1] != '\n') continue;
        bool is_request = false;
        if (LooksLikeHttp1Start(data.subspan(i), &is_request) && is_request == side.requests) {
          at = i;
          break;
        }
      }
      counters_->skipped_bytes += at;
      data = data.subspan(at);
      if (data.empty()) return;
      side.resync = false;
      resynced_here = true;
      side.Init();
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
    size_t n = http_parser_execute(&side.parser, &Http1Callbacks::Settings(),
                                   reinterpret_cast<const char*>(data.data()), data.size());
    ReleaseHeld(ts);
    if (tunnel_) {
      counters_->opaque_bytes += data.size() - std::min(n, data.size());
      return;
    }
    http_errno err = HTTP_PARSER_ERRNO(&side.parser);
    if (err == HPE_PAUSED) {  // a request ended: look at the next one from its first byte
      http_parser_pause(&side.parser, 0);
      data = data.subspan(std::min(n, data.size()));
      if (side.held) {
        Hold(side, data);
        return;
      }
      continue;
    }
    if (err == HPE_OK && side.held) {
      // The request asked for an Upgrade; http-parser stops after it. Hold the rest.
      if (n < data.size()) Hold(side, data.subspan(n));
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
      KeepPartial(side);
      t->gap = true;
      t->malformed = true;
      t->gap_reason = why;
      if (side.requests) {
        if (t->x.request && t->x.request->method.empty() && t->x.request->path.empty()) {
          // Not even a request line: no exchange, only the count.
          auto it = std::find_if(pending_.begin(), pending_.end(),
                                 [t](const auto& q) { return q.get() == t; });
          if (it != pending_.end() && !(*it)->written) pending_.erase(it);
        }
        side.target = nullptr;
      } else {
        EndResponse(side, Completion::kMalformed, why);
      }
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
  client_->Init();  // the request parser stopped at the Upgrade; start it afresh
  // The held bytes begin where the Upgrade request ended: at a message boundary.
  client_->resync = false;
  Feed(*client_,
       std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(held.data()), held.size()), ts);
}

void Http1Connection::Gap(Side& side, uint64_t bytes, uint64_t ts) {
  if (tunnel_) return;
  std::string why = absl::StrCat(bytes, " bytes lost in the TCP stream");
  side.ts = ts;
  if (side.in_message && side.target) {
    Pending* t = side.target;
    KeepPartial(side);
    t->gap = true;
    t->gap_reason = why;
    if (side.requests) {
      side.target = nullptr;
    } else {
      EndResponse(side, Completion::kGap, why);
    }
  }
  side.target = nullptr;
  side.in_message = false;
  side.fast_remaining = 0;
  side.resync = true;
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
  x.stream_id = p.id ? p.id : (*next_stream_id_)++;
  emit_(std::move(x));
  p.x = Exchange{};
  p.written = true;
}

void Http1Connection::Close(Completion how, std::string_view reason, uint64_t ts) {
  // Responses still open end here, then requests without a response.
  OnServerEnd(ts);
  if (server_->in_message && server_->target && !tunnel_) {
    // A response whose body did not end: keep its status, headers and the bytes seen.
    server_->ts = ts;
    KeepPartial(*server_);
    EndResponse(*server_, how == Completion::kNoResponse ? Completion::kTruncated : how,
                how == Completion::kNoResponse ? "the connection closed before the response ended"
                                               : std::string(reason));
    server_->in_message = false;
  }
  if (orphan_) {
    Finish(*orphan_, Completion::kNoRequest, "the request was not captured");
    orphan_.reset();
  }
  for (auto& p : pending_) {
    if (p->written) continue;
    if (!p->x.request) {  // the request line never completed: keep what there is
      p->x.request.emplace().path = client_->url;
    }
    Completion c = p->malformed ? Completion::kMalformed : p->gap ? Completion::kGap : how;
    std::string why = p->gap ? p->gap_reason : std::string(reason);
    if (!p->request_done && c == Completion::kNoResponse) {
      c = Completion::kCaptureEnded;
      why = "the request did not end";
    }
    if (!p->request_done) p->req_end = ts;
    p->request_done = true;
    Finish(*p, c, why);
  }
  pending_.clear();
}

}  // namespace tapkit
