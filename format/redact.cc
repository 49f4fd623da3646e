#include "format/redact.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "format/content_coding.h"
#include "format/http_text.h"

namespace tapkit {

namespace {

// `lower` (lower case) equals `s` ignoring ASCII case.
bool EqualsLower(std::string_view lower, std::string_view s) {
  return lower.size() == s.size() &&
         std::equal(lower.begin(), lower.end(), s.begin(), [](char a, char b) {
           return a == absl::ascii_tolower(static_cast<unsigned char>(b));
         });
}

bool ContainsLower(const std::vector<std::string>& lower, std::string_view s) {
  for (const std::string& l : lower) {
    if (EqualsLower(l, s)) return true;
  }
  return false;
}

// A field name or value as a lenient parser keeps it ("Authorization " before the colon; RFC
// 9112 section 5.1 says reject, servers that accept it still read it): compared trimmed.
std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

// The first Content-Type's media type (http_text.h).
std::string MediaType(const std::vector<Header>& hs) {
  for (const Header& h : hs) {
    if (EqualsLower("content-type", TrimBlanks(h.name))) return MediaTypeOf(h.value);
  }
  return "";
}

// Every Content-Encoding field's value, in order, joined as one list (RFC 9110 section 5.3).
std::string ContentEncodingOf(const std::vector<Header>& hs) {
  std::string out;
  for (const Header& h : hs) {
    if (EqualsLower("content-encoding", TrimBlanks(h.name))) {
      if (!out.empty()) out += ", ";
      out += h.value;
    }
  }
  return out;
}

// An array index token: "0", or digits without a leading zero (RFC 6901 section 4).
bool ArrayIndex(std::string_view t, size_t* out) {
  if (t.empty() || t.size() > 18 || (t.size() > 1 && t[0] == '0')) return false;
  size_t v = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<size_t>(c - '0');
  }
  *out = v;
  return true;
}

// Calls `fn` on every value `tokens[i..]` names below `node`. Recursion is bounded by the
// pointer's length, not by the document.
void Visit(nlohmann::ordered_json& node, const std::vector<std::string>& tokens, size_t i,
           const std::function<void(nlohmann::ordered_json&)>& fn) {
  if (i == tokens.size()) {
    fn(node);
    return;
  }
  const std::string& t = tokens[i];
  if (node.is_object()) {
    if (t == "*") {
      for (auto& [name, value] : node.items()) Visit(value, tokens, i + 1, fn);
    } else if (auto it = node.find(t); it != node.end()) {
      Visit(*it, tokens, i + 1, fn);
    }
  } else if (node.is_array()) {
    size_t index = 0;
    if (t == "*") {
      for (nlohmann::ordered_json& e : node) Visit(e, tokens, i + 1, fn);
    } else if (ArrayIndex(t, &index) && index < node.size()) {
      Visit(node[index], tokens, i + 1, fn);
    }
  }
}

bool IsUrlHeader(std::string_view name) {
  name = TrimBlanks(name);
  return EqualsLower("referer", name) || EqualsLower("location", name) ||
         EqualsLower("content-location", name);
}

std::vector<std::string> SplitCommas(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const std::string& v : values) {
    for (absl::string_view part : absl::StrSplit(v, ',')) {
      out.emplace_back(TrimBlanks(std::string_view(part.data(), part.size())));
    }
  }
  return out;
}

// The authority of a URL with one (RFC 3986 section 3.2: after "scheme://" or a leading "//"),
// as an offset and a length into `url`; false when it has none.
bool FindAuthority(std::string_view url, size_t* begin, size_t* length) {
  size_t start;
  if (url.starts_with("//")) {
    start = 2;
  } else {
    // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (section 3.1)
    size_t i = 0;
    while (i < url.size() && (absl::ascii_isalnum(static_cast<unsigned char>(url[i])) ||
                              url[i] == '+' || url[i] == '-' || url[i] == '.')) {
      ++i;
    }
    if (i == 0 || !absl::ascii_isalpha(static_cast<unsigned char>(url[0])) ||
        url.substr(i, 3) != "://") {
      return false;
    }
    start = i + 3;
  }
  size_t end = url.find_first_of("/?#", start);
  if (end == std::string_view::npos) end = url.size();
  *begin = start;
  *length = end - start;
  return true;
}

}  // namespace

