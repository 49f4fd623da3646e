#include "format/reader.h"

#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

#include "absl/strings/str_cat.h"
#include "format/block.h"
#include "format/format.h"
#include "format/writer.h"

namespace tapkit {
namespace {

using format::BlockHeader;
using format::BlockType;
using format::Codec;

// A growable byte buffer that leaves new bytes uninitialised: capacity that is never written costs
// address space, not memory, so a length claim within the caps that the data does not back (a
// hostile or damaged file) costs little. Storage is 16-byte aligned (operator new).
class ByteBuffer {
 public:
  char* data() { return p_.get(); }
  const char* data() const { return p_.get(); }
  size_t size() const { return size_; }
  std::string_view view() const { return std::string_view(p_.get(), size_); }
  void clear() { size_ = 0; }
  // Sets the size to `n`, keeping the first min(n, size()) bytes.
  void Resize(size_t n) {
    if (n > cap_) {
      size_t cap = std::max(n, cap_ + cap_ / 2);
      auto q = std::make_unique_for_overwrite<char[]>(cap);
      if (size_) std::memcpy(q.get(), p_.get(), size_);
      p_ = std::move(q);
      cap_ = cap;
    }
    size_ = n;
  }

 private:
  std::unique_ptr<char[]> p_;
  size_t size_ = 0, cap_ = 0;
};

// A read window over a ReadableFile: bytes [pos(), pos() + avail()) are in memory. Fill() reads
// more without discarding unconsumed bytes, so a block can be checked before it is consumed.
class Input {
 public:
  explicit Input(ReadableFile* f) : f_(f) {}

  uint64_t pos() const { return pos_; }
  size_t avail() const { return end_ - start_; }
  const char* data() const { return buf_.data() + start_; }
  bool eof() const { return eof_; }
  const absl::Status& io_status() const { return io_; }

  // Makes at least `n` bytes available unless the input ends first. The window grows only as
  // bytes arrive, never ahead to `n`, so a length field that claims more than the input holds
  // allocates no more than the input's size.
  bool Fill(size_t n) {
    if (avail() >= n) return true;
    if (eof_) return false;
    if (start_ > 0) {
      std::memmove(buf_.data(), buf_.data() + start_, avail());
      end_ -= start_;
      start_ = 0;
    }
    constexpr size_t kChunk = 64 << 10;
    while (end_ < n) {
      if (end_ == buf_.size()) {
        buf_.Resize(std::min(std::max(2 * buf_.size(), kChunk), std::max(n, kChunk)));
      }
      // Read what is needed plus a modest read-ahead, not the whole window: a headers-only
      // reader then seeks over body frames instead of copying them.
      size_t want = std::min(buf_.size() - end_, std::max(n - end_, kChunk));
      absl::StatusOr<size_t> r = f_->Read(buf_.data() + end_, want);
      if (!r.ok()) {
        io_ = r.status();
        eof_ = true;
        break;
      }
      if (*r == 0) {
        eof_ = true;
        break;
      }
      end_ += *r;
    }
    return avail() >= n;
  }

  // Consumes `n` bytes; beyond what is buffered it seeks (seekable files) or reads and discards.
  // Returns false when the input ends first (everything to the end is then consumed).
  bool Skip(uint64_t n) {
    if (n <= avail()) {
      start_ += n;
      pos_ += n;
      return true;
    }
    n -= avail();
    pos_ += avail();
    start_ = end_ = 0;
    if (f_->seekable()) {
      absl::StatusOr<uint64_t> size = f_->Size();
      if (size.ok() && pos_ + n <= *size && f_->Seek(pos_ + n).ok()) {
        pos_ += n;
        return true;
      }
    }
    while (n > 0) {
      if (!Fill(std::min<uint64_t>(n, 1 << 20))) {
        pos_ += avail();
        start_ = end_ = 0;
        return false;
      }
      size_t k = std::min<uint64_t>(n, avail());
      start_ += k;
      pos_ += k;
      n -= k;
    }
    return true;
  }

  // Whether `n` bytes from the current position exist, without reading them when the file is
  // seekable (its size says); a pipe has to read them.
  bool HasAtLeast(uint64_t n) {
    if (n <= avail()) return true;
    if (f_->seekable()) {
      absl::StatusOr<uint64_t> size = f_->Size();
      if (size.ok()) return pos_ + n <= *size;
    }
    return Fill(n);
  }

  // After the end of the input: look again (a file that is still growing).
  void Rearm() {
    if (io_.ok()) eof_ = false;
  }

  // Repositions a seekable input.
  bool SeekTo(uint64_t off) {
    if (!f_->seekable() || !f_->Seek(off).ok()) return false;
    pos_ = off;
    start_ = end_ = 0;
    eof_ = false;
    return true;
  }

