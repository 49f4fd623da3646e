// writer.h: writes HTTP exchanges into a .tap capture file (format/SPEC.md).
//
// The Writer appends exchanges to an open segment and writes the segment as one block when its
// uncompressed frames reach WriterOptions::segment_bytes or when it has been open for
// flush_interval_ns; Close() writes the trailer (totals, drop counters, segment index) and the
// footer. Everything is append-only, so the output may be a pipe, and a writer killed at any point
// leaves a file that reads up to its last whole segment.
//
// Thread-safety: not thread-safe. One thread owns a Writer; a live capture calls Tick() from the
// same thread that appends (for example from its poll loop) so segments reach disk on time.
#ifndef TAPKIT_FORMAT_WRITER_H_
#define TAPKIT_FORMAT_WRITER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "format/exchange.h"
#include "format/file.h"
#include "format/format.h"
#include "format/metadata.h"

namespace tapkit {

struct WriterOptions {
  // A segment is closed once its uncompressed frames reach this many bytes.
  size_t segment_bytes = format::kDefaultSegmentBytes;
  // ...or once it has been open this long (nanoseconds, by `clock`); 0 disables the timer.
  int64_t flush_interval_ns = format::kDefaultFlushIntervalNs;
  format::Codec codec = format::Codec::kZstd;
  int zstd_level = format::kDefaultZstdLevel;  // 1..19 (zstd's levels)
  // Monotonic clock in nanoseconds for the flush interval; default CLOCK_MONOTONIC.
  std::function<int64_t()> clock;
  // Wall clock in nanoseconds since the Unix epoch for the trailer's end time; default realtime.
  std::function<uint64_t()> wall_clock;
};

// Counts of what the Writer has done so far.
struct WriterStats {
  uint64_t exchanges = 0;
  uint64_t segments = 0;
  uint64_t raw_bytes = 0;     // uncompressed frame bytes of written segments
  uint64_t stored_bytes = 0;  // stored frame bytes of written segments
  uint64_t file_bytes = 0;    // bytes handed to the file, headers included
};

class Writer {
 public:
  // Writes the file header with `metadata` to `file`. Errors: InvalidArgument for options out of
  // range or metadata over format::kMaxMetadataSize; the file's own errors.
  static absl::StatusOr<std::unique_ptr<Writer>> Open(std::unique_ptr<WritableFile> file,
                                                      const CaptureMetadata& metadata,
                                                      WriterOptions options = {});
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Adds one exchange to the open segment, writing the segment first if it is due. Errors:
  // InvalidArgument for an exchange over the record or frame caps (nothing is written for it);
  // the file's errors (the writer is then failed: every later call returns that error).
  absl::Status Append(const Exchange& exchange);
  // Writes the open segment if the flush interval has passed. Cheap; call it often.
  absl::Status Tick();
  // Writes the open segment now, if it holds any exchange.
  absl::Status Flush();
  // Writes the open segment, the trailer and the footer, and closes the file. Later calls fail.
  absl::Status Close(const TrailerInput& trailer = {});

  const WriterStats& stats() const { return stats_; }
  const std::string& name() const;

 private:
  Writer(std::unique_ptr<WritableFile> file, WriterOptions options,
         std::vector<CapturePointInfo> header_points);
  absl::Status WriteSegment();
  absl::Status Emit(std::string_view bytes);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  WriterStats stats_;
};

// Builds a whole block around `meta_raw` (and `body_raw`) with `codec`, as the Writer does.
// Exposed for tools that write trailers (RebuildIndex) and for tests that forge files.
absl::Status BuildBlock(format::BlockType type, format::Codec codec, int zstd_level, uint32_t count,
                        uint64_t min_key, uint64_t max_key, std::string_view meta_raw,
                        std::string_view body_raw, std::string* out);

// The file header: magic, versions, metadata length, checksum, metadata FlatBuffer.
std::string BuildFileHeader(std::string_view metadata_flatbuffer,
                            uint16_t major = format::kMajorVersion,
                            uint16_t minor = format::kMinorVersion);

// The trailer block for `summary` plus the footer, for a trailer block that starts at `offset`.
absl::Status BuildTrailer(const FileSummary& summary, uint64_t offset, std::string* out);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_WRITER_H_