bool IsRedactionMarker(std::string_view value) {
  if (value.size() != kRedactedPrefix.size() + 12 || !value.starts_with(kRedactedPrefix)) {
    return false;
  }
  for (char c : value.substr(kRedactedPrefix.size())) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

const std::vector<std::string>& DefaultRedactedHeaders() {
  static const std::vector<std::string> names = {
      "authorization", "proxy-authorization", "cookie",      "set-cookie",
      "x-api-key",     "x-auth-token",        "x-csrf-token"};
  return names;
}

const std::vector<std::string>& DefaultRedactedQueryParams() {
  static const std::vector<std::string> names = {"access_token", "token", "api_key",
                                                 "apikey",       "key",   "password",
                                                 "secret",       "sig",   "signature"};
  return names;
}

RedactionPolicy DefaultRedactionPolicy() {
  RedactionPolicy p;
  p.enabled = true;
  p.headers = DefaultRedactedHeaders();
  p.query_params = DefaultRedactedQueryParams();
  return p;
}

RedactionStats& RedactionStats::operator+=(const RedactionStats& o) {
  header_values += o.header_values;
  query_values += o.query_values;
  json_values += o.json_values;
  bodies_dropped += o.bodies_dropped;
  return *this;
}

absl::StatusOr<JsonPointer> ParseJsonPointer(std::string_view text) {
  JsonPointer p;
  p.text = std::string(text);
  if (text.empty()) return p;
  if (text[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "JSON pointer \"", p.text, "\": must be empty or start with \"/\" (RFC 6901 section 3)"));
  }
  std::string token;
  for (size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (c == '/') {
      p.tokens.push_back(std::move(token));
      token.clear();
    } else if (c == '~') {
      char next = i + 1 < text.size() ? text[i + 1] : '\0';
      if (next != '0' && next != '1') {
        return absl::InvalidArgumentError(
            absl::StrCat("JSON pointer \"", p.text, "\": offset ", i,
                         ": \"~\" must be followed by 0 or 1 (RFC 6901 section 3)"));
      }
      token.push_back(next == '0' ? '~' : '/');
      ++i;
    } else {
      token.push_back(c);
    }
  }
  p.tokens.push_back(std::move(token));
  return p;
}

Redactor::Redactor(RedactionRules rules, std::string key)
    : headers_(rules.headers.empty() ? DefaultRedactedHeaders() : std::move(rules.headers)),
      query_params_(std::move(rules.query_params)),
      json_fields_(std::move(rules.json_fields)),
      decode_cap_(rules.decode_cap),
      key_(std::move(key)),
      keyed_(!key_.empty()) {
  for (std::string& h : headers_) absl::AsciiStrToLower(&h);
  for (std::string& q : query_params_) absl::AsciiStrToLower(&q);
  if (key_.empty()) {
    key_.resize(32);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(key_.data()), 32) != 1) {
      std::random_device rd;  // OpenSSL's generator failed: the kernel's, through the library
      for (char& c : key_) c = static_cast<char>(rd());
    }
  }
}

RedactionPolicy Redactor::policy() const {
  RedactionPolicy p;
  p.enabled = true;
  p.headers = headers_;
  p.keyed = keyed_;
  p.query_params = query_params_;
  for (const JsonPointer& j : json_fields_) p.json_fields.push_back(j.text);
  return p;
}

bool Redactor::Secret(std::string_view name) const {
  return ContainsLower(headers_, TrimBlanks(name));
}

bool Redactor::SecretParam(std::string_view decoded_name) const {
  return ContainsLower(query_params_, decoded_name);
}

std::string Redactor::Redact(std::string_view value) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(value.data()), value.size(), mac, &len);
  static const char kHex[] = "0123456789abcdef";
  std::string out(kRedactedPrefix);
  for (unsigned i = 0; i < 6 && i < len; ++i) {
    out.push_back(kHex[mac[i] >> 4]);
    out.push_back(kHex[mac[i] & 15]);
  }
  return out;
}

