// match.h: which recorded response answers an incoming request (tapreplay --serve, issue 13).
//
// RecordedResponses indexes the complete exchanges of a capture (a request and a response each) by
// a request key, and Lookup picks the recorded response for an incoming request. It is the
// matching half of the mock server and has no server in it: the server builds a Request from what
// it received, calls Lookup, and serves (or explains) the result.
//
// The request key, after mitmproxy's server replay (addons/serverplayback.py):
//   - the method, exactly (methods are case-sensitive: RFC 9110 section 9.1);
//   - the path (the request-target before '?'), with percent-encoding normalised as RFC 3986
//     section 6.2.2 says: hex digits compared case-insensitively and encoded unreserved characters
//     (ALPHA DIGIT - . _ ~) decoded; other encodings (%2F) are kept, as they change the meaning;
//     then dot segments removed (section 6.2.2.3, with section 5.2.4's algorithm: "/a/./b/../c"
//     is "/a/c", as nginx resolves it);
//   - the query parameters as a multiset: order ignored, names and values percent-decoded
//     (RFC 3986 section 2.1; '+' is kept as '+', it is a form encoding, not RFC 3986's), a
//     parameter without '=' equal to one with an empty value, parameters named in ignore_params
//     left out;
//   - the host (the authority, else the Host header; compared case-insensitively, RFC 3986
//     section 3.2.2) unless ignore_host;
//   - for each name in match_headers (case-insensitive, RFC 9110 section 5.1), that header's
//     values in order (a header absent on one side differs from any value);
//   - with match_body, the body: as JSON values when both bodies parse as JSON (object key order
//     and whitespace ignored), else as bytes; a body with a Content-Encoding is decoded first
//     (format/content_coding.h; one that does not decode, or passes 16 MiB decoded, is compared
//     as stored). A recorded body stored cut (the body limit, a gap) matches a live body that
//     starts with the stored bytes and has the recorded length.
//
// Sequences: when one key was recorded several times, Lookup serves the recorded responses in
// recording order (the order of the vector given), then the last one again; with strict the
// request after the last gets kExhausted instead. The position in a sequence is kept per session
// value: an empty session (no session header, or a request without it) shares one sequence per
// key across all clients, as mitmproxy does. Each session value seen keeps one counter per key it
// asked for, for the index's lifetime; past kMaxSessionsPerKey distinct session values for one
// key, a new session value shares the common sequence (memory stays bounded).
//
// A HEAD whose key was never recorded is answered from the GET recorded under the same key
// (RFC 9110 section 9.3.2), taking that GET's turn in its sequence (LookupResult::head_of_get).
//
// The request-target may be in origin form ("/a?b") or absolute form ("http://svc/a?b", RFC 9112
// section 3.2.2, as a proxy sends it): the key is made of its path and query either way, and the
// absolute form's authority is the host (it wins over the Host field).
//
// Thread-safety: construction is single-threaded; after it, Lookup may be called from any number
// of threads at once (the sequence positions are guarded by one mutex; everything else is
// read-only). Not copyable or movable: hold it by pointer to share it.
#ifndef TAPKIT_REPLAY_MATCH_H_
#define TAPKIT_REPLAY_MATCH_H_

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "format/exchange.h"

namespace tapkit {

// Distinct session values kept per request key (see the file comment).
inline constexpr size_t kMaxSessionsPerKey = 65536;

struct MatchOptions {
  std::vector<std::string> match_headers;  // header names whose values are part of the key
  bool match_body = false;                 // the body is part of the key (JSON-aware)
  std::vector<std::string> ignore_params;  // query parameter names left out (exact, decoded)
  bool ignore_host = false;                // the host is not part of the key
  bool strict = false;  // after a key's last recorded response: kExhausted, not the last again
};

// The part of a request the key is made of, after normalisation (see the file comment).
// Exposed for the explanation of a miss and for tests.
struct RequestKey {
  std::string method;
  std::string path;                                        // normalised
  std::vector<std::pair<std::string, std::string>> query;  // decoded, sorted, ignored ones left out
  std::string host;                                        // lower-case; empty with ignore_host
  std::vector<std::vector<std::string>> headers;           // one entry per match_headers name
  bool operator==(const RequestKey&) const = default;
};

// Which part of a request made it differ from a recorded one; a miss names the first in the order
// path, method, query, host, header, body. kQueryParams: several query parameters differ.
enum class MatchField { kNone, kMethod, kPath, kQuery, kQueryParams, kHost, kHeader, kBody };
// "none", "method", "path", "query parameter", "query parameters", "host", "header", "body".
std::string_view MatchFieldName(MatchField f);

struct LookupResult {
  enum class Outcome {
    kHit,        // `exchange` holds the response to serve
    kMiss,       // no recorded request has this key; `exchange` is the closest (null if none)
    kExhausted,  // strict: every response recorded for this key was served to this session
  };
  Outcome outcome = Outcome::kMiss;
  // kHit: the recorded exchange whose response is served. kMiss: the closest recorded exchange,
  // null when nothing was recorded. kExhausted: the last recorded for the key. Points into the
  // RecordedResponses, valid for its lifetime.
  const Exchange* exchange = nullptr;
  size_t position = 0;  // kHit: 1-based place of the served response in the key's sequence
  size_t recorded = 0;  // kHit, kExhausted: how many responses were recorded for the key
  // kHit for a HEAD whose key was never recorded: the response is the recorded GET's (RFC 9110
  // section 9.3.2: HEAD is GET without content); the server sends its head only.
  bool head_of_get = false;
  // kMiss with a closest exchange: the first field it differs on, and which one: the query
  // parameter's name (kQueryParams: the names, sorted, ", "-separated), the header's name
  // (decoded), for the body of a recorded request stored cut a note saying so; else empty.
  MatchField differs_on = MatchField::kNone;
  std::string differs_name;
  // The differing field is a matched header whose recorded value is a redaction marker
  // (format/redact.h): no live value can equal it; the explanation says so.
  bool differs_redacted = false;

