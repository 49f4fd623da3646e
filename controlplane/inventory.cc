#include "controlplane/inventory.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tapkit {
namespace {

// NotFound messages list at most this many existing names.
constexpr size_t kMaxListedNames = 20;
// An inventory describes a host's worth of pods; anything bigger is a mistake.
constexpr size_t kMaxInventoryBytes = 64 << 20;
// Linux's IFNAMSIZ less the terminating NUL.
constexpr size_t kMaxInterfaceName = 15;

struct TypeInfo {
  ResourceType type;
  const char* name;        // canonical, singular, lowercase
  const char* plural;      // accepted in targets too; used in messages
  const char* short_name;  // kubectl's short name, or nullptr
  const char* kind;        // the Kubernetes kind
};

// Indexed by ResourceType.
constexpr TypeInfo kTypes[] = {
    {ResourceType::kPod, "pod", "pods", "po", "Pod"},
    {ResourceType::kDeployment, "deployment", "deployments", "deploy", "Deployment"},
    {ResourceType::kStatefulSet, "statefulset", "statefulsets", "sts", "StatefulSet"},
    {ResourceType::kDaemonSet, "daemonset", "daemonsets", "ds", "DaemonSet"},
    {ResourceType::kReplicaSet, "replicaset", "replicasets", "rs", "ReplicaSet"},
    {ResourceType::kJob, "job", "jobs", nullptr, "Job"},
    {ResourceType::kCronJob, "cronjob", "cronjobs", "cj", "CronJob"},
    {ResourceType::kService, "service", "services", "svc", "Service"},
    {ResourceType::kNamespace, "namespace", "namespaces", "ns", "Namespace"},
};

const TypeInfo& Info(ResourceType type) { return kTypes[static_cast<size_t>(type)]; }

const TypeInfo* InfoByKind(const std::string& kind) {
  for (const TypeInfo& t : kTypes) {
    if (kind == t.kind) return &t;
  }
  return nullptr;
}

const TypeInfo* InfoByName(const std::string& name) {
  for (const TypeInfo& t : kTypes) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

bool IsWorkload(ResourceType type) {
  return type >= ResourceType::kDeployment && type <= ResourceType::kCronJob;
}

std::string Quote(const std::string& s) { return absl::StrCat("\"", absl::CHexEscape(s), "\""); }

// The canonical text form of an IPv4 or IPv6 address (an IPv4-mapped IPv6 address becomes the
// IPv4 address), or empty when `text` is neither.
std::string CanonicalIp(const std::string& text) {
  char buf[INET6_ADDRSTRLEN];
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return inet_ntop(AF_INET, &v4, buf, sizeof(buf)) ? buf : "";
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) return "";
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::memcpy(&v4, &v6.s6_addr[12], 4);
    return inet_ntop(AF_INET, &v4, buf, sizeof(buf)) ? buf : "";
  }
  return inet_ntop(AF_INET6, &v6, buf, sizeof(buf)) ? buf : "";
}

