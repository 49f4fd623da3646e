#include "format/http_text.h"

#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace tapkit {

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

namespace {

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A SAX handler that builds nothing: it tracks the nesting depth, each open object's member
// names and count, and stops the parse (returns false) at the first limit passed.
class Checker final : public nlohmann::json_sax<nlohmann::json> {
 public:
  JsonText problem = JsonText::kOk;
  bool duplicate = false;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    if (!Open()) return false;
    objects_.emplace_back();
    kinds_.push_back(true);
    return true;
  }
  bool key(string_t& name) override {
    Names& o = objects_.back();
    if (++o.count > kMaxJsonMembers) {
      problem = JsonText::kTooManyMembers;
      return false;
    }
    if (!o.names.insert(name).second) duplicate = true;
    return true;
  }
  bool end_object() override {
    objects_.pop_back();
    kinds_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (!Open()) return false;
    kinds_.push_back(false);
    return true;
  }
  bool end_array() override {
    kinds_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    problem = JsonText::kNotJson;
    return false;
  }

 private:
  struct Names {
    size_t count = 0;
    std::unordered_set<std::string> names;
  };
  bool Open() {
    if (kinds_.size() >= kMaxJsonDepth) {
      problem = JsonText::kTooDeep;
      return false;
    }
    return true;
  }
  std::vector<Names> objects_;
  std::vector<bool> kinds_;  // the open containers, innermost last: true for an object
};

}  // namespace

std::string MediaTypeOf(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  return absl::AsciiStrToLower(absl::StripAsciiWhitespace(AV(t)));
}

bool IsJsonMediaType(std::string_view media_type) {
  return media_type == "application/json" || media_type == "text/json" ||
         (media_type.find('/') != std::string_view::npos &&
          absl::EndsWith(AV(media_type), "+json"));
}

bool LooksLikeJson(std::string_view s) {
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    return c == '{' || c == '[';
  }
  return false;
}

JsonText CheckJsonText(std::string_view s) {
  // nlohmann's lexer takes a NUL byte for the end of its input, so "[1]\0anything" would pass.
  // JSON text holds no raw NUL (RFC 8259 sections 2 and 7).
  if (s.find('\0') != std::string_view::npos) return JsonText::kNotJson;
  Checker c;
  bool ok = nlohmann::json::sax_parse(s, &c, nlohmann::json::input_format_t::json,
                                      /*strict=*/true, /*ignore_comments=*/false);
  if (c.problem != JsonText::kOk) return c.problem;
  if (!ok) return JsonText::kNotJson;
  return c.duplicate ? JsonText::kDuplicateNames : JsonText::kOk;
}

namespace {
// "%" with two hex digits is a byte (RFC 3986 section 2.1); with plus_is_space "+" is a space.
std::string DecodeEscapes(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (plus_is_space && s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && HexDigitValue(s[i + 1]) >= 0 &&
               HexDigitValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexDigitValue(s[i + 1]) * 16 + HexDigitValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}
}  // namespace

std::string FormDecode(std::string_view s) { return DecodeEscapes(s, /*plus_is_space=*/true); }

std::string PercentDecode(std::string_view s) { return DecodeEscapes(s, /*plus_is_space=*/false); }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
          std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos)) {
      return false;
    }
  }
  return true;
}

RequestTargetParts SplitRequestTarget(std::string_view target) {
  RequestTargetParts out;
  if (!target.empty() && target[0] != '/' && target != "*") {
    if (size_t scheme = target.find("://"); scheme != std::string_view::npos) {
      std::string_view rest = target.substr(scheme + 3);
      size_t path_start = rest.find_first_of("/?#");
      out.absolute = true;
      out.authority = rest.substr(0, path_start);
      if (size_t at = out.authority.rfind('@'); at != std::string_view::npos)
        out.authority = out.authority.substr(at + 1);  // userinfo is not the host
      target = path_start == std::string_view::npos ? std::string_view() : rest.substr(path_start);
    }
  }
  if (size_t hash = target.find('#'); hash != std::string_view::npos)
    target = target.substr(0, hash);
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    out.has_query = true;
    out.query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  out.path = target;
  return out;
}

std::string RequestTargetParts::OriginForm() const {
  std::string out(path.empty() ? std::string_view("/") : path);
  if (has_query) {
    out.push_back('?');
    out.append(query);
  }
  return out;
}

}  // namespace tapkit