 private:
  ReadableFile* f_;
  ByteBuffer buf_;
  size_t start_ = 0, end_ = 0;
  uint64_t pos_ = 0;
  bool eof_ = false;
  absl::Status io_;
};

enum class Probe { kOk, kBad, kTruncated, kEnd };

struct DctxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

// Decompresses one stored frame into `out` (exactly `raw_len` bytes). Empty string on success,
// else the reason.
std::string DecodeFrame(ZSTD_DCtx* dctx, uint8_t codec, std::string_view stored, uint32_t raw_len,
                        ByteBuffer* out) {
  if (stored.empty() || raw_len == 0) {
    // An empty frame is stored as zero bytes (SPEC.md section 3.3), and only so.
    if (raw_len != 0) return absl::StrCat("empty frame declared as ", raw_len, " bytes");
    if (!stored.empty()) return absl::StrCat(stored.size(), " stored bytes for an empty frame");
    out->clear();
    return {};
  }
  if (codec == static_cast<uint8_t>(Codec::kStored)) {
    out->Resize(stored.size());
    std::memcpy(out->data(), stored.data(), stored.size());
    return {};
  }
  size_t frame = ZSTD_findFrameCompressedSize(stored.data(), stored.size());
  if (ZSTD_isError(frame) || frame != stored.size()) {
    return "stored bytes are not exactly one zstd frame";
  }
  unsigned long long content = ZSTD_getFrameContentSize(stored.data(), stored.size());
  if (content == ZSTD_CONTENTSIZE_ERROR) return "zstd frame header is invalid";
  if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != raw_len) {
    return absl::StrCat("zstd frame holds ", content, " bytes, block header says ", raw_len);
  }
  // The buffer is exactly the declared (capped) size: a frame that decompresses beyond it fails
  // here instead of growing anything.
  out->Resize(raw_len);
  size_t n = ZSTD_decompressDCtx(dctx, out->data(), out->size(), stored.data(), stored.size());
  if (ZSTD_isError(n)) {
    return absl::StrCat("zstd: ", ZSTD_getErrorName(n), " (declared ", raw_len, " bytes)");
  }
  if (n != raw_len) return absl::StrCat("zstd frame gave ", n, " bytes, declared ", raw_len);
  return {};
}

class NullReporter final : public Reporter {
 public:
  void Corruption(uint64_t, uint64_t, std::string_view) override {}
  void Notice(uint64_t, std::string_view) override {}
};

}  // namespace

struct Segment::Buffers {
  ByteBuffer meta_raw, body_raw;
  std::string aligned;  // records copied to 8-byte alignment when the frame does not keep it
};

Segment::Segment() : buffers_(std::make_unique<Buffers>()) {}
Segment::~Segment() = default;

struct Reader::Impl {
  std::unique_ptr<ReadableFile> file;
  ReaderOptions options;
  NullReporter null_reporter;
  Reporter* reporter = nullptr;
  std::unique_ptr<Input> in;
  std::unique_ptr<ZSTD_DCtx, DctxDeleter> dctx{ZSTD_createDCtx()};

  CaptureMetadata metadata;
  uint16_t major = 0, minor = 0;
  uint64_t data_start = 0;
  std::optional<FileSummary> summary;
  bool summary_from_footer = false;
  ReaderStats stats;
  std::vector<SegmentInfo> seen;
  absl::Status status;
  bool done = false;

  // Seek state.
  uint64_t floor = 0;
  bool index_mode = false;
  std::deque<SegmentInfo> queue;

  // Follow mode: stopped at the end of what is written so far.
  bool waiting = false;

  // The current segment is pool[cur]. A segment a caller still holds (NextSegment, ReadSegment)
  // is never written again: the next block goes into a free one of the pool, or a new one.
  std::vector<std::shared_ptr<Segment>> pool;
  size_t cur = 0;
  size_t next_record = 0;
  uint64_t loads = 0;  // segments parsed into pool[cur] so far
  ByteBuffer scratch;  // trailer frames

  Impl() { pool.push_back(std::shared_ptr<Segment>(new Segment())); }
  Segment& seg() { return *pool[cur]; }
  std::vector<const fb::Exchange*>& records() { return pool[cur]->records_; }

  // Makes pool[cur] a segment nobody else holds.
  void FreshSegment() {
    if (pool[cur].use_count() == 1) return;
    for (size_t i = 0; i < pool.size(); ++i) {
      if (pool[i].use_count() == 1) {
        cur = i;
        return;
      }
    }
    std::shared_ptr<Segment> fresh(new Segment());
    if (pool.size() < 8) {
      pool.push_back(std::move(fresh));
      cur = pool.size() - 1;
    } else {
      pool[cur] = std::move(fresh);  // the held one lives on with its holder
    }
  }

