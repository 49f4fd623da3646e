// verbose.h: tapcat -V, one block per exchange for a person at a terminal, as `tshark -V` or
// `curl -v` show a message: timing, endpoints, direction and completion, then every header field
// of the request, the interim responses, the final response and the trailers in wire order
// (duplicates kept, `>` for what the client sent, `<` for what the server sent), and the bodies
// with their Content-Encoding undone (decoded_body.h): JSON pretty-printed, text as text, anything
// else as a hex dump in `hexdump -C` layout. A body that is cut, cut short in its coding, over the
// decoding cap or not decodable gets a line beginning with "! " that says so.
//
//   exchange 0:1: GET backend.demo /api/items?id=7 -> 200 OK
//     request start   2025-11-30T00:00:00.123456789Z
//     request end     2025-11-30T00:00:00.123457789Z (+1us)
//     response start  2025-11-30T00:00:00.123768789Z (+312us)
//     response end    2025-11-30T00:00:00.123807289Z (+350.5us)
//     latency         312us
//     duration        38.5us
//     source          127.0.10.1:41234 (namespace demo, pod frontend-0, deployment/frontend)
//     destination     127.0.20.1:80 (namespace demo, pod backend-0, deployment/backend)
//     direction       inbound
//     tls             no
//     completion      complete
//     > GET /api/items?id=7 HTTP/1.1
//     > Host: backend.demo
//     >
//     < HTTP/1.1 200 OK
//     < Content-Type: application/json
//     < Content-Encoding: gzip
//     <
//     response body: 47 bytes, gzip decoded to 27 bytes, json (application/json)
//       {
//         "id": 7,
//         "name": "sprocket"
//       }
//
// (The golden file's first exchange with its body gzipped; header fields shortened.) Times are
// docs/architecture.md section 2's: each instant in RFC 3339 (UTC, nanoseconds) with its offset
// from the sort key (the request's first byte, or the response's when there is no request);
// latency = response first byte - request first byte, duration = response last byte - response
// first byte; durations in absl::FormatDuration's units. Bytes that
// could move a terminal's cursor or change its state (C0 and C1 controls, DEL, bidirectional
// overrides) and bytes that are not UTF-8 are shown as \xHH; in text bodies TAB and line ends stay.
// Body lines are indented by four spaces; a text body that does not end in a line feed is followed
// by the line "  \ no newline at end of body" (as diff marks a file).
//
// Thread-safety: AppendVerbose and AppendHexDump use only their arguments; a VerboseOutput is used
// by one thread at a time (output.h).
#ifndef TAPKIT_FORMAT_VERBOSE_H_
#define TAPKIT_FORMAT_VERBOSE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "format/content_coding.h"
#include "format/exchange_view.h"
#include "format/output.h"

namespace tapkit {

// What tapcat -V shows of one body at most, bytes (VerboseOptions::show_cap): 64 KiB.
inline constexpr size_t kVerboseShowCap = size_t{64} << 10;

struct VerboseOptions {
  // At most this many decoded bytes per body (content_coding.h); past it the body is shown as the
  // hex dump of its stored bytes, with a line naming the cap.
  size_t decode_cap = kDefaultDecodeCap;
  // At most this many bytes of one body are shown (a text's or pretty-printed JSON's cut back to
  // the line end before it, a hex dump's of the decoded bytes), then a line
  // "! shown the first N of M bytes; K more not shown".
  size_t show_cap = kVerboseShowCap;
  // The inputs' body limits (CaptureMetadata::body_limit, bytes): a cut body whose stored size is
  // one of them, or the body of an exchange that completed, is said to be cut at the body limit;
  // any other cut body is said to be cut by how its exchange ended.
  std::vector<uint64_t> body_limits;
};

// Appends the exchange's block and an empty line.
void AppendVerbose(const ExchangeView& x, const VerboseOptions& options, std::string* out);

// Appends `data` as `hexdump -C` prints it, each line after `indent`: the offset (8 hex digits),
// 16 bytes in hex in two groups of 8, and the printable ASCII ('.' for other bytes) between bars;
// a run of 16-byte lines equal to the one before them is one line "*" (hexdump(1) without -v);
// without hexdump's closing line of the total length.
void AppendHexDump(std::string_view data, std::string_view indent, std::string* out);

// `s` made safe for a terminal, as -V shows header fields and text: C0 controls (TAB too unless
// `keep_tab`), DEL, the C1 controls (U+0080..U+009F: CSI starts escape sequences), U+2028/2029,
// the bidirectional embeddings, overrides and isolates (U+202A..202E, U+2066..2069) and every byte
// that is not part of well-formed UTF-8 become \xHH; the rest is kept.
std::string TerminalSafe(std::string_view s, bool keep_tab = false);

// The ExchangeOutput of tapcat -V (reads bodies); Begin takes the inputs' body limits.
std::unique_ptr<ExchangeOutput> MakeVerboseOutput(size_t decode_cap);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_VERBOSE_H_
