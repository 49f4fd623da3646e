// render.h: how tapcat (and later taprec's live view) prints exchanges: linkerd-style text lines,
// the wide variant, and one JSON object per exchange (schema: docs/json.md, stable from v1).
//
// Thread-safety: free functions; each call uses only its arguments.
#ifndef TAPKIT_FORMAT_RENDER_H_
#define TAPKIT_FORMAT_RENDER_H_

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "format/content_coding.h"
#include "format/exchange_view.h"
#include "format/line_time.h"
#include "format/metadata.h"
#include "format/reader.h"

namespace tapkit {

// text, wide and json print here; har, curl and pcap are tapcat's exports (format/har.h,
// format/curl_export.h, format/pcap_export.h), which a live view does not print.
enum class OutputFormat { kText, kWide, kJson, kHar, kCurl, kPcap };

// The -o word of every tool: "text", "wide", "json", "har", "curl" or "pcap". Errors:
// InvalidArgument "-o WORD: unknown output (text, wide, json, har, curl, pcap)".
absl::StatusOr<OutputFormat> ParseOutputFormat(std::string_view word);

// Appends the exchange's `req`, interim `rsp`, final `rsp` and `end` lines (each ending in '\n')
// in linkerd tap's layout; `wide` adds the source and destination resources.
//   req id=0:1 proxy=in  src=10.0.0.1:4000 dst=10.0.0.2:80 tls=false :method=GET ...
//   rsp id=0:1 proxy=in  src=... :status=200 latency=312µs
//   end id=0:1 proxy=in  src=... duration=38µs response-length=27B
// Latency and duration are docs/architecture.md section 2's, in whole microseconds. With a `clock`,
// each line starts with its event's time (line_time.h: tapcat's time column); taprec's views pass
// none and print linkerd's layout exactly.
void AppendText(const ExchangeView& x, bool wide, std::string* out, LineClock* clock = nullptr);

// A live tap prints an exchange's lines as its phases come (docs/architecture.md section 2): `req`
// when the request's headers were seen, `rsp` when the response's were, `end` when it ended.
// LineHead is what the first two know of the exchange; the lines read as AppendText's.
struct LineHead {
  uint32_t capture_point = 0;
  uint64_t stream_id = 0;
  Direction direction = Direction::kUnknown;
  Endpoint source, destination;
  TlsState tls = TlsState::kNo;
};
void AppendRequestLine(const LineHead& h, std::string_view method, std::string_view authority,
                       std::string_view path, bool wide, std::string* out);
// `latency_ns`: response first byte - request first byte (nanoseconds).
void AppendResponseLine(const LineHead& h, uint16_t status, uint64_t latency_ns, bool wide,
                        std::string* out);
// The `end` line of a whole exchange (AppendText's last line).
void AppendEndLine(const ExchangeView& x, bool wide, std::string* out);

// Appends one JSON object and '\n'. Bodies are included when the reader loaded them.
void AppendJson(const ExchangeView& x, std::string* out);

struct JsonOptions {
  // tapcat --body: each loaded body gains `decoded` (docs/json.md), its Content-Encoding undone
  // (decoded_body.h) with at most `decode_cap` decoded bytes.
  bool decoded_bodies = false;
  size_t decode_cap = kDefaultDecodeCap;
};
void AppendJson(const ExchangeView& x, const JsonOptions& options, std::string* out);

// A gRPC status code's name as linkerd prints it ("NotFound"; grpc/doc/statuscodes.md), or the
// number for codes past 16.
std::string GrpcName(int32_t code);
// An HTTP/2 error code's name ("CANCEL"; RFC 9113 section 7), or "0x..." for unknown codes.
std::string H2ErrorName(uint32_t code);

// The request's URL as HAR and curl write it: scheme "://" authority path. The scheme is the
// recorded one, else "https" when the capture point saw TLS and "http" otherwise; the authority is
// the recorded one (Host or the absolute-form target, RFC 9112 section 3.2), else the server's
// address and port; an absolute-form path ("http://...") is the URL itself. Bytes as recorded.
std::string RequestUrl(const ExchangeView& x);

// True when `s` is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or values past U+10FFFF).
bool IsUtf8(std::string_view s);

// Raw bytes as a text line prints them (the :path= of AppendText): bytes up to and including the
// space, DEL and bytes >= 0x80 as \xHH; "-" for the empty string.
std::string TextField(std::string_view s);

// Sets obj[key] to `s` as text when it is UTF-8, else to its base64 with a sibling
// "<key>Encoding": "base64" (docs/json.md's rule for strings from the wire).
void PutJsonText(nlohmann::json& obj, const std::string& key, std::string_view s);

// RFC 3339 with nanoseconds, UTC: "2025-11-30T00:00:00.123456789Z".
std::string Rfc3339(uint64_t unix_ns);

// The `tapcat --info` report for a file that was read to its end by `reader`.
struct InfoCounts {
  uint64_t exchanges = 0;
  uint64_t min_key = 0, max_key = 0;
};
std::string FormatInfo(const Reader& reader, const InfoCounts& counts);
// The same as one JSON object and '\n' (`tapcat --info -o json`; schema in docs/json.md, section
// "tapcat --info -o json"): metadata, capture points, counts, time range, bytes, trailer state,
// drops and counters (null when the file has no trailer of its writer's) and damage.
std::string FormatInfoJson(const Reader& reader, const InfoCounts& counts);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_RENDER_H_