  // Follow mode on a seekable file: the data ends (for now) at the input's position.
  bool Following() const { return options.follow && file->seekable(); }

  void Corrupt(uint64_t offset, uint64_t length, const std::string& reason) {
    ++stats.corrupt_ranges;
    stats.corrupt_bytes += length;
    if (status.ok()) {
      status = absl::DataLossError(absl::StrCat(file->name(), ": offset ", offset, ": ", reason,
                                                " (", length, " bytes skipped)"));
    }
    reporter->Corruption(offset, length, reason);
  }

  // Checks the block at the input's position without consuming it.
  Probe ProbeBlock(BlockHeader* h, std::string* why) {
    if (!in->Fill(8)) {
      if (in->avail() == 0) return Probe::kEnd;
      if (std::memcmp(in->data(), format::kBlockMarker, in->avail()) == 0) return Probe::kTruncated;
      *why = "no block marker";
      return Probe::kBad;
    }
    if (!format::HasBlockMarker(in->data())) {
      *why = "no block marker";
      return Probe::kBad;
    }
    if (!in->Fill(format::kBlockHeaderSize)) return Probe::kTruncated;
    *h = format::DecodeBlockHeader(in->data());
    if (std::string bad = format::CheckBlockHeader(*h); !bad.empty()) {
      *why = bad;
      return Probe::kBad;
    }
    size_t checked = size_t{h->header_length} + h->meta_stored;
    if (!in->Fill(checked)) return Probe::kTruncated;
    std::string_view all(in->data(), checked);
    if (format::HeaderChecksum(all.substr(0, h->header_length), all.substr(h->header_length)) !=
        h->header_checksum) {
      *why = "block header checksum mismatch";
      return Probe::kBad;
    }
    return Probe::kOk;
  }

  // Scans forward from `bad_at` + 1 for the next block that verifies. Reports what lies between
  // as corruption, or, when nothing verifies before the end and the damage was data cut short, as
  // a torn tail.
  void Resync(uint64_t bad_at, const std::string& reason, bool truncated) {
    in->Skip(1);
    for (;;) {
      if (!in->Fill(format::kBlockHeaderSize)) {
        if (in->avail() < 8) break;  // too little left to hold a block
      }
      const char* d = in->data();
      size_t n = in->avail();
      size_t i = 0;
      bool found = false;
      while (i + 8 <= n) {
        const void* hit = std::memchr(d + i, format::kBlockMarker[0], n - 7 - i);
        if (!hit) {
          i = n - 7;
          break;
        }
        i = static_cast<const char*>(hit) - d;
        if (format::HasBlockMarker(d + i)) {
          found = true;
          break;
        }
        ++i;
      }
      if (!found) {
        if (in->eof()) break;
        // Keep the last 16 bytes: a marker may straddle the refill, and the end-of-file check
        // below wants to see a footer.
        in->Skip(n > format::kFooterSize ? n - format::kFooterSize : 0);
        continue;
      }
      in->Skip(i);
      BlockHeader h;
      std::string why;
      if (ProbeBlock(&h, &why) == Probe::kOk) {
        Corrupt(
            bad_at, in->pos() - bad_at,
            truncated ? absl::StrCat(reason, "; the block is cut short by a later block") : reason);
        return;
      }
      in->Skip(1);
    }
    // Data that seems cut short is a torn tail only if the file does not end in a footer: a
    // footer means the writer finished, so the "cut" is a damaged length field.
    in->Fill(format::kFooterSize);
    bool ends_in_footer = in->avail() >= format::kFooterSize &&
                          std::memcmp(in->data() + in->avail() - 8, format::kFooterMagic, 8) == 0;
    while (in->Skip(in->avail()) && in->Fill(1)) {
      ends_in_footer = in->avail() >= format::kFooterSize &&
                       std::memcmp(in->data() + in->avail() - 8, format::kFooterMagic, 8) == 0;
    }
    uint64_t length = in->pos() - bad_at;
    done = true;
    if (truncated && ends_in_footer) {
      Corrupt(bad_at, length, absl::StrCat(reason, " although the file ends in a footer"));
    } else if (truncated) {
      stats.torn_tail = true;
      stats.torn_bytes = length;
      reporter->Notice(bad_at, absl::StrCat("torn tail: the data ends inside a block (", length,
                                            " bytes ignored); the writer was killed or is still "
                                            "writing"));
    } else {
      Corrupt(bad_at, length, reason);
    }
  }

