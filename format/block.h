// block.h: encoding and checking of .tap block headers (format/SPEC.md section 3). Internal to
// format/: the Writer builds blocks with it and the Reader checks them.
//
// Thread-safety: free functions and plain values.
#ifndef TAPKIT_FORMAT_BLOCK_H_
#define TAPKIT_FORMAT_BLOCK_H_

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "format/format.h"

namespace tapkit::format {

inline void Put16(char* p, uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline void Put32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline void Put64(char* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline uint16_t Get16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}
inline uint32_t Get32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) |
         (static_cast<uint32_t>(u[2]) << 16) | (static_cast<uint32_t>(u[3]) << 24);
}
inline uint64_t Get64(const char* p) {
  return static_cast<uint64_t>(Get32(p)) | (static_cast<uint64_t>(Get32(p + 4)) << 32);
}

// The fixed fields of a block header, decoded.
struct BlockHeader {
  uint64_t header_checksum = 0;
  uint64_t body_checksum = 0;
  uint16_t header_length = kBlockHeaderSize;
  uint8_t type = 0;
  uint8_t codec = 0;
  uint32_t flags = 0;
  uint32_t count = 0;
  uint32_t meta_stored = 0;
  uint32_t meta_raw = 0;
  uint32_t body_stored = 0;
  uint32_t body_raw = 0;
  uint64_t min_key = 0;
  uint64_t max_key = 0;

  // Bytes of the whole block: header, meta frame, body frame.
  uint64_t length() const { return uint64_t{header_length} + meta_stored + body_stored; }
};

// XXH3-64 over `a` then `b`.
uint64_t Checksum(std::string_view a, std::string_view b = {});

// Writes the kBlockHeaderSize-byte header of a block whose frames are `meta_stored` and
// `body_stored` into `out`: checksums, header length and stored lengths are computed, the rest
// comes from `h`.
void EncodeBlockHeader(const BlockHeader& h, std::string_view meta_stored,
                       std::string_view body_stored, char* out);

// Appends a whole block (header with both checksums, then both frames) to `out`.
void AppendBlock(const BlockHeader& h, std::string_view meta_stored, std::string_view body_stored,
                 std::string* out);

// True when `p` (at least 8 bytes) starts with the block marker.
inline bool HasBlockMarker(const char* p) {
  return std::memcmp(p, kBlockMarker, sizeof kBlockMarker) == 0;
}

// Decodes the fixed fields of the kBlockHeaderSize bytes at `p` (marker already checked). Does not
// verify anything.
BlockHeader DecodeBlockHeader(const char* p);

// Checks the header's own fields against the caps. Returns an empty string when they are
// acceptable, else the reason.
std::string CheckBlockHeader(const BlockHeader& h);

// The checksum a block header must carry: header bytes [16, H) and the stored meta frame.
inline uint64_t HeaderChecksum(std::string_view header, std::string_view meta_stored) {
  return Checksum(header.substr(kBlockChecksummedFrom), meta_stored);
}

}  // namespace tapkit::format

#endif  // TAPKIT_FORMAT_BLOCK_H_
