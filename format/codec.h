// codec.h: Exchange to FlatBuffer encoding, as the Writer stores it in a segment.
//
// Thread-safety: free functions over caller-owned state.
#ifndef TAPKIT_FORMAT_CODEC_H_
#define TAPKIT_FORMAT_CODEC_H_

#include <string>

#include "absl/status/status.h"
#include "flatbuffers/flatbuffers.h"
#include "format/exchange.h"

namespace tapkit {

// Builds `x` as a size-prefixed Exchange FlatBuffer in `builder` (cleared first) and appends its
// body bytes to `body_frame`, recording their offsets. Returns InvalidArgument when a body would
// push the frame past format::kMaxFrameSize or the record past format::kMaxRecordSize.
absl::Status EncodeExchange(const Exchange& x, flatbuffers::FlatBufferBuilder* builder,
                            std::string* body_frame);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_CODEC_H_
