// privileges.h: giving up root once the capture is open, as tcpdump's -Z does (issue 10).
//
// taprec and tap-sidecar need root (CAP_NET_RAW) for one thing: opening the capture. Everything
// after that (parsing hostile packets and HTTP, serving gRPC on an already-bound socket, writing
// to already-open files) works as any user. So, after opening, a root process becomes an
// unprivileged user:
//
//   -Z USER  given       that user (its uid, primary gid and supplementary groups)
//   -Z root              keeps root: nothing changes (tcpdump's "-Z root")
//   no -Z, running as root   kDefaultUnprivilegedUser ("nobody", see below)
//   no -Z, not root          nothing changes
//   -Z USER, not root        an error unless USER is the current user (tcpdump ignores -Z
//                            then; tapkit says so rather than keep a privilege it did not have)
//
// The drop is two steps, because some of what it changes is per thread in Linux and is only
// inherited by threads created afterwards:
//
//   PrivilegeDrop::Prepare  at argument parsing, before any thread starts and before hostile
//                           input is opened: resolves the user (an unknown user is an error
//                           naming the flag), and, when it will drop, sets PR_SET_NO_NEW_PRIVS
//                           (no execve can ever gain privileges again), empties the capability
//                           bounding set (when CAP_SETPCAP allows) and the inheritable and
//                           ambient sets. None of these touches what the process can do now.
//   PrivilegeDrop::Apply    after the capture (and output) is open: setgroups, setresgid,
//                           setresuid. glibc applies each to every thread. The kernel then clears
//                           the permitted, effective and ambient capability sets of every thread
//                           (all uids non-zero, no SECBIT_KEEP_CAPS: capabilities(7), "Effect of
//                           user ID changes on capabilities"), so nothing is left to drop by hand;
//                           Apply checks that it is so, and that root cannot be regained.
//
// Why "nobody": it exists on every Debian 12 system (uid 65534, group nogroup) and owns no files,
// so a compromised capture can read only what the world can and write nowhere but world-writable
// places. It is shared with other daemons that use it (NFS's squashed root, for one), and a
// process can signal processes of its own uid; a dedicated system user (adduser --system
// --no-create-home tapkit) is better, passed with -Z tapkit. The process is left non-dumpable by
// the kernel after the change, so other "nobody" processes cannot ptrace it.
//
// Thread-safety: Prepare and Apply are called from the main thread. Prepare before any other
// thread exists (threads created earlier keep their bounding set and may execve setuid
// binaries); Apply at any time after, other threads running.
#ifndef TAPKIT_SIDECAR_PRIVILEGES_H_
#define TAPKIT_SIDECAR_PRIVILEGES_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tapkit {

// The user a root process becomes when no -Z is given.
inline constexpr char kDefaultUnprivilegedUser[] = "nobody";

class PrivilegeDrop {
 public:
  // `user`: the -Z value, empty when the flag was not given. `flag` names the flag in errors
  // ("-Z"). Errors: InvalidArgument "-Z USER: no such user" (getpwnam_r found none), "-Z USER:
  // only root can change to another user (running as uid N)" when not root; Internal when the
  // user database or a prctl fails.
  static absl::StatusOr<PrivilegeDrop> Prepare(const std::string& user,
                                               const std::string& flag = "-Z");

  // Becomes the user (a no-op when will_drop() is false). Errors: Internal naming the call that
  // failed (setgroups, setresgid, setresuid) with strerror, or what the check found ("thread 123
  // still has CapEff 0000000000003000"). After an error the process must exit: it may be half
  // way. A second call does nothing.
  absl::Status Apply();

  // Whether Apply changes anything: the process is root and the user is not root.
  bool will_drop() const { return will_drop_; }
  // The user to become (resolved name), its uid and primary gid; meaningful when will_drop().
  const std::string& user() const { return user_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }
  // Whether the user may create files in directory `dir` (write and search permission by its
  // mode bits for the user's uid, groups, or others; ACLs are not read), asked before Apply so
  // that a run refused for it has touched nothing. OK, or PermissionDenied naming the directory
  // and why; the stat error otherwise. True of everything when will_drop() is false.
  absl::Status CanWriteDirectory(const std::string& dir) const;
  // Prepare emptied the bounding set (false when the process lacked CAP_SETPCAP; harmless with
  // no_new_privs, which already stops execve from granting anything).
  bool bounding_set_cleared() const { return bounding_cleared_; }

 private:
  PrivilegeDrop() = default;
  // Apply's check of the calling thread alone, where /proc hides the task list.
  absl::Status CheckThisThread() const;

  bool will_drop_ = false;
  bool applied_ = false;
  bool bounding_cleared_ = false;
  std::string user_;
  std::string flag_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::vector<gid_t> groups_;  // supplementary groups (getgrouplist), the primary one included
};

// Prepare and Apply at once, for a program that starts no thread before opening its capture.
absl::Status DropPrivileges(const std::string& user, const std::string& flag = "-Z");

}  // namespace tapkit

#endif  // TAPKIT_SIDECAR_PRIVILEGES_H_