  // Reads the footer after a trailer block that started at `trailer_at`. A trailer counts as the
  // file's only when a valid footer follows it: a trailer block met by a resynchronisation may be
  // a copy carried inside a captured body. Bytes after a footer are read on as blocks (a damaged
  // stretch, or `cat a.tap b.tap`), so nothing readable after them is lost.
  void ReadFooter(uint64_t trailer_at, FileSummary s) {
    if (!in->Fill(format::kFooterSize)) {
      done = true;
      if (!in->io_status().ok()) {
        status = in->io_status();
        return;
      }
      stats.torn_tail = true;
      stats.torn_bytes = in->avail();
      reporter->Notice(in->pos(), "torn tail: the footer is cut short");
      if (!summary) summary = std::move(s);
      return;
    }
    const char* d = in->data();
    if (std::memcmp(d + 8, format::kFooterMagic, sizeof format::kFooterMagic) != 0 ||
        format::Get64(d) != trailer_at) {
      Corrupt(in->pos(), format::kFooterSize, "bad footer after the trailer block");
      in->Skip(format::kFooterSize);
      return;  // read on: what follows may be data
    }
    stats.footer_ok = true;
    if (!summary) summary = std::move(s);
    in->Skip(format::kFooterSize);
    if (!in->Fill(1)) done = true;
  }

