// reader.h: reads a .tap capture file (format/SPEC.md), from a file or a pipe.
//
// A Reader checks the file header, then hands out exchanges block by block: it verifies every
// checksum and every FlatBuffer, caps every length before allocating, and never aborts on bad
// bytes. A corrupt block in the middle is skipped and reported (an error, with offset, length and
// reason); data that ends inside a block is a torn tail, the normal state of a file whose writer
// was killed or is still writing, and is reported as a notice. Opened headers-only, it neither
// decompresses nor (on a seekable file) reads the body frames.
//
// Thread-safety: not thread-safe; one thread at a time. Views it returns are valid until the next
// Next() or Seek() call.
#ifndef TAPKIT_FORMAT_READER_H_
#define TAPKIT_FORMAT_READER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "format/exchange_view.h"
#include "format/file.h"
#include "format/metadata.h"

namespace tapkit {

// Told about everything the Reader skips or notices. Offsets are bytes from the file's start.
class Reporter {
 public:
  virtual ~Reporter() = default;
  // Bytes [offset, offset + length) could not be read as blocks and were skipped (data loss).
  virtual void Corruption(uint64_t offset, uint64_t length, std::string_view reason) = 0;
  // Not damage, but worth a line: a torn tail, a missing trailer.
  virtual void Notice(uint64_t offset, std::string_view message) = 0;
};

struct ReaderOptions {
  bool headers_only = false;     // skip body frames: BodyView::data() is empty
  Reporter* reporter = nullptr;  // may be null; must outlive the Reader
  // Follow a file that is still being written (tapcat -f): on a seekable file, the end of the data
  // and a block cut short at it are "not yet written", neither a torn tail nor a missing trailer:
  // Next() returns false with waiting() true, and a later Next() reads on from that block. A
  // pipe's end is its end. An empty file or a file header cut short is "not yet written" too
  // (Open's Unavailable).
  bool follow = false;
};

// One segment block's exchanges, decompressed and verified, in file order. It owns its buffers:
// the views it gives stay valid for as long as it lives, whatever its Reader does next, so a
// caller that puts exchanges in another order keeps the segments whose exchanges are pending.
//
// Thread-safety: immutable once handed out; may be read from any thread, and may outlive its
// Reader.
class Segment {
 public:
  ~Segment();
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  size_t size() const { return records_.size(); }
  // Exchange `i` (< size()), in the order the block stores them.
  ExchangeView exchange(size_t i) const {
    return ExchangeView(records_[i], bodies_, bodies_loaded_);
  }
  uint64_t offset() const { return offset_; }  // file offset of the block header

 private:
  friend class Reader;
  Segment();
  struct Buffers;
  std::unique_ptr<Buffers> buffers_;
  std::vector<const fb::Exchange*> records_;
  std::string_view bodies_;
  bool bodies_loaded_ = false;
  uint64_t offset_ = 0;
};

struct ReaderStats {
  uint64_t blocks = 0;                 // whole blocks whose header checksum verified
  uint64_t segments = 0;               // whole segment blocks read (or passed over by Seek)
  uint64_t segments_decompressed = 0;  // segments whose headers frame was decompressed
  uint64_t segments_skipped = 0;       // segments passed over by Seek without decompressing
  uint64_t exchanges = 0;              // exchanges returned by Next()
  uint64_t raw_bytes = 0;              // uncompressed frame bytes of segments seen
  uint64_t stored_bytes = 0;           // stored frame bytes of segments seen
  uint64_t corrupt_ranges = 0;
  uint64_t corrupt_bytes = 0;
  bool torn_tail = false;
  uint64_t torn_bytes = 0;
  bool trailer_read = false;    // the trailer block was met and verified
  uint64_t trailer_offset = 0;  // where that trailer block starts
  bool footer_ok = false;       // a valid footer followed it
  uint64_t data_end = 0;        // end offset of the last whole segment (or unknown) block
};

class Reader {
 public:
  // Reads and checks the file header. Errors, each naming the file and offset:
  // InvalidArgument for an empty or non-.tap file, FailedPrecondition for a newer major version,
  // DataLoss for a damaged file header, the file's own read errors. With ReaderOptions::follow on
  // a seekable file, an empty file or one that ends inside its file header (a prefix of the magic,
  // or the header or its metadata cut short) is Unavailable instead: not yet written, open it
  // again later (tapcat -f waits for it, as tail -f waits for data).
  static absl::StatusOr<std::unique_ptr<Reader>> Open(std::unique_ptr<ReadableFile> file,
                                                      ReaderOptions options = {});
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  const CaptureMetadata& metadata() const;
  uint16_t major_version() const;
  uint16_t minor_version() const;
  const std::string& name() const;

  // The next exchange in file order (completion order), at or after the Seek floor. False at the
  // end of the data or after a read error (see status()).
  bool Next(ExchangeView* out);

  // From now on Next() yields exactly the exchanges whose sort key is >= `sort_key_ns`, starting
  // again from the beginning of the data. Segments whose largest key is below it are passed over
  // without decompression, through the trailer's index when there is one, else through the block
  // headers. On a pipe the data cannot be rewound: the floor applies from the current position.
  absl::Status Seek(uint64_t sort_key_ns);

  // Whole segments instead of single exchanges; not to be mixed with Next() on one Reader.
  //
  // The next segment in file order that holds exchanges, every one of them (the Seek floor is not
  // applied), or null at the end of the data, while waiting() or after a read error. Damaged
  // blocks are skipped and reported as Next() reports them.
  std::shared_ptr<const Segment> NextSegment();
  // The segment an index row of summary() names (format/SPEC.md section 6: the block at
  // `row.offset` is checked as a seek through the index checks it). Null when it is damaged or
  // not a segment (reported as an error to the Reporter and in status(), as "indexed segment:
  // ..."), or holds no exchange. Needs a seekable file.
  std::shared_ptr<const Segment> ReadSegment(const SegmentInfo& row);

  // With ReaderOptions::follow: the last Next() or NextSegment() stopped at the end of what has
  // been written so far, not at the end of the capture.
  bool waiting() const;

  // The trailer: found at Open() on a seekable file with a valid footer, else once Next() has met
  // it. Absent for files whose writer did not finish.
  const std::optional<FileSummary>& summary() const;
  const ReaderStats& stats() const;
  // Every segment block read whole so far, in file order (what an index rebuild writes).
  const std::vector<SegmentInfo>& segments_seen() const;

  // OK; or the first corruption as DataLoss ("FILE: offset N: reason"); or a read error. A torn
  // tail is not an error.
  absl::Status status() const;

 private:
  Reader();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Gives a file without a trailer (a killed writer) its index: reads it by scanning and appends a
// trailer (marked rebuilt) and footer listing every segment that verified. What it cuts off first:
// a torn tail; or, when a trailer verified but its footer is cut or wrong, that trailer and what
// follows it. Corrupt ranges elsewhere stay and are skipped again on reading. Sets `*rebuilt` to
// false and changes nothing when a trailer with a valid footer was found. `reporter` may be null.
absl::Status RebuildIndex(const std::string& path, Reporter* reporter, bool* rebuilt);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_READER_H_
