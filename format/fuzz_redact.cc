// libFuzzer target: arbitrary bytes as an exchange's request target and body, through the
// Redactor with every kind of rule (headers, query parameters, JSON pointers with wildcards), the
// body declared JSON, a form, text or nothing, identity, gzip, deflate or br (encoded here, or
// declared but not encoded, for the decoders' error paths). Redaction must never crash, hang or
// read out of bounds, and must be idempotent: a second pass changes nothing (markers are left
// alone, a dropped body stays dropped). Run by ctest with a fixed seed (format/CMakeLists.txt);
// seeds in fixtures/fuzz/redact.
//
// Input: byte 0 picks the Content-Type (low 2 bits) and the coding (next 3 bits: 0 identity,
// 1-3 gzip/deflate/br encoded here, 4-6 the same declared only); byte 1's low bit marks the body
// stored cut short; then the request target up to the first '\n', then the body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "format/content_coding.h"
#include "format/redact.h"

namespace {

const tapkit::Redactor& TheRedactor() {
  static const tapkit::Redactor* r = [] {
    tapkit::RedactionRules rules;
    rules.query_params = tapkit::DefaultRedactedQueryParams();
    for (const char* p : {"/a", "/*/b", "/0", "/*/*/*", "/a~1b/-"}) {
      rules.json_fields.push_back(*tapkit::ParseJsonPointer(p));
    }
    rules.decode_cap = 1 << 20;
    return new tapkit::Redactor(std::move(rules), "a fixed fuzzing key, 32 bytes...");
  }();
  return *r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const char* const kTypes[] = {"application/json", "application/x-www-form-urlencoded",
                                       "text/plain", ""};
  static const char* const kCodings[] = {"gzip", "deflate", "br"};
  const std::string type = kTypes[data[0] & 3];
  const unsigned coding = (data[0] >> 2) & 7;
  const bool cut = data[1] & 1;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  size_t nl = rest.find('\n');
  std::string target(rest.substr(0, nl));
  std::string body(nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1));

  tapkit::Exchange x;
  x.request.emplace();
  x.request->path = target;
  x.request->headers = {{"Referer", target}, {"Authorization", target}};
  x.response.emplace();
  x.response->headers = {{"Location", target}};
  std::string encoded = body;
  std::string encoding;
  if (coding >= 1 && coding <= 6) {
    encoding = kCodings[(coding - 1) % 3];
    if (coding <= 3) {
      absl::StatusOr<std::string> e = tapkit::EncodeContent(body, encoding);
      if (!e.ok()) return 0;
      encoded = *std::move(e);
    }
  }
  for (auto* m : {&x.request->headers, &x.response->headers}) {
    if (!type.empty()) m->push_back({"Content-Type", type});
    if (!encoding.empty()) m->push_back({"Content-Encoding", encoding});
    m->push_back({"Content-Length", std::to_string(encoded.size())});
  }
  for (tapkit::Body* b : {&x.request->body, &x.response->body}) {
    b->data = encoded;
    b->length = encoded.size() + (cut ? 10 : 0);
    b->truncated = cut;
  }
  const tapkit::Redactor& r = TheRedactor();
  r.Apply(&x);
  tapkit::Exchange again = x;
  if (r.Apply(&again) != 0 || !(again == x)) std::abort();  // not idempotent
  return 0;
}