bool Redactor::RedactQuery(std::string* query, RedactionStats* stats) const {
  if (query_params_.empty() || query->empty()) return false;
  std::string out;
  out.reserve(query->size() + 32);
  bool changed = false;
  std::string_view q = *query;
  for (size_t pos = 0;;) {
    size_t amp = q.find('&', pos);
    std::string_view piece = q.substr(pos, amp == std::string_view::npos ? amp : amp - pos);
    // NAME=VALUE with a value (an empty one hides nothing), not a marker already.
    size_t eq = piece.find('=');
    bool secret = eq != std::string_view::npos && eq + 1 < piece.size() &&
                  SecretParam(FormDecode(piece.substr(0, eq)));
    std::string value = secret ? FormDecode(piece.substr(eq + 1)) : std::string();
    if (secret && !IsRedactionMarker(value)) {
      out.append(piece.substr(0, eq + 1));
      out += Redact(value);
      ++stats->query_values;
      changed = true;
    } else {
      out.append(piece);
    }
    if (amp == std::string_view::npos) break;
    out.push_back('&');
    pos = amp + 1;
  }
  if (changed) *query = std::move(out);
  return changed;
}

bool Redactor::RedactUserinfo(std::string* url, RedactionStats* stats) const {
  size_t begin = 0, length = 0;
  if (!FindAuthority(*url, &begin, &length)) return false;
  std::string_view authority = std::string_view(*url).substr(begin, length);
  size_t at = authority.rfind('@');
  if (at == std::string_view::npos) return false;
  std::string_view userinfo = authority.substr(0, at);
  size_t colon = userinfo.find(':');
  if (colon == std::string_view::npos || colon + 1 == userinfo.size()) return false;
  std::string password(userinfo.substr(colon + 1));
  if (IsRedactionMarker(password)) return false;
  url->replace(begin + colon + 1, at - colon - 1, Redact(password));
  ++stats->query_values;
  return true;
}

bool Redactor::RedactUrl(std::string* url, RedactionStats* stats) const {
  RedactionStats ignored;
  if (!stats) stats = &ignored;
  bool changed = RedactUserinfo(url, stats);
  if (query_params_.empty()) return changed;
  // The query (RFC 3986 section 3.4), then the fragment (section 3.5), which carries parameters
  // too in redirects (OAuth 2.0's implicit grant puts access_token there, RFC 6749 4.2.2).
  size_t question = url->find('?');
  size_t hash = url->find('#');
  if (question != std::string::npos && (hash == std::string::npos || question < hash)) {
    size_t end = hash == std::string::npos ? url->size() : hash;
    std::string q = url->substr(question + 1, end - question - 1);
    if (RedactQuery(&q, stats)) {
      url->replace(question + 1, end - question - 1, q);
      changed = true;
    }
  }
  hash = url->find('#');
  if (hash != std::string::npos) {
    std::string f = url->substr(hash + 1);
    if (RedactQuery(&f, stats)) {
      url->replace(hash + 1, std::string::npos, f);
      changed = true;
    }
  }
  return changed;
}

