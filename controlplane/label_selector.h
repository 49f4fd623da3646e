// label_selector.h: Kubernetes label selectors, as `kubectl -l` writes them and as workloads
// declare them (spec.selector.matchLabels and matchExpressions), and the syntax of label keys and
// values (docs/architecture.md section 4).
//
// A LabelSelector is a list of requirements that must all hold. The semantics are Kubernetes':
// `a!=x` and `a notin (x)` also hold for an object without label `a`; a selector without
// requirements matches everything.
//
// Thread-safety: a LabelSelector is immutable once built; its const methods may be called from
// any number of threads at once.
#ifndef TAPKIT_CONTROLPLANE_LABEL_SELECTOR_H_
#define TAPKIT_CONTROLPLANE_LABEL_SELECTOR_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tapkit {

using LabelSet = std::map<std::string, std::string>;

// The operators of matchExpressions. `a=x` and `a==x` are kIn with one value, `a!=x` kNotIn with
// one value, `a` kExists, `!a` kDoesNotExist.
enum class LabelOperator { kIn, kNotIn, kExists, kDoesNotExist };

struct LabelRequirement {
  std::string key;
  LabelOperator op = LabelOperator::kExists;
  std::vector<std::string> values;  // non-empty for kIn and kNotIn, empty otherwise
};

class LabelSelector {
 public:
  // Matches everything.
  LabelSelector() = default;
  // All of `requirements` must hold. The caller has checked keys and values (CheckLabelKey,
  // CheckLabelValue) and the value counts of each operator.
  explicit LabelSelector(std::vector<LabelRequirement> requirements);

  // Parses kubectl's `-l` syntax: comma-separated requirements, each `key=value`, `key==value`,
  // `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, `key` or `!key`; blanks around tokens
  // are allowed; an empty or all-blank text matches everything. Errors: InvalidArgumentError
  // `label selector "TEXT": ...` naming the requirement at fault when there are several, and what
  // is wrong with it (an empty requirement, a missing operator or parenthesis, an empty value
  // set, a key or value that breaks the label syntax).
  static absl::StatusOr<LabelSelector> Parse(const std::string& text);

  // Whether every requirement holds for `labels`.
  bool Matches(const LabelSet& labels) const;

  bool empty() const { return requirements_.empty(); }
  const std::vector<LabelRequirement>& requirements() const { return requirements_; }

 private:
  std::vector<LabelRequirement> requirements_;
};

// Whether `key` is a label key: an optional prefix (a DNS subdomain: lowercase letters, digits,
// '-' and '.', at most 253 characters) and '/', then a name of 1 to 63 characters among letters,
// digits, '-', '_' and '.', beginning and ending with a letter or digit. Errors:
// InvalidArgumentError `label key "KEY" ...` saying which rule it breaks.
absl::Status CheckLabelKey(const std::string& key);

// Whether `value` is a label value: empty, or 1 to 63 characters among letters, digits, '-', '_'
// and '.', beginning and ending with a letter or digit. Errors: InvalidArgumentError
// `label value "VALUE" ...`.
absl::Status CheckLabelValue(const std::string& value);

// Kubernetes' name syntaxes (RFC 1123), of label key prefixes and of object names. A DNS label is
// 1 to 63 lowercase letters, digits and '-', beginning and ending with a letter or digit; a DNS
// subdomain is at most 253 characters of dot-separated DNS labels.
bool IsDnsLabel(const std::string& s);
bool IsDnsSubdomain(const std::string& s);

}  // namespace tapkit

#endif  // TAPKIT_CONTROLPLANE_LABEL_SELECTOR_H_
