// metadata.h: what a .tap file says about itself: the header's capture metadata and the trailer's
// totals, drop counters and segment index (format/SPEC.md sections 2 and 5), in owned C++ form.
//
// Thread-safety: plain values; no internal synchronisation.
#ifndef TAPKIT_FORMAT_METADATA_H_
#define TAPKIT_FORMAT_METADATA_H_

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "format/exchange.h"
#include "format/format.h"

namespace tapkit {

struct CapturePointInfo {
  uint32_t id = 0;
  std::string kind;  // "pod", "interface", "file" or "replay" (tapreplay -w; name: the target)
  std::string name;
  Labels labels;
  std::vector<uint16_t> link_types;  // LINKTYPE_ values
  bool operator==(const CapturePointInfo&) const = default;
};

// What was redacted before the exchanges were stored (format/redact.h).
struct RedactionPolicy {
  bool enabled = false;
  std::vector<std::string> headers;  // lower-case names
  bool keyed = false;                // key from a key file, else a random key never stored
  // Format 1.2: lower-case query parameter names, and JSON pointers (RFC 6901, "*" a wildcard)
  // of body fields. Empty in older files.
  std::vector<std::string> query_params;
  std::vector<std::string> json_fields;
  bool operator==(const RedactionPolicy&) const = default;
};

// The file header's metadata.
struct CaptureMetadata {
  uint64_t start_time_ns = 0;
  std::string writer_name;
  std::string writer_version;
  std::string host;
  std::vector<std::string> command_line;
  std::string target;
  std::string ns;
  std::vector<std::pair<std::string, std::string>> filters;
  uint64_t body_limit = format::kDefaultBodyLimit;  // bytes
  RedactionPolicy redaction;
  std::vector<CapturePointInfo> capture_points;
  std::vector<std::pair<std::string, std::string>> extra;
  bool operator==(const CaptureMetadata&) const = default;
};

// One row of the segment index.
struct SegmentInfo {
  uint64_t offset = 0;  // file offset of the block header
  uint64_t min_sort_key = 0;
  uint64_t max_sort_key = 0;
  uint32_t exchanges = 0;
  uint32_t length = 0;  // bytes of the whole block
  bool operator==(const SegmentInfo&) const = default;
};

// What the writer tells the trailer beyond what it counted itself.
struct TrailerInput {
  std::map<std::string, uint64_t> drops;         // by reason
  std::map<std::string, uint64_t> counters;      // other totals
  std::vector<CapturePointInfo> capture_points;  // final list; empty keeps the header's
};

// The trailer's contents.
struct FileSummary {
  uint64_t exchanges = 0;
  uint64_t segments = 0;
  uint64_t raw_bytes = 0;     // uncompressed frame bytes, all segments
  uint64_t stored_bytes = 0;  // stored frame bytes, all segments
  uint64_t min_sort_key = 0;
  uint64_t max_sort_key = 0;
  uint64_t end_time_ns = 0;
  std::vector<SegmentInfo> index;
  std::map<std::string, uint64_t> drops;
  std::map<std::string, uint64_t> counters;
  std::vector<CapturePointInfo> capture_points;
  bool rebuilt = false;  // by an index rebuild: end time and drops unknown
  bool operator==(const FileSummary&) const = default;
};

// FlatBuffer encodings; the Decode functions take buffers that were verified already.
// A new file's header as the program `writer_name` ("taprec", "tapfilter", "tapreplay") starts
// it: start_time_ns now (wall clock, nanoseconds since the Unix epoch), writer_version this
// build's (format/program.h kVersion), host from gethostname(2) (empty when that fails); the rest
// empty for the writer to fill.
CaptureMetadata NewCaptureMetadata(std::string_view writer_name);

std::string EncodeCaptureMetadata(const CaptureMetadata& m);
std::string EncodeFileSummary(const FileSummary& s);
// Verify and decode; false when the bytes are not a valid CaptureHeader / Trailer FlatBuffer.
bool DecodeCaptureMetadata(std::string_view bytes, CaptureMetadata* out);
bool DecodeFileSummary(std::string_view bytes, FileSummary* out);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_METADATA_H_