  // One line for a person: "matched recorded response 2 of 3", "no recorded request matches;
  // closest: GET /a?x=1 (differs on query parameter x)", "all 3 recorded responses to this
  // request were served".
  std::string Explanation() const;
};

class RecordedResponses {
 public:
  // Keeps the exchanges with a request and a final response of status 200 or more (their
  // Completion is not checked: a response cut at the body limit is still served); the others (no
  // request, no response, an HTTP/0.9 reply's status 0, a 101 Switching Protocols) are counted in
  // skipped().
  RecordedResponses(std::vector<Exchange> exchanges, MatchOptions options);
  RecordedResponses(const RecordedResponses&) = delete;
  RecordedResponses& operator=(const RecordedResponses&) = delete;

  // The recorded response for the next use of `request`'s key by `session` (see the file
  // comment). `session`: the value identifying a client (e.g. the --session-header value);
  // empty for the sequence shared by all clients. Thread-safe.
  // explain_miss: on a miss, find the closest recorded request (a scan of every recorded key,
  // with an edit distance of paths); false leaves `exchange` null and `differs_on` kNone, for a
  // caller that answers misses another way (a pass-through) and would throw that work away.
  LookupResult Lookup(const Request& request, std::string_view session = {},
                      bool explain_miss = true);

  // The key of `request` under this index's options.
  RequestKey KeyOf(const Request& request) const;

  size_t size() const { return exchanges_.size(); }  // exchanges kept
  size_t skipped() const { return skipped_; }        // exchanges that cannot be served (above)
  const MatchOptions& options() const { return options_; }

 private:
  // One distinct request (key and body): the exchanges recorded for it, in order.
  struct Group {
    RequestKey key;
    std::string body;  // the first exchange's request body as BodyForMatch gives it
    // `body` parsed once, when it is JSON (null otherwise), so a lookup parses only its own body.
    std::shared_ptr<const nlohmann::json> body_json;
    // The first exchange's request body was stored cut (body limit, a gap): `body` holds the
    // stored prefix as stored, and a live body matches when it starts with it and has the
    // recorded length `body_length` (match_body only).
    bool body_cut = false;
    uint64_t body_length = 0;
    std::vector<const Exchange*> exchanges;
    std::map<std::string, size_t, std::less<>> next;  // session -> uses so far (guarded by mu_)
  };
  static std::string KeyString(const RequestKey& key);
  // The next response of the group with this key and body for `session` (kHit, or kExhausted
  // under strict) into *result; false when no group has them.
  bool TakeTurn(const std::string& key_string, std::string_view body, const nlohmann::json* json,
                std::string_view raw_body, std::string_view session, LookupResult* result);
  // The body compared under match_body: decoded when it has a Content-Encoding; empty without
  // match_body.
  std::string BodyForMatch(const Request& r) const;
  // Whether a group's body and a request's body are the same under match_body: equal bytes, or
  // equal JSON values when both parse (request_json: the request's body parsed, or null).
  // raw_body: the live body as received (before decoding), for a recorded body stored cut.
  bool BodiesMatch(const Group& g, std::string_view body, const nlohmann::json* request_json,
                   std::string_view raw_body) const;
  static std::string CutNote(const Group& g);  // "the recorded body was stored cut: S of L bytes"
  // `body` parsed as JSON under match_body; null when it is not JSON (or match_body is off).
  std::shared_ptr<const nlohmann::json> ParseBody(std::string_view body) const;

  MatchOptions options_;
  std::vector<Exchange> exchanges_;
  size_t skipped_ = 0;
  std::vector<Group> groups_;
  std::multimap<std::string, size_t> by_key_;  // KeyString -> index in groups_
  std::mutex mu_;
};

// The value of the first `header_name` header of `request` (case-insensitive), or empty: the
// session value for Lookup under --session-header.
std::string_view SessionValue(const Request& request, std::string_view header_name);

}  // namespace tapkit

#endif  // TAPKIT_REPLAY_MATCH_H_
