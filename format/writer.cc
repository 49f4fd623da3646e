#include "format/writer.h"

#include <time.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "flatbuffers/flatbuffers.h"
#include "format/block.h"
#include "format/codec.h"

namespace tapkit {
namespace {

using format::BlockType;
using format::Codec;

int64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

uint64_t RealtimeNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

struct CctxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};

// Compresses `raw` into `out` as one zstd frame (content size recorded) and returns a view of the
// frame, or views `raw` itself when the codec is kStored. An empty frame is zero bytes under either
// codec. `out` only grows (no zero-filling per segment).
absl::StatusOr<std::string_view> Compress(ZSTD_CCtx* cctx, Codec codec, int level,
                                          std::string_view raw, std::string* out) {
  if (raw.empty()) return std::string_view();
  if (codec == Codec::kStored) return raw;
  size_t bound = ZSTD_compressBound(raw.size());
  if (out->size() < bound) out->resize(bound);
  size_t n = ZSTD_compressCCtx(cctx, out->data(), out->size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(n)) {
    return absl::InternalError(absl::StrCat("zstd compression failed: ", ZSTD_getErrorName(n)));
  }
  return std::string_view(out->data(), n);
}

}  // namespace

struct Writer::Impl {
  std::unique_ptr<WritableFile> file;
  WriterOptions options;
  std::vector<CapturePointInfo> header_points;
  std::unique_ptr<ZSTD_CCtx, CctxDeleter> cctx{ZSTD_createCCtx()};
  flatbuffers::FlatBufferBuilder builder{4096};

  // The open segment.
  std::string meta_raw;
  std::string body_raw;
  uint32_t count = 0;
  uint64_t min_key = std::numeric_limits<uint64_t>::max();
  uint64_t max_key = 0;
  int64_t opened_at = 0;

  // Scratch for compressed frames and the block.
  std::string meta_stored, body_stored;

  FileSummary summary;
  absl::Status failure;
  bool closed = false;
};

Writer::Writer(std::unique_ptr<WritableFile> file, WriterOptions options,
               std::vector<CapturePointInfo> header_points)
    : impl_(std::make_unique<Impl>()) {
  impl_->file = std::move(file);
  impl_->options = std::move(options);
  impl_->header_points = std::move(header_points);
  impl_->summary.min_sort_key = std::numeric_limits<uint64_t>::max();
  impl_->meta_raw.reserve(impl_->options.segment_bytes + 4096);
}

Writer::~Writer() = default;

const std::string& Writer::name() const { return impl_->file->name(); }

std::string BuildFileHeader(std::string_view metadata, uint16_t major, uint16_t minor) {
  std::string out(format::kFileHeaderSize, '\0');
  std::memcpy(out.data(), format::kFileMagic, sizeof format::kFileMagic);
  format::Put16(out.data() + 8, major);
  format::Put16(out.data() + 10, minor);
  format::Put32(out.data() + 12, static_cast<uint32_t>(metadata.size()));
  format::Put64(out.data() + 16, format::Checksum(std::string_view(out.data(), 16), metadata));
  out.append(metadata);
  return out;
}

absl::Status BuildBlock(BlockType type, Codec codec, int zstd_level, uint32_t count,
                        uint64_t min_key, uint64_t max_key, std::string_view meta_raw,
                        std::string_view body_raw, std::string* out) {
  std::unique_ptr<ZSTD_CCtx, CctxDeleter> cctx(ZSTD_createCCtx());
  std::string meta_buf, body_buf;
  absl::StatusOr<std::string_view> meta_stored =
      Compress(cctx.get(), codec, zstd_level, meta_raw, &meta_buf);
  if (!meta_stored.ok()) return meta_stored.status();
  absl::StatusOr<std::string_view> body_stored =
      Compress(cctx.get(), codec, zstd_level, body_raw, &body_buf);
  if (!body_stored.ok()) return body_stored.status();
  format::BlockHeader h;
  h.type = static_cast<uint8_t>(type);
  h.codec = static_cast<uint8_t>(codec);
  h.count = count;
  h.meta_raw = static_cast<uint32_t>(meta_raw.size());
  h.body_raw = static_cast<uint32_t>(body_raw.size());
  h.min_key = min_key;
  h.max_key = max_key;
  format::AppendBlock(h, *meta_stored, *body_stored, out);
  return absl::OkStatus();
}

