#include "format/block.h"

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "absl/strings/str_cat.h"

namespace tapkit::format {

uint64_t Checksum(std::string_view a, std::string_view b) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, a.data(), a.size());
  XXH3_64bits_update(&state, b.data(), b.size());
  return XXH3_64bits_digest(&state);
}

void EncodeBlockHeader(const BlockHeader& h, std::string_view meta_stored,
                       std::string_view body_stored, char* hdr) {
  std::memset(hdr, 0, kBlockHeaderSize);
  std::memcpy(hdr + kBlockMarkerOffset, kBlockMarker, sizeof kBlockMarker);
  Put64(hdr + kBlockBodyChecksumOffset, Checksum(body_stored));
  Put16(hdr + kBlockHeaderLengthOffset, kBlockHeaderSize);
  hdr[kBlockTypeOffset] = static_cast<char>(h.type);
  hdr[kBlockCodecOffset] = static_cast<char>(h.codec);
  Put32(hdr + kBlockFlagsOffset, h.flags);
  Put32(hdr + kBlockCountOffset, h.count);
  Put32(hdr + kBlockMetaStoredOffset, static_cast<uint32_t>(meta_stored.size()));
  Put32(hdr + kBlockMetaRawOffset, h.meta_raw);
  Put32(hdr + kBlockBodyStoredOffset, static_cast<uint32_t>(body_stored.size()));
  Put32(hdr + kBlockBodyRawOffset, h.body_raw);
  Put32(hdr + kBlockReservedOffset, 0);
  Put64(hdr + kBlockMinKeyOffset, h.min_key);
  Put64(hdr + kBlockMaxKeyOffset, h.max_key);
  Put64(hdr + kBlockHeaderChecksumOffset,
        HeaderChecksum(std::string_view(hdr, kBlockHeaderSize), meta_stored));
}

void AppendBlock(const BlockHeader& h, std::string_view meta_stored, std::string_view body_stored,
                 std::string* out) {
  char hdr[kBlockHeaderSize];
  EncodeBlockHeader(h, meta_stored, body_stored, hdr);
  out->append(hdr, sizeof hdr);
  out->append(meta_stored);
  out->append(body_stored);
}

BlockHeader DecodeBlockHeader(const char* p) {
  BlockHeader h;
  h.header_checksum = Get64(p + kBlockHeaderChecksumOffset);
  h.body_checksum = Get64(p + kBlockBodyChecksumOffset);
  h.header_length = Get16(p + kBlockHeaderLengthOffset);
  h.type = static_cast<uint8_t>(p[kBlockTypeOffset]);
  h.codec = static_cast<uint8_t>(p[kBlockCodecOffset]);
  h.flags = Get32(p + kBlockFlagsOffset);
  h.count = Get32(p + kBlockCountOffset);
  h.meta_stored = Get32(p + kBlockMetaStoredOffset);
  h.meta_raw = Get32(p + kBlockMetaRawOffset);
  h.body_stored = Get32(p + kBlockBodyStoredOffset);
  h.body_raw = Get32(p + kBlockBodyRawOffset);
  h.min_key = Get64(p + kBlockMinKeyOffset);
  h.max_key = Get64(p + kBlockMaxKeyOffset);
  return h;
}

std::string CheckBlockHeader(const BlockHeader& h) {
  if (h.header_length < kBlockHeaderSize || h.header_length > kMaxBlockHeaderSize) {
    return absl::StrCat("block header length ", h.header_length, " outside [", kBlockHeaderSize,
                        ", ", kMaxBlockHeaderSize, "]");
  }
  if (h.meta_stored > kMaxFrameSize || h.meta_raw > kMaxFrameSize ||
      h.body_stored > kMaxFrameSize || h.body_raw > kMaxFrameSize) {
    return absl::StrCat("frame length over the cap of ", kMaxFrameSize, " bytes (meta ",
                        h.meta_stored, "/", h.meta_raw, ", body ", h.body_stored, "/", h.body_raw,
                        ")");
  }
  if (h.count > kMaxExchangesPerSegment) {
    return absl::StrCat("exchange count ", h.count, " over the cap of ", kMaxExchangesPerSegment);
  }
  if (h.codec == static_cast<uint8_t>(Codec::kStored) &&
      (h.meta_stored != h.meta_raw || h.body_stored != h.body_raw)) {
    return "stored codec with stored and raw lengths that differ";
  }
  if (h.min_key > h.max_key) return "min sort key above max sort key";
  return {};
}

}  // namespace tapkit::format