// Linux's rule for interface names (dev_valid_name).
bool IsInterfaceName(const std::string& s) {
  if (s.empty() || s.size() > kMaxInterfaceName || s == "." || s == "..") return false;
  for (char c : s) {
    if (c == '/' || c == ':' || absl::ascii_isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// "a, b, c", or "a, b, ... t and 7 more" past kMaxListedNames.
std::string NameList(const std::vector<std::string>& names) {
  if (names.size() <= kMaxListedNames) return absl::StrJoin(names, ", ");
  std::vector<std::string> head(names.begin(), names.begin() + kMaxListedNames);
  return absl::StrCat(absl::StrJoin(head, ", "), " and ", names.size() - kMaxListedNames, " more");
}

// One link of a pod's workload chain; the workload lives in the pod's namespace.
struct ChainLink {
  ResourceType type;
  std::string name;
};

using WorkloadKey = std::tuple<ResourceType, std::string, std::string>;  // type, namespace, name
using NamespacedName = std::pair<std::string, std::string>;              // namespace, name

struct WorkloadData {
  std::optional<LabelSelector> selector;  // absent: claims pods only by ownerReferences
  std::optional<ChainLink> parent;        // the Deployment of a ReplicaSet, CronJob of a Job
};

}  // namespace

struct Inventory::Data {
  std::set<std::string> namespaces;
  std::vector<PodInfo> pods;                   // sorted by namespace, then name
  std::vector<std::vector<ChainLink>> chains;  // pods[i]'s workloads, nearest first
  std::map<NamespacedName, size_t> pod_by_name;
  std::map<std::string, size_t> pod_by_ip;  // canonical address -> index in pods
  std::map<WorkloadKey, WorkloadData> workloads;
  std::map<NamespacedName, ServiceInfo> services;
  std::vector<Labels> labels;  // pods[i]'s endpoint labels (LabelsFor), worked out once at load
};

namespace {

int LineOf(const YAML::Node& node, int fallback) {
  YAML::Mark mark = node.Mark();
  return mark.is_null() ? fallback : mark.line + 1;
}

// The value of `key` in the mapping `node`; nullopt when `node` is no mapping, or the key is
// absent or null.
std::optional<YAML::Node> Child(const YAML::Node& node, const std::string& key) {
  if (!node.IsMap()) return std::nullopt;
  for (const auto& kv : node) {
    if (kv.first.IsScalar() && kv.first.Scalar() == key) {
      if (kv.second.IsNull()) return std::nullopt;
      return YAML::Node(kv.second);
    }
  }
  return std::nullopt;
}

const char* TypeWord(const YAML::Node& node) {
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  return "null";
}

// Where an object sits in the file, and what it is as far as known; makes the error messages.
struct ObjectContext {
  const std::string* file = nullptr;
  bool single_document = false;
  int document = 0;            // from 1
  int item = 0;                // from 1; 0 when the object is a whole document
  int line = 0;                // of the object
  std::string kind, ns, name;  // ns empty for a Namespace

  absl::Status Error(int at_line, const std::string& problem) const {
    std::string where = item == 0         ? absl::StrCat("document ", document)
                        : single_document ? absl::StrCat("item ", item)
                                          : absl::StrCat("document ", document, ", item ", item);
    std::string what;
    if (!kind.empty() && name.empty()) what = absl::StrCat(" (", kind, ")");
    if (!kind.empty() && !name.empty()) {
      what = absl::StrCat(" (", kind, " ", ns.empty() ? "" : ns + "/", name, ")");
    }
    return absl::InvalidArgumentError(
        absl::StrCat(*file, ":", at_line > 0 ? at_line : line, ": ", where, what, ": ", problem));
  }
  absl::Status Error(const YAML::Node& at, const std::string& problem) const {
    return Error(LineOf(at, line), problem);
  }
};

absl::StatusOr<std::string> ReadScalar(const ObjectContext& ctx, const YAML::Node& node,
                                       const std::string& field) {
  if (!node.IsScalar()) {
    return ctx.Error(node, absl::StrCat(field, " must be a string, not ", TypeWord(node)));
  }
  return node.Scalar();
}

// The string-to-string mapping at `node` (field path `field`); with `labels`, keys and values
// must follow the label syntax. A null value reads as "".
absl::StatusOr<LabelSet> ReadStringMap(const ObjectContext& ctx,
                                       const std::optional<YAML::Node>& node,
                                       const std::string& field, bool labels) {
  LabelSet out;
  if (!node) return out;
  if (!node->IsMap()) {
    return ctx.Error(*node, absl::StrCat(field, " must be a mapping, not ", TypeWord(*node)));
  }
  for (const auto& kv : *node) {
    if (!kv.first.IsScalar())
      return ctx.Error(kv.first, absl::StrCat(field, " has a key that is not a string"));
    const std::string& key = kv.first.Scalar();
    std::string entry = absl::StrCat(field, "[", Quote(key), "]");
    std::string value;
    if (!kv.second.IsNull()) {
      absl::StatusOr<std::string> v = ReadScalar(ctx, kv.second, entry);
      if (!v.ok()) return v.status();
      value = *std::move(v);
    }
    if (labels) {
      if (absl::Status s = CheckLabelKey(key); !s.ok()) {
        return ctx.Error(kv.first, absl::StrCat(field, ": ", s.message()));
      }
      if (absl::Status s = CheckLabelValue(value); !s.ok()) {
        return ctx.Error(kv.second, absl::StrCat(entry, ": ", s.message()));
      }
    }
    out[key] = std::move(value);
  }
  return out;
}

struct OwnerRef {
  std::string kind, name;
  bool controller = false;
  int index = 0;  // in metadata.ownerReferences
  int line = 0;
};

// A workload or pod waiting for the second pass, which resolves ownerReferences.
struct Pending {
  ObjectContext ctx;
  std::vector<OwnerRef> owners;
};

class Parser {
 public:
  explicit Parser(const std::string& file)
      : file_(file), data_(std::make_shared<Inventory::Data>()) {}

  absl::Status Run(const std::string& yaml);
  std::shared_ptr<Inventory::Data> Result() { return data_; }

 private:
  absl::Status Document(const YAML::Node& node, int document);
  absl::Status Object(const YAML::Node& node, int document, int item);
  absl::Status Pod(const YAML::Node& node, ObjectContext ctx, const YAML::Node& meta,
                   const LabelSet& labels, std::vector<OwnerRef> owners);
  absl::Status Workload(const YAML::Node& node, const TypeInfo& info, ObjectContext ctx,
                        std::vector<OwnerRef> owners);
  absl::Status Service(const YAML::Node& node, const ObjectContext& ctx);
  absl::StatusOr<std::vector<OwnerRef>> Owners(const ObjectContext& ctx,
                                               const std::optional<YAML::Node>& node);
  absl::StatusOr<std::optional<LabelSelector>> Selector(const ObjectContext& ctx,
                                                        const std::optional<YAML::Node>& node,
                                                        const std::string& field);
  // Second pass: workload parents, pod chains, indexes.
  absl::Status Link();
  // The reference among `owners` (controller first, else the first) whose kind is in `kinds`.
  static const OwnerRef* PickOwner(const std::vector<OwnerRef>& owners,
                                   std::initializer_list<ResourceType> kinds);

  const std::string& file_;
  bool single_document_ = false;
  std::shared_ptr<Inventory::Data> data_;
  std::map<std::string, int> namespace_lines_;  // declared by a Namespace object
  std::map<WorkloadKey, int> name_lines_;       // every namespaced object, by type
  std::map<WorkloadKey, Pending> pending_workloads_;
  std::vector<std::pair<PodInfo, Pending>> pending_pods_;
  std::map<std::string, std::pair<std::string, int>> ip_owners_;  // address -> "ns/name", line
};

absl::Status Parser::Run(const std::string& yaml) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(yaml);
  } catch (const YAML::Exception& e) {
    std::string at = e.mark.is_null()
                         ? file_
                         : absl::StrCat(file_, ":", e.mark.line + 1, ":", e.mark.column + 1);
    return absl::InvalidArgumentError(absl::StrCat(at, ": invalid YAML: ", e.msg));
  }
  single_document_ = docs.size() == 1;
  try {
    for (size_t d = 0; d < docs.size(); ++d) {
      if (absl::Status s = Document(docs[d], static_cast<int>(d) + 1); !s.ok()) return s;
    }
  } catch (const YAML::Exception& e) {  // not expected: every access is checked first
    return absl::InvalidArgumentError(absl::StrCat(file_, ": ", e.what()));
  }
  return Link();
}

absl::Status Parser::Document(const YAML::Node& node, int document) {
  if (node.IsNull()) return absl::OkStatus();  // an empty document, e.g. after a final `---`
  ObjectContext ctx{&file_, single_document_, document, 0, LineOf(node, 1), "", "", ""};
  if (!node.IsMap()) {
    return ctx.Error(node, absl::StrCat("expected a Kubernetes object or a List (a mapping), not ",
                                        node.IsSequence() ? "a list" : "a string"));
  }
  std::optional<YAML::Node> kind = Child(node, "kind");
  if (!kind || !kind->IsScalar() || kind->Scalar() != "List") return Object(node, document, 0);
  std::optional<YAML::Node> items = Child(node, "items");
  if (!items) return absl::OkStatus();
  ctx.kind = "List";
  if (!items->IsSequence()) {
    return ctx.Error(*items, absl::StrCat("items must be a list, not ", TypeWord(*items)));
  }
  for (size_t i = 0; i < items->size(); ++i) {
    if (absl::Status s = Object((*items)[i], document, static_cast<int>(i) + 1); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Parser::Object(const YAML::Node& node, int document, int item) {
  ObjectContext ctx{&file_, single_document_, document, item, LineOf(node, 1), "", "", ""};
  if (!node.IsMap()) {
    return ctx.Error(node, absl::StrCat("expected a Kubernetes object (a mapping), not ",
                                        node.IsSequence() ? "a list" : "a string"));
  }
  std::optional<YAML::Node> kind_node = Child(node, "kind");
  if (!kind_node) return ctx.Error(node, "kind is missing");
  absl::StatusOr<std::string> kind = ReadScalar(ctx, *kind_node, "kind");
  if (!kind.ok()) return kind.status();
  if (*kind == "List") return ctx.Error(*kind_node, "a List inside a List is not supported");
  const TypeInfo* info = InfoByKind(*kind);
  if (info == nullptr) return absl::OkStatus();  // a kind the local runtime has no use for
  ctx.kind = *kind;

  std::optional<YAML::Node> meta = Child(node, "metadata");
  if (!meta) return ctx.Error(node, "metadata.name is missing");
  if (!meta->IsMap()) {
    return ctx.Error(*meta, absl::StrCat("metadata must be a mapping, not ", TypeWord(*meta)));
  }
  std::optional<YAML::Node> name_node = Child(*meta, "name");
  if (!name_node) return ctx.Error(*meta, "metadata.name is missing");
  absl::StatusOr<std::string> name = ReadScalar(ctx, *name_node, "metadata.name");
  if (!name.ok()) return name.status();
  const bool namespaced = info->type != ResourceType::kNamespace;
  std::string ns = "default";
  std::optional<YAML::Node> ns_node = Child(*meta, "namespace");
  if (namespaced && ns_node) {
    absl::StatusOr<std::string> n = ReadScalar(ctx, *ns_node, "metadata.namespace");
    if (!n.ok()) return n.status();
    ns = *n;
  }
  ctx.name = *name;
  if (namespaced) ctx.ns = ns;
  if (namespaced && !IsDnsLabel(ns)) {
    return ctx.Error(*ns_node, absl::StrCat("metadata.namespace ", Quote(ns),
                                            " is not a namespace name (1 to 63 lowercase letters, "
                                            "digits and '-', beginning and ending with a letter "
                                            "or digit)"));
  }
  const bool label_name =
      info->type == ResourceType::kNamespace || info->type == ResourceType::kService;
  if (label_name && !IsDnsLabel(*name)) {
    return ctx.Error(*name_node,
                     absl::StrCat("metadata.name ", Quote(*name), " is not a ", info->name,
                                  " name (1 to 63 lowercase letters, digits and '-', "
                                  "beginning and ending with a letter or digit)"));
  }
  if (!label_name && !IsDnsSubdomain(*name)) {
    return ctx.Error(*name_node,
                     absl::StrCat("metadata.name ", Quote(*name), " is not a ", info->name,
                                  " name (up to 253 lowercase letters, digits, '-' and '.', each "
                                  "dot-separated part beginning and ending with a letter or "
                                  "digit)"));
  }

  // Duplicates within a kind and namespace.
  if (!namespaced) {
    auto [it, added] = namespace_lines_.emplace(*name, LineOf(*name_node, ctx.line));
    if (!added) {
      return ctx.Error(*name_node, absl::StrCat("metadata.name: Namespace ", Quote(*name),
                                                " is already defined at line ", it->second));
    }
    data_->namespaces.insert(*name);
    return absl::OkStatus();
  }
  auto [dup, added] =
      name_lines_.emplace(WorkloadKey{info->type, ns, *name}, LineOf(*name_node, ctx.line));
  if (!added) {
    return ctx.Error(*name_node, absl::StrCat("metadata.name: ", info->kind, " ", Quote(*name),
                                              " is already defined in namespace ", Quote(ns),
                                              " at line ", dup->second));
  }
  data_->namespaces.insert(ns);

  absl::StatusOr<LabelSet> labels =
      ReadStringMap(ctx, Child(*meta, "labels"), "metadata.labels", /*labels=*/true);
  if (!labels.ok()) return labels.status();
  // Only the interface annotation is read, but all must be strings.
  absl::StatusOr<LabelSet> annotations =
      ReadStringMap(ctx, Child(*meta, "annotations"), "metadata.annotations", /*labels=*/false);
  if (!annotations.ok()) return annotations.status();
  absl::StatusOr<std::vector<OwnerRef>> owners = Owners(ctx, Child(*meta, "ownerReferences"));
  if (!owners.ok()) return owners.status();

  switch (info->type) {
    case ResourceType::kPod:
      return Pod(node, std::move(ctx), *meta, *labels, *std::move(owners));
    case ResourceType::kService:
      return Service(node, ctx);
    default:
      return Workload(node, *info, std::move(ctx), *std::move(owners));
  }
}

absl::StatusOr<std::vector<OwnerRef>> Parser::Owners(const ObjectContext& ctx,
                                                     const std::optional<YAML::Node>& node) {
  std::vector<OwnerRef> out;
  if (!node) return out;
  if (!node->IsSequence()) {
    return ctx.Error(
        *node, absl::StrCat("metadata.ownerReferences must be a list, not ", TypeWord(*node)));
  }
  for (size_t i = 0; i < node->size(); ++i) {
    YAML::Node ref = (*node)[i];
    std::string field = absl::StrCat("metadata.ownerReferences[", i, "]");
    if (!ref.IsMap()) {
      return ctx.Error(ref, absl::StrCat(field, " must be a mapping with kind and name"));
    }
    OwnerRef owner;
    owner.index = static_cast<int>(i);
    owner.line = LineOf(ref, ctx.line);
    for (const char* key : {"kind", "name"}) {
      std::optional<YAML::Node> value = Child(ref, key);
      if (!value) return ctx.Error(ref, absl::StrCat(field, ".", key, " is missing"));
      absl::StatusOr<std::string> text = ReadScalar(ctx, *value, absl::StrCat(field, ".", key));
      if (!text.ok()) return text.status();
      (std::string(key) == "kind" ? owner.kind : owner.name) = *text;
    }
    if (std::optional<YAML::Node> c = Child(ref, "controller")) {
      owner.controller = c->IsScalar() && c->Scalar() == "true";
    }
    out.push_back(std::move(owner));
  }
  return out;
}

absl::Status Parser::Pod(const YAML::Node& node, ObjectContext ctx, const YAML::Node& meta,
                         const LabelSet& labels, std::vector<OwnerRef> owners) {
  PodInfo pod;
  pod.namespace_ = ctx.ns;
  pod.name = ctx.name;
  pod.labels = labels;

  std::optional<YAML::Node> status = Child(node, "status");
  if (status && !status->IsMap()) {
    return ctx.Error(*status, absl::StrCat("status must be a mapping, not ", TypeWord(*status)));
  }
  std::optional<YAML::Node> ip_node = status ? Child(*status, "podIP") : std::nullopt;
  if (!ip_node) return ctx.Error(status ? *status : node, "status.podIP is missing");
  absl::StatusOr<std::string> ip_text = ReadScalar(ctx, *ip_node, "status.podIP");
  if (!ip_text.ok()) return ip_text.status();
  pod.ip = CanonicalIp(*ip_text);
  if (pod.ip.empty()) {
    return ctx.Error(*ip_node,
                     absl::StrCat("status.podIP ", Quote(*ip_text), " is not an IP address"));
  }
  int ip_line = LineOf(*ip_node, ctx.line);
  auto [other, added] = ip_owners_.emplace(
      pod.ip, std::make_pair(absl::StrCat(pod.namespace_, "/", pod.name), ip_line));
  if (!added) {
    return ctx.Error(
        ip_line, absl::StrCat("status.podIP ", Quote(*ip_text), " is already the address of Pod ",
                              other->second.first, " (line ", other->second.second, ")"));
  }

  pod.interface = kDefaultInterface;
  std::optional<YAML::Node> annotations = Child(meta, "annotations");
  if (std::optional<YAML::Node> iface =
          annotations ? Child(*annotations, kInterfaceAnnotation) : std::nullopt) {
    pod.interface = iface->Scalar();  // a string: ReadStringMap checked
    if (!IsInterfaceName(pod.interface)) {
      return ctx.Error(*iface,
                       absl::StrCat("annotation ", kInterfaceAnnotation, " ", Quote(pod.interface),
                                    " is not an interface name (1 to 15 characters, no "
                                    "'/', ':' or blanks)"));
    }
  }
  pending_pods_.emplace_back(std::move(pod), Pending{std::move(ctx), std::move(owners)});
  return absl::OkStatus();
}

absl::StatusOr<std::optional<LabelSelector>> Parser::Selector(const ObjectContext& ctx,
                                                              const std::optional<YAML::Node>& node,
                                                              const std::string& field) {
  if (!node) return std::optional<LabelSelector>();
  if (!node->IsMap()) {
    return ctx.Error(*node, absl::StrCat(field, " must be a mapping, not ", TypeWord(*node)));
  }
  std::vector<LabelRequirement> requirements;
  absl::StatusOr<LabelSet> match_labels =
      ReadStringMap(ctx, Child(*node, "matchLabels"), field + ".matchLabels", /*labels=*/true);
  if (!match_labels.ok()) return match_labels.status();
  for (const auto& [key, value] : *match_labels) {
    requirements.push_back({key, LabelOperator::kIn, {value}});
  }
  if (std::optional<YAML::Node> exprs = Child(*node, "matchExpressions")) {
    std::string list_field = field + ".matchExpressions";
    if (!exprs->IsSequence()) {
      return ctx.Error(*exprs, absl::StrCat(list_field, " must be a list, not ", TypeWord(*exprs)));
    }
    for (size_t i = 0; i < exprs->size(); ++i) {
      YAML::Node expr = (*exprs)[i];
      std::string f = absl::StrCat(list_field, "[", i, "]");
      if (!expr.IsMap()) {
        return ctx.Error(expr, absl::StrCat(f, " must be a mapping with key, operator, values"));
      }
      LabelRequirement r;
      std::optional<YAML::Node> key = Child(expr, "key");
      if (!key) return ctx.Error(expr, f + ".key is missing");
      absl::StatusOr<std::string> key_text = ReadScalar(ctx, *key, f + ".key");
      if (!key_text.ok()) return key_text.status();
      r.key = *key_text;
      if (absl::Status s = CheckLabelKey(r.key); !s.ok()) {
        return ctx.Error(*key, absl::StrCat(f, ".key: ", s.message()));
      }
      std::optional<YAML::Node> op = Child(expr, "operator");
      if (!op) return ctx.Error(expr, f + ".operator is missing");
      absl::StatusOr<std::string> op_text = ReadScalar(ctx, *op, f + ".operator");
      if (!op_text.ok()) return op_text.status();
      if (*op_text == "In") {
        r.op = LabelOperator::kIn;
      } else if (*op_text == "NotIn") {
        r.op = LabelOperator::kNotIn;
      } else if (*op_text == "Exists") {
        r.op = LabelOperator::kExists;
      } else if (*op_text == "DoesNotExist") {
        r.op = LabelOperator::kDoesNotExist;
      } else {
        return ctx.Error(*op, absl::StrCat(f, ".operator ", Quote(*op_text),
                                           " is not one of In, NotIn, Exists, DoesNotExist"));
      }
      std::optional<YAML::Node> values = Child(expr, "values");
      if (values && !values->IsSequence()) {
        return ctx.Error(*values,
                         absl::StrCat(f, ".values must be a list, not ", TypeWord(*values)));
      }
      for (size_t v = 0; values && v < values->size(); ++v) {
        YAML::Node value = (*values)[v];
        std::string vf = absl::StrCat(f, ".values[", v, "]");
        absl::StatusOr<std::string> text = ReadScalar(ctx, value, vf);
        if (!text.ok()) return text.status();
        if (absl::Status s = CheckLabelValue(*text); !s.ok()) {
          return ctx.Error(value, absl::StrCat(vf, ": ", s.message()));
        }
        r.values.push_back(*text);
      }
      bool needs_values = r.op == LabelOperator::kIn || r.op == LabelOperator::kNotIn;
      if (needs_values && r.values.empty()) {
        return ctx.Error(values ? *values : expr,
                         absl::StrCat(f, ".values must not be empty for ", *op_text));
      }
      if (!needs_values && !r.values.empty()) {
        return ctx.Error(*values, absl::StrCat(f, ".values must be empty for ", *op_text));
      }
      requirements.push_back(std::move(r));
    }
  }
  if (requirements.empty()) {
    return ctx.Error(*node, absl::StrCat(field,
                                         " is empty; it must select pods by matchLabels or "
                                         "matchExpressions"));
  }
  return std::optional<LabelSelector>(LabelSelector(std::move(requirements)));
}

absl::Status Parser::Workload(const YAML::Node& node, const TypeInfo& info, ObjectContext ctx,
                              std::vector<OwnerRef> owners) {
  std::optional<YAML::Node> spec = Child(node, "spec");
  if (spec && !spec->IsMap()) {
    return ctx.Error(*spec, absl::StrCat("spec must be a mapping, not ", TypeWord(*spec)));
  }
  std::optional<YAML::Node> selector_node;
  std::string field = "spec.selector";
  if (info.type == ResourceType::kCronJob) {
    field = "spec.jobTemplate.spec.selector";
    std::optional<YAML::Node> tmpl = spec ? Child(*spec, "jobTemplate") : std::nullopt;
    std::optional<YAML::Node> tmpl_spec = tmpl ? Child(*tmpl, "spec") : std::nullopt;
    selector_node = tmpl_spec ? Child(*tmpl_spec, "selector") : std::nullopt;
  } else {
    selector_node = spec ? Child(*spec, "selector") : std::nullopt;
  }
  const bool required = info.type != ResourceType::kJob && info.type != ResourceType::kCronJob;
  if (required && !selector_node) return ctx.Error(spec ? *spec : node, field + " is missing");
  absl::StatusOr<std::optional<LabelSelector>> selector = Selector(ctx, selector_node, field);
  if (!selector.ok()) return selector.status();

  WorkloadKey key{info.type, ctx.ns, ctx.name};
  data_->workloads[key].selector = *std::move(selector);
  pending_workloads_.emplace(std::move(key), Pending{std::move(ctx), std::move(owners)});
  return absl::OkStatus();
}

absl::Status Parser::Service(const YAML::Node& node, const ObjectContext& ctx) {
  ServiceInfo service;
  service.namespace_ = ctx.ns;
  service.name = ctx.name;
  std::optional<YAML::Node> spec = Child(node, "spec");
  if (spec && !spec->IsMap()) {
    return ctx.Error(*spec, absl::StrCat("spec must be a mapping, not ", TypeWord(*spec)));
  }
  if (spec) {
    absl::StatusOr<LabelSet> selector =
        ReadStringMap(ctx, Child(*spec, "selector"), "spec.selector", /*labels=*/true);
    if (!selector.ok()) return selector.status();
    service.selector = *std::move(selector);
  }
  std::optional<YAML::Node> ports = spec ? Child(*spec, "ports") : std::nullopt;
  if (ports && !ports->IsSequence()) {
    return ctx.Error(*ports, absl::StrCat("spec.ports must be a list, not ", TypeWord(*ports)));
  }
  for (size_t i = 0; ports && i < ports->size(); ++i) {
    YAML::Node entry = (*ports)[i];
    std::string field = absl::StrCat("spec.ports[", i, "].port");
    std::optional<YAML::Node> port = Child(entry, "port");
    if (!port) return ctx.Error(entry, field + " is missing");
    absl::StatusOr<std::string> text = ReadScalar(ctx, *port, field);
    if (!text.ok()) return text.status();
    int number = 0;
    if (!absl::SimpleAtoi(*text, &number) || number < 1 || number > 65535) {
      return ctx.Error(
          *port, absl::StrCat(field, " ", Quote(*text), " is not a port number (1 to 65535)"));
    }
    service.ports.push_back(number);
  }
  data_->services[{ctx.ns, ctx.name}] = std::move(service);
  return absl::OkStatus();
}

const OwnerRef* Parser::PickOwner(const std::vector<OwnerRef>& owners,
                                  std::initializer_list<ResourceType> kinds) {
  auto wanted = [&kinds](const OwnerRef& o) {
    return std::any_of(kinds.begin(), kinds.end(),
                       [&o](ResourceType t) { return o.kind == Info(t).kind; });
  };
  const OwnerRef* first = nullptr;
  for (const OwnerRef& o : owners) {
    if (!wanted(o)) continue;
    if (o.controller) return &o;
    if (first == nullptr) first = &o;
  }
  return first;
}

absl::Status Parser::Link() {
  Inventory::Data& d = *data_;
  auto missing = [](const Pending& p, const OwnerRef& o) {
    return p.ctx.Error(o.line,
                       absl::StrCat("metadata.ownerReferences[", o.index, "]: ", o.kind, " ",
                                    Quote(o.name), " not found in namespace ", Quote(p.ctx.ns)));
  };
  // A ReplicaSet's Deployment, a Job's CronJob.
  for (auto& [key, pending] : pending_workloads_) {
    ResourceType type = std::get<0>(key);
    ResourceType parent_type;
    if (type == ResourceType::kReplicaSet) {
      parent_type = ResourceType::kDeployment;
    } else if (type == ResourceType::kJob) {
      parent_type = ResourceType::kCronJob;
    } else {
      continue;
    }
    const OwnerRef* owner = PickOwner(pending.owners, {parent_type});
    if (owner == nullptr) continue;
    if (!d.workloads.contains({parent_type, std::get<1>(key), owner->name})) {
      return missing(pending, *owner);
    }
    d.workloads[key].parent = ChainLink{parent_type, owner->name};
  }

  // Each pod's chain: from its ownerReferences, else the first workload whose selector matches.
  std::sort(pending_pods_.begin(), pending_pods_.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.namespace_, a.first.name) < std::tie(b.first.namespace_, b.first.name);
  });
  for (auto& [pod, pending] : pending_pods_) {
    std::optional<ChainLink> start;
    const OwnerRef* owner =
        PickOwner(pending.owners,
                  {ResourceType::kReplicaSet, ResourceType::kStatefulSet, ResourceType::kDaemonSet,
                   ResourceType::kJob, ResourceType::kDeployment, ResourceType::kCronJob});
    if (owner != nullptr) {
      ResourceType type = InfoByKind(owner->kind)->type;
      if (!d.workloads.contains({type, pod.namespace_, owner->name})) {
        return missing(pending, *owner);
      }
      start = ChainLink{type, owner->name};
    } else {
      // std::map orders by type (the claiming order), then namespace, then name.
      for (const auto& [key, workload] : d.workloads) {
        if (std::get<1>(key) == pod.namespace_ && workload.selector &&
            workload.selector->Matches(pod.labels)) {
          start = ChainLink{std::get<0>(key), std::get<2>(key)};
          break;
        }
      }
    }
    std::vector<ChainLink> chain;
    for (std::optional<ChainLink> link = start; link && chain.size() < 4;) {
      chain.push_back(*link);
      link = d.workloads.at({link->type, pod.namespace_, link->name}).parent;
    }
    if (!chain.empty()) {
      pod.workload_kind = Info(chain.back().type).name;
      pod.workload_name = chain.back().name;
    }
    d.pod_by_name[{pod.namespace_, pod.name}] = d.pods.size();
    d.pod_by_ip[pod.ip] = d.pods.size();
    d.pods.push_back(std::move(pod));
    d.chains.push_back(std::move(chain));
  }
  return absl::OkStatus();
}

std::string AcceptedTypes() {
  std::vector<std::string> types;
  for (const TypeInfo& t : kTypes) {
    types.push_back(t.short_name ? absl::StrCat(t.name, " (", t.short_name, ")") : t.name);
  }
  return absl::StrCat(absl::StrJoin(types, ", "), ", singular or plural");
}

absl::Status NamespaceNotFound(const std::vector<std::string>& namespaces, const std::string& ns) {
  return absl::NotFoundError(
      absl::StrCat("namespace ", Quote(ns), " not found; ",
                   namespaces.empty() ? "the inventory has no namespaces"
                                      : absl::StrCat("namespaces: ", NameList(namespaces))));
}

bool HasPodsBehind(const ServiceInfo& service, const PodInfo& pod) {
  if (service.selector.empty()) return false;
  for (const auto& [key, value] : service.selector) {
    auto it = pod.labels.find(key);
    if (it == pod.labels.end() || it->second != value) return false;
  }
  return true;
}

}  // namespace

std::string_view ResourceTypeName(ResourceType type) { return Info(type).name; }

absl::StatusOr<TargetRef> ParseTarget(const std::string& target) {
  if (target.empty()) {
    return absl::InvalidArgumentError(
        "empty target; expected TYPE/NAME or TYPE, e.g. deploy/backend");
  }
  size_t slash = target.find('/');
  std::string type_text = target.substr(0, slash);
  std::string lower = absl::AsciiStrToLower(type_text);
  const TypeInfo* info = nullptr;
  for (const TypeInfo& t : kTypes) {
    if (lower == t.name || lower == t.plural || (t.short_name && lower == t.short_name)) info = &t;
  }
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown resource type ", Quote(type_text),
                                                   " in target ", Quote(target),
                                                   "; accepted types: ", AcceptedTypes()));
  }
  TargetRef ref;
  ref.type = info->type;
  if (slash != std::string::npos) {
    ref.name = target.substr(slash + 1);
    if (ref.name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("target ", Quote(target), " has no name after \"/\""));
    }
    if (ref.name.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "target ", Quote(target), " has more than one \"/\"; expected TYPE/NAME or TYPE"));
    }
  }
  return ref;
}

