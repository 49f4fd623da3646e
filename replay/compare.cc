#include "replay/compare.h"

#include <fcntl.h>
#include <re2/re2.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "dtl/dtl.hpp"
#include "format/content_coding.h"
#include "format/http_text.h"
#include "format/redact.h"
#include "format/select.h"
#include "format/verbose.h"

namespace tapkit::replay {

const std::vector<std::string>& DefaultIgnoredHeaders() {
  static const std::vector<std::string> kNames = {
      // Volatile by nature: the time of the answer and caches' views of it.
      "date", "age", "expires", "last-modified", "etag",
      // Who answered and how long it took.
      "server", "via", "x-powered-by", "x-runtime", "x-response-time", "server-timing",
      "x-envoy-upstream-service-time", "cf-ray",
      // Per-request ids and tracing (W3C Trace Context, Zipkin B3, AWS X-Ray).
      "x-request-id", "x-correlation-id", "x-trace-id", "traceparent", "tracestate", "x-b3-traceid",
      "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3", "x-amzn-trace-id",
      "x-amzn-requestid",
      // Framing that follows the body (RFC 9110 section 8.6, RFC 9112 section 6 and 9.6).
      "content-length", "transfer-encoding", "connection", "keep-alive"};
  return kNames;
}

namespace {

// Debian's abseil has a string_view of its own.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }
// And RE2 its own StringPiece.
re2::StringPiece SP(std::string_view s) { return re2::StringPiece(s.data(), s.size()); }

// A rule's JSON pointer matches a document position when every token matches ("*" any).
bool PointerMatches(const JsonPointer& p, const std::vector<std::string>& path) {
  if (p.tokens.size() != path.size()) return false;
  for (size_t i = 0; i < path.size(); ++i) {
    if (p.tokens[i] != "*" && p.tokens[i] != path[i]) return false;
  }
  return true;
}

// The RFC 6901 text of a document position ("~" as "~0", "/" as "~1": section 3), by
// nlohmann's json_pointer.
std::string PointerText(const std::vector<std::string>& path) {
  nlohmann::json::json_pointer p;
  for (const std::string& t : path) p /= t;
  return p.to_string();
}

// One compiled set of noise rules.
struct CompiledRules {
  std::vector<std::string> ignore_header_names;  // lower case
  std::vector<std::unique_ptr<RE2>> ignore_header_regexes;
  std::vector<JsonPointer> ignore_json_paths;
  std::vector<JsonPointer> unordered_json_paths;
  std::vector<std::pair<std::string, std::unique_ptr<RE2>>> header_patterns;  // lower-case name
  std::vector<std::pair<JsonPointer, std::unique_ptr<RE2>>> json_patterns;
  bool ignore_status = false;
  bool ignore_body = false;
};

struct RouteRules {
  std::optional<std::string> method;
  std::unique_ptr<RE2> path;
  CompiledRules rules;
};

absl::StatusOr<std::unique_ptr<RE2>> CompileRegex(const std::string& regex,
                                                  const std::string& where) {
  RE2::Options opts;
  opts.set_log_errors(false);
  auto re = std::make_unique<RE2>(regex, opts);
  if (!re->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": bad regex \"", absl::CHexEscape(regex), "\": ", re->error()));
  }
  return re;
}

// Compiles one NoiseRules; `where(key, i)` names element i of key (a flag or a file place).
absl::StatusOr<CompiledRules> Compile(
    const NoiseRules& in, const std::function<std::string(std::string_view, size_t)>& where) {
  CompiledRules out;
  out.ignore_status = in.ignore_status;
  out.ignore_body = in.ignore_body;
  for (size_t i = 0; i < in.ignore_headers.size(); ++i) {
    const std::string& h = in.ignore_headers[i];
    if (h.size() >= 2 && h.front() == '/' && h.back() == '/') {
      absl::StatusOr<std::unique_ptr<RE2>> re =
          CompileRegex(h.substr(1, h.size() - 2), where("ignore_headers", i));
      if (!re.ok()) return re.status();
      out.ignore_header_regexes.push_back(*std::move(re));
    } else if (!IsToken(h)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where("ignore_headers", i), ": \"", absl::CHexEscape(h),
                       "\" is neither a header field name (RFC 9110 section 5.1) nor a /REGEX/"));
    } else {
      out.ignore_header_names.push_back(absl::AsciiStrToLower(h));
    }
  }
  auto pointers = [&](const std::vector<std::string>& texts, std::string_view key,
                      std::vector<JsonPointer>* dst) -> absl::Status {
    for (size_t i = 0; i < texts.size(); ++i) {
      absl::StatusOr<JsonPointer> p = ParseJsonPointer(texts[i]);
      if (!p.ok())
        return absl::InvalidArgumentError(absl::StrCat(where(key, i), ": ", p.status().message()));
      dst->push_back(*std::move(p));
    }
    return absl::OkStatus();
  };
  if (absl::Status s = pointers(in.ignore_json_paths, "ignore_json_paths", &out.ignore_json_paths);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          pointers(in.unordered_json_paths, "unordered_json_paths", &out.unordered_json_paths);
      !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < in.header_patterns.size(); ++i) {
    const auto& [name, regex] = in.header_patterns[i];
    if (!IsToken(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where("header_patterns", i), ": \"", absl::CHexEscape(name),
                       "\" is not a header field name (RFC 9110 section 5.1)"));
    }
    absl::StatusOr<std::unique_ptr<RE2>> re = CompileRegex(regex, where("header_patterns", i));
    if (!re.ok()) return re.status();
    out.header_patterns.emplace_back(absl::AsciiStrToLower(name), *std::move(re));
  }
  for (size_t i = 0; i < in.json_patterns.size(); ++i) {
    const auto& [pointer, regex] = in.json_patterns[i];
    absl::StatusOr<JsonPointer> p = ParseJsonPointer(pointer);
    if (!p.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where("json_patterns", i), ": ", p.status().message()));
    }
    absl::StatusOr<std::unique_ptr<RE2>> re = CompileRegex(regex, where("json_patterns", i));
    if (!re.ok()) return re.status();
    out.json_patterns.emplace_back(*std::move(p), *std::move(re));
  }
  return out;
}

// ---- The rules file ----

int LineOf(const YAML::Node& node) {
  YAML::Mark mark = node.Mark();
  return mark.is_null() ? 0 : mark.line + 1;
}

