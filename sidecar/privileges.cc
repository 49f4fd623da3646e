#include "sidecar/privileges.h"

#include <algorithm>

#include <sys/stat.h>

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tapkit {
namespace {

std::string Errno(int e) { return std::strerror(e); }

struct Passwd {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

// getpwnam_r: NotFound when there is no such user, Internal when the database fails.
absl::StatusOr<Passwd> LookUpUser(const std::string& name) {
  long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::string buf(hint > 0 ? static_cast<size_t>(hint) : 16384, '\0');
  for (;;) {
    passwd pw{};
    passwd* found = nullptr;
    int e = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
    if (e == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    // getpwnam_r(3): "not found" may be reported as 0, ENOENT, ESRCH, EBADF or EPERM.
    if (found == nullptr && (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)) {
      return absl::NotFoundError("no such user");
    }
    if (found == nullptr) {
      return absl::InternalError(absl::StrCat("getpwnam_r: ", Errno(e)));
    }
    return Passwd{pw.pw_name, pw.pw_uid, pw.pw_gid};
  }
}

std::string UserOf(uid_t uid) {
  long hint = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::string buf(hint > 0 ? static_cast<size_t>(hint) : 16384, '\0');
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) return pw.pw_name;
  return "";
}

// What the kernel reports for one thread (proc(5), /proc/PID/task/TID/status).
struct ThreadCreds {
  std::vector<std::string> uid, gid, groups;  // Uid: real, effective, saved, filesystem
  std::string cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb, no_new_privs;
};

bool ReadThreadCreds(const std::string& path, ThreadCreds* c) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits(':', 1));
    std::string v(absl::StripAsciiWhitespace(kv.second));
    std::vector<std::string> words = absl::StrSplit(v, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (kv.first == "Uid") c->uid = words;
    if (kv.first == "Gid") c->gid = words;
    if (kv.first == "Groups") c->groups = words;
    if (kv.first == "CapInh") c->cap_inh = v;
    if (kv.first == "CapPrm") c->cap_prm = v;
    if (kv.first == "CapEff") c->cap_eff = v;
    if (kv.first == "CapBnd") c->cap_bnd = v;
    if (kv.first == "CapAmb") c->cap_amb = v;
    if (kv.first == "NoNewPrivs") c->no_new_privs = v;
  }
  return true;
}

bool AllZeroHex(const std::string& s) {
  return !s.empty() && s.find_first_not_of('0') == std::string::npos;
}

}  // namespace

absl::StatusOr<PrivilegeDrop> PrivilegeDrop::Prepare(const std::string& user_flag,
                                                     const std::string& flag) {
  PrivilegeDrop d;
  d.flag_ = flag;
  std::string user = user_flag;
  bool root = ::geteuid() == 0;
  if (user == "root") return d;         // tcpdump's "-Z root": keep what the process has
  if (user.empty() && !root) return d;  // nothing to give up
  bool defaulted = user.empty();
  if (defaulted) user = kDefaultUnprivilegedUser;

  absl::StatusOr<Passwd> pw = LookUpUser(user);
  if (absl::IsNotFound(pw.status())) {
    if (defaulted) {
      return absl::InvalidArgumentError(
          absl::StrCat("running as root without ", flag, ", and the default user ", user,
                       " does not exist: pass ", flag, " USER (", flag, " root keeps root)"));
    }
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", user, ": no such user"));
  }
  if (!pw.ok()) {
    return absl::InternalError(absl::StrCat(flag, " ", user, ": ", pw.status().message()));
  }
  if (pw->uid == 0) return d;  // another name for root: keep root, as "-Z root" does
  if (!root) {
    if (pw->uid == ::geteuid() && pw->uid == ::getuid()) return d;  // already that user
    std::string me = UserOf(::geteuid());
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " ", user, ": only root can change to another user (running as uid ",
                     ::geteuid(), me.empty() ? "" : absl::StrCat(" (", me, ")"), ")"));
  }

  d.will_drop_ = true;
  d.user_ = pw->name;
  d.uid_ = pw->uid;
  d.gid_ = pw->gid;
  // The supplementary groups, resolved now: Apply then runs no NSS code (no files opened, no
  // modules loaded) after hostile input has been read.
  int n = 32;
  for (;;) {
    d.groups_.assign(static_cast<size_t>(n), 0);
    int want = n;
    if (::getgrouplist(d.user_.c_str(), d.gid_, d.groups_.data(), &want) >= 0) {
      d.groups_.resize(static_cast<size_t>(want));
      break;
    }
    if (want <= n || want > 65536) {
      return absl::InternalError(absl::StrCat(flag, " ", user, ": getgrouplist failed"));
    }
    n = want;
  }

  // No execve from now on can gain privileges: set-user-ID bits and file capabilities are
  // ignored (prctl(2)). Per thread, inherited by the threads created after it.
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return absl::InternalError(absl::StrCat("prctl(PR_SET_NO_NEW_PRIVS): ", Errno(errno)));
  }
  // The bounding set: what an execve could ever grant. Dropping it needs CAP_SETPCAP, which a
  // container's root may lack; with no_new_privs it grants nothing anyway, so that is not an
  // error. Per thread too, hence here, before any other thread exists.
  cap_value_t max = static_cast<cap_value_t>(cap_max_bits());
  d.bounding_cleared_ = true;
  for (cap_value_t c = 0; c < max; ++c) {
    if (cap_get_bound(c) > 0 && cap_drop_bound(c) != 0) d.bounding_cleared_ = false;
  }
  // The inheritable and ambient sets (empty for root in practice): kept across execve, so
  // emptied. The effective and permitted sets stay: the capture is not open yet.
  if (cap_t caps = cap_get_proc()) {
    int r = cap_clear_flag(caps, CAP_INHERITABLE) == 0 ? cap_set_proc(caps) : -1;
    int e = errno;
    cap_free(caps);
    if (r != 0) return absl::InternalError(absl::StrCat("cap_set_proc: ", Errno(e)));
  } else {
    return absl::InternalError(absl::StrCat("cap_get_proc: ", Errno(errno)));
  }
  if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() != 0) {
    return absl::InternalError(absl::StrCat("cap_reset_ambient: ", Errno(errno)));
  }
  return d;
}

