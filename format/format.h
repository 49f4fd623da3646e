// format.h: the constants of the .tap capture file, version 1.
//
// This header holds only numbers; format/SPEC.md is the specification they come from, with the byte
// layouts, a worked example and the recovery rules. Change neither without the other. On-disk
// structures are frozen: a layout change needs a new major version and the old reader stays.
//
// Thread-safety: constants only.
#ifndef TAPKIT_FORMAT_FORMAT_H_
#define TAPKIT_FORMAT_FORMAT_H_

#include <cstddef>
#include <cstdint>

namespace tapkit::format {

// All integers in headers, blocks and the footer are little-endian (FlatBuffers are too).

// --- File header (SPEC.md section 2) ---
// "\x89TAP\r\n\x1a\n": the high byte catches 7-bit transfers, CR LF and LF catch newline
// conversion, 0x1a stops DOS `type` (the PNG trick).
inline constexpr unsigned char kFileMagic[8] = {0x89, 'T', 'A', 'P', '\r', '\n', 0x1a, '\n'};
inline constexpr uint16_t kMajorVersion = 1;
// 1.1: Completion AmbiguousPairing; 1.2: Redaction.query_params and json_fields; 1.3:
// Exchange.replay_of.
inline constexpr uint16_t kMinorVersion = 3;
inline constexpr size_t kFileHeaderSize = 24;  // magic, major, minor, metadata length, checksum
inline constexpr uint32_t kMaxMetadataSize = 1u << 20;

// --- Blocks (SPEC.md section 3) ---
inline constexpr unsigned char kBlockMarker[8] = {0xd3, 0x7a, 0x61, 0x70, 0x53, 0x45, 0x47, 0x9c};
inline constexpr size_t kBlockHeaderSize = 72;  // version 1.0; readers accept larger (minor growth)
inline constexpr size_t kMaxBlockHeaderSize = 4096;

enum class BlockType : uint8_t {
  kSegment = 1,  // exchanges: a headers frame and a bodies frame
  kTrailer = 2,  // the Trailer FlatBuffer (totals, drop counters, segment index)
};

enum class Codec : uint8_t {
  kStored = 0,  // frames are stored uncompressed
  kZstd = 1,    // each frame is one zstd frame (RFC 8878)
};

// Field offsets inside a block header.
inline constexpr size_t kBlockMarkerOffset = 0;
inline constexpr size_t kBlockHeaderChecksumOffset = 8;  // XXH3-64 of header[16, H) + meta frame
inline constexpr size_t kBlockBodyChecksumOffset = 16;   // XXH3-64 of the body frame
inline constexpr size_t kBlockHeaderLengthOffset = 24;   // u16
inline constexpr size_t kBlockTypeOffset = 26;           // u8
inline constexpr size_t kBlockCodecOffset = 27;          // u8
inline constexpr size_t kBlockFlagsOffset = 28;          // u32, 0
inline constexpr size_t kBlockCountOffset = 32;          // u32 exchanges
inline constexpr size_t kBlockMetaStoredOffset = 36;     // u32
inline constexpr size_t kBlockMetaRawOffset = 40;        // u32
inline constexpr size_t kBlockBodyStoredOffset = 44;     // u32
inline constexpr size_t kBlockBodyRawOffset = 48;        // u32
inline constexpr size_t kBlockReservedOffset = 52;       // u32, 0
inline constexpr size_t kBlockMinKeyOffset = 56;         // u64 ns
inline constexpr size_t kBlockMaxKeyOffset = 64;         // u64 ns
inline constexpr size_t kBlockChecksummedFrom = 16;

// Hard caps, checked before anything is allocated.
inline constexpr uint32_t kMaxFrameSize = 128u << 20;  // stored or raw, either frame
inline constexpr uint32_t kMaxExchangesPerSegment = 1u << 22;
inline constexpr uint32_t kMaxRecordSize = 64u << 20;  // one size-prefixed Exchange FlatBuffer
inline constexpr uint32_t kMaxFlatBufferDepth = 16;
inline constexpr uint32_t kMaxFlatBufferTables = 1u << 20;

// --- Footer (SPEC.md section 5) ---
inline constexpr size_t kFooterSize = 16;  // u64 trailer block offset, then the end magic
inline constexpr unsigned char kFooterMagic[8] = {'T', 'A', 'P', 'E', 'N', 'D', '\r', '\n'};

// --- Writer defaults ---
inline constexpr size_t kDefaultSegmentBytes = 1u << 20;  // uncompressed, both frames
inline constexpr int64_t kDefaultFlushIntervalNs = 1'000'000'000;
inline constexpr int kDefaultZstdLevel = 3;
inline constexpr uint64_t kDefaultBodyLimit = 64u << 10;

}  // namespace tapkit::format

#endif  // TAPKIT_FORMAT_FORMAT_H_