const char* TypeWord(const YAML::Node& node) {
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  if (node.IsScalar()) return "a scalar";
  return "null";
}

class RulesFileParser {
 public:
  explicit RulesFileParser(std::string file) : file_(std::move(file)) {}

  // "FILE:LINE: KEY" for the node `at`.
  std::string Where(const YAML::Node& at, std::string_view key) const {
    int line = LineOf(at);
    return absl::StrCat(file_, line > 0 ? absl::StrCat(":", line) : "", ": ", AV(key));
  }
  absl::Status Error(const YAML::Node& at, std::string_view key, std::string_view problem) const {
    return absl::InvalidArgumentError(absl::StrCat(Where(at, key), ": ", AV(problem)));
  }
  // yaml-cpp keeps every pair of a mapping, duplicates too; a key seen before in the same
  // mapping (`seen`: key -> line) is an error naming both lines. `key` names the place.
  absl::Status Duplicate(const YAML::Node& key_node, std::string_view key,
                         std::map<std::string, int>* seen) const {
    auto [it, fresh] = seen->emplace(key_node.Scalar(), LineOf(key_node));
    if (fresh) return absl::OkStatus();
    return Error(key_node, key,
                 it->second > 0 ? absl::StrCat("duplicate key (first on line ", it->second, ")")
                                : std::string("duplicate key"));
  }

  // One block of rules (global, a route, an exchange); `extra` are the keys the block may have
  // besides the rules' (route: method, path; exchange: id), handed to `on_extra`.
  absl::Status Block(
      const YAML::Node& node, std::string_view where, const std::vector<std::string>& extra,
      const std::function<absl::Status(const std::string&, const YAML::Node&)>& on_extra,
      CompiledRules* out) {
    if (!node.IsMap()) {
      return Error(node, where, absl::StrCat("must be a mapping, not ", TypeWord(node)));
    }
    NoiseRules rules;
    std::map<std::string, int> lines;  // rule key -> line, for errors Compile finds
    std::map<std::string, std::vector<int>> element_lines;
    std::map<std::string, int> seen;
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) return Error(kv.first, where, "a key must be a string");
      const std::string key = kv.first.Scalar();
      const YAML::Node& v = kv.second;
      std::string at = absl::StrCat(AV(where), ".", key);
      if (absl::Status s = Duplicate(kv.first, at, &seen); !s.ok()) return s;
      lines[key] = LineOf(kv.first);
      auto list = [&](std::vector<std::string>* dst) -> absl::Status {
        if (!v.IsSequence()) return Error(v, at, absl::StrCat("must be a list, not ", TypeWord(v)));
        for (const auto& e : v) {
          if (!e.IsScalar()) {
            return Error(e, at, absl::StrCat("elements must be strings, not ", TypeWord(e)));
          }
          dst->push_back(e.Scalar());
          element_lines[key].push_back(LineOf(e));
        }
        return absl::OkStatus();
      };
      auto map = [&](std::vector<std::pair<std::string, std::string>>* dst) -> absl::Status {
        if (!v.IsMap()) return Error(v, at, absl::StrCat("must be a mapping, not ", TypeWord(v)));
        std::map<std::string, int> names;
        for (const auto& e : v) {
          if (!e.first.IsScalar() || !e.second.IsScalar()) {
            return Error(e.first, at, "keys and values must be strings");
          }
          absl::Status dup = Duplicate(e.first, absl::StrCat(at, ".", e.first.Scalar()), &names);
          if (!dup.ok()) return dup;
          dst->emplace_back(e.first.Scalar(), e.second.Scalar());
          element_lines[key].push_back(LineOf(e.first));
        }
        return absl::OkStatus();
      };
      auto boolean = [&](bool* dst) -> absl::Status {
        if (!v.IsScalar() || (v.Scalar() != "true" && v.Scalar() != "false")) {
          return Error(v, at, "must be true or false");
        }
        *dst = v.Scalar() == "true";
        return absl::OkStatus();
      };
      absl::Status s;
      if (key == "ignore_headers") {
        s = list(&rules.ignore_headers);
      } else if (key == "ignore_json_paths") {
        s = list(&rules.ignore_json_paths);
      } else if (key == "unordered_json_paths") {
        s = list(&rules.unordered_json_paths);
      } else if (key == "header_patterns") {
        s = map(&rules.header_patterns);
      } else if (key == "json_patterns") {
        s = map(&rules.json_patterns);
      } else if (key == "ignore_status") {
        s = boolean(&rules.ignore_status);
      } else if (key == "ignore_body") {
        s = boolean(&rules.ignore_body);
      } else if (std::find(extra.begin(), extra.end(), key) != extra.end()) {
        s = on_extra(key, v);
      } else {
        return Error(kv.first, at, "unknown key");
      }
      if (!s.ok()) return s;
    }
    absl::StatusOr<CompiledRules> compiled =
        Compile(rules, [&](std::string_view key, size_t i) -> std::string {
          std::string k(key);
          const std::vector<int>& el = element_lines[k];
          int line = i < el.size() ? el[i] : lines[k];
          return absl::StrCat(file_, line > 0 ? absl::StrCat(":", line) : "", ": ", AV(where), ".",
                              AV(key));
        });
    if (!compiled.ok()) return compiled.status();
    *out = *std::move(compiled);
    return absl::OkStatus();
  }

 private:
  std::string file_;
};

std::string IdText(uint32_t cp, uint64_t stream) { return absl::StrCat(cp, ":", stream); }

// Lower-case name -> values in order.
std::map<std::string, std::vector<std::string>> ByName(const std::vector<Header>& headers) {
  std::map<std::string, std::vector<std::string>> out;
  for (const Header& h : headers) out[absl::AsciiStrToLower(h.name)].push_back(h.value);
  return out;
}

std::string JoinedField(const std::vector<Header>& headers, std::string_view lower_name) {
  std::vector<std::string> values;
  for (const Header& h : headers) {
    if (absl::EqualsIgnoreCase(h.name, AV(lower_name))) values.push_back(h.value);
  }
  return absl::StrJoin(values, ", ");
}

// The cookie name of a Set-Cookie value (RFC 6265 section 4.1.1: before the first "=").
std::string CookieName(std::string_view v) {
  size_t eq = v.find('=');
  return std::string(
      absl::StripAsciiWhitespace(AV(v.substr(0, eq == std::string_view::npos ? 0 : eq))));
}

