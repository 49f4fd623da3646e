#include "format/decoded_body.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "format/render.h"

namespace tapkit {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

std::string_view BodyKindName(BodyKind k) {
  switch (k) {
    case BodyKind::kJson:
      return "json";
    case BodyKind::kText:
      return "text";
    case BodyKind::kBinary:
      return "binary";
  }
  return "binary";
}

std::string JoinedFieldValues(const HeaderListView& headers, std::string_view name) {
  std::string out;
  for (const HeaderListView::Field& f : headers) {
    if (!absl::EqualsIgnoreCase(AV(f.name), AV(name))) continue;
    if (!out.empty()) out += ", ";
    out.append(f.value);
  }
  return out;
}

size_t Utf8CompletePrefix(std::string_view s) {
  // Walk back over at most 3 continuation bytes to the last lead byte.
  size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xc0) == 0x80) continue;  // continuation byte
    size_t need = c < 0x80             ? 1
                  : (c & 0xe0) == 0xc0 ? 2
                  : (c & 0xf0) == 0xe0 ? 3
                  : (c & 0xf8) == 0xf0 ? 4
                                       : 1;
    return back < need ? n - back : n;
  }
  return n;
}

BodyKind ClassifyBody(std::string_view data, std::string_view media_type, bool cut,
                      JsonText* json_text) {
  JsonText j = JsonText::kNotJson;
  if (IsJsonMediaType(media_type) || LooksLikeJson(data)) j = CheckJsonText(data);
  if (json_text) *json_text = j;
  if (j == JsonText::kOk || j == JsonText::kDuplicateNames) return BodyKind::kJson;
  std::string_view whole = cut ? data.substr(0, Utf8CompletePrefix(data)) : data;
  for (unsigned char c : whole) {
    if (c < 0x20 && c != '\t' && c != '\n' && c != '\v' && c != '\f' && c != '\r' && c != 0x1b) {
      return BodyKind::kBinary;
    }
  }
  return IsUtf8(whole) ? BodyKind::kText : BodyKind::kBinary;
}

DecodedBody DecodeBody(std::string_view stored, const HeaderListView& headers, bool cut,
                       size_t max_output) {
  DecodedBody b;
  b.content_encoding = JoinedFieldValues(headers, "content-encoding");
  b.media_type = MediaTypeOf(headers.Find("content-type").value_or(""));
  absl::StatusOr<DecodedContent> decoded = DecodeContent(stored, b.content_encoding, max_output);
  if (!decoded.ok()) {
    b.status = decoded.status();
    b.data.assign(stored);
    b.kind = BodyKind::kBinary;
    return b;
  }
  b.data = std::move(decoded->data);
  b.complete = decoded->complete;
  b.kind = ClassifyBody(b.data, b.media_type, cut || !b.complete, &b.json_text);
  b.json_expected = IsJsonMediaType(b.media_type) && b.kind != BodyKind::kJson;
  return b;
}

}  // namespace tapkit