absl::StatusOr<Inventory> Inventory::Load(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("cannot open inventory ", path));
  std::string text;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
    text.append(buf, n);
    if (text.size() > kMaxInventoryBytes) {
      std::fclose(f);
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": an inventory is at most ", kMaxInventoryBytes >> 20, " MiB"));
    }
  }
  int error = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (error != 0) return absl::ErrnoToStatus(error, absl::StrCat("cannot read inventory ", path));
  return Parse(text, path);
}

absl::StatusOr<Inventory> Inventory::Parse(const std::string& yaml, const std::string& name) {
  Parser parser(name);
  if (absl::Status s = parser.Run(yaml); !s.ok()) return s;
  // Every pod's labels now: the inventory never changes afterwards, and LabelsFor runs for both
  // endpoints of every exchange recorded with --inventory.
  std::shared_ptr<Inventory::Data> d = parser.Result();
  Inventory inv(d);
  d->labels.reserve(d->pods.size());
  for (const PodInfo& p : d->pods) d->labels.push_back(inv.LabelsOf(p));
  return inv;
}

namespace {

// Whether pod `pod` with workload chain `chain` is one `ref` names in namespace `ns`.
bool PodMatches(const Inventory::Data& d, const PodInfo& pod, const std::vector<ChainLink>& chain,
                const TargetRef& ref, const std::string& ns) {
  if (ref.type == ResourceType::kNamespace) return ref.name.empty() || pod.namespace_ == ref.name;
  if (pod.namespace_ != ns) return false;
  switch (ref.type) {
    case ResourceType::kPod:
      return ref.name.empty() || pod.name == ref.name;
    case ResourceType::kService: {
      if (!ref.name.empty()) {
        auto it = d.services.find({ns, ref.name});
        return it != d.services.end() && HasPodsBehind(it->second, pod);
      }
      for (auto it = d.services.lower_bound({ns, ""});
           it != d.services.end() && it->first.first == ns; ++it) {
        if (HasPodsBehind(it->second, pod)) return true;
      }
      return false;
    }
    default:
      return std::any_of(chain.begin(), chain.end(), [&ref](const ChainLink& link) {
        return link.type == ref.type && (ref.name.empty() || link.name == ref.name);
      });
  }
}

}  // namespace

