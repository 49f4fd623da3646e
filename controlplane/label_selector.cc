#include "controlplane/label_selector.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tapkit {
namespace {

constexpr size_t kMaxNameLength = 63;
constexpr size_t kMaxPrefixLength = 253;

bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

// A label name, or a non-empty label value: letters, digits, '-', '_', '.', alphanumeric ends.
// Returns what is wrong, or an empty string.
std::string NameProblem(const std::string& s) {
  if (s.size() > kMaxNameLength)
    return absl::StrCat("is longer than ", kMaxNameLength, " characters");
  for (char c : s) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') {
      return "may hold only letters, digits, '-', '_' and '.'";
    }
  }
  if (!IsAlnum(s.front()) || !IsAlnum(s.back())) return "must begin and end with a letter or digit";
  return "";
}

std::string Trim(const std::string& s) {
  return std::string(absl::StripAsciiWhitespace(absl::string_view(s)));
}

bool IsKeyChar(char c) { return IsAlnum(c) || c == '-' || c == '_' || c == '.' || c == '/'; }

// One requirement of a `-l` text, already trimmed and non-empty. Errors are the bare problem;
// Parse adds the context.
absl::StatusOr<LabelRequirement> ParseRequirement(const std::string& part) {
  LabelRequirement r;
  if (part[0] == '!') {
    r.key = Trim(part.substr(1));
    r.op = LabelOperator::kDoesNotExist;
    if (r.key.empty()) return absl::InvalidArgumentError("expected a label key after \"!\"");
    if (absl::Status s = CheckLabelKey(r.key); !s.ok()) return s;
    return r;
  }
  size_t i = 0;
  while (i < part.size() && IsKeyChar(part[i])) ++i;
  r.key = part.substr(0, i);
  if (r.key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("expected a label key, found \"", part, "\""));
  }
  if (absl::Status s = CheckLabelKey(r.key); !s.ok()) return s;
  std::string rest = Trim(part.substr(i));
  if (rest.empty()) {
    r.op = LabelOperator::kExists;
    return r;
  }
  auto single = [&](LabelOperator op, size_t op_len) -> absl::StatusOr<LabelRequirement> {
    r.op = op;
    r.values.push_back(Trim(rest.substr(op_len)));
    if (absl::Status s = CheckLabelValue(r.values[0]); !s.ok()) return s;
    return r;
  };
  if (rest.starts_with("==")) return single(LabelOperator::kIn, 2);
  if (rest.starts_with("!=")) return single(LabelOperator::kNotIn, 2);
  if (rest.starts_with("=")) return single(LabelOperator::kIn, 1);
  size_t word_end = 0;
  while (word_end < rest.size() &&
         absl::ascii_isalpha(static_cast<unsigned char>(rest[word_end]))) {
    ++word_end;
  }
  std::string word = rest.substr(0, word_end);
  if (word != "in" && word != "notin") {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected an operator (=, ==, !=, in, notin) after \"", r.key, "\", found \"", rest, "\""));
  }
  r.op = word == "in" ? LabelOperator::kIn : LabelOperator::kNotIn;
  std::string set = Trim(rest.substr(word_end));
  if (!set.starts_with("(")) {
    return absl::InvalidArgumentError(absl::StrCat("expected \"(\" after \"", word, "\""));
  }
  if (!set.ends_with(")")) {
    return absl::InvalidArgumentError(absl::StrCat("expected \")\" at the end of \"", set, "\""));
  }
  std::string inner = Trim(set.substr(1, set.size() - 2));
  if (inner.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the set of values after \"", word, "\" is empty"));
  }
  size_t start = 0;
  while (true) {
    size_t comma = inner.find(',', start);
    std::string value =
        Trim(inner.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (absl::Status s = CheckLabelValue(value); !s.ok()) return s;
    if (std::find(r.values.begin(), r.values.end(), value) == r.values.end()) {
      r.values.push_back(value);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return r;
}

}  // namespace

LabelSelector::LabelSelector(std::vector<LabelRequirement> requirements)
    : requirements_(std::move(requirements)) {}

absl::StatusOr<LabelSelector> LabelSelector::Parse(const std::string& text) {
  auto fail = [&text](const std::string& problem) {
    return absl::InvalidArgumentError(absl::StrCat("label selector \"", text, "\": ", problem));
  };
  // Split at the commas outside parentheses.
  std::vector<std::string> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    char c = i < text.size() ? text[i] : ',';
    if (c == '(') {
      if (++depth > 1) return fail("nested \"(\"");
    } else if (c == ')') {
      if (--depth < 0) return fail("\")\" without \"(\"");
    } else if (c == ',' && depth == 0) {
      parts.push_back(Trim(text.substr(start, i - start)));
      start = i + 1;
    }
  }
  if (depth != 0) return fail("\"(\" without \")\"");
  if (parts.size() == 1 && parts[0].empty()) return LabelSelector();

  std::vector<LabelRequirement> requirements;
  for (size_t n = 0; n < parts.size(); ++n) {
    if (parts[n].empty()) return fail(absl::StrCat("requirement ", n + 1, " is empty"));
    absl::StatusOr<LabelRequirement> r = ParseRequirement(parts[n]);
    if (!r.ok()) {
      std::string problem(r.status().message());
      return fail(parts.size() == 1 ? problem : absl::StrCat("\"", parts[n], "\": ", problem));
    }
    requirements.push_back(*std::move(r));
  }
  return LabelSelector(std::move(requirements));
}

bool LabelSelector::Matches(const LabelSet& labels) const {
  for (const LabelRequirement& r : requirements_) {
    auto it = labels.find(r.key);
    bool present = it != labels.end();
    bool in_set =
        present && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    bool ok = false;
    switch (r.op) {
      case LabelOperator::kIn:
        ok = in_set;
        break;
      case LabelOperator::kNotIn:
        ok = !in_set;
        break;
      case LabelOperator::kExists:
        ok = present;
        break;
      case LabelOperator::kDoesNotExist:
        ok = !present;
        break;
    }
    if (!ok) return false;
  }
  return true;
}

absl::Status CheckLabelKey(const std::string& key) {
  auto fail = [&key](const std::string& problem) {
    return absl::InvalidArgumentError(absl::StrCat("label key \"", key, "\" ", problem));
  };
  size_t slash = key.find('/');
  std::string name = slash == std::string::npos ? key : key.substr(slash + 1);
  if (slash != std::string::npos) {
    std::string prefix = key.substr(0, slash);
    if (prefix.size() > kMaxPrefixLength) {
      return fail(absl::StrCat("has a prefix longer than ", kMaxPrefixLength, " characters"));
    }
    if (!IsDnsSubdomain(prefix)) {
      return fail("has a prefix that is not a DNS subdomain (lowercase letters, digits, '-', '.')");
    }
  }
  if (name.empty()) return fail("has an empty name");
  std::string problem = NameProblem(name);
  if (!problem.empty()) return fail(problem);
  return absl::OkStatus();
}

absl::Status CheckLabelValue(const std::string& value) {
  if (value.empty()) return absl::OkStatus();
  std::string problem = NameProblem(value);
  if (!problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("label value \"", value, "\" ", problem));
  }
  return absl::OkStatus();
}

bool IsDnsLabel(const std::string& s) {
  if (s.empty() || s.size() > kMaxNameLength || !IsAlnum(s.front()) || !IsAlnum(s.back())) {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

bool IsDnsSubdomain(const std::string& s) {
  if (s.empty() || s.size() > kMaxPrefixLength) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (!IsDnsLabel(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start))) {
      return false;
    }
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

}  // namespace tapkit
