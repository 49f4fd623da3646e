// redact.h: secrets replaced by a keyed digest before they leave the capture
// (docs/architecture.md section 6, docs/security.md "Redaction"): header values, query parameters
// (in the request target, in Referer, Location and Content-Location URLs, and in
// application/x-www-form-urlencoded bodies) and fields of JSON bodies named by JSON Pointers.
//
// A redacted value reads "tapkit-redacted:" followed by the first 12 hex digits of
// HMAC-SHA256(key, value): equal values stay equal within one capture (one key), so a reader can
// still see that two requests carried the same token, and without the key the value cannot be
// guessed or checked. The key is random per capture unless a key file gives one. A value that
// already is a marker (IsRedactionMarker: the whole value) is left alone, so redacting twice
// changes nothing.
//
// Thread-safety: a Redactor is immutable after construction; Apply may run on many threads.
// BuildRedactor and ReadRedactionKey read files and are safe from any thread.
#ifndef TAPKIT_FORMAT_REDACT_H_
#define TAPKIT_FORMAT_REDACT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "format/content_coding.h"
#include "format/exchange.h"
#include "format/metadata.h"

namespace tapkit {

// The header names redacted by default (lower case): authorization, proxy-authorization, cookie,
// set-cookie, x-api-key, x-auth-token, x-csrf-token.
const std::vector<std::string>& DefaultRedactedHeaders();
// The query parameter names redacted by default (lower case): access_token, token, api_key,
// apikey, key, password, secret, sig, signature.
const std::vector<std::string>& DefaultRedactedQueryParams();

inline constexpr std::string_view kRedactedPrefix = "tapkit-redacted:";

// True when `value` is a marker as Redactor::Redact writes it, whole: kRedactedPrefix and then
// exactly 12 lower-case hex digits. Only such a value is left alone when redacting again; any
// other value that merely begins with the prefix is redacted like any other.
bool IsRedactionMarker(std::string_view value);

// A JSON Pointer (RFC 6901): "" is the whole document, otherwise "/" followed by reference
// tokens separated by "/", in which "~1" stands for "/" and "~0" for "~" (section 4). tapkit adds
// one thing: a token "*" is a wildcard for every member of an object or element of an array (so a
// member literally named "*" cannot be named). A token names an array element only when it is a
// decimal index without leading zeros ("0", "12"); "-" (section 4's element past the end) names
// nothing.
struct JsonPointer {
  std::string text;                 // as given
  std::vector<std::string> tokens;  // unescaped reference tokens
  bool operator==(const JsonPointer&) const = default;
};

// Errors: InvalidArgument "JSON pointer \"x\": ..." for a pointer that is not empty and does not
// start with "/", or a "~" not followed by "0" or "1" (RFC 6901 section 3), naming the offset.
absl::StatusOr<JsonPointer> ParseJsonPointer(std::string_view text);

// Redaction's default cap on a body's decoded bytes: 4 MiB, below kDefaultDecodeCap (64 MiB, for
// showing bodies) because the sidecar redacts on its capture thread, where a 65 KB gzip body that
// inflates to 64 MiB costs about 0.2 s. A body over it is dropped and flagged (Apply).
inline constexpr size_t kDefaultRedactionDecodeCap = size_t{4} << 20;

// What to redact.
struct RedactionRules {
  // Header field names, compared case-insensitively (RFC 9110 section 5.1); empty =
  // DefaultRedactedHeaders().
  std::vector<std::string> headers;
  // Query parameter names, compared case-insensitively after percent-decoding (and "+" as a
  // space, as application/x-www-form-urlencoded); empty = none.
  std::vector<std::string> query_params;
  // Fields of JSON bodies; empty = bodies are left alone as JSON.
  std::vector<JsonPointer> json_fields;
  // Bytes a body may decode to (Content-Encoding undone) before it is dropped unexamined.
  size_t decode_cap = kDefaultRedactionDecodeCap;
};

// What one Apply did.
struct RedactionStats {
  uint64_t header_values = 0;   // header and trailer values replaced
  uint64_t query_values = 0;    // query parameter values (URLs and form bodies), URL passwords
  uint64_t json_values = 0;     // JSON fields replaced
  uint64_t bodies_dropped = 0;  // bodies emptied because they could not be examined
  RedactionStats& operator+=(const RedactionStats& o);
};

class Redactor {
 public:
  // `key`: the HMAC key (bytes); empty = 32 random bytes from the system's generator, never
  // stored anywhere. Rule names are lower-cased here. Redactor({}, key) redacts the default
  // headers only.
  Redactor(RedactionRules rules, std::string key);