absl::StatusOr<std::vector<PodInfo>> Inventory::Resolve(const std::string& target,
                                                        const std::string& ns,
                                                        const std::string& label_selector) const {
  absl::StatusOr<TargetRef> ref = ParseTarget(target);
  if (!ref.ok()) return ref.status();
  absl::StatusOr<LabelSelector> selector = LabelSelector::Parse(label_selector);
  if (!selector.ok()) return selector.status();
  const Data& d = *data_;
  const std::string in_ns = ns.empty() ? "default" : ns;
  const TypeInfo& info = Info(ref->type);

  std::string why;  // why nothing can match, when known
  if (ref->type == ResourceType::kNamespace) {
    if (!ref->name.empty() && !d.namespaces.contains(ref->name)) {
      return NamespaceNotFound(Namespaces(), ref->name);
    }
  } else {
    if (!d.namespaces.contains(in_ns)) return NamespaceNotFound(Namespaces(), in_ns);
    std::vector<std::string> names = Names(ref->type, in_ns);
    if (!ref->name.empty() && !std::binary_search(names.begin(), names.end(), ref->name)) {
      return absl::NotFoundError(absl::StrCat(
          info.name, " ", Quote(ref->name), " not found in namespace ", Quote(in_ns), "; ",
          names.empty() ? absl::StrCat("namespace ", Quote(in_ns), " has no ", info.plural)
                        : absl::StrCat(info.plural, " there: ", NameList(names))));
    }
    if (names.empty())
      why = absl::StrCat(" (namespace ", Quote(in_ns), " has no ", info.plural, ")");
    if (ref->type == ResourceType::kService && !ref->name.empty() &&
        FindService(in_ns, ref->name)->selector.empty()) {
      why = absl::StrCat(" (service ", Quote(ref->name), " has no selector)");
    }
  }

  std::vector<PodInfo> out;
  for (size_t i = 0; i < d.pods.size(); ++i) {
    if (PodMatches(d, d.pods[i], d.chains[i], *ref, in_ns) && selector->Matches(d.pods[i].labels)) {
      out.push_back(d.pods[i]);
    }
  }
  if (out.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "target ", Quote(target),
        ref->type == ResourceType::kNamespace ? "" : absl::StrCat(" in namespace ", Quote(in_ns)),
        " has no pods",
        selector->empty() ? "" : absl::StrCat(" matching selector ", Quote(label_selector)), why));
  }
  std::sort(out.begin(), out.end(), [](const PodInfo& a, const PodInfo& b) {
    return std::tie(a.name, a.namespace_) < std::tie(b.name, b.namespace_);
  });
  return out;
}

