#include "format/decoded_body.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "format/render.h"

namespace tapkit {
namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Every field line named `name` (case-insensitive), values joined with ", " as RFC 9110 section
// 5.3 allows for list-based fields such as Content-Encoding.
std::string JoinedField(const HeaderListView& headers, std::string_view name) {
  std::string out;
  for (const HeaderListView::Field& f : headers) {
    if (!absl::EqualsIgnoreCase(AV(f.name), AV(name))) continue;
    if (!out.empty()) out += ", ";
    out.append(f.value);
  }
  return out;
}

// Content-Type's media type (RFC 9110 section 8.3.1): type "/" subtype before any parameters,
// lower case. The first Content-Type line counts.
std::string MediaType(const HeaderListView& headers) {
  std::optional<std::string_view> v = headers.Find("content-type");
  if (!v) return "";
  std::string_view t = *v;
  if (size_t semi = t.find(';'); semi != std::string_view::npos) t = t.substr(0, semi);
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(AV(t)));
}

// True when the JSON text's arrays and objects nest at most `limit` deep (strings skipped).
bool NestingWithin(std::string_view s, size_t limit) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > limit) return false;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return true;
}

bool IsJson(std::string_view s) {
  // nlohmann's lexer takes a NUL byte for the end of its input, so "[1]\0anything" would pass and
  // print as "[1]". JSON text holds no raw NUL (RFC 8259 sections 2 and 7), so such bytes are not
  // JSON. accept() runs the parser without building values and reports failure without throwing.
  return s.find('\0') == std::string_view::npos && NestingWithin(s, kMaxJsonDepth) &&
         nlohmann::json::accept(s);
}

bool LooksLikeJson(std::string_view s) {
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    return c == '{' || c == '[';
  }
  return false;
}

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

bool IsJsonMediaType(std::string_view media_type) {
  return media_type == "application/json" || (media_type.find('/') != std::string_view::npos &&
                                              absl::EndsWith(AV(media_type), "+json"));
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

BodyKind ClassifyBody(std::string_view data, std::string_view media_type, bool cut) {
  if ((IsJsonMediaType(media_type) || LooksLikeJson(data)) && IsJson(data)) return BodyKind::kJson;
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
  b.content_encoding = JoinedField(headers, "content-encoding");
  b.media_type = MediaType(headers);
  absl::StatusOr<DecodedContent> decoded = DecodeContent(stored, b.content_encoding, max_output);
  if (!decoded.ok()) {
    b.status = decoded.status();
    b.data.assign(stored);
    b.kind = BodyKind::kBinary;
    return b;
  }
  b.data = std::move(decoded->data);
  b.complete = decoded->complete;
  b.kind = ClassifyBody(b.data, b.media_type, cut || !b.complete);
  b.json_expected = IsJsonMediaType(b.media_type) && b.kind != BodyKind::kJson;
  return b;
}

}  // namespace tapkit
