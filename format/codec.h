// codec.h: Exchange to FlatBuffer encoding, as the Writer stores it in a segment.
//
// Thread-safety: free functions over caller-owned state.
#ifndef TAPKIT_FORMAT_CODEC_H_
#define TAPKIT_FORMAT_CODEC_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "flatbuffers/flatbuffers.h"
#include "format/exchange.h"
#include "format/exchange_view.h"

namespace tapkit {

// Builds `x` as a size-prefixed Exchange FlatBuffer in `builder` (cleared first) and appends its
// body bytes to `body_frame`, recording their offsets. Returns InvalidArgument when a body would
// push the frame past format::kMaxFrameSize or the record past format::kMaxRecordSize.
absl::Status EncodeExchange(const Exchange& x, flatbuffers::FlatBufferBuilder* builder,
                            std::string* body_frame);

// Encodes `x` into `builder` and `bodies` (both cleared first) and returns a view of it, valid
// while both live and are not touched: the way to print an exchange that is not in a file (live
// output, taprec without -w) with the same code that prints stored ones.
absl::StatusOr<ExchangeView> ViewOfExchange(const Exchange& x,
                                            flatbuffers::FlatBufferBuilder* builder,
                                            std::string* bodies);

// The other way, for an encoding received from elsewhere (the tap API's ExchangeEnded event):
// `encoded` is one size-prefixed Exchange FlatBuffer as EncodeExchange builds it and `bodies` the
// body bytes its references point into. Everything is verified before use (the FlatBuffers
// verifier with the reader's depth and table caps, body references, header lists, labels), then
// decoded. InvalidArgument says what failed; nothing is read outside the two buffers.
absl::StatusOr<Exchange> DecodeExchange(std::string_view encoded, std::string_view bodies);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_CODEC_H_
