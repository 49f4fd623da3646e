#include "format/content_coding.h"

#include <brotli/decode.h>
#include <brotli/encode.h>
#include <zlib.h>

#include <algorithm>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tapkit {
namespace {

constexpr size_t kChunk = 64 * 1024;

// Output grows in chunks; a step past `cap` is an error rather than a silent cut, since a
// shortened body must not look whole.
absl::Status Grow(std::string* out, size_t cap, const char* coding) {
  if (out->size() >= cap) {
    return absl::ResourceExhaustedError(
        absl::StrCat(coding, ": decoded body is larger than the ", cap, "-byte cap"));
  }
  out->resize(std::min(cap, out->size() + kChunk));
  return absl::OkStatus();
}

// One zlib stream format: 16 + 15 gzip, 15 zlib, -15 raw deflate.
struct Inflater {
  z_stream z{};
  bool open = false;
  explicit Inflater(int window_bits) { open = inflateInit2(&z, window_bits) == Z_OK; }
  ~Inflater() {
    if (open) inflateEnd(&z);
  }
};

// Decodes one zlib-family stream. gzip may hold several members back to back (RFC 1952 section
// 2.2); each is decoded in turn. Trailing bytes after the last member are an error.
absl::StatusOr<DecodedContent> Inflate(std::string_view in, int window_bits, const char* name,
                                       size_t cap) {
  Inflater inf(window_bits);
  if (!inf.open) return absl::InternalError(absl::StrCat(name, ": zlib could not start"));
  DecodedContent result;
  std::string& out = result.data;
  size_t produced = 0;
  inf.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  inf.z.avail_in = static_cast<uInt>(std::min<size_t>(in.size(), UINT32_MAX));
  size_t fed = inf.z.avail_in;
  for (;;) {
    if (produced == out.size()) {
      absl::Status grown = Grow(&out, cap, name);
      if (!grown.ok()) return grown;
    }
    inf.z.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    inf.z.avail_out = static_cast<uInt>(out.size() - produced);
    int rc = inflate(&inf.z, Z_NO_FLUSH);
    produced = out.size() - inf.z.avail_out;
    if (rc == Z_STREAM_END) {
      size_t used = fed - inf.z.avail_in;
      if (inf.z.avail_in == 0 && used == in.size()) break;
      // Another gzip member may follow; anything else after the end is damage.
      if (window_bits > 15) {
        if (inflateReset(&inf.z) != Z_OK) {
          return absl::InternalError(absl::StrCat(name, ": zlib reset failed"));
        }
        continue;
      }
      return absl::DataLossError(
          absl::StrCat(name, ": ", in.size() - used, " bytes after the end of the stream"));
    }
    if (rc == Z_BUF_ERROR && inf.z.avail_in == 0 && inf.z.avail_out != 0) {
      // Input ended before the stream did: a cut body.
      result.complete = false;
      break;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      size_t at = fed - inf.z.avail_in;
      return absl::DataLossError(absl::StrCat(name, ": not a valid stream at input byte ", at,
                                              inf.z.msg ? absl::StrCat(" (", inf.z.msg, ")") : ""));
    }
  }
  out.resize(produced);
  return result;
}

absl::StatusOr<DecodedContent> Unbrotli(std::string_view in, size_t cap) {
  std::unique_ptr<BrotliDecoderState, void (*)(BrotliDecoderState*)> st(
      BrotliDecoderCreateInstance(nullptr, nullptr, nullptr), BrotliDecoderDestroyInstance);
  if (!st) return absl::InternalError("br: the decoder could not start");
  DecodedContent result;
  std::string& out = result.data;
  size_t produced = 0;
  size_t avail_in = in.size();
  const uint8_t* next_in = reinterpret_cast<const uint8_t*>(in.data());
  for (;;) {
    if (produced == out.size()) {
      absl::Status grown = Grow(&out, cap, "br");
      if (!grown.ok()) return grown;
    }
    size_t avail_out = out.size() - produced;
    uint8_t* next_out = reinterpret_cast<uint8_t*>(out.data() + produced);
    BrotliDecoderResult rc = BrotliDecoderDecompressStream(st.get(), &avail_in, &next_in,
                                                           &avail_out, &next_out, nullptr);
    produced = out.size() - avail_out;
    if (rc == BROTLI_DECODER_RESULT_SUCCESS) {
      if (avail_in != 0) {
        return absl::DataLossError(
            absl::StrCat("br: ", avail_in, " bytes after the end of the stream"));
      }
      break;
    }
    if (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
      result.complete = false;
      break;
    }
    if (rc == BROTLI_DECODER_RESULT_ERROR) {
      return absl::DataLossError(absl::StrCat(
          "br: not a valid stream at input byte ", in.size() - avail_in, " (",
          BrotliDecoderErrorString(BrotliDecoderGetErrorCode(st.get())), ")"));
    }
    // NEEDS_MORE_OUTPUT: grow and go on.
  }
  out.resize(produced);
  return result;
}

absl::StatusOr<std::string> Deflate(std::string_view in, int window_bits, const char* name) {
  z_stream z{};
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return absl::InternalError(absl::StrCat(name, ": zlib could not start"));
  }
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  size_t n = out.size() - z.avail_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return absl::InternalError(absl::StrCat(name, ": zlib failed"));
  out.resize(n);
  return out;
}

}  // namespace

