// content_coding.h: HTTP content codings (RFC 9110 section 8.4.1) undone and redone, for showing a
// body to a person (tapcat -V, --body, HAR), redacting inside it (tapfilter --redact-json-field)
// and comparing it (tapreplay).
//
// Codings: gzip (RFC 1952; "x-gzip" too, RFC 9110 section 8.4.1.3), deflate (RFC 1950 zlib
// stream; a raw RFC 1951 stream is accepted on decoding too, as browsers and curl do, since some
// servers send one), br (RFC 7932) and identity. A Content-Encoding value lists the codings in the
// order they were applied ("gzip, br": gzip first), so decoding undoes them right to left. zlib and
// brotli (Debian's libbrotli) do the work.
//
// Bodies are untrusted: decoding stops at a caller-given output cap (a few kilobytes of gzip can
// expand to gigabytes) and never throws or aborts.
//
// Thread-safety: free functions over their arguments; safe from any thread.
#ifndef TAPKIT_FORMAT_CONTENT_CODING_H_
#define TAPKIT_FORMAT_CONTENT_CODING_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tapkit {

enum class ContentCoding { kIdentity, kGzip, kDeflate, kBrotli };

// "identity", "gzip", "deflate", "br".
std::string_view ContentCodingName(ContentCoding c);

// Parses a Content-Encoding field value: a comma-separated list of coding names, compared
// case-insensitively (RFC 9110 section 8.4.1), in the order they were applied; empty elements and
// "identity" are left out. Errors: InvalidArgument naming the first coding tapkit cannot undo
// ("compress", "zstd", or anything unknown).
absl::StatusOr<std::vector<ContentCoding>> ParseContentEncoding(std::string_view value);

// The default cap on decoded bytes: 64 MiB.
inline constexpr size_t kDefaultDecodeCap = size_t{64} << 20;

struct DecodedContent {
  std::string data;
  // False when the coded stream ended before its end marker (a body cut at the body limit or by
  // a gap): `data` is what the bytes there were decode to.
  bool complete = true;
};

// Undoes `content_encoding` (a Content-Encoding field value; empty means none) on `body`.
// Errors: InvalidArgument for a coding it cannot undo; DataLoss when the bytes are not a valid
// stream of a coding (with the coding's name and the byte offset in its input where it failed,
// when known); ResourceExhausted when the decoded body would pass `max_output` bytes.
absl::StatusOr<DecodedContent> DecodeContent(std::string_view body,
                                             std::string_view content_encoding,
                                             size_t max_output = kDefaultDecodeCap);

// Applies `content_encoding` to `data` (left to right), for re-encoding a body changed after
// decoding: gzip and deflate with zlib's default level, br with quality 5 (brotli's middle
// setting). Errors: InvalidArgument for a coding it cannot apply; Internal when the library fails.
absl::StatusOr<std::string> EncodeContent(std::string_view data,
                                          std::string_view content_encoding);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_CONTENT_CODING_H_
