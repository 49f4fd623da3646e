// http_text.h: small rules over HTTP message text that several libraries apply and must apply
// alike: which media types are JSON, whether a body is JSON text tapkit will build a document
// from, application/x-www-form-urlencoded decoding, header field name syntax, and list-based
// field joining. Redaction (redact.h), the body views (decoded_body.h), HAR (har.h) and the
// selection flags (select.h) use these, so that what one shows as JSON the other redacts as JSON.
//
// Inputs are untrusted bytes: nothing here throws or aborts, and every scan is bounded by its
// input's length (and CheckJsonText by kMaxJsonDepth and kMaxJsonMembers).
//
// Thread-safety: free functions over their arguments; safe from any thread.
#ifndef TAPKIT_FORMAT_HTTP_TEXT_H_
#define TAPKIT_FORMAT_HTTP_TEXT_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace tapkit {

// JSON nested deeper than this (arrays and objects) is not built into a document: building,
// printing and redacting one recurse once per level, and the bodies are untrusted.
inline constexpr size_t kMaxJsonDepth = 256;
// An object with more members than this is not built into a document: nlohmann's ordered_json
// (which keeps members in order, as sent) finds a member by a linear search, so building an
// object of N members costs O(N^2) (80,000 members took 7.6 s).
inline constexpr size_t kMaxJsonMembers = 10000;

// A Content-Type field value's media type (RFC 9110 section 8.3.1): type "/" subtype before any
// parameters, white space trimmed, lower case. "" for an empty value.
std::string MediaTypeOf(std::string_view content_type);

// True for application/json (RFC 8259 section 11), any media type with the +json structured
// syntax suffix (RFC 6839 section 3.1), and text/json, which no RFC registers but older servers
// still send for JSON: tapkit treats it as JSON everywhere (showing and redacting), the safer
// reading for redaction. `media_type` as MediaTypeOf gives it.
bool IsJsonMediaType(std::string_view media_type);

// True when the first byte that is not JSON white space (RFC 8259 section 2) opens an object or
// an array: a body of another type that may be JSON.
bool LooksLikeJson(std::string_view s);

enum class JsonText {
  kOk,              // JSON text (RFC 8259) within the limits, every object's names distinct
  kDuplicateNames,  // JSON text within the limits, but an object repeats a member name (RFC 8259
                    // section 4 leaves the meaning open; nlohmann keeps the last one)
  kNotJson,         // not JSON text; holds a NUL byte (nlohmann's parser would stop there)
  kTooDeep,         // arrays and objects nest deeper than kMaxJsonDepth
  kTooManyMembers,  // an object has more than kMaxJsonMembers members
};

// Checks `s` as JSON text with one streaming pass (no document is built; time and memory are
// linear in `s`). The first problem found that is not kDuplicateNames ends the check.
JsonText CheckJsonText(std::string_view s);

// The value of a hex digit (0-9, a-f, A-F), or -1 for any other byte.
int HexDigitValue(char c);

// Percent-decoding (RFC 3986 section 2.1): "%" with two hex digits is a byte; a "%" without two
// hex digits after it stays as it is, and "+" stays "+" (it is a form encoding, not RFC 3986's).
std::string PercentDecode(std::string_view s);

// application/x-www-form-urlencoded decoding of one name or value (WHATWG URL standard section
// 5.1): "+" is a space and "%" with two hex digits a byte (RFC 3986 section 2.1); a "%" without
// two hex digits after it stays as it is.
std::string FormDecode(std::string_view s);

// True when `s` is a token (RFC 9110 section 5.6.2: one or more tchar), the syntax of a field
// name.
bool IsToken(std::string_view s);

// `c` with A-Z made a-z; other bytes as they are (no locale).
inline char AsciiLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

// `s` as Abseil's view of the same bytes: Debian's Abseil has a string_view type of its own, so
// a std::string_view passed to absl::StrCat, StrAppend or the absl/strings/match.h functions
// crosses over explicitly.
inline absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// ASCII case-insensitive equality, as field names and tokens compare (RFC 9110 sections 5.1 and
// 5.6.2); on std::string_view (Debian's Abseil has its own string_view type).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// `s` without leading and trailing spaces and tabs (RFC 9110 section 5.6.3's OWS, around a field
// value and a list element). A view into `s`.
std::string_view TrimOws(std::string_view s);

// A request-target split into the parts a server uses (RFC 9112 section 3.2). Views into the
// target given.
struct RequestTargetParts {
  bool absolute = false;       // absolute form ("http://svc/a?b", section 3.2.2)
  std::string_view authority;  // absolute form: the authority, userinfo removed; else empty
  std::string_view path;       // before '?' and '#'; empty for "http://svc" and "http://svc?x"
  bool has_query = false;      // a '?' came before any '#'
  std::string_view query;      // after '?', before '#'
  // The origin form a server forwards ("/a?b"): path and query, an empty path given as "/"
  // (section 3.2.4: "http://svc?x=1" is "/?x=1"); the fragment left out.
  std::string OriginForm() const;
};

// Splits `target`: the absolute form is a target that does not start with '/', is not "*" and
// holds "://" (any scheme); anything else is taken as origin form (path, query). Never fails.
RequestTargetParts SplitRequestTarget(std::string_view target);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_HTTP_TEXT_H_
