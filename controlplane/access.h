// access.h: what guards access to the control plane, for both of its sides (the control plane
// and a client such as taprec): the runtime directory that holds its unix socket, and the bearer
// token of a TCP listener.
//
// The runtime directory. Whoever controls it controls which controlplane.sock a client connects
// to: another local user who created it first could put their own socket there and receive root's
// taps. So it is looked up in a fixed order and checked before use:
//   $TAPKIT_RUNTIME_DIR, else $XDG_RUNTIME_DIR/tapkit (for root only an $XDG_RUNTIME_DIR root
//   owns: `sudo -E` passes the invoking user's), else /run/tapkit for root (euid 0), else
//   /tmp/tapkit-EUID;
// the control plane creates it (mode 0700; missing parents only under $XDG_RUNTIME_DIR), and both
// sides verify with lstat, on the path written plainly ("dir/" and "dir/." name dir itself), that
// it is a directory, not a symbolic link, owned by the caller's effective uid, with no group or
// other permission bits; and that every directory above it is owned by root or the caller and
// writable by no one else unless sticky (as /tmp), so that nobody can swap it between the check
// and its use. Anything else is refused with a message naming the directory and what is wrong.
//
// The token file: its whole content, surrounding white space stripped, is the token. Like ssh
// with a private key, a token file readable or writable by group or others, or owned by another
// user than the caller or root, is refused.
//
// Thread-safety: the functions are safe to call from any thread (they read the environment).
#ifndef TAPKIT_CONTROLPLANE_ACCESS_H_
#define TAPKIT_CONTROLPLANE_ACCESS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tapkit {

// The runtime directory's path by the order above (no check, nothing created).
std::string DefaultRuntimeDir();

// Checks `dir` (and, with `create`, first creates it mode 0700, with its missing parents when
// `create_parents`); returns `dir`. Errors: FailedPrecondition naming the directory and the
// fault ("/tmp/tapkit-0 is owned by uid 65534, not by uid 0 (this user)", "... is a symbolic
// link", "... has mode 0777: group or others have access (chmod 700 it, or remove it)",
// "... is not a directory"); NotFound when it is missing and `create` is false; the errno text
// when it cannot be created or examined.
absl::Status CheckRuntimeDir(const std::string& dir, bool create, bool create_parents = false);

// DefaultRuntimeDir() checked as above (created first when `create`; parents created only for
// the $XDG_RUNTIME_DIR case).
absl::StatusOr<std::string> SecureRuntimeDir(bool create);

// The control plane's unix socket in runtime directory `dir`: "unix:DIR/controlplane.sock" (a
// gRPC target). Where the control plane listens by default and where clients look.
std::string ControlPlaneAddressIn(const std::string& dir);

// For a client: the control plane's default address, "unix:DIR/controlplane.sock", after
// SecureRuntimeDir(false) verified DIR. A client calls this instead of
// ControlPlaneAddressIn(DefaultRuntimeDir()) so that it never talks to a socket another user
// planted.
absl::StatusOr<std::string> ControlPlaneAddressForClient();

// The bearer token in the file at `path`. Errors: NotFound/PermissionDenied with the errno
// text; PermissionDenied when group or others may read or write it ("token file T has mode 0644:
// group or others can read it; chmod 600 it") or when it is owned by another user than this
// one or root (as ssh refuses such a key); InvalidArgument when it is not a regular file (a FIFO
// is refused without waiting on it) or holds no token. Every message names the file.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// Whether `presented` equals `expected`, in time that depends only on their lengths
// (CRYPTO_memcmp), so a client cannot learn the token byte by byte from response times.
bool TokenMatches(const std::string& presented, const std::string& expected);

}  // namespace tapkit

#endif  // TAPKIT_CONTROLPLANE_ACCESS_H_