absl::Status PrivilegeDrop::CanWriteDirectory(const std::string& dir) const {
  if (!will_drop_) return absl::OkStatus();
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    int e = errno;
    return absl::ErrnoToStatus(e, absl::StrCat(dir, ": ", Errno(e)));
  }
  if (!S_ISDIR(st.st_mode)) return absl::PermissionDeniedError(absl::StrCat(dir, ": not a directory"));

  mode_t need;  // write and search, in the class of permission bits that applies to the user
  if (st.st_uid == uid_) {
    need = S_IWUSR | S_IXUSR;
  } else if (st.st_gid == gid_ ||
             std::find(groups_.begin(), groups_.end(), st.st_gid) != groups_.end()) {
    need = S_IWGRP | S_IXGRP;
  } else {
    need = S_IWOTH | S_IXOTH;
  }
  if ((st.st_mode & need) != need) {
    return absl::PermissionDeniedError(absl::StrCat(
        dir, " (mode ", absl::StrFormat("%04o", st.st_mode & 07777), ", owner uid ", st.st_uid,
        ") gives ", user_, " no write permission"));
  }
  // The user must also reach it: search permission on every directory above (a root whose / is
  // root's only, as in a chroot made by mktemp -d, lets nobody reach anything).
  std::error_code ec;
  std::filesystem::path above = std::filesystem::absolute(dir, ec).lexically_normal();
  for (above = above.parent_path(); !ec && !above.empty(); above = above.parent_path()) {
    struct stat a {};
    if (::stat(above.c_str(), &a) == 0) {
      mode_t x = a.st_uid == uid_ ? S_IXUSR
                 : (a.st_gid == gid_ ||
                    std::find(groups_.begin(), groups_.end(), a.st_gid) != groups_.end())
                     ? S_IXGRP
                     : S_IXOTH;
      if (!(a.st_mode & x)) {
        return absl::PermissionDeniedError(absl::StrCat(
            above.string(), " (mode ", absl::StrFormat("%04o", a.st_mode & 07777),
            ", owner uid ", a.st_uid, ") lets ", user_, " not reach ", dir));
      }
    }
    if (above == above.root_path()) break;
  }
  return absl::OkStatus();
}