  // Parses the records of a segment whose headers frame is in meta_raw. Empty string when good.
  std::string ParseRecords(const BlockHeader& h) {
    std::vector<const fb::Exchange*>& records = seg().records_;
    ByteBuffer& meta_raw = seg().buffers_->meta_raw;
    std::string& aligned = seg().buffers_->aligned;
    records.clear();
    next_record = 0;
    // Records are read in place when each starts 8-aligned (what tapkit writes); otherwise they
    // are first copied into `aligned`, each padded to 8 bytes, so no field is read misaligned.
    bool in_place = reinterpret_cast<uintptr_t>(meta_raw.data()) % 8 == 0;
    for (size_t at = 0; in_place && at + 4 <= meta_raw.size();) {
      uint64_t len = format::Get32(meta_raw.data() + at);
      if (len % 8 != 4) in_place = false;
      at += 4 + len;
    }
    std::string_view frame = meta_raw.view();
    if (!in_place) {
      aligned.clear();
      for (size_t at = 0; at + 4 <= meta_raw.size();) {
        uint64_t len = format::Get32(meta_raw.data() + at);
        if (len > meta_raw.size() - at - 4) break;  // reported by the loop below
        std::string_view rec(meta_raw.data() + at, 4 + len);
        aligned.append(rec);
        aligned.append((8 - rec.size() % 8) % 8, '\0');
        at += rec.size();
      }
    }
    const char* p = meta_raw.data();
    const char* q = aligned.data();
    size_t left = frame.size();
    while (left > 0) {
      if (left < 4) return "headers frame ends inside a record length";
      uint32_t len = format::Get32(p);
      if (len > format::kMaxRecordSize || len > left - 4) {
        return absl::StrCat("record length ", len, " runs past the headers frame");
      }
      const char* rec = in_place ? p : q;
      flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(rec), size_t{len} + 4,
                              format::kMaxFlatBufferDepth, format::kMaxFlatBufferTables);
      if (!v.VerifySizePrefixedBuffer<fb::Exchange>(nullptr)) {
        return absl::StrCat("exchange record ", records.size(), " fails FlatBuffers verification");
      }
      const fb::Exchange* e = flatbuffers::GetSizePrefixedRoot<fb::Exchange>(rec);
      if (!CheckExchangeRefs(e, h.body_raw)) {
        return absl::StrCat("exchange record ", records.size(),
                            " has an invalid body reference, header list, labels or "
                            "long_offsets");
      }
      if (e->sort_key() < h.min_key || e->sort_key() > h.max_key) {
        return absl::StrCat("exchange record ", records.size(),
                            " has a sort key outside the block's range");
      }
      records.push_back(e);
      p += 4 + size_t{len};
      q += (4 + size_t{len} + 7) / 8 * 8;
      left -= 4 + size_t{len};
    }
    if (records.size() != h.count) {
      return absl::StrCat("block header says ", h.count, " exchanges, headers frame holds ",
                          records.size());
    }
    return {};
  }

  // Reads the next block at the input's position. Loads a segment into `records`, or handles a
  // trailer, an unknown block or damage. Returns after at most one block.
  void ReadBlock() {
    uint64_t at = in->pos();
    BlockHeader h;
    std::string why;
    Probe p = ProbeBlock(&h, &why);
    if (!in->io_status().ok()) {
      status = in->io_status();
      done = true;
      return;
    }
    if (Following() && (p == Probe::kEnd || p == Probe::kTruncated)) {
      waiting = true;
      return;
    }
    if (p == Probe::kEnd) {
      done = true;
      if (!stats.trailer_read) {
        reporter->Notice(at,
                         "no trailer: the writer did not finish (killed, or still writing); "
                         "read by scanning");
      }
      return;
    }
    if (p == Probe::kBad) return Resync(at, why, false);
    if (p == Probe::kTruncated) return Resync(at, "block cut short", true);
    uint64_t length = h.length();
    if (h.type != static_cast<uint8_t>(BlockType::kTrailer)) {
      // Data after a trailer: that trailer did not end the file (a copy carried in a body, or
      // files joined with cat). Only a trailer that is the last block counts for a rebuild.
      stats.trailer_read = false;
      stats.footer_ok = false;
    }
    // The header verified, so its length is trusted from here on. A block that runs past the end
    // of the data is a torn tail (or, before a footer, damage): Resync decides which.
    if (Following() && !in->HasAtLeast(length + (h.type == static_cast<uint8_t>(BlockType::kTrailer)
                                                     ? format::kFooterSize
                                                     : 0))) {
      waiting = true;  // the rest of the block (and a trailer's footer) is not written yet
      return;
    }
    if (!in->HasAtLeast(length)) return Resync(at, "block cut short", true);
    if (h.codec > static_cast<uint8_t>(Codec::kZstd)) {
      Corrupt(at, length, absl::StrCat("unknown codec ", h.codec));
      in->Skip(length);
      return;
    }
    ++stats.blocks;

    size_t hl = h.header_length;
    // Views into the input window; Fill() may move it, so take them again after any Fill().
    std::string_view meta_stored(in->data() + hl, h.meta_stored);

    if (h.type == static_cast<uint8_t>(BlockType::kTrailer)) {
      std::string err = DecodeFrame(dctx.get(), h.codec, meta_stored, h.meta_raw, &scratch);
      FileSummary s;
      if (err.empty() && !DecodeFileSummary(scratch.view(), &s)) err = "trailer fails verification";
      if (!err.empty()) {
        Corrupt(at, h.length(), absl::StrCat("trailer: ", err));
        in->Skip(h.length());
        return;
      }
      stats.trailer_read = true;
      stats.trailer_offset = at;
      in->Skip(length);
      return ReadFooter(at, std::move(s));
    }
    if (h.type != static_cast<uint8_t>(BlockType::kSegment)) {
      // A block type from a later minor version: verified, then passed over.
      in->Skip(length);
      stats.data_end = at + length;
      return;
    }

    bool skip = h.max_key < floor;
    bool want_bodies = !options.headers_only && !skip;
    FreshSegment();
    ByteBuffer& meta_raw = seg().buffers_->meta_raw;
    ByteBuffer& body_raw = seg().buffers_->body_raw;
    seg().records_.clear();
    seg().offset_ = at;
    if (want_bodies) {
      if (!in->Fill(length)) return Resync(at, "block cut short", true);
      meta_stored = std::string_view(in->data() + hl, h.meta_stored);
      std::string_view body_stored(in->data() + hl + h.meta_stored, h.body_stored);
      std::string body_err;
      if (format::Checksum(body_stored) != h.body_checksum) {
        body_err = "body frame checksum mismatch";
      } else {
        body_err = DecodeFrame(dctx.get(), h.codec, body_stored, h.body_raw, &body_raw);
        if (!body_err.empty()) body_err = absl::StrCat("body frame: ", body_err);
      }
      if (!body_err.empty()) {
        // The headers frame verified on its own: its exchanges are still read, without bodies.
        Corrupt(at + hl + h.meta_stored, h.body_stored,
                absl::StrCat(body_err, "; the block's ", h.count,
                             " exchanges are read without their bodies"));
        want_bodies = false;
      }
    }
    if (!skip) {
      std::string err = DecodeFrame(dctx.get(), h.codec, meta_stored, h.meta_raw, &meta_raw);
      ++stats.segments_decompressed;
      if (err.empty()) err = ParseRecords(h);
      if (!err.empty()) {
        seg().records_.clear();
        // If the body frame was reported already, report only what it did not cover.
        Corrupt(at, want_bodies || options.headers_only ? length : hl + h.meta_stored, err);
        if (!in->Skip(length)) done = true;
        return;
      }
      seg().bodies_loaded_ = want_bodies;
      if (!want_bodies) body_raw.clear();
      seg().bodies_ = body_raw.view();
      ++loads;
    } else {
      ++stats.segments_skipped;
    }
    in->Skip(length);  // present: checked above
    seen.push_back(SegmentInfo{at, h.min_key, h.max_key, h.count, static_cast<uint32_t>(length)});
    ++stats.segments;
    stats.raw_bytes += uint64_t{h.meta_raw} + h.body_raw;
    stats.stored_bytes += uint64_t{h.meta_stored} + h.body_stored;
    stats.data_end = at + length;
  }

  // Loads the next segment the index points to (index mode).
  void ReadIndexed() {
    while (!queue.empty()) {
      SegmentInfo e = queue.front();
      queue.pop_front();
      if (!in->SeekTo(e.offset)) {
        status = absl::InternalError(absl::StrCat(file->name(), ": cannot seek to ", e.offset));
        done = true;
        return;
      }
      BlockHeader h;
      std::string why;
      Probe p = ProbeBlock(&h, &why);
      if (p != Probe::kOk || h.type != static_cast<uint8_t>(BlockType::kSegment)) {
        Corrupt(e.offset, e.length,
                p == Probe::kOk
                    ? "index points at a block that is not a segment"
                    : absl::StrCat("indexed segment: ", why.empty() ? "block cut short" : why));
        continue;
      }
      done = false;
      ReadBlock();
      done = queue.empty() && next_record >= records().size() ? done : false;
      if (!records().empty()) return;
    }
    done = true;
  }

  bool TryFooter() {
    absl::StatusOr<uint64_t> size = file->Size();
    if (!size.ok() || *size < data_start + format::kBlockHeaderSize + format::kFooterSize) {
      return false;
    }
    uint64_t footer_at = *size - format::kFooterSize;
    if (!in->SeekTo(footer_at) || !in->Fill(format::kFooterSize)) return false;
    if (std::memcmp(in->data() + 8, format::kFooterMagic, sizeof format::kFooterMagic) != 0) {
      return false;
    }
    uint64_t trailer_at = format::Get64(in->data());
    if (trailer_at < data_start || trailer_at > footer_at - format::kBlockHeaderSize) return false;
    if (!in->SeekTo(trailer_at)) return false;
    BlockHeader h;
    std::string why;
    if (ProbeBlock(&h, &why) != Probe::kOk || h.type != static_cast<uint8_t>(BlockType::kTrailer) ||
        h.codec > static_cast<uint8_t>(Codec::kZstd) || trailer_at + h.length() != footer_at) {
      return false;
    }
    std::string_view meta_stored(in->data() + h.header_length, h.meta_stored);
    FileSummary s;
    if (!DecodeFrame(dctx.get(), h.codec, meta_stored, h.meta_raw, &scratch).empty() ||
        !DecodeFileSummary(scratch.view(), &s)) {
      return false;
    }
    for (const SegmentInfo& e : s.index) {
      if (e.offset < data_start || e.offset + e.length > trailer_at) return false;
    }
    summary = std::move(s);
    summary_from_footer = true;
    return true;
  }
};