std::string_view ContentCodingName(ContentCoding c) {
  switch (c) {
    case ContentCoding::kIdentity:
      return "identity";
    case ContentCoding::kGzip:
      return "gzip";
    case ContentCoding::kDeflate:
      return "deflate";
    case ContentCoding::kBrotli:
      return "br";
  }
  return "identity";
}

absl::StatusOr<std::vector<ContentCoding>> ParseContentEncoding(std::string_view value) {
  std::vector<ContentCoding> codings;
  // Debian's abseil has its own string_view type: convert at the boundary.
  for (absl::string_view part : absl::StrSplit(absl::string_view(value.data(), value.size()), ',')) {
    std::string name = absl::AsciiStrToLower(absl::StripAsciiWhitespace(part));
    if (name.empty() || name == "identity") continue;
    if (name == "gzip" || name == "x-gzip") {
      codings.push_back(ContentCoding::kGzip);
    } else if (name == "deflate") {
      codings.push_back(ContentCoding::kDeflate);
    } else if (name == "br") {
      codings.push_back(ContentCoding::kBrotli);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("content coding \"", name, "\" is not supported (gzip, deflate, br)"));
    }
  }
  return codings;
}

absl::StatusOr<DecodedContent> DecodeContent(std::string_view body,
                                             std::string_view content_encoding,
                                             size_t max_output) {
  absl::StatusOr<std::vector<ContentCoding>> codings = ParseContentEncoding(content_encoding);
  if (!codings.ok()) return codings.status();
  DecodedContent cur;
  // An empty body carries no coded stream (a 204, a HEAD response, a 304), whatever the field says.
  if (codings->empty() || body.empty()) {
    if (body.size() > max_output) {
      return absl::ResourceExhaustedError(
          absl::StrCat("body is larger than the ", max_output, "-byte cap"));
    }
    cur.data.assign(body);
    return cur;
  }
  std::string input(body);
  bool complete = true;
  for (auto it = codings->rbegin(); it != codings->rend(); ++it) {
    absl::StatusOr<DecodedContent> step;
    switch (*it) {
      case ContentCoding::kGzip:
        step = Inflate(input, 16 + MAX_WBITS, "gzip", max_output);
        break;
      case ContentCoding::kDeflate: {
        // RFC 9110 section 8.4.1.2: a zlib stream. Some servers send raw deflate; tell them
        // apart by the zlib header's check bits (RFC 1950 section 2.2), as browsers do.
        bool zlib_header = input.size() >= 2 && (static_cast<uint8_t>(input[0]) & 0x0f) == 8 &&
                           ((static_cast<uint8_t>(input[0]) << 8) | static_cast<uint8_t>(input[1])) %
                                   31 ==
                               0;
        step = Inflate(input, zlib_header ? MAX_WBITS : -MAX_WBITS, "deflate", max_output);
        break;
      }
      case ContentCoding::kBrotli:
        step = Unbrotli(input, max_output);
        break;
      case ContentCoding::kIdentity:
        continue;
    }
    if (!step.ok()) return step.status();
    // An inner coding read from a cut outer one is cut too; decoding it may still end early.
    complete = complete && step->complete;
    input = std::move(step->data);
  }
  cur.data = std::move(input);
  cur.complete = complete;
  return cur;
}

absl::StatusOr<std::string> EncodeContent(std::string_view data,
                                          std::string_view content_encoding) {
  absl::StatusOr<std::vector<ContentCoding>> codings = ParseContentEncoding(content_encoding);
  if (!codings.ok()) return codings.status();
  std::string cur(data);
  for (ContentCoding c : *codings) {
    absl::StatusOr<std::string> next;
    switch (c) {
      case ContentCoding::kGzip:
        next = Deflate(cur, 16 + MAX_WBITS, "gzip");
        break;
      case ContentCoding::kDeflate:
        next = Deflate(cur, MAX_WBITS, "deflate");
        break;
      case ContentCoding::kBrotli: {
        std::string out(BrotliEncoderMaxCompressedSize(cur.size()) + 16, '\0');
        size_t n = out.size();
        if (!BrotliEncoderCompress(5, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, cur.size(),
                                   reinterpret_cast<const uint8_t*>(cur.data()), &n,
                                   reinterpret_cast<uint8_t*>(out.data()))) {
          return absl::InternalError("br: the encoder failed");
        }
        out.resize(n);
        next = std::move(out);
        break;
      }
      case ContentCoding::kIdentity:
        continue;
    }
    if (!next.ok()) return next.status();
    cur = *std::move(next);
  }
  return cur;
}

}  // namespace tapkit
