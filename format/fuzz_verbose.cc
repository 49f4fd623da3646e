// libFuzzer target: arbitrary bytes as a response's Content-Encoding, Content-Type, reason, one
// header value and body, shown by tapcat -V (AppendVerbose) and decoded as -o json --body decodes
// them (DecodeBody). Decoding, classification and display must never crash, hang, throw or read out
// of bounds (the bodies and header values are the capture's, untrusted), -V's output must carry no
// control byte a terminal acts on, and a body classified as text or JSON must be UTF-8. A small
// decoding cap keeps the bombs cheap.
// Run by ctest with a fixed seed (format/CMakeLists.txt); seeds in fixtures/fuzz/verbose.
//
// Input: five fields, each a u8 length (the body: the rest), in this order: Content-Encoding,
// Content-Type, reason, header value, body. A first byte with bit 0 set marks the body truncated.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "format/codec.h"
#include "format/decoded_body.h"
#include "format/render.h"
#include "format/verbose.h"

namespace {

std::string_view Take(std::string_view* in) {
  if (in->empty()) return {};
  size_t n = static_cast<uint8_t>((*in)[0]);
  in->remove_prefix(1);
  n = std::min(n, in->size());
  std::string_view out = in->substr(0, n);
  in->remove_prefix(n);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (in.empty()) return 0;
  bool truncated = static_cast<uint8_t>(in[0]) & 1;
  in.remove_prefix(1);
  std::string_view coding = Take(&in), type = Take(&in), reason = Take(&in), value = Take(&in);

  tapkit::Exchange x;
  x.sort_key_ns = 1'764'460'800'000'000'000ull;
  x.response_start_ns = 1000;
  x.response_end_ns = 2000;
  tapkit::Response& r = x.response.emplace();
  r.version = tapkit::HttpVersion::kHttp11;
  r.status = 200;
  r.reason = std::string(reason);
  r.headers = {{"Content-Encoding", std::string(coding)},
               {"Content-Type", std::string(type)},
               {"X-Value", std::string(value)}};
  r.body.data = std::string(in);
  r.body.length = in.size() + (truncated ? 1 : 0);
  r.body.truncated = truncated;
  x.completion = truncated ? tapkit::Completion::kGap : tapkit::Completion::kComplete;
  x.reason = std::string(reason);

  flatbuffers::FlatBufferBuilder builder;
  std::string bodies;
  absl::StatusOr<tapkit::ExchangeView> v = tapkit::ViewOfExchange(x, &builder, &bodies);
  if (!v.ok()) return 0;
  tapkit::VerboseOptions vo;
  vo.decode_cap = 1 << 16;
  std::string out;
  tapkit::AppendVerbose(*v, vo, &out);
  // What reaches a terminal carries no control byte but the line feed and a text body's TAB.
  for (char c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\n' && c != '\t') || u == 0x7f) __builtin_trap();
  }
  // --body's text (render.cc) is the decoded bytes up to a cut sequence: valid UTF-8 whenever the
  // body is not binary.
  tapkit::DecodedBody d =
      tapkit::DecodeBody(v->response().body().data(), v->response().headers(), truncated, 1 << 16);
  if (d.kind != tapkit::BodyKind::kBinary &&
      !tapkit::IsUtf8(std::string_view(d.data).substr(0, tapkit::Utf8CompletePrefix(d.data)))) {
    __builtin_trap();
  }
  return 0;
}