Reader::Reader() : impl_(std::make_unique<Impl>()) {}
Reader::~Reader() = default;

absl::StatusOr<std::unique_ptr<Reader>> Reader::Open(std::unique_ptr<ReadableFile> file,
                                                     ReaderOptions options) {
  std::unique_ptr<Reader> r(new Reader());
  Impl& m = *r->impl_;
  m.file = std::move(file);
  m.options = options;
  m.reporter = options.reporter ? options.reporter : &m.null_reporter;
  m.in = std::make_unique<Input>(m.file.get());
  const std::string& name = m.file->name();
  Input& in = *m.in;

  in.Fill(format::kFileHeaderSize);
  if (!in.io_status().ok()) return in.io_status();
  // Following a file being written, a header not all there yet is not damage: wait for it.
  const bool may_grow = options.follow && m.file->seekable();
  auto not_yet = [&](const char* what) {
    return absl::UnavailableError(absl::StrCat(name, ": ", what, " (not yet written)"));
  };
  if (in.avail() == 0 && may_grow) return not_yet("empty file");
  if (in.avail() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": empty file, not a .tap capture"));
  }
  size_t have = std::min(in.avail(), sizeof format::kFileMagic);
  if (std::memcmp(in.data(), format::kFileMagic, have) != 0) {
    std::string hint;
    if (have >= 4) {
      uint32_t m32 = format::Get32(in.data());
      if (m32 == 0xa1b2c3d4 || m32 == 0xd4c3b2a1 || m32 == 0xa1b23c4d || m32 == 0x4d3cb2a1 ||
          m32 == 0x0a0d0d0a) {
        hint = " (it is a pcap or pcapng capture: read it with taprec -r)";
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": offset 0: not a .tap file (bad magic)", hint));
  }
  if (in.avail() < format::kFileHeaderSize && may_grow) return not_yet("file header cut short");
  if (in.avail() < format::kFileHeaderSize) {
    return absl::DataLossError(absl::StrCat(name, ": file header cut short at ", in.avail(), " of ",
                                            format::kFileHeaderSize, " bytes"));
  }
  m.major = format::Get16(in.data() + 8);
  m.minor = format::Get16(in.data() + 10);
  if (m.major > format::kMajorVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        name, ": offset 8: .tap version ", m.major, ".", m.minor,
        " is newer than this reader understands (", format::kMajorVersion, ".x); upgrade tapkit"));
  }
  if (m.major == 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": offset 8: major version 0"));
  }
  uint32_t meta_len = format::Get32(in.data() + 12);
  if (meta_len > format::kMaxMetadataSize) {
    return absl::DataLossError(absl::StrCat(name, ": offset 12: metadata length ", meta_len,
                                            " over the cap of ", format::kMaxMetadataSize));
  }
  if (!in.Fill(format::kFileHeaderSize + meta_len)) {
    if (in.io_status().ok() && may_grow) return not_yet("file header cut short");
    return absl::DataLossError(absl::StrCat(name, ": file header cut short: metadata of ", meta_len,
                                            " bytes, ", in.avail() - format::kFileHeaderSize,
                                            " present"));
  }
  std::string_view metadata(in.data() + format::kFileHeaderSize, meta_len);
  if (format::Checksum(std::string_view(in.data(), 16), metadata) !=
      format::Get64(in.data() + 16)) {
    return absl::DataLossError(absl::StrCat(name, ": offset 16: file header checksum mismatch"));
  }
  // Copy to an aligned buffer: FlatBuffers verification checks alignment.
  std::string aligned(metadata);
  if (!DecodeCaptureMetadata(aligned, &m.metadata)) {
    return absl::DataLossError(
        absl::StrCat(name, ": offset 24: capture metadata fails FlatBuffers verification"));
  }
  m.data_start = format::kFileHeaderSize + meta_len;
  in.Skip(m.data_start);
  if (m.file->seekable()) {
    bool ok = m.TryFooter();
    if (!in.SeekTo(m.data_start)) return absl::InternalError(absl::StrCat(name, ": seek failed"));
    (void)ok;
  }
  return r;
}

