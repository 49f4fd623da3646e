// inventory.h: the local runtime's cluster model (docs/architecture.md section 5), read from an
// inventory file in Kubernetes' shape, and the resolution of kubectl/linkerd-style targets
// (`deploy/backend -n demo -l tier=api`, docs/architecture.md section 4) to the pods of a tap.
//
// The file holds one or more YAML documents (separated by `---`), each one Kubernetes object or a
// `kind: List` whose `items` are objects. Every object has `kind` and `metadata` (`name`;
// `namespace`, default "default"; `labels`; `annotations`; `ownerReferences`, each with `kind`
// and `name`, the one with `controller: true` preferred). Kinds read, other kinds are skipped:
//   Namespace
//   Pod          status.podIP (required; IPv4 or IPv6, stored in canonical text form);
//                annotation kInterfaceAnnotation = the interface its sidecar captures on
//   Deployment, StatefulSet, DaemonSet, ReplicaSet (spec.selector required), Job (optional):
//                spec.selector.matchLabels and .matchExpressions (In, NotIn, Exists, DoesNotExist)
//   CronJob      spec.jobTemplate.spec.selector (optional); owns Jobs by their ownerReferences
//   Service      spec.selector (a plain label map; none = no pods), spec.ports[].port
// A namespace exists when a Namespace object declares it or any object lives in it.
//
// Workloads. Each pod belongs to at most one chain of workloads, nearest first: from its
// ownerReferences when one names a workload kind (a ReplicaSet owned by a Deployment continues
// to the Deployment, a Job owned by a CronJob to the CronJob), else from the first workload of its
// namespace whose selector matches its labels, in the order Deployment, StatefulSet, DaemonSet,
// ReplicaSet, Job, CronJob, then by name (and on to that workload's owner as above). The top of
// the chain is PodInfo's workload; a workload target (`rs/backend-5d4f8b7c9`, `deploy/backend`)
// resolves to the pods whose chain holds it, so no pod belongs to two Deployments (or two
// StatefulSets, ...), and a pod's workload label agrees with what its workload resolves to.
//
// Errors found while loading are InvalidArgumentError, one line:
//   FILE:LINE: WHERE (KIND NAMESPACE/NAME): FIELD PROBLEM
// e.g. `inv.yaml:42: item 3 (Pod demo/backend-1): status.podIP "abc" is not an IP address`.
// LINE (from 1) is that of the field at fault, or of the object when the field is missing. WHERE
// is `document D` for an object that is a whole document, `item I` for an item of a List when
// the file has one document, else `document D, item I`; D and I count from 1 (indexes in field
// paths, as in `spec.ports[0].port`, count from 0, as in kubectl). Malformed YAML is
// `FILE:LINE:COLUMN: invalid YAML: PROBLEM`. Two objects of one kind with one namespace and
// name, two pods with one address, and an ownerReference to a missing workload are errors.
//
// Thread-safety: an Inventory is immutable once loaded; copies share their data, and const
// methods may be called from any number of threads at once. Pointers and references it returns
// stay valid while any copy of it lives.
#ifndef TAPKIT_CONTROLPLANE_INVENTORY_H_
#define TAPKIT_CONTROLPLANE_INVENTORY_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "format/exchange.h"  // Labels
#include "controlplane/label_selector.h"

namespace tapkit {

// The pod annotation naming the network interface its sidecar captures on, and its default.
inline constexpr char kInterfaceAnnotation[] = "tap.tapkit.dev/interface";
inline constexpr char kDefaultInterface[] = "lo";

struct PodInfo {
  std::string namespace_, name;
  std::map<std::string, std::string> labels;
  std::string ip;         // canonical text form: "127.0.10.2", "fd00::11"
  std::string interface;  // e.g. "lo"
  // The top of the pod's workload chain (see above), e.g. "deployment", "backend"; kind is a
  // canonical type name (ResourceTypeName). Both empty when the pod belongs to no workload.
  std::string workload_kind, workload_name;
};

struct ServiceInfo {
  std::string namespace_, name;
  std::map<std::string, std::string> selector;  // empty: the service selects no pods
  std::vector<int> ports;                       // spec.ports[].port in file order, 1..65535
};

// The resource types of targets, --to and --from. The workload types are in the order in which
// their selectors claim pods.
enum class ResourceType {
  kPod,
  kDeployment,
  kStatefulSet,
  kDaemonSet,
  kReplicaSet,
  kJob,
  kCronJob,
  kService,
  kNamespace,
};

// "pod", "deployment", "statefulset", "daemonset", "replicaset", "job", "cronjob", "service",
// "namespace".
std::string_view ResourceTypeName(ResourceType type);

// A parsed target: `TYPE/NAME`, or `TYPE` alone (name empty: all of that type).
struct TargetRef {
  ResourceType type = ResourceType::kPod;
  std::string name;
};

// Parses `TYPE/NAME` or `TYPE`. TYPE is case-insensitive, singular, plural or short:
// pod|pods|po, deployment|deployments|deploy, statefulset|statefulsets|sts,
// daemonset|daemonsets|ds, replicaset|replicasets|rs, job|jobs, cronjob|cronjobs|cj,
// namespace|namespaces|ns, service|services|svc. Errors: InvalidArgumentError for an empty
// target, an unknown type (the message lists the accepted types), an empty NAME after '/', or a
// NAME holding '/'.
absl::StatusOr<TargetRef> ParseTarget(const std::string& target);

class Inventory {
 public:
  // Reads and parses the file at `path`; errors name it as `path` is written. Errors: NotFound
  // when the file does not exist, PermissionDenied or another errno-mapped code when it cannot be
  // read, InvalidArgument as Parse.
  static absl::StatusOr<Inventory> Load(const std::string& path);
  // Parses inventory text; `name` stands for the file in error messages. Errors:
  // InvalidArgumentError as described at the top of this file.
  static absl::StatusOr<Inventory> Parse(const std::string& yaml, const std::string& name);