void Redactor::RedactBody(Body* body, std::vector<Header>* headers, std::string_view which,
                          Exchange* x, RedactionStats* stats) const {
  const bool want_json = !json_fields_.empty(), want_form = !query_params_.empty();
  if ((!want_json && !want_form) || body->data.empty()) return;
  const std::string type = MediaType(*headers);
  const bool json_type = IsJsonMediaType(type);
  const bool form_type = type == "application/x-www-form-urlencoded";
  if (form_type ? !want_form : !want_json) return;
  const std::string coding = ContentEncodingOf(*headers);
  const bool cut = body->cut();

  // Why a cut body cannot be checked: how much of it was stored (the body limit, a gap, an early
  // answer or the end of the capture may have cut it; the exchange's completion says which).
  auto CutWhy = [&](std::string_view what) {
    std::string stored =
        body->length > body->data.size()
            ? absl::StrCat("stored ", body->data.size(), " of ", body->length, " bytes")
            : absl::StrCat("stored ", body->data.size(), " bytes, the rest not seen");
    return absl::StrCat(std::string(what), " cut short (", stored, ") cannot be checked whole");
  };
  auto drop = [&](std::string_view why) {
    body->data.clear();
    body->truncated = true;
    ++stats->bodies_dropped;
    std::string note =
        absl::StrCat(std::string(which), " body dropped by redaction: ", std::string(why));
    x->reason = x->reason.empty() ? note : absl::StrCat(x->reason, "; ", note);
  };
  auto decode_error = [&](const absl::Status& s) {
    return s.code() == absl::StatusCode::kResourceExhausted
               ? absl::StrCat("it decodes to more than the cap of ", decode_cap_, " bytes")
               : absl::StrCat("it does not decode (", s.message(), ")");
  };
  // The redacted text, encoded as the body was, becomes the body.
  auto replace = [&](const std::string& text) {
    std::string encoded = text;
    if (!coding.empty()) {
      absl::StatusOr<std::string> e = EncodeContent(text, coding);
      if (!e.ok())
        return drop(absl::StrCat("it cannot be encoded again (", e.status().message(), ")"));
      encoded = *std::move(e);
    }
    body->data = std::move(encoded);
    body->length = body->data.size();
    body->truncated = false;
    for (Header& h : *headers) {
      if (EqualsLower("content-length", TrimBlanks(h.name))) h.value = std::to_string(body->length);
    }
  };

  absl::StatusOr<DecodedContent> decoded = DecodeContent(body->data, coding, decode_cap_);
  if (form_type) {
    if (cut) return drop(CutWhy("a form"));
    if (!decoded.ok()) return drop(decode_error(decoded.status()));
    if (!decoded->complete) return drop("its coded stream ends early");
    std::string text = std::move(decoded->data);
    if (RedactQuery(&text, stats)) replace(text);
    return;
  }
  if (!json_type) {
    // Another type: examined when it decodes and looks like JSON.
    if (!decoded.ok()) {
      if (decoded.status().code() == absl::StatusCode::kResourceExhausted) {
        drop(decode_error(decoded.status()));
      }
      return;
    }
    if (!LooksLikeJson(decoded->data)) return;
  } else if (!decoded.ok()) {
    return drop(decode_error(decoded.status()));
  }
  if (cut || !decoded->complete) {
    return drop(CutWhy("a JSON body"));
  }
  switch (CheckJsonText(decoded->data)) {
    case JsonText::kOk:
      break;
    case JsonText::kDuplicateNames:
      // nlohmann keeps the last of a repeated name, so the earlier one (and a secret in it)
      // would be neither seen by the pointers nor written back: what was stored would stay.
      return drop("an object in its JSON repeats a member name");
    case JsonText::kNotJson:
      return drop("it does not parse as JSON");
    case JsonText::kTooDeep:
      return drop(absl::StrCat("its JSON nests deeper than ", kMaxJsonDepth, " levels"));
    case JsonText::kTooManyMembers:
      return drop(
          absl::StrCat("an object in its JSON has more than ", kMaxJsonMembers, " members"));
  }
  nlohmann::ordered_json doc =
      nlohmann::ordered_json::parse(decoded->data, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return drop("it does not parse as JSON");
  uint64_t n = 0;
  for (const JsonPointer& p : json_fields_) {
    Visit(doc, p.tokens, 0, [&](nlohmann::ordered_json& v) {
      if (v.is_string() && IsRedactionMarker(v.get_ref<const std::string&>())) return;
      std::string plain =
          v.is_string() ? v.get_ref<const std::string&>()
                        : v.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
      v = Redact(plain);
      ++n;
    });
  }
  if (n == 0) return;
  stats->json_values += n;
  replace(doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

size_t Redactor::Apply(Exchange* x, RedactionStats* stats) const {
  RedactionStats st;
  auto list = [&](std::vector<Header>& hs) {
    for (Header& h : hs) {
      if (Secret(h.name)) {
        if (!IsRedactionMarker(h.value)) {
          h.value = Redact(h.value);
          ++st.header_values;
        }
      } else if (IsUrlHeader(h.name)) {
        RedactUrl(&h.value, &st);
      }
    }
  };
  if (x->request) {
    list(x->request->headers);
    list(x->request->trailers);
    RedactUrl(&x->request->path, &st);
  }
  for (InterimResponse& i : x->interim) list(i.headers);
  if (x->response) {
    list(x->response->headers);
    list(x->response->trailers);
  }
  if (x->request) RedactBody(&x->request->body, &x->request->headers, "request", x, &st);
  if (x->response) RedactBody(&x->response->body, &x->response->headers, "response", x, &st);
  if (stats) *stats += st;
  return st.header_values + st.query_values + st.json_values;
}

bool RedactionEnabled(const RedactionFlags& f) {
  if (f.no_redact) return false;
  return f.on_by_default || f.redact || !f.headers.empty() || !f.query_params.empty() ||
         !f.json_fields.empty() || !f.key_file.empty();
}

namespace {

// Checks `f` and, when `rules`, fills them in.
absl::Status CheckFlags(const RedactionFlags& f, RedactionRules* rules) {
  if (f.no_redact) {
    const std::pair<const char*, bool> given[] = {{"--redact-key-file", !f.key_file.empty()},
                                                  {"--redact-header", !f.headers.empty()},
                                                  {"--redact-query-param", !f.query_params.empty()},
                                                  {"--redact-json-field", !f.json_fields.empty()}};
    for (const auto& [flag, yes] : given) {
      if (yes) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, " goes with redaction; --no-redact turns it off"));
      }
    }
    if (f.redact) return absl::InvalidArgumentError("--redact and --no-redact: give one");
    return absl::OkStatus();
  }
  RedactionRules r;
  r.headers = DefaultRedactedHeaders();
  for (const std::string& h : SplitCommas(f.headers)) {
    if (!IsToken(h)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--redact-header \"", absl::CHexEscape(h),
                       "\": not a header field name (a token, RFC 9110 section 5.6.2)"));
    }
    if (!ContainsLower(r.headers, h)) r.headers.push_back(absl::AsciiStrToLower(h));
  }
  r.query_params = DefaultRedactedQueryParams();
  for (const std::string& q : SplitCommas(f.query_params)) {
    if (q.empty()) {
      return absl::InvalidArgumentError("--redact-query-param: an empty parameter name");
    }
    if (!ContainsLower(r.query_params, q)) r.query_params.push_back(absl::AsciiStrToLower(q));
  }
  for (const std::string& text : f.json_fields) {
    absl::StatusOr<JsonPointer> p = ParseJsonPointer(text);
    if (!p.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--redact-json-field ", p.status().message()));
    }
    bool seen = false;
    for (const JsonPointer& q : r.json_fields) seen = seen || q.text == p->text;
    if (!seen) r.json_fields.push_back(*std::move(p));
  }
  if (rules) *rules = std::move(r);
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckRedactionFlags(const RedactionFlags& f) { return CheckFlags(f, nullptr); }