// Pairs the recorded values with the live ones, each used once: `same` pairs first, then
// `loose` ones (patterns, markers). True when every value on both sides found a partner.
template <typename Same, typename Loose>
bool MultisetMatch(const std::vector<std::string>& rec, const std::vector<std::string>& live,
                   const Same& same, const Loose& loose) {
  if (rec.size() != live.size()) return false;
  std::vector<bool> rec_used(rec.size()), live_used(live.size());
  for (size_t i = 0; i < rec.size(); ++i) {
    for (size_t j = 0; j < live.size(); ++j) {
      if (!live_used[j] && same(rec[i], live[j])) {
        rec_used[i] = live_used[j] = true;
        break;
      }
    }
  }
  for (size_t i = 0; i < rec.size(); ++i) {
    if (rec_used[i]) continue;
    bool found = false;
    for (size_t j = 0; j < live.size() && !found; ++j) {
      if (!live_used[j] && loose(rec[i], live[j])) live_used[j] = found = true;
    }
    if (!found) return false;
  }
  return true;
}

// The list elements of a combined field value (RFC 9110 section 5.6.1): split at the commas
// outside quoted strings (section 5.6.4, with its quoted-pairs), optional whitespace around each
// element trimmed, empty elements dropped (5.6.1: a recipient ignores them).
std::vector<std::string_view> FieldElements(std::string_view v) {
  std::vector<std::string_view> out;
  auto add = [&](std::string_view e) {
    size_t b = e.find_first_not_of(" \t");
    if (b == std::string_view::npos) return;
    size_t last = e.find_last_not_of(" \t");
    out.push_back(e.substr(b, last - b + 1));
  };
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (quoted) {
      if (c == '\\') {
        ++i;  // a quoted-pair: the next byte is literal
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      add(v.substr(start, i - start));
      start = i + 1;
    }
  }
  if (start < v.size()) add(v.substr(start));
  return out;
}

// The fields whose values redaction rewrites inside, as URLs (format/redact.h: their query
// parameters and userinfo passwords), rather than as whole values.
bool IsUrlField(std::string_view lower_name) {
  return lower_name == "location" || lower_name == "content-location" || lower_name == "referer";
}

// A marker inside a URL as Redactor::RedactUrl writes it: after "NAME=" and up to "&", "#" or
// the end (a query or fragment parameter's value), or after "user:" up to "@" (a password).
struct UrlMarker {
  size_t at = 0;           // offset of kRedactedPrefix
  size_t end = 0;          // offset past the marker
  bool password = false;   // a userinfo password, else a parameter value
  std::string param_name;  // a parameter's name, form-decoded
};

std::vector<UrlMarker> UrlMarkers(std::string_view url) {
  std::vector<UrlMarker> out;
  constexpr size_t kMarkerSize = kRedactedPrefix.size() + 12;
  for (size_t at = url.find(kRedactedPrefix); at != std::string_view::npos;
       at = url.find(kRedactedPrefix, at + 1)) {
    if (at == 0 || url.size() - at < kMarkerSize) continue;
    if (!IsRedactionMarker(url.substr(at, kMarkerSize))) continue;
    size_t end = at + kMarkerSize;
    char before = url[at - 1];
    char after = end < url.size() ? url[end] : '&';
    UrlMarker m{at, end, false, {}};
    if (before == '=' && (after == '&' || after == '#')) {
      // Only in the query or the fragment (RFC 3986 sections 3.4, 3.5), as RedactUrl does.
      size_t query = url.find_first_of("?#");
      if (query == std::string_view::npos || query > at) continue;
      size_t piece = url.find_last_of("?&#", at - 1);
      std::string_view name = url.substr(piece + 1, at - 1 - (piece + 1));
      if (name.find('=') != std::string_view::npos) continue;  // the marker is not the value
      m.param_name = FormDecode(name);
    } else if (before == ':' && after == '@') {
      m.password = true;
    } else {
      continue;
    }
    out.push_back(std::move(m));
  }
  return out;
}

// GNU diff's rule for a binary file: a NUL byte.
bool LooksBinary(std::string_view s) { return s.find('\0') != std::string_view::npos; }

std::string Preview(std::string_view s) {
  constexpr size_t kPreview = 64;
  std::string out = absl::CHexEscape(AV(s.substr(0, kPreview)));
  if (s.size() > kPreview) out += "...";
  return absl::StrCat(out, " (", s.size(), " bytes)");
}

// A binary body as tapcat -V shows it (hexdump -C's lines), so a diff of two dumps lines up.
std::string TextForDiff(std::string_view s) {
  if (!LooksBinary(s)) return std::string(s);
  std::string out;
  AppendHexDump(s, "", &out);
  return out;
}

