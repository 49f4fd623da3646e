#include "sidecar/match.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace tapkit {

namespace v1 = tapkit::tap::v1;

struct CompiledMatch::Node {
  enum Kind { kAll, kAny, kNot, kSource, kDestination, kMethod, kAuthority, kPathPrefix } kind;
  std::vector<Node> children;
  std::vector<IpAddress> addresses;  // empty: any
  uint16_t port = 0;                 // 0: any
  std::string text;

  bool Net(const Endpoint& e) const {
    if (port != 0 && e.port != port) return false;
    if (addresses.empty()) return true;
    for (const IpAddress& a : addresses) {
      if (a == e.ip) return true;
    }
    return false;
  }

  bool Eval(const Endpoint& src, const Endpoint& dst, const Request* req) const {
    switch (kind) {
      case kAll:
        for (const Node& c : children) {
          if (!c.Eval(src, dst, req)) return false;
        }
        return true;
      case kAny:
        for (const Node& c : children) {
          if (c.Eval(src, dst, req)) return true;
        }
        return false;
      case kNot:
        return !children[0].Eval(src, dst, req);
      case kSource:
        return Net(src);
      case kDestination:
        return Net(dst);
      case kMethod:
        return req && req->method == text;
      case kAuthority:
        return req && absl::EqualsIgnoreCase(req->authority, text);
      case kPathPrefix:
        return req && req->path.compare(0, text.size(), text) == 0;
    }
    return false;
  }
};

namespace {

absl::Status Build(const v1::Match& m, const std::string& path, int depth, CompiledMatch::Node* out,
                   bool* needs_request);

}  // namespace

absl::StatusOr<CompiledMatch> CompiledMatch::Compile(const v1::Match& match) {
  CompiledMatch c;
  auto root = std::make_shared<Node>();
  absl::Status s = Build(match, "match", 0, root.get(), &c.needs_request_);
  if (!s.ok()) return s;
  c.root_ = std::move(root);
  return c;
}

bool CompiledMatch::Evaluate(const Endpoint& source, const Endpoint& destination,
                             const Request* request) const {
  return !root_ || root_->Eval(source, destination, request);
}

namespace {

absl::Status Net(const v1::NetMatch& n, const std::string& path, CompiledMatch::Node* out) {
  for (int i = 0; i < n.addresses_size(); ++i) {
    std::optional<IpAddress> a = IpAddress::Parse(n.addresses(i));
    if (!a) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ".addresses[", i, "]: \"", n.addresses(i), "\" is not an IP address"));
    }
    out->addresses.push_back(*a);
  }
  if (n.port() > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".port: ", n.port(), " is over 65535"));
  }
  out->port = static_cast<uint16_t>(n.port());
  return absl::OkStatus();
}

absl::Status Build(const v1::Match& m, const std::string& path, int depth, CompiledMatch::Node* out,
                   bool* needs_request) {
  using Node = CompiledMatch::Node;
  if (depth > 32) return absl::InvalidArgumentError(absl::StrCat(path, ": deeper than 32 levels"));
  auto seq = [&](const v1::Match::Seq& s, Node::Kind kind, const char* name) -> absl::Status {
    out->kind = kind;
    for (int i = 0; i < s.matches_size(); ++i) {
      out->children.emplace_back();
      absl::Status st = Build(s.matches(i), absl::StrCat(path, ".", name, "[", i, "]"), depth + 1,
                              &out->children.back(), needs_request);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  };
  switch (m.match_case()) {
    case v1::Match::MATCH_NOT_SET:
      out->kind = Node::kAll;  // matches everything
      return absl::OkStatus();
    case v1::Match::kAll:
      return seq(m.all(), Node::kAll, "all");
    case v1::Match::kAny:
      return seq(m.any(), Node::kAny, "any");
    case v1::Match::kNot:
      out->kind = Node::kNot;
      out->children.emplace_back();
      return Build(m.not_(), path + ".not", depth + 1, &out->children.back(), needs_request);
    case v1::Match::kSource:
      out->kind = Node::kSource;
      return Net(m.source(), path + ".source", out);
    case v1::Match::kDestination:
      out->kind = Node::kDestination;
      return Net(m.destination(), path + ".destination", out);
    case v1::Match::kHttp: {
      *needs_request = true;
      const v1::HttpMatch& h = m.http();
      switch (h.match_case()) {
        case v1::HttpMatch::kMethod:
          out->kind = Node::kMethod;
          out->text = h.method();
          break;
        case v1::HttpMatch::kAuthority:
          out->kind = Node::kAuthority;
          out->text = h.authority();
          break;
        case v1::HttpMatch::kPathPrefix:
          out->kind = Node::kPathPrefix;
          out->text = h.path_prefix();
          break;
        case v1::HttpMatch::MATCH_NOT_SET:
          return absl::InvalidArgumentError(absl::StrCat(path, ".http: empty"));
      }
      if (out->text.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ".http: empty value"));
      }
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(path, ": unknown match kind"));
}

}  // namespace
}  // namespace tapkit