const CaptureMetadata& Reader::metadata() const { return impl_->metadata; }
uint16_t Reader::major_version() const { return impl_->major; }
uint16_t Reader::minor_version() const { return impl_->minor; }
const std::string& Reader::name() const { return impl_->file->name(); }
const std::optional<FileSummary>& Reader::summary() const { return impl_->summary; }
const ReaderStats& Reader::stats() const { return impl_->stats; }
const std::vector<SegmentInfo>& Reader::segments_seen() const { return impl_->seen; }
absl::Status Reader::status() const { return impl_->status; }

bool Reader::waiting() const { return impl_->waiting; }

bool Reader::Next(ExchangeView* out) {
  Impl& m = *impl_;
  if (m.waiting) {
    m.waiting = false;
    m.in->Rearm();
  }
  for (;;) {
    std::vector<const fb::Exchange*>& records = m.records();
    while (m.next_record < records.size()) {
      const fb::Exchange* e = records[m.next_record++];
      if (e->sort_key() < m.floor) continue;
      *out = ExchangeView(e, m.seg().bodies_, m.seg().bodies_loaded_);
      ++m.stats.exchanges;
      return true;
    }
    if (m.index_mode) {
      if (m.queue.empty()) return false;
      m.ReadIndexed();
      continue;
    }
    if (m.done || m.waiting) return false;
    m.ReadBlock();
  }
}

std::shared_ptr<const Segment> Reader::NextSegment() {
  Impl& m = *impl_;
  if (m.waiting) {
    m.waiting = false;
    m.in->Rearm();
  }
  m.next_record = m.records().size();
  for (;;) {
    uint64_t loads = m.loads;
    if (m.index_mode) {
      if (m.queue.empty()) return nullptr;
      m.ReadIndexed();
    } else {
      if (m.done || m.waiting) return nullptr;
      m.ReadBlock();
    }
    if (m.loads != loads && !m.records().empty()) {
      m.next_record = m.records().size();
      m.stats.exchanges += m.records().size();
      return m.pool[m.cur];
    }
  }
}

