// match.h: the tap API's match tree (controlplane/api/tap.proto, message Match), compiled once
// and evaluated against each exchange before any event is built for it.
//
// Thread-safety: a CompiledMatch is immutable after Compile; Evaluate may run on many threads.
#ifndef TAPKIT_SIDECAR_MATCH_H_
#define TAPKIT_SIDECAR_MATCH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controlplane/api/tap.pb.h"
#include "format/exchange.h"

namespace tapkit {

class CompiledMatch {
 public:
  // Errors (InvalidArgument, naming the path in the tree such as "match.all[1].destination"):
  // an address that is not IPv4 or IPv6 text, a port over 65535, an empty HTTP leaf, a tree
  // deeper than 32 levels. An unset match matches everything.
  static absl::StatusOr<CompiledMatch> Compile(const tapkit::tap::v1::Match& match);

  // `request` may be null (the request was not captured): an HTTP leaf is then false.
  bool Evaluate(const Endpoint& source, const Endpoint& destination, const Request* request) const;

  // True when the tree has an HTTP leaf (its answer needs the request).
  bool needs_request() const { return needs_request_; }

  struct Node;  // one compiled node (match.cc)

 private:
  std::shared_ptr<const Node> root_;
  bool needs_request_ = false;
};

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_MATCH_H_