const PodInfo* Inventory::PodByIp(const std::string& ip) const {
  auto it = data_->pod_by_ip.find(CanonicalIp(ip));
  return it == data_->pod_by_ip.end() ? nullptr : &data_->pods[it->second];
}

Labels Inventory::LabelsFor(const std::string& ip) const {
  auto it = data_->pod_by_ip.find(CanonicalIp(ip));
  return it == data_->pod_by_ip.end() ? Labels{} : data_->labels[it->second];
}

Labels Inventory::LabelsOf(const PodInfo& pod) const {
  const PodInfo* p = &pod;
  Labels l;
  l.ns = p->namespace_;
  l.pod = p->name;
  l.workload_kind = p->workload_kind;
  l.workload_name = p->workload_name;
  for (const std::string& svc : Names(ResourceType::kService, p->namespace_)) {
    if (Matches(TargetRef{ResourceType::kService, svc}, p->namespace_, *p)) {
      l.service = svc;
      break;
    }
  }
  return l;
}

bool Inventory::Matches(const std::string& resource, const std::string& ns,
                        const PodInfo& pod) const {
  absl::StatusOr<TargetRef> ref = ParseTarget(resource);
  return ref.ok() && Matches(*ref, ns, pod);
}

bool Inventory::Matches(const TargetRef& resource, const std::string& ns,
                        const PodInfo& pod) const {
  const Data& d = *data_;
  const std::string in_ns = ns.empty() ? "default" : ns;
  auto it = d.pod_by_name.find({pod.namespace_, pod.name});
  if (it != d.pod_by_name.end()) {
    return PodMatches(d, d.pods[it->second], d.chains[it->second], resource, in_ns);
  }
  std::vector<ChainLink> chain;
  if (const TypeInfo* info = InfoByName(pod.workload_kind); info && IsWorkload(info->type)) {
    chain.push_back({info->type, pod.workload_name});
  }
  return PodMatches(d, pod, chain, resource, in_ns);
}

std::vector<std::string> Inventory::Namespaces() const {
  return {data_->namespaces.begin(), data_->namespaces.end()};
}

const std::vector<PodInfo>& Inventory::Pods() const { return data_->pods; }

std::vector<std::string> Inventory::Names(ResourceType type, const std::string& ns) const {
  const Data& d = *data_;
  std::vector<std::string> names;
  switch (type) {
    case ResourceType::kNamespace:
      return Namespaces();
    case ResourceType::kPod:
      for (const PodInfo& pod : d.pods) {
        if (pod.namespace_ == ns) names.push_back(pod.name);
      }
      return names;
    case ResourceType::kService:
      for (const auto& [key, service] : d.services) {
        if (key.first == ns) names.push_back(key.second);
      }
      return names;
    default:
      for (const auto& [key, workload] : d.workloads) {
        if (std::get<0>(key) == type && std::get<1>(key) == ns) {
          names.push_back(std::get<2>(key));
        }
      }
      return names;
  }
}

const ServiceInfo* Inventory::FindService(const std::string& ns, const std::string& name) const {
  auto it = data_->services.find({ns, name});
  return it == data_->services.end() ? nullptr : &it->second;
}

}  // namespace tapkit
