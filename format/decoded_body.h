// decoded_body.h: a stored body as a person reads it (tapcat -V) or a script wants it (tapcat -o
// json
// --body): its Content-Encoding undone with content_coding.h under a cap, then classified as JSON,
// text or binary. Bodies are stored as sent (docs/architecture.md section 2); this is the one place
// that decides what they show as, so every output that decodes them agrees.
//
// Bodies are untrusted: nothing here throws or aborts; decoding stops at the caller's cap and JSON
// is checked with nlohmann::json's non-throwing parser under a nesting limit.
//
// Thread-safety: free functions over their arguments; safe from any thread.
#ifndef TAPKIT_FORMAT_DECODED_BODY_H_
#define TAPKIT_FORMAT_DECODED_BODY_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "format/content_coding.h"
#include "format/exchange_view.h"
#include "format/http_text.h"

namespace tapkit {

enum class BodyKind {
  kJson,    // parses as JSON (RFC 8259) within kMaxJsonDepth and kMaxJsonMembers (http_text.h)
  kText,    // UTF-8 text (RFC 3629) without control bytes other than TAB, LF, VT, FF, CR, ESC
  kBinary,  // anything else, or bytes that could not be decoded
};
// "json", "text", "binary".
std::string_view BodyKindName(BodyKind k);

struct DecodedBody {
  // The message's Content-Encoding field lines joined with ", " (RFC 9110 section 5.3), as sent;
  // empty when it has none.
  std::string content_encoding;
  // Content-Type's media type, lower case, parameters left out ("application/json"); empty when
  // there is no Content-Type.
  std::string media_type;
  // OK when the codings were undone (or there were none). Otherwise why they were not, as
  // DecodeContent says it (InvalidArgument: a coding tapkit cannot undo; DataLoss: not a valid
  // stream, with the input offset; ResourceExhausted: the decoded body would pass the cap), and
  // `data` holds the stored bytes.
  absl::Status status;
  // The decoded bytes, or the stored bytes when `status` is not OK.
  std::string data;
  // False when the coded stream ended before its end marker (the stored bytes were cut, at the
  // body limit or by the capture): `data` is what the stored bytes decode to.
  bool complete = true;
  // What `data` is. Always kBinary when `status` is not OK.
  BodyKind kind = BodyKind::kText;
  // True when `media_type` names JSON (IsJsonMediaType) but `data` is not JSON (a cut body, or
  // one nested deeper than kMaxJsonDepth).
  bool json_expected = false;
  // What CheckJsonText said of `data` when it was checked as JSON (a JSON media type, or bytes
  // that LooksLikeJson); kNotJson when it was not checked. kTooDeep and kTooManyMembers mean JSON
  // shown as text.
  JsonText json_text = JsonText::kNotJson;
};

// Undoes the Content-Encoding that `headers` (the body's own message headers) name on `stored`
// (the stored body bytes) and classifies the result. `cut` says the stored bytes are not the whole
// body (BodyView::truncated): a UTF-8 sequence cut at the end does not make text binary.
// `max_output`: the cap on decoded bytes (content_coding.h).
DecodedBody DecodeBody(std::string_view stored, const HeaderListView& headers, bool cut,
                       size_t max_output = kDefaultDecodeCap);

// Every field line of `headers` named `name` (case-insensitive), values in order joined with ", "
// as RFC 9110 section 5.3 allows for list-based fields such as Content-Encoding; "" when none.
std::string JoinedFieldValues(const HeaderListView& headers, std::string_view name);

// What `data` is: kJson when CheckJsonText (http_text.h) accepts it (kOk or kDuplicateNames) and
// either `media_type` is JSON or the bytes LooksLikeJson; kText when it is UTF-8 without other
// control bytes than those BodyKind lists (with `cut`, up to 3 trailing bytes may be the start of
// a cut UTF-8 sequence); kBinary otherwise. `json_text`, when given, gets CheckJsonText's answer
// (kNotJson when the data was not checked as JSON).
BodyKind ClassifyBody(std::string_view data, std::string_view media_type, bool cut,
                      JsonText* json_text = nullptr);

// The length of the longest prefix of `s` that is whole UTF-8 when `s` may end inside a sequence:
// s.size() when it ends on a boundary, else the offset of the cut sequence's first byte.
size_t Utf8CompletePrefix(std::string_view s);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_DECODED_BODY_H_