  // The pods `target` (ParseTarget syntax) names in namespace `ns` (empty = "default"), narrowed
  // by `label_selector` (LabelSelector::Parse syntax; empty = no narrowing), sorted by pod name
  // (then namespace). The targets `namespace/NAME` (the pods of that namespace) and `namespace`
  // (every pod) ignore `ns`; `svc/NAME` gives the pods its selector matches. Errors:
  // InvalidArgumentError for a malformed target or selector; NotFoundError, listing what exists,
  // for an unknown namespace (`namespace "shop" not found; namespaces: default, demo`) or object
  // (`deployment "backnd" not found in namespace "demo"; deployments there: backend, frontend`;
  // lists stop after 20 names), and when no pod remains (`target "deploy/frontend" in namespace
  // "demo" has no pods matching selector "tier=web"`).
  absl::StatusOr<std::vector<PodInfo>> Resolve(const std::string& target, const std::string& ns,
                                               const std::string& label_selector) const;

  // The pod whose address is `ip` (any text form; an IPv4-mapped IPv6 address finds the IPv4
  // pod), or nullptr. Valid while the Inventory lives.
  const PodInfo* PodByIp(const std::string& ip) const;

  // The labels an endpoint at `ip` gets in a capture (linkerd tap's resource labels): its pod's
  // namespace, name and workload (kind and name), and the first service of that namespace, in
  // name order, whose selector matches the pod. Empty Labels when no pod has the address. The
  // one labelling of endpoints by address: live taps (the control plane) and offline recording
  // (`taprec -r --inventory`) both use it. Worked out for every pod when the inventory is read.
  Labels LabelsFor(const std::string& ip) const;

  // Whether `pod` is one of the pods `resource` (ParseTarget syntax) names in `ns` (the
  // caller passes --to-namespace, or the tap's namespace when that is empty; empty here =
  // "default"), by the rules of Resolve without a selector. The pod is looked up by namespace
  // and name, and the inventory's record of it decides; a pod absent from the inventory is judged
  // by its own fields (workload_kind/name stand for its chain). A malformed resource matches
  // nothing: check it with ParseTarget first.
  bool Matches(const std::string& resource, const std::string& ns, const PodInfo& pod) const;
  bool Matches(const TargetRef& resource, const std::string& ns, const PodInfo& pod) const;

  // Every namespace, sorted.
  std::vector<std::string> Namespaces() const;
  // Every pod, sorted by namespace, then name.
  const std::vector<PodInfo>& Pods() const;
  // The names of the objects of `type` in `ns`, sorted (for kNamespace: Namespaces()).
  std::vector<std::string> Names(ResourceType type, const std::string& ns) const;
  // The service `name` in `ns`, or nullptr. Valid while the Inventory lives.
  const ServiceInfo* FindService(const std::string& ns, const std::string& name) const;

  struct Data;  // the loaded model; defined and used in inventory.cc only

 private:
  explicit Inventory(std::shared_ptr<const Data> data) : data_(std::move(data)) {}
  // LabelsFor's answer for `pod`, worked out (Parse does it once per pod).
  Labels LabelsOf(const PodInfo& pod) const;

  std::shared_ptr<const Data> data_;
};

}  // namespace tapkit

#endif  // TAPKIT_CONTROLPLANE_INVENTORY_H_