  // Redacts `x` in place; returns the number of values replaced (headers, query parameters and
  // JSON fields together), and adds the details to `*stats` when given.
  //
  // - Header values: every header list (request and response headers and trailers, interim
  //   responses).
  // - URL passwords: the password of the userinfo ("scheme://user:PASSWORD@host", RFC 3986
  //   section 3.2.1) of an absolute-form request target (RFC 9112 section 3.2.2) and of the
  //   Referer, Location and Content-Location URLs becomes its marker; the user name stays.
  // - Query parameters: in the request's path (the query, RFC 3986 section 3.4: after the first
  //   "?", up to a "#"), in the URLs of Referer, Location and Content-Location header values,
  //   and in request and response bodies of type application/x-www-form-urlencoded. A
  //   parameter "NAME=VALUE" becomes "NAME=" + the marker of VALUE percent-decoded; the marker
  //   needs no escaping in a query (RFC 3986 section 3.4 allows ":").
  // - JSON fields: in request and response bodies whose Content-Type is JSON
  //   (IsJsonMediaType, http_text.h: application/json, text/json, any "+json" type), or whose
  //   bytes, once decoded, start as a JSON object or array (LooksLikeJson). The field's value becomes the marker as a JSON string:
  //   for a string, the marker of its (unescaped) text, so that a token gets the same marker
  //   in a query, a form and a JSON body; for any other type, the marker of its compact
  //   serialization. A changed body is serialized compactly.
  // - Bodies are examined with their Content-Encoding undone (gzip, deflate, br, stacked;
  //   content_coding.h) under `decode_cap`, and a changed body is encoded again with the same
  //   codings; Body.length and any Content-Length field become the new length.
  // - A body that must be examined but cannot be is dropped: its data emptied, its `truncated`
  //   flag set (its length kept), and the exchange's reason says so ("response body dropped by
  //   redaction: ..."; appended after "; " to a reason already there). That is a JSON-typed
  //   body that was stored cut short (the body limit), decodes past the cap, does not decode,
  //   or that CheckJsonText (http_text.h) refuses: does not parse, nests deeper than
  //   kMaxJsonDepth, has an object of more than kMaxJsonMembers members, or repeats a member name
  //   in an object (nlohmann keeps only the last, so a secret in an earlier one would be neither
  //   seen nor written back); a JSON-looking body of another type stored cut short, past the cap
  //   or refused by CheckJsonText; a form body stored cut short or that does not decode.
  size_t Apply(Exchange* x, RedactionStats* stats = nullptr) const;
  // The marker for one value.
  std::string Redact(std::string_view value) const;
  // Redacts a URL or request target: the userinfo's password (RFC 3986 section 3.2.1), the
  // query parameters of its query (section 3.4) and of its fragment (section 3.5, where
  // redirects carry parameters too: RFC 6749 section 4.2.2), as Apply does for the request's path: for a view that shows the target before the
  // exchange ends (the sidecar's RequestSeen). True when it changed.
  bool RedactUrl(std::string* url, RedactionStats* stats = nullptr) const;

  // The rules as the file header records them (format/metadata.h): enabled, the header and
  // query parameter names, the JSON pointers as given, `keyed` when a key was passed in.
  RedactionPolicy policy() const;

  const std::vector<std::string>& headers() const { return headers_; }
  const std::vector<std::string>& query_params() const { return query_params_; }
  const std::vector<JsonPointer>& json_fields() const { return json_fields_; }
  const std::string& key() const { return key_; }
  bool keyed() const { return keyed_; }

 private:
  bool Secret(std::string_view name) const;
  bool SecretParam(std::string_view decoded_name) const;
  // Replaces the password of a URL's userinfo ("http://user:PASSWORD@host", RFC 3986 section
  // 3.2.1, which deprecates it) by its marker (of its text as written); true when it changed.
  bool RedactUserinfo(std::string* url, RedactionStats* stats) const;
  // Redacts the parameters of a query (no "?"); true when it changed.
  bool RedactQuery(std::string* query, RedactionStats* stats) const;
  // A body and the header list that describes it; `which` is "request" or "response".
  void RedactBody(Body* body, std::vector<Header>* headers, std::string_view which, Exchange* x,
                  RedactionStats* stats) const;

  std::vector<std::string> headers_;
  std::vector<std::string> query_params_;
  std::vector<JsonPointer> json_fields_;
  size_t decode_cap_;
  std::string key_;
  bool keyed_;
};

// Reads a key file (16 bytes to 64 KiB of key material; the whole file is the key). The key is
// a secret (whoever has it can check a guess against a marker), so, as ssh with a private key,
// a file that group or others may read or write, or that another user than the caller or root
// owns, is refused. Errors name the file: NotFound; PermissionDenied (unreadable, its mode or
// owner); InvalidArgument when not a regular file (a FIFO or a directory: refused without
// waiting on it) or of the wrong size. Never throws.
absl::StatusOr<std::string> ReadRedactionKey(const std::string& path);

// The redaction flags every tool takes (redact_options.h adds them to a parser): what the user
// asked for, before it is checked.
struct RedactionFlags {
  // taprec and the live tap redact unless --no-redact; tapfilter only with --redact (or any
  // other redaction flag).
  bool on_by_default = false;
  bool redact = false;                    // --redact
  bool no_redact = false;                 // --no-redact
  std::vector<std::string> headers;       // --redact-header NAME (comma lists allowed)
  std::vector<std::string> query_params;  // --redact-query-param NAME (comma lists allowed)
  std::vector<std::string> json_fields;   // --redact-json-field POINTER
  std::string key_file;                   // --redact-key-file FILE
};

// The flags of a tool that redacts unless told not to (taprec, the live tap).
inline RedactionFlags RedactionOnByDefault() {
  RedactionFlags f;
  f.on_by_default = true;
  return f;
}

// Whether the flags ask for redaction at all.
bool RedactionEnabled(const RedactionFlags& flags);

// The Redactor the flags ask for, or nullopt when redaction is off. When on, it redacts the
// default headers and the default query parameters, plus the names and pointers given, with the
// key file's key (else a random key). Errors (InvalidArgument unless said, each naming the
// flag): a redaction flag with --no-redact ("--redact-header goes with redaction; --no-redact
// turns it off"); a header name that is not a field name (RFC 9110 section 5.1: a token); an
// empty query parameter name; a bad JSON pointer ("--redact-json-field /a~2: JSON pointer ...");
// the key file's errors from ReadRedactionKey, prefixed "--redact-key-file ".
absl::StatusOr<std::optional<Redactor>> BuildRedactor(const RedactionFlags& flags);
// BuildRedactor's checks without reading the key file: for a tool to refuse bad flags at once.
absl::Status CheckRedactionFlags(const RedactionFlags& flags);

// The policy of an unconfigured recording: enabled, the default headers and query parameters, a
// random key.
RedactionPolicy DefaultRedactionPolicy();

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_REDACT_H_
