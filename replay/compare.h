// compare.h: does a live response answer what the recorded one answered? tapreplay's diff.
//
// A Comparer holds the noise rules (what differs between two runs of the same service without
// meaning a regression: dates, request ids, generated timestamps) and compares one recorded
// exchange's final response with the live response to the same request:
//   - status: the status code (RFC 9110 section 15), unless a rule ignores it;
//   - header fields: by lower-case name, except the ignored ones. A name's field lines are one
//     field value combined in order with ", " (RFC 9110 section 5.3: order matters, the split
//     into lines does not), compared as a list (section 5.6.1: split at commas outside quoted
//     strings, section 5.6.4; whitespace around elements and empty elements ignored). A
//     header pattern or a redaction marker is checked per element, or per field line (a marker
//     stands for one whole line), and a pattern also against the whole combined value.
//     Set-Cookie lines are never combined (RFC 6265 section 3): compared line by line in order.
//     DefaultIgnoredHeaders() are ignored unless CompareOptions::default_ignore_headers is
//     false; meanwhile set-cookie is compared on cookie names only, in any order, and a
//     redacted Set-Cookie line stands for any one cookie, with the key too (its name is lost).
//     A recorded value that is a redaction marker ("tapkit-redacted:...", format/redact.h)
//     matches any live value, or, with the recording's key, only a live value whose marker
//     under that key is the same. In Location, Content-Location and Referer a marker may stand
//     inside the URL (a query or fragment parameter's value, a userinfo password:
//     Redactor::RedactUrl): without the key it matches any non-empty value in its place; with
//     it, the live URL redacted by RedactUrl for those parameter names must equal the recorded;
//   - body: after undoing Content-Encoding on both sides (format/content_coding.h), byte-exact;
//     when both sides are JSON (format/http_text.h) it is compared as JSON instead: member order
//     ignored, ignored pointers skipped, arrays at unordered pointers compared as multisets.
//     A recorded body cut at the body limit is compared on its stored prefix and, when both
//     sides have the same Content-Encoding, on Body::length (the wire length): any other live
//     length differs; a body cut before the limit (gap, capture end: stored == length) has a
//     lower bound only, so only a shorter live body differs.
// Rules come from flags and from a YAML rules file (LoadRules): global, per route (method and a
// RE2 regex on the path), per recorded exchange id. The rules that apply to one exchange are the
// union of the global ones, every matching route's and its exchange id's.
//
// Thread-safety: a Comparer is immutable once created; Compare may run on several threads.
#ifndef TAPKIT_REPLAY_COMPARE_H_
#define TAPKIT_REPLAY_COMPARE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "format/exchange.h"

namespace tapkit::replay {

// One set of noise rules: the flags, or one block of a rules file.
struct NoiseRules {
  // Header names to ignore (any case), or "/REGEX/": an RE2 regex fully matching the lower-case
  // name (--ignore-header).
  std::vector<std::string> ignore_headers;
  // RFC 6901 JSON pointers whose values are not compared; a "*" token matches any member or
  // index (--ignore-json-path).
  std::vector<std::string> ignore_json_paths;
  // Pointers of arrays compared as multisets, order ignored (--unordered-json-path).
  std::vector<std::string> unordered_json_paths;
  // Header NAME -> RE2 regex: two different values (list elements, field lines or the combined
  // values, as above) are equal when both fully match it (a request id's shape, say). Rules
  // file only.
  std::vector<std::pair<std::string, std::string>> header_patterns;
  // JSON pointer -> RE2 regex on the value's text (a string's contents, or a number's or
  // literal's JSON text): two different values are equal when both fully match. Rules file only.
  std::vector<std::pair<std::string, std::string>> json_patterns;
  bool ignore_status = false;
  bool ignore_body = false;
};

// The header fields ignored by default, lower-case: date, server, etag, age, last-modified,
// expires, x-request-id and the like, and framing that follows the body (content-length,
// transfer-encoding, connection, keep-alive). set-cookie is compared on cookie names only.
const std::vector<std::string>& DefaultIgnoredHeaders();

struct CompareOptions {
  bool default_ignore_headers = true;
  NoiseRules flags;        // from the command line: apply to every exchange
  std::string rules_file;  // --rules FILE (YAML); empty: none
  // --redact-key-file's key (the recording's): a recorded marker then matches only a live value
  // whose marker under this key is the same (a URL field's: the live URL redacted by
  // RedactUrl; a Set-Cookie line while default_ignore_headers: any cookie, key or not).
  // Absent: a marker matches any live value.
  std::optional<std::string> redaction_key;
};

// One difference, as reports print it.
struct FieldDiff {
  enum class Kind : uint8_t { kStatus, kHeader, kBody, kJsonValue };
  Kind kind = Kind::kStatus;
  // "status"; "header NAME" (lower-case); "body"; "body POINTER" (RFC 6901) for a JSON value;
  // "body length" for a recorded body cut at the body limit whose wire length differs.
  std::string field;
  // The values as text: a status code; a header's values joined with ", "; a JSON value as
  // compact JSON; a body as its first 64 bytes C-escaped, "..." when longer, then " (N bytes)";
  // a body length as the decimal number of bytes on the wire.
  std::optional<std::string> recorded;  // absent: the recorded side has no such field/value
  std::optional<std::string> live;      // absent: the live side has none
  bool operator==(const FieldDiff&) const = default;
};

struct Comparison {
  std::vector<FieldDiff> diffs;  // in order: status, headers by name, body
  // The recorded body was cut at the body limit and compared on its stored prefix.
  bool body_prefix_only = false;
  // When the body differs: both bodies as text for a unified diff (JSON pretty-printed with
  // sorted members, other text as decoded; binary as hexdump -C prints it, as tapcat -V does:
  // format/verbose.h AppendHexDump).
  std::string recorded_body_text;
  std::string live_body_text;
  bool matched() const { return diffs.empty(); }
};

class Comparer {
 public:
  // Loads options.rules_file and compiles every regex and pointer. Errors name the flag, or the
  // rules file and the YAML line and key at fault; a key given twice in one mapping is an error
  // (YAML 1.2 section 3.2.1.1: keys are unique), not merged.
  static absl::StatusOr<std::shared_ptr<const Comparer>> Create(const CompareOptions& options);

  // `recorded` must have a request and a response. `live` is the response as received (body
  // with its Content-Encoding, as sent).
  Comparison Compare(const Exchange& recorded, const Response& live) const;

  // Lines for the user about rules that load but likely do not do what was meant, each starting
  // "FILE:LINE: KEY": a route's method that upper-cases to a registered one ("get": methods are
  // case-sensitive, RFC 9110 section 9.1, so it matches no request). Empty when none.
  const std::vector<std::string>& warnings() const { return warnings_; }

  virtual ~Comparer() = default;

 protected:
  Comparer() = default;
  std::vector<std::string> warnings_;
};

// A unified diff (diff -u's hunks, `context` lines around each change) of two texts split into
// lines, with the "--- a_name" / "+++ b_name" header; empty when they are equal.
std::string UnifiedDiff(std::string_view a, std::string_view b, std::string_view a_name,
                        std::string_view b_name, int context = 3);

}  // namespace tapkit::replay

#endif  // TAPKIT_REPLAY_COMPARE_H_