std::shared_ptr<const Segment> Reader::ReadSegment(const SegmentInfo& row) {
  Impl& m = *impl_;
  m.next_record = m.records().size();
  if (!m.in->SeekTo(row.offset)) {
    m.status = absl::InternalError(absl::StrCat(m.file->name(), ": cannot seek to ", row.offset));
    return nullptr;
  }
  BlockHeader h;
  std::string why;
  Probe p = m.ProbeBlock(&h, &why);
  if (p != Probe::kOk || h.type != static_cast<uint8_t>(BlockType::kSegment)) {
    m.Corrupt(row.offset, row.length,
              p == Probe::kOk
                  ? "index points at a block that is not a segment"
                  : absl::StrCat("indexed segment: ", why.empty() ? "block cut short" : why));
    return nullptr;
  }
  bool done = m.done;
  uint64_t loads = m.loads;
  m.ReadBlock();
  m.done = done;
  if (m.loads == loads || m.records().empty()) return nullptr;
  m.next_record = m.records().size();
  m.stats.exchanges += m.records().size();
  return m.pool[m.cur];
}

absl::Status Reader::Seek(uint64_t sort_key_ns) {
  Impl& m = *impl_;
  m.floor = sort_key_ns;
  m.next_record = m.records().size();
  if (!m.file->seekable()) return absl::OkStatus();
  if (m.summary_from_footer && m.summary) {
    m.index_mode = true;
    m.queue.clear();
    for (const SegmentInfo& e : m.summary->index) {
      if (e.max_sort_key >= sort_key_ns) {
        m.queue.push_back(e);
      } else {
        ++m.stats.segments_skipped;
      }
    }
    m.done = m.queue.empty();
    return absl::OkStatus();
  }
  m.index_mode = false;
  m.done = false;
  m.seen.clear();
  if (!m.in->SeekTo(m.data_start)) {
    return absl::InternalError(absl::StrCat(m.file->name(), ": cannot seek"));
  }
  return absl::OkStatus();
}

absl::Status RebuildIndex(const std::string& path, Reporter* reporter, bool* rebuilt) {
  *rebuilt = false;
  absl::StatusOr<std::unique_ptr<ReadableFile>> f = OpenReadableFile(path);
  if (!f.ok()) return f.status();
  if (!(*f)->seekable()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  ReaderOptions opts;
  opts.headers_only = true;
  opts.reporter = reporter;
  absl::StatusOr<std::unique_ptr<Reader>> r = Reader::Open(*std::move(f), opts);
  if (!r.ok()) return r.status();
  Reader& reader = **r;
  ExchangeView v;
  FileSummary s;
  s.min_sort_key = UINT64_MAX;
  while (reader.Next(&v)) {
  }
  const ReaderStats& st = reader.stats();
  if (st.trailer_read && st.footer_ok) return absl::OkStatus();
  if (absl::Status e = reader.status(); !e.ok() && !absl::IsDataLoss(e)) return e;
  absl::StatusOr<std::unique_ptr<ReadableFile>> g = OpenReadableFile(path);
  if (!g.ok()) return g.status();
  absl::StatusOr<uint64_t> size = (*g)->Size();
  if (!size.ok()) return size.status();
  // Keep every byte except a torn tail: corrupt ranges stay (a later reader may do better with
  // them) and are skipped again on reading. A trailer whose footer is cut or wrong is replaced.
  uint64_t end = *size - (st.torn_tail ? st.torn_bytes : 0);
  if (st.trailer_read) end = st.trailer_offset;
  s.index = reader.segments_seen();
  for (const SegmentInfo& e : s.index) {
    s.exchanges += e.exchanges;
    s.min_sort_key = std::min(s.min_sort_key, e.min_sort_key);
    s.max_sort_key = std::max(s.max_sort_key, e.max_sort_key);
  }
  if (s.exchanges == 0) s.min_sort_key = 0;
  s.segments = s.index.size();
  s.raw_bytes = st.raw_bytes;
  s.stored_bytes = st.stored_bytes;
  s.capture_points = reader.metadata().capture_points;
  s.rebuilt = true;
  std::string tail;
  if (absl::Status e = BuildTrailer(s, end, &tail); !e.ok()) return e;
  if (::truncate(path.c_str(), static_cast<off_t>(end)) != 0) {
    return absl::InternalError(
        absl::StrCat(path, ": truncate to ", end, " bytes: ", std::strerror(errno)));
  }
  absl::StatusOr<std::unique_ptr<WritableFile>> w = OpenAppendableFile(path);
  if (!w.ok()) return w.status();
  if (absl::Status e = (*w)->Append(tail); !e.ok()) return e;
  if (absl::Status e = (*w)->Close(); !e.ok()) return e;
  *rebuilt = true;
  return absl::OkStatus();
}

}  // namespace tapkit