// A body as JSON when its type says so or it looks like it, and it is JSON text within the
// limits with distinct member names (else nullopt: compared as bytes).
std::optional<nlohmann::json> AsJson(std::string_view decoded, const std::vector<Header>& headers) {
  if (!IsJsonMediaType(MediaTypeOf(JoinedField(headers, "content-type"))) &&
      !LooksLikeJson(decoded)) {
    return std::nullopt;
  }
  if (CheckJsonText(decoded) != JsonText::kOk) return std::nullopt;
  nlohmann::json doc = nlohmann::json::parse(decoded, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return std::nullopt;
  return doc;
}

std::string Compact(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Pretty(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

class ComparerImpl;

// The rules that apply to one exchange, and the JSON walk under them.
class Applied {
 public:
  Applied(const ComparerImpl& c, std::vector<const CompiledRules*> rules)
      : c_(c), rules_(std::move(rules)) {}

  bool IgnoreStatus() const {
    return std::any_of(rules_.begin(), rules_.end(), [](auto* r) { return r->ignore_status; });
  }
  bool IgnoreBody() const {
    return std::any_of(rules_.begin(), rules_.end(), [](auto* r) { return r->ignore_body; });
  }
  bool IgnoredHeader(const std::string& lower) const {
    for (const CompiledRules* r : rules_) {
      for (const std::string& n : r->ignore_header_names) {
        if (n == lower) return true;
      }
      for (const auto& re : r->ignore_header_regexes) {
        if (RE2::FullMatch(lower, *re)) return true;
      }
    }
    return false;
  }
  const RE2* HeaderPattern(const std::string& lower) const {
    for (const CompiledRules* r : rules_) {
      for (const auto& [n, re] : r->header_patterns) {
        if (n == lower) return re.get();
      }
    }
    return nullptr;
  }
  bool IgnoredPath(const std::vector<std::string>& path) const {
    for (const CompiledRules* r : rules_) {
      for (const JsonPointer& p : r->ignore_json_paths) {
        if (PointerMatches(p, path)) return true;
      }
    }
    return false;
  }
  bool Unordered(const std::vector<std::string>& path) const {
    for (const CompiledRules* r : rules_) {
      for (const JsonPointer& p : r->unordered_json_paths) {
        if (PointerMatches(p, path)) return true;
      }
    }
    return false;
  }
  const RE2* JsonPattern(const std::vector<std::string>& path) const {
    for (const CompiledRules* r : rules_) {
      for (const auto& [p, re] : r->json_patterns) {
        if (PointerMatches(p, path)) return re.get();
      }
    }
    return nullptr;
  }

  bool MarkerMatches(std::string_view marker, std::string_view live) const;

  // Appends a FieldDiff for each differing leaf under `path`.
  void Json(const nlohmann::json* rec, const nlohmann::json* live, std::vector<std::string>* path,
            std::vector<FieldDiff>* out) const {
    if (IgnoredPath(*path)) return;
    if (rec && live) {
      if (rec->is_object() && live->is_object()) {
        auto ri = rec->begin(), li = live->begin();  // both in key order (std::map)
        while (ri != rec->end() || li != live->end()) {
          bool take_r = li == live->end() || (ri != rec->end() && ri.key() <= li.key());
          bool take_l = ri == rec->end() || (li != live->end() && li.key() <= ri.key());
          path->push_back(take_r ? ri.key() : li.key());
          Json(take_r ? &ri.value() : nullptr, take_l ? &li.value() : nullptr, path, out);
          path->pop_back();
          if (take_r) ++ri;
          if (take_l) ++li;
        }
        return;
      }
      if (rec->is_array() && live->is_array()) {
        if (Unordered(*path)) {
          UnorderedArray(*rec, *live, path, out);
          return;
        }
        for (size_t i = 0; i < std::max(rec->size(), live->size()); ++i) {
          path->push_back(std::to_string(i));
          Json(i < rec->size() ? &(*rec)[i] : nullptr, i < live->size() ? &(*live)[i] : nullptr,
               path, out);
          path->pop_back();
        }
        return;
      }
      if (LeafEqual(*rec, *live, *path)) return;
    }
    out->push_back(FieldDiff{FieldDiff::Kind::kJsonValue, "body " + PointerText(*path),
                             rec ? std::optional(Compact(*rec)) : std::nullopt,
                             live ? std::optional(Compact(*live)) : std::nullopt});
  }

 private:
  static std::optional<std::string> ScalarText(const nlohmann::json& j) {
    if (j.is_string()) return j.get<std::string>();
    if (j.is_structured()) return std::nullopt;
    return Compact(j);
  }

  bool LeafEqual(const nlohmann::json& rec, const nlohmann::json& live,
                 const std::vector<std::string>& path) const {
    if (rec == live) return true;
    if (rec.is_string() && IsRedactionMarker(rec.get_ref<const std::string&>())) {
      // Redaction's marker of a string is of its text; of anything else, of its compact JSON.
      if (live.is_string()) {
        return MarkerMatches(rec.get_ref<const std::string&>(), live.get_ref<const std::string&>());
      }
      return MarkerMatches(rec.get_ref<const std::string&>(), Compact(live));
    }
    if (const RE2* re = JsonPattern(path)) {
      std::optional<std::string> a = ScalarText(rec), b = ScalarText(live);
      return a && b && RE2::FullMatch(*a, *re) && RE2::FullMatch(*b, *re);
    }
    return false;
  }

  void UnorderedArray(const nlohmann::json& rec, const nlohmann::json& live,
                      std::vector<std::string>* path, std::vector<FieldDiff>* out) const {
    std::vector<bool> live_used(live.size());
    std::vector<size_t> rec_left;
    // Equal elements first (by their compact text: nlohmann's objects are sorted, so equal
    // values print alike; n log n), then elements equal under the rules (patterns, markers,
    // ignores), pair by pair.
    std::multimap<std::string, size_t> live_by_text;
    for (size_t j = 0; j < live.size(); ++j) live_by_text.emplace(Compact(live[j]), j);
    for (size_t i = 0; i < rec.size(); ++i) {
      auto it = live_by_text.find(Compact(rec[i]));
      if (it == live_by_text.end()) {
        rec_left.push_back(i);
        continue;
      }
      live_used[it->second] = true;
      live_by_text.erase(it);
    }
    std::vector<size_t> rec_unmatched;
    for (size_t i : rec_left) {
      bool found = false;
      path->push_back(std::to_string(i));
      for (size_t j = 0; j < live.size() && !found; ++j) {
        if (live_used[j]) continue;
        std::vector<FieldDiff> d;
        Json(&rec[i], &live[j], path, &d);
        if (d.empty()) live_used[j] = found = true;
      }
      path->pop_back();
      if (!found) rec_unmatched.push_back(i);
    }
    for (size_t i : rec_unmatched) {
      path->push_back(std::to_string(i));
      out->push_back(FieldDiff{FieldDiff::Kind::kJsonValue, "body " + PointerText(*path),
                               Compact(rec[i]), std::nullopt});
      path->pop_back();
    }
    for (size_t j = 0; j < live.size(); ++j) {
      if (live_used[j]) continue;
      path->push_back(std::to_string(j));
      out->push_back(FieldDiff{FieldDiff::Kind::kJsonValue, "body " + PointerText(*path),
                               std::nullopt, Compact(live[j])});
      path->pop_back();
    }
  }

  const ComparerImpl& c_;
  std::vector<const CompiledRules*> rules_;
};

class ComparerImpl : public Comparer {
 public:
  ComparerImpl() = default;

  absl::Status Init(const CompareOptions& options) {
    default_ignore_ = options.default_ignore_headers;
    if (options.redaction_key) {
      if (options.redaction_key->empty()) {
        return absl::InvalidArgumentError("--redact-key-file: the key is empty");
      }
      redactor_.emplace(RedactionRules{}, *options.redaction_key);
      key_ = *options.redaction_key;
    }
    static const std::map<std::string_view, std::string_view> kFlags = {
        {"ignore_headers", "--ignore-header"},
        {"ignore_json_paths", "--ignore-json-path"},
        {"unordered_json_paths", "--unordered-json-path"},
        {"header_patterns", "header pattern"},
        {"json_patterns", "JSON pattern"}};
    absl::StatusOr<CompiledRules> flags =
        Compile(options.flags, [&](std::string_view key, size_t i) {
          auto it = kFlags.find(key);
          std::string flag(it == kFlags.end() ? key : it->second);
          const NoiseRules& f = options.flags;
          if (key == "ignore_headers") return absl::StrCat(flag, " ", f.ignore_headers[i]);
          if (key == "ignore_json_paths") return absl::StrCat(flag, " ", f.ignore_json_paths[i]);
          if (key == "unordered_json_paths") {
            return absl::StrCat(flag, " ", f.unordered_json_paths[i]);
          }
          if (key == "header_patterns") return absl::StrCat(flag, " ", f.header_patterns[i].first);
          return absl::StrCat(flag, " ", f.json_patterns[i].first);
        });
    if (!flags.ok()) return flags.status();
    flags_ = *std::move(flags);
    if (!options.rules_file.empty()) return LoadRules(options.rules_file);
    return absl::OkStatus();
  }

  Comparison DoCompare(const Exchange& recorded, const Response& live) const;

  bool MarkerMatches(std::string_view marker, std::string_view live) const {
    return !redactor_ || redactor_->Redact(live) == marker;
  }

  // A recorded URL with markers inside (UrlMarkers) against a live URL. With the key: the live
  // URL redacted by Redactor::RedactUrl for the parameter names the recorded markers stand at
  // gives the recorded text. Without it: the recorded text with each marker as a wildcard for
  // one non-empty value (a parameter's up to "&" or "#", a password's up to "@").
  bool UrlMatches(std::string_view rec, std::string_view live) const {
    std::vector<UrlMarker> markers = UrlMarkers(rec);
    if (markers.empty()) return false;
    if (key_) {
      RedactionRules rules;
      for (const UrlMarker& m : markers) {
        if (!m.password) rules.query_params.push_back(m.param_name);
      }
      std::string redacted(live);
      Redactor(std::move(rules), *key_).RedactUrl(&redacted);
      return redacted == rec;
    }
    std::string pattern;
    size_t at = 0;
    for (const UrlMarker& m : markers) {
      pattern += RE2::QuoteMeta(SP(rec.substr(at, m.at - at)));
      pattern += m.password ? "[^@]+" : "[^&#]+";
      at = m.end;
    }
    pattern += RE2::QuoteMeta(SP(rec.substr(at)));
    RE2::Options opts;  // bytewise: a URL need not be UTF-8
    opts.set_encoding(RE2::Options::EncodingLatin1);
    opts.set_log_errors(false);
    RE2 re(pattern, opts);
    return re.ok() && RE2::FullMatch(SP(live), re);
  }

 private:
  absl::Status LoadRules(const std::string& file) {
    // A rules file is small: read whole, at most kMaxRulesBytes, a regular file only (a FIFO
    // or a directory is refused without waiting on it).
    constexpr size_t kMaxRulesBytes = size_t{16} << 20;
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      int err = errno;
      std::string why = std::strerror(err);
      return err == ENOENT ? absl::NotFoundError(absl::StrCat("--rules ", file, ": ", why))
                           : absl::PermissionDeniedError(absl::StrCat("--rules ", file, ": ", why));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat("--rules ", file, ": not a regular file"));
    }
    std::string text;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return absl::DataLossError(absl::StrCat("--rules ", file, ": ", std::strerror(err)));
      }
      if (n == 0) break;
      text.append(buf, static_cast<size_t>(n));
      if (text.size() > kMaxRulesBytes) {
        ::close(fd);
        return absl::InvalidArgumentError(
            absl::StrCat("--rules ", file, ": larger than ", kMaxRulesBytes, " bytes"));
      }
    }
    ::close(fd);
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      std::string at = e.mark.is_null()
                           ? file
                           : absl::StrCat(file, ":", e.mark.line + 1, ":", e.mark.column + 1);
      return absl::InvalidArgumentError(absl::StrCat(at, ": invalid YAML: ", e.msg));
    }
    try {
      return Document(file, root);
    } catch (const YAML::Exception& e) {  // not expected: every access is checked first
      return absl::InvalidArgumentError(absl::StrCat(file, ": ", e.what()));
    }
  }

  absl::Status Document(const std::string& file, const YAML::Node& root) {
    RulesFileParser p(file);
    if (root.IsNull()) return absl::OkStatus();  // an empty file: no rules
    if (!root.IsMap()) {
      return p.Error(root, "rules file", absl::StrCat("must be a mapping, not ", TypeWord(root)));
    }
    auto no_extra = [](const std::string&, const YAML::Node&) { return absl::OkStatus(); };
    std::map<std::string, int> seen;
    for (const auto& kv : root) {
      if (!kv.first.IsScalar()) return p.Error(kv.first, "rules file", "a key must be a string");
      const std::string key = kv.first.Scalar();
      if (absl::Status s = p.Duplicate(kv.first, key, &seen); !s.ok()) return s;
      const YAML::Node& v = kv.second;
      if (key == "global") {
        CompiledRules r;
        if (absl::Status s = p.Block(v, "global", {}, no_extra, &r); !s.ok()) return s;
        global_.push_back(std::move(r));
      } else if (key == "routes" || key == "exchanges") {
        if (!v.IsSequence()) {
          return p.Error(v, key, absl::StrCat("must be a list, not ", TypeWord(v)));
        }
        for (size_t i = 0; i < v.size(); ++i) {
          const YAML::Node& item = v[i];
          std::string where = absl::StrCat(key, "[", i, "]");
          absl::Status s = key == "routes" ? Route(p, item, where) : ExchangeRule(p, item, where);
          if (!s.ok()) return s;
        }
      } else {
        return p.Error(kv.first, key, "unknown key (expected global, routes, exchanges)");
      }
    }
    return absl::OkStatus();
  }

  absl::Status Route(RulesFileParser& p, const YAML::Node& item, const std::string& where) {
    RouteRules route;
    absl::Status s = p.Block(
        item, where, {"method", "path"},
        [&](const std::string& key, const YAML::Node& v) -> absl::Status {
          std::string at = absl::StrCat(where, ".", key);
          if (!v.IsScalar()) return p.Error(v, at, "must be a string");
          if (key == "method") {
            if (!IsToken(v.Scalar()))
              return p.Error(v, at, "is not a method (RFC 9110 section 9.1)");
            route.method = v.Scalar();
            if (std::string upper = SuggestMethod(v.Scalar()); !upper.empty()) {
              warnings_.push_back(absl::StrCat(
                  p.Where(v, at), ": ", v.Scalar(),
                  " matches no request: methods are case-sensitive (RFC 9110 section 9.1); did "
                  "you mean ",
                  upper, "?"));
            }
            return absl::OkStatus();
          }
          absl::StatusOr<std::unique_ptr<RE2>> re = CompileRegex(v.Scalar(), p.Where(v, at));
          if (!re.ok()) return re.status();
          route.path = *std::move(re);
          return absl::OkStatus();
        },
        &route.rules);
    if (!s.ok()) return s;
    if (!route.path) return p.Error(item, where, "a route needs a path");
    routes_.push_back(std::move(route));
    return absl::OkStatus();
  }

  absl::Status ExchangeRule(RulesFileParser& p, const YAML::Node& item, const std::string& where) {
    std::optional<std::string> id;
    CompiledRules rules;
    absl::Status s = p.Block(
        item, where, {"id"},
        [&](const std::string& key, const YAML::Node& v) -> absl::Status {
          std::string at = absl::StrCat(where, ".", key);
          std::vector<std::string> parts;
          if (v.IsScalar()) parts = absl::StrSplit(v.Scalar(), ':');
          uint32_t cp = 0;
          uint64_t stream = 0;
          if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &cp) ||
              !absl::SimpleAtoi(parts[1], &stream)) {
            return p.Error(v, at,
                           "must be \"CAPTURE_POINT:STREAM\" as tapcat -o json's id shows it");
          }
          id = IdText(cp, stream);
          return absl::OkStatus();
        },
        &rules);
    if (!s.ok()) return s;
    if (!id) return p.Error(item, where, "an exchange rule needs an id");
    exchanges_.emplace(*id, std::move(rules));
    return absl::OkStatus();
  }

  void Headers(const Applied& a, bool length_is_a_field, const std::vector<Header>& rec_h,
               const std::vector<Header>& live_h, std::vector<FieldDiff>* out) const;
  void BodyCompare(const Applied& a, const Exchange& recorded, const Response& live,
                   Comparison* out) const;

  bool default_ignore_ = true;
  std::optional<Redactor> redactor_;
  std::optional<std::string> key_;  // the recording's redaction key
  CompiledRules flags_;
  std::vector<CompiledRules> global_;
  std::vector<RouteRules> routes_;
  std::multimap<std::string, CompiledRules> exchanges_;
};