absl::Status BuildTrailer(const FileSummary& summary, uint64_t offset, std::string* out) {
  std::string fb = EncodeFileSummary(summary);
  if (fb.size() > format::kMaxFrameSize) {
    return absl::ResourceExhaustedError("trailer over the frame cap");
  }
  uint64_t min_key = summary.exchanges ? summary.min_sort_key : 0;
  uint64_t max_key = summary.exchanges ? summary.max_sort_key : 0;
  if (absl::Status s = BuildBlock(BlockType::kTrailer, Codec::kZstd, format::kDefaultZstdLevel, 0,
                                  min_key, max_key, fb, {}, out);
      !s.ok()) {
    return s;
  }
  char footer[format::kFooterSize];
  format::Put64(footer, offset);
  std::memcpy(footer + 8, format::kFooterMagic, sizeof format::kFooterMagic);
  out->append(footer, sizeof footer);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Writer>> Writer::Open(std::unique_ptr<WritableFile> file,
                                                     const CaptureMetadata& metadata,
                                                     WriterOptions options) {
  if (options.segment_bytes == 0 || options.segment_bytes > format::kMaxFrameSize / 2) {
    return absl::InvalidArgumentError(absl::StrCat("segment size ", options.segment_bytes,
                                                   " bytes outside [1, ", format::kMaxFrameSize / 2,
                                                   "]"));
  }
  if (options.codec == Codec::kZstd &&
      (options.zstd_level < ZSTD_minCLevel() || options.zstd_level > ZSTD_maxCLevel())) {
    return absl::InvalidArgumentError(absl::StrCat("zstd level ", options.zstd_level, " outside [",
                                                   ZSTD_minCLevel(), ", ", ZSTD_maxCLevel(), "]"));
  }
  if (!options.clock) options.clock = MonotonicNs;
  if (!options.wall_clock) options.wall_clock = RealtimeNs;
  std::string fb = EncodeCaptureMetadata(metadata);
  if (fb.size() > format::kMaxMetadataSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "capture metadata of ", fb.size(), " bytes over the cap of ", format::kMaxMetadataSize));
  }
  std::unique_ptr<Writer> w(
      new Writer(std::move(file), std::move(options), metadata.capture_points));
  if (absl::Status s = w->Emit(BuildFileHeader(fb)); !s.ok()) return s;
  return w;
}

absl::Status Writer::Emit(std::string_view bytes) {
  absl::Status s = impl_->file->Append(bytes);
  if (!s.ok()) {
    impl_->failure = s;
    return s;
  }
  stats_.file_bytes += bytes.size();
  return absl::OkStatus();
}

absl::Status Writer::Append(const Exchange& x) {
  Impl& m = *impl_;
  if (!m.failure.ok()) return m.failure;
  if (m.closed) return absl::FailedPreconditionError(absl::StrCat(name(), ": writer closed"));
  size_t body_before = m.body_raw.size();
  absl::Status s = EncodeExchange(x, &m.builder, &m.body_raw);
  // Both frames must stay within the cap once compressed, whatever zstd makes of them.
  if (s.ok() &&
      (ZSTD_compressBound(m.meta_raw.size() + m.builder.GetSize()) > format::kMaxFrameSize ||
       ZSTD_compressBound(m.body_raw.size()) > format::kMaxFrameSize)) {
    s = absl::InvalidArgumentError(absl::StrCat("exchange does not fit the segment frame cap of ",
                                                format::kMaxFrameSize, " bytes"));
  }
  if (!s.ok()) {
    m.body_raw.resize(body_before);
    return s;
  }
  if (m.count == 0) m.opened_at = m.options.clock();
  m.meta_raw.append(reinterpret_cast<const char*>(m.builder.GetBufferPointer()),
                    m.builder.GetSize());
  ++m.count;
  m.min_key = std::min(m.min_key, x.sort_key_ns);
  m.max_key = std::max(m.max_key, x.sort_key_ns);
  ++stats_.exchanges;
  if (m.meta_raw.size() + m.body_raw.size() >= m.options.segment_bytes ||
      m.count >= format::kMaxExchangesPerSegment) {
    return WriteSegment();
  }
  return Tick();
}