absl::StatusOr<std::optional<Redactor>> BuildRedactor(const RedactionFlags& f) {
  RedactionRules rules;
  if (absl::Status s = CheckFlags(f, &rules); !s.ok()) return s;
  if (!RedactionEnabled(f)) return std::optional<Redactor>();
  std::string key;
  if (!f.key_file.empty()) {
    absl::StatusOr<std::string> k = ReadRedactionKey(f.key_file);
    if (!k.ok()) {
      return absl::Status(k.status().code(),
                          absl::StrCat("--redact-key-file ", k.status().message()));
    }
    key = *std::move(k);
  }
  return std::optional<Redactor>(Redactor(std::move(rules), std::move(key)));
}

absl::StatusOr<std::string> ReadRedactionKey(const std::string& path) {
  constexpr size_t kMinKey = 16, kMaxKey = 64 << 10;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    return absl::PermissionDeniedError(absl::StrCat(path, ": ", std::strerror(e)));
  }
  auto fail = [fd](absl::Status s) {
    ::close(fd);
    return s;
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return fail(absl::PermissionDeniedError(absl::StrCat(path, ": ", std::strerror(errno))));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file")));
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return fail(absl::PermissionDeniedError(absl::StrCat(
        path, ": owned by uid ", st.st_uid, ", not by uid ", ::geteuid(), " (this user) or root")));
  }
  if (st.st_mode & 077) {
    return fail(absl::PermissionDeniedError(
        absl::StrCat(path, ": mode ", absl::StrFormat("%04o", st.st_mode & 07777),
                     ": group or others can read or write the key; chmod 600 it")));
  }
  std::string key;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return fail(absl::PermissionDeniedError(absl::StrCat(path, ": ", std::strerror(errno))));
    if (n == 0) break;
    key.append(buf, static_cast<size_t>(n));
    if (key.size() > kMaxKey) break;
  }
  ::close(fd);
  if (key.size() < kMinKey || key.size() > kMaxKey) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a redaction key is 16 bytes to 64 KiB, the file has ",
                     key.size() > kMaxKey ? std::string("more") : std::to_string(key.size())));
  }
  return key;
}

}  // namespace tapkit