bool Applied::MarkerMatches(std::string_view marker, std::string_view live) const {
  return c_.MarkerMatches(marker, live);
}

void ComparerImpl::Headers(const Applied& a, bool length_is_a_field,
                           const std::vector<Header>& rec_h,
                           const std::vector<Header>& live_h, std::vector<FieldDiff>* out) const {
  std::map<std::string, std::vector<std::string>> rec = ByName(rec_h), live = ByName(live_h);
  std::vector<std::string> names;
  names.reserve(rec.size() + live.size());
  for (const auto& [n, v] : rec) names.push_back(n);
  for (const auto& [n, v] : live) {
    if (!rec.count(n)) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  const std::vector<std::string>& defaults = DefaultIgnoredHeaders();
  static const std::vector<std::string> kNone;
  for (const std::string& name : names) {
    if (a.IgnoredHeader(name)) continue;
    if (default_ignore_ && std::find(defaults.begin(), defaults.end(), name) != defaults.end() &&
        !(length_is_a_field && name == "content-length")) {
      continue;
    }
    auto ri = rec.find(name), li = live.find(name);
    const std::vector<std::string>& rv = ri == rec.end() ? kNone : ri->second;
    const std::vector<std::string>& lv = li == live.end() ? kNone : li->second;
    const RE2* pattern = a.HeaderPattern(name);
    // One recorded value (a field line, or one list element) stands for the live one: equal, a
    // marker (the whole value, or query values inside a URL field), or both fully match the
    // name's pattern.
    auto value_matches = [&](std::string_view r, std::string_view l) {
      if (r == l) return true;
      if (IsRedactionMarker(r)) return MarkerMatches(r, l);
      if (IsUrlField(name) && r.find(kRedactedPrefix) != std::string_view::npos &&
          UrlMatches(r, l)) {
        return true;
      }
      return pattern && RE2::FullMatch(SP(r), *pattern) && RE2::FullMatch(SP(l), *pattern);
    };
    auto in_order = [&](const auto& rs, const auto& ls) {
      if (rs.size() != ls.size()) return false;
      for (size_t i = 0; i < rs.size(); ++i) {
        if (!value_matches(rs[i], ls[i])) return false;
      }
      return true;
    };
    bool same;
    if (rv.empty() || lv.empty()) {
      same = rv.empty() && lv.empty();
    } else if (name == "set-cookie" && default_ignore_) {
      // Cookie names only (RFC 6265 section 4.1.1), as a multiset: cookies of different names
      // are independent. Redaction makes the whole line a marker, name included: it stands for
      // any one cookie, with the key too (a fresh session id never has the recorded marker).
      same = MultisetMatch(
          rv, lv,
          [](const std::string& r, const std::string& l) {
            return !IsRedactionMarker(r) && CookieName(r) == CookieName(l);
          },
          [](const std::string& r, const std::string&) { return IsRedactionMarker(r); });
    } else if (name == "set-cookie") {
      // Never combined (RFC 6265 section 3): line by line, in order.
      same = in_order(rv, lv);
    } else {
      // RFC 9110 section 5.3: the field lines of one name are one field value, combined in
      // order with ", ". Compared element by element (section 5.6.1 lists), or line by line (a
      // marker stands for one whole line, commas included), or as a whole against a pattern
      // (a value that is not a list may have commas, a date say).
      std::string rc = absl::StrJoin(rv, ", "), lc = absl::StrJoin(lv, ", ");
      same = in_order(FieldElements(rc), FieldElements(lc)) || in_order(rv, lv) ||
             (pattern && RE2::FullMatch(rc, *pattern) && RE2::FullMatch(lc, *pattern));
    }
    if (same) continue;
    out->push_back(FieldDiff{FieldDiff::Kind::kHeader, "header " + name,
                             rv.empty() ? std::nullopt : std::optional(absl::StrJoin(rv, ", ")),
                             lv.empty() ? std::nullopt : std::optional(absl::StrJoin(lv, ", "))});
  }
}

void ComparerImpl::BodyCompare(const Applied& a, const Exchange& recorded, const Response& live,
                               Comparison* out) const {
  const Response& rec = *recorded.response;
  std::string rec_ce = JoinedField(rec.headers, "content-encoding");
  std::string live_ce = JoinedField(live.headers, "content-encoding");
  // The same bytes under the same codings decode alike: equal, nothing to decode or parse
  // (a whole body only; a cut one is checked on its wire length below).
  if (!rec.body.truncated && rec_ce == live_ce && rec.body.data == live.body.data) return;
  // Neither side coded (the usual case): the bodies are their own text, not copied.
  const bool plain = rec_ce.empty() && live_ce.empty();
  absl::StatusOr<DecodedContent> rd =
      plain ? DecodedContent{} : DecodeContent(rec.body.data, rec_ce);
  absl::StatusOr<DecodedContent> ld =
      plain ? DecodedContent{} : DecodeContent(live.body.data, live_ce);
  std::string_view rtext, ltext;
  if (plain) {
    rtext = rec.body.data;
    ltext = live.body.data;
  } else if (rd.ok() && ld.ok()) {
    rtext = rd->data;
    ltext = ld->data;
  } else {  // a coding that cannot be undone: the bytes as sent
    rtext = rec.body.data;
    ltext = live.body.data;
  }
  if (rec.body.truncated) {
    out->body_prefix_only = true;
    if (!rd.ok()) {
      rtext = rec.body.data;
      ltext = live.body.data;
    }
    ltext = ltext.substr(0, std::min(ltext.size(), rtext.size()));
    // The prefix says nothing of what follows: the wire lengths do, when both sides have the
    // same codings. The recorded length is the full one when the body limit cut the body
    // (stored < length); when a gap or the capture's end cut it, it is what was seen, a lower
    // bound.
    std::string rec_codings = absl::AsciiStrToLower(rec_ce);
    std::string live_codings = absl::AsciiStrToLower(live_ce);
    if (FieldElements(rec_codings) == FieldElements(live_codings)) {
      uint64_t rlen = rec.body.length, llen = live.body.length;
      bool full_known = rec.body.data.size() < rlen;
      if (llen < rlen || (full_known && llen != rlen)) {
        out->diffs.push_back(FieldDiff{FieldDiff::Kind::kBody, "body length", std::to_string(rlen),
                                       std::to_string(llen)});
      }
    }
  } else {
    // The same bytes are the same JSON value: no diff under any rule, and no parse needed (the
    // common case of a replay, where both JSON parses were most of the comparison's cost).
    if (rtext == ltext) return;
    std::optional<nlohmann::json> rj = AsJson(rtext, rec.headers);
    std::optional<nlohmann::json> lj = rj ? AsJson(ltext, live.headers) : std::nullopt;
    if (rj && lj) {
      std::vector<std::string> path;
      size_t before = out->diffs.size();
      a.Json(&*rj, &*lj, &path, &out->diffs);
      if (out->diffs.size() != before) {
        out->recorded_body_text = Pretty(*rj);
        out->live_body_text = Pretty(*lj);
      }
      return;
    }
  }
  if (rtext == ltext) return;
  out->diffs.push_back(FieldDiff{FieldDiff::Kind::kBody, "body", Preview(rtext), Preview(ltext)});
  out->recorded_body_text = TextForDiff(rtext);
  out->live_body_text = TextForDiff(ltext);
}

Comparison ComparerImpl::DoCompare(const Exchange& recorded, const Response& live) const {
  Comparison out;
  std::vector<const CompiledRules*> rules = {&flags_};
  for (const CompiledRules& g : global_) rules.push_back(&g);
  std::string_view path;
  std::string_view method;
  if (recorded.request) {
    path = recorded.request->path;
    method = recorded.request->method;
    path = path.substr(0, path.find('?'));
  }
  for (const RouteRules& r : routes_) {
    if (r.method && *r.method != method) continue;
    if (!RE2::FullMatch(path, *r.path)) continue;
    rules.push_back(&r.rules);
  }
  if (!exchanges_.empty()) {  // (the id's text is built only when some rule names exchanges)
    auto [lo, hi] = exchanges_.equal_range(IdText(recorded.capture_point, recorded.stream_id));
    for (auto it = lo; it != hi; ++it) rules.push_back(&it->second);
  }
  Applied a(*this, std::move(rules));

  if (!recorded.response) {  // nothing to compare with: every live field is new
    out.diffs.push_back(
        FieldDiff{FieldDiff::Kind::kStatus, "status", std::nullopt, std::to_string(live.status)});
    return out;
  }
  const Response& rec = *recorded.response;
  if (!a.IgnoreStatus() && rec.status != live.status) {
    out.diffs.push_back(FieldDiff{FieldDiff::Kind::kStatus, "status", std::to_string(rec.status),
                                  std::to_string(live.status)});
  }
  // Content-Length is ignored by default because the body it frames is compared itself; an answer
  // to HEAD, and a 304, carry no body, and there it is the size of the representation (RFC 9110
  // sections 8.6 and 15.4.5): the only sign that it changed.
  const bool length_is_a_field =
      (recorded.request && recorded.request->method == "HEAD") || rec.status == 304;
  Headers(a, length_is_a_field, rec.headers, live.headers, &out.diffs);
  if (!a.IgnoreBody()) BodyCompare(a, recorded, live, &out);
  return out;
}

// ---- Unified diff ----

std::vector<std::string_view> SplitLines(std::string_view s) {
  std::vector<std::string_view> out;
  size_t at = 0;
  while (at < s.size()) {
    size_t nl = s.find('\n', at);
    size_t end = nl == std::string_view::npos ? s.size() : nl + 1;
    out.push_back(s.substr(at, end - at));
    at = end;
  }
  return out;
}

// diff -u's range: "START,COUNT", "START" when COUNT is 1; an empty range names the line before.
std::string Range(size_t start, size_t count) {
  if (count == 1) return std::to_string(start + 1);
  if (count == 0) return absl::StrCat(start, ",0");
  return absl::StrCat(start + 1, ",", count);
}

void AppendLine(char mark, std::string_view line, std::string* out) {
  out->push_back(mark);
  out->append(line.data(), line.size());
  if (line.empty() || line.back() != '\n') out->append("\n\\ No newline at end of file\n");
}

// GNU diff's shift_boundaries (its analyze.c, as it behaves; written anew here): each run of
// changed lines in `lines` slides up as far as the lines allow (merging with runs above), then
// down as far as they allow, and is then left at the lowest place where its end meets a run of
// changes in the other file, if it met one.
void ShiftBoundaries(const std::vector<std::string_view>& lines, std::vector<bool>* changed_v,
                     const std::vector<bool>& other_v) {
  std::vector<bool>& changed = *changed_v;
  const long n = static_cast<long>(lines.size());
  const long on = static_cast<long>(other_v.size());
  auto ch = [&](long i) { return i >= 0 && i < n && changed[static_cast<size_t>(i)]; };
  auto och = [&](long j) { return j >= 0 && j < on && other_v[static_cast<size_t>(j)]; };
  auto set = [&](long i, bool v) { changed[static_cast<size_t>(i)] = v; };
  auto eq = [&](long x, long y) {
    return lines[static_cast<size_t>(x)] == lines[static_cast<size_t>(y)];
  };
  long i = 0, j = 0;
  for (;;) {
    while (i < n && !ch(i)) {
      while (och(j++)) {
      }
      ++i;
    }
    if (i == n) break;
    long start = i;
    while (ch(++i)) {
    }
    while (och(j)) ++j;
    long corresponding;
    long runlength;
    do {
      runlength = i - start;
      while (start > 0 && eq(start - 1, i - 1)) {
        set(--start, true);
        set(--i, false);
        while (ch(start - 1)) --start;
        while (och(--j)) {
        }
      }
      corresponding = och(j - 1) ? i : n;
      while (i != n && eq(start, i)) {
        set(start++, false);
        set(i++, true);
        while (ch(i)) ++i;
        while (och(++j)) corresponding = i;
      }
    } while (runlength != i - start);
    while (corresponding < i) {
      set(--start, true);
      set(--i, false);
      while (och(--j)) {
      }
    }
  }
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Comparer>> Comparer::Create(const CompareOptions& options) {
  auto c = std::make_shared<ComparerImpl>();
  if (absl::Status s = c->Init(options); !s.ok()) return s;
  return std::shared_ptr<const Comparer>(std::move(c));
}

Comparison Comparer::Compare(const Exchange& recorded, const Response& live) const {
  return static_cast<const ComparerImpl*>(this)->DoCompare(recorded, live);
}

std::string UnifiedDiff(std::string_view a, std::string_view b, std::string_view a_name,
                        std::string_view b_name, int context) {
  if (a == b) return "";
  if (context < 0) context = 0;
  std::vector<std::string_view> al = SplitLines(a), bl = SplitLines(b);
  dtl::Diff<std::string_view, std::vector<std::string_view>> d(al, bl);
  if (al.size() + bl.size() > 20000) d.onHuge();
  d.compose();
  // GNU diff's form of the edit script: which lines of each side changed.
  std::vector<bool> ca(al.size()), cb(bl.size());
  {
    size_t ai = 0, bi = 0;
    for (const auto& e : d.getSes().getSequence()) {
      if (e.second.type == dtl::SES_COMMON) {
        ++ai;
        ++bi;
      } else if (e.second.type == dtl::SES_DELETE) {
        ca[ai++] = true;
      } else {
        cb[bi++] = true;
      }
    }
  }
  // Where a change could sit in several places ("a b a" less one "a"), place it where diff -u
  // does: GNU diff's shift_boundaries (analyze.c) on each side.
  ShiftBoundaries(al, &ca, cb);
  ShiftBoundaries(bl, &cb, ca);
  enum Op : int8_t { kCommon, kDel, kAdd };
  struct Edit {
    Op op;
    size_t ai, bi;
  };
  std::vector<Edit> edits;
  for (size_t ai = 0, bi = 0; ai < al.size() || bi < bl.size();) {
    if (ai < al.size() && ca[ai]) {
      edits.push_back({kDel, ai++, bi});
    } else if (bi < bl.size() && cb[bi]) {
      edits.push_back({kAdd, ai, bi++});
    } else {
      edits.push_back({kCommon, ai++, bi++});
    }
  }
  std::string out = absl::StrCat("--- ", AV(a_name), "\n+++ ", AV(b_name), "\n");
  const size_t ctx = static_cast<size_t>(context);
  size_t i = 0;
  while (i < edits.size()) {
    if (edits[i].op == kCommon) {
      ++i;
      continue;
    }
    // A hunk: from ctx common lines before this change to ctx after the last change that is
    // at most 2 * ctx common lines after the previous one.
    size_t start = i >= ctx ? i - ctx : 0;
    while (start < i && edits[start].op != kCommon) ++start;
    size_t end = i;  // one past the last change
    size_t k = i;
    while (k < edits.size()) {
      if (edits[k].op != kCommon) {
        end = k + 1;
        ++k;
        continue;
      }
      size_t run = k;
      while (run < edits.size() && edits[run].op == kCommon) ++run;
      if (run == edits.size() || run - k > 2 * ctx) break;
      k = run;
    }
    size_t stop = std::min(edits.size(), end + ctx);
    size_t a_start = edits[start].ai, b_start = edits[start].bi, a_count = 0, b_count = 0;
    for (size_t e = start; e < stop; ++e) {
      if (edits[e].op != kAdd) ++a_count;
      if (edits[e].op != kDel) ++b_count;
    }
    absl::StrAppend(&out, "@@ -", Range(a_start, a_count), " +", Range(b_start, b_count), " @@\n");
    for (size_t e = start; e < stop; ++e) {
      switch (edits[e].op) {
        case kCommon:
          AppendLine(' ', al[edits[e].ai], &out);
          break;
        case kDel:
          AppendLine('-', al[edits[e].ai], &out);
          break;
        case kAdd:
          AppendLine('+', bl[edits[e].bi], &out);
          break;
      }
    }
    i = stop;
  }
  return out;
}

}  // namespace tapkit::replay