absl::Status Writer::Tick() {
  Impl& m = *impl_;
  if (!m.failure.ok()) return m.failure;
  if (m.count > 0 && m.options.flush_interval_ns > 0 &&
      m.options.clock() - m.opened_at >= m.options.flush_interval_ns) {
    return WriteSegment();
  }
  return absl::OkStatus();
}

absl::Status Writer::Flush() {
  if (!impl_->failure.ok()) return impl_->failure;
  return impl_->count > 0 ? WriteSegment() : absl::OkStatus();
}

absl::Status Writer::WriteSegment() {
  Impl& m = *impl_;
  Codec codec = m.options.codec;
  absl::StatusOr<std::string_view> meta_stored =
      Compress(m.cctx.get(), codec, m.options.zstd_level, m.meta_raw, &m.meta_stored);
  if (!meta_stored.ok()) return m.failure = meta_stored.status();
  absl::StatusOr<std::string_view> body_stored =
      Compress(m.cctx.get(), codec, m.options.zstd_level, m.body_raw, &m.body_stored);
  if (!body_stored.ok()) return m.failure = body_stored.status();
  format::BlockHeader h;
  h.type = static_cast<uint8_t>(BlockType::kSegment);
  h.codec = static_cast<uint8_t>(codec);
  h.count = m.count;
  h.meta_raw = static_cast<uint32_t>(m.meta_raw.size());
  h.body_raw = static_cast<uint32_t>(m.body_raw.size());
  h.min_key = m.min_key;
  h.max_key = m.max_key;
  char header[format::kBlockHeaderSize];
  format::EncodeBlockHeader(h, *meta_stored, *body_stored, header);
  uint64_t block_length = sizeof header + meta_stored->size() + body_stored->size();

  SegmentInfo info{stats_.file_bytes, m.min_key, m.max_key, m.count,
                   static_cast<uint32_t>(block_length)};
  // Three appends rather than one copy of the block: the frames go out as they are.
  for (std::string_view part :
       {std::string_view(header, sizeof header), *meta_stored, *body_stored}) {
    if (absl::Status s = Emit(part); !s.ok()) return s;
  }
  if (absl::Status s = m.file->Flush(); !s.ok()) return m.failure = s;

  uint64_t raw = m.meta_raw.size() + m.body_raw.size();
  uint64_t stored = meta_stored->size() + body_stored->size();
  m.summary.index.push_back(info);
  m.summary.exchanges += m.count;
  m.summary.segments += 1;
  m.summary.raw_bytes += raw;
  m.summary.stored_bytes += stored;
  m.summary.min_sort_key = std::min(m.summary.min_sort_key, m.min_key);
  m.summary.max_sort_key = std::max(m.summary.max_sort_key, m.max_key);
  stats_.segments += 1;
  stats_.raw_bytes += raw;
  stats_.stored_bytes += stored;

  m.meta_raw.clear();
  m.body_raw.clear();
  m.count = 0;
  m.min_key = std::numeric_limits<uint64_t>::max();
  m.max_key = 0;
  return absl::OkStatus();
}

absl::Status Writer::Close(const TrailerInput& trailer) {
  Impl& m = *impl_;
  if (m.closed) return absl::FailedPreconditionError(absl::StrCat(name(), ": writer closed"));
  if (!m.failure.ok()) {
    m.closed = true;
    (void)m.file->Close();
    return m.failure;
  }
  if (absl::Status s = Flush(); !s.ok()) return s;
  m.closed = true;
  FileSummary& sum = m.summary;
  if (sum.exchanges == 0) sum.min_sort_key = 0;
  sum.end_time_ns = m.options.wall_clock();
  sum.drops = trailer.drops;
  sum.counters = trailer.counters;
  sum.capture_points = trailer.capture_points.empty() ? m.header_points : trailer.capture_points;
  std::string out;
  if (absl::Status s = BuildTrailer(sum, stats_.file_bytes, &out); !s.ok()) return s;
  if (absl::Status s = Emit(out); !s.ok()) return s;
  if (absl::Status s = m.file->Flush(); !s.ok()) return s;
  return m.file->Close();
}

}  // namespace tapkit