absl::Status PrivilegeDrop::Apply() {
  if (!will_drop_ || applied_) return absl::OkStatus();
  applied_ = true;
  auto fail = [&](const char* what, int e) {
    return absl::InternalError(absl::StrCat(flag_, " ", user_, ": ", what, ": ", Errno(e)));
  };
  // A credential change clears the parent-death signal (prctl(2), PR_SET_PDEATHSIG): the
  // control plane sets SIGTERM there so that no sidecar outlives it. It is set again below.
  int pdeath = 0;
  (void)::prctl(PR_GET_PDEATHSIG, &pdeath, 0, 0, 0);
  pid_t parent = ::getppid();

  // Groups first, then the gid, then the uid: each later step needs the privilege the one
  // after it takes away. glibc makes each call on every thread of the process (nptl's setxid).
  if (::setgroups(groups_.size(), groups_.data()) != 0) return fail("setgroups", errno);
  if (::setresgid(gid_, gid_, gid_) != 0) return fail("setresgid", errno);
  if (::setresuid(uid_, uid_, uid_) != 0) return fail("setresuid", errno);

  if (pdeath != 0) {
    (void)::prctl(PR_SET_PDEATHSIG, pdeath, 0, 0, 0);
    if (::getppid() != parent) ::raise(pdeath);  // the parent died in between
  }

  // Root cannot be regained: every uid and gid is the user's now.
  if (::setuid(0) == 0 || ::seteuid(0) == 0) {
    return absl::InternalError(absl::StrCat(flag_, " ", user_,
                                            ": setuid(0) succeeded after the "
                                            "drop; refusing to go on"));
  }
  if (gid_ != 0 && (::setgid(0) == 0 || ::setegid(0) == 0)) {
    return absl::InternalError(absl::StrCat(flag_, " ", user_,
                                            ": setgid(0) succeeded after the "
                                            "drop; refusing to go on"));
  }
  // What is left, thread by thread, as the kernel reports it: the uid/gid change cleared the
  // permitted, effective and ambient sets (capabilities(7)); check rather than trust.
  std::string want_uid = std::to_string(uid_), want_gid = std::to_string(gid_);
  DIR* dir = ::opendir("/proc/self/task");
  if (!dir && (errno == EACCES || errno == EPERM)) {
    // A /proc mounted with hidepid, or a process the uid change made non-dumpable where /proc
    // then hides its own task list from it: this thread is checked through the system calls,
    // and the others rest on nptl's setxid, which changes every thread or aborts the process.
    return CheckThisThread();
  }
  if (!dir) return fail("opendir /proc/self/task", errno);
  absl::Status st;
  int threads = 0;
  while (dirent* ent = ::readdir(dir)) {
    if (ent->d_name[0] == '.') continue;
    ThreadCreds c;
    // A thread that ended since readdir: nothing to check.
    if (!ReadThreadCreds(absl::StrCat("/proc/self/task/", ent->d_name, "/status"), &c)) continue;
    ++threads;
    std::string bad;
    for (const std::string& u : c.uid) {
      if (u != want_uid) bad = absl::StrCat("Uid ", absl::StrJoin(c.uid, " "));
    }
    if (c.uid.size() != 4) bad = "no Uid line";
    for (const std::string& g : c.gid) {
      if (g != want_gid) bad = absl::StrCat("Gid ", absl::StrJoin(c.gid, " "));
    }
    if (c.gid.size() != 4) bad = "no Gid line";
    if (gid_ != 0) {
      for (const std::string& g : c.groups) {
        if (g == "0") bad = "supplementary group 0";
      }
    }
    for (auto [name, v] : {std::pair<const char*, const std::string*>{"CapInh", &c.cap_inh},
                           {"CapPrm", &c.cap_prm},
                           {"CapEff", &c.cap_eff},
                           {"CapAmb", &c.cap_amb}}) {
      // CapAmb is absent before Linux 4.3: nothing there to hold a capability.
      if (!v->empty() && !AllZeroHex(*v)) bad = absl::StrCat(name, " ", *v);
    }
    if (c.no_new_privs != "1") bad = absl::StrCat("NoNewPrivs ", c.no_new_privs);
    if (bounding_cleared_ && !AllZeroHex(c.cap_bnd)) bad = absl::StrCat("CapBnd ", c.cap_bnd);
    if (!bad.empty() && st.ok()) {
      st = absl::InternalError(absl::StrCat(flag_, " ", user_, ": after the drop, thread ",
                                            ent->d_name, " still has ", bad,
                                            " (was it started before PrivilegeDrop::Prepare?)"));
    }
  }
  ::closedir(dir);
  if (st.ok() && threads == 0) {
    st = absl::InternalError(absl::StrCat(flag_, " ", user_, ": /proc/self/task lists no thread"));
  }
  return st;
}

absl::Status PrivilegeDrop::CheckThisThread() const {
  auto bad = [&](const std::string& what) {
    return absl::InternalError(absl::StrCat(flag_, " ", user_, ": after the drop, ", what));
  };
  uid_t r, e, su;
  gid_t rg, eg, sg;
  if (::getresuid(&r, &e, &su) != 0 || r != uid_ || e != uid_ || su != uid_) {
    return bad(absl::StrCat("uids ", r, " ", e, " ", su));
  }
  if (::getresgid(&rg, &eg, &sg) != 0 || rg != gid_ || eg != gid_ || sg != gid_) {
    return bad(absl::StrCat("gids ", rg, " ", eg, " ", sg));
  }
  if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) return bad("no_new_privs is off");
  cap_t caps = cap_get_proc();
  if (!caps) return bad(absl::StrCat("cap_get_proc: ", Errno(errno)));
  cap_t none = cap_init();
  bool clear = none && cap_compare(caps, none) == 0;
  cap_free(none);
  cap_free(caps);
  if (!clear) return bad("capabilities are left");
  return absl::OkStatus();
}

absl::Status DropPrivileges(const std::string& user, const std::string& flag) {
  absl::StatusOr<PrivilegeDrop> d = PrivilegeDrop::Prepare(user, flag);
  if (!d.ok()) return d.status();
  return d->Apply();
}

}  // namespace tapkit
