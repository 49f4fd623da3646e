// access_test: the checks that keep other local users out of the control plane (access.h): the
// runtime directory (another user's, open to others, a symbolic link: refused, by the library
// function both sides call), the token file (group/other-readable: refused, as ssh refuses such a
// key), and the bearer token itself (a wrong one: UNAUTHENTICATED from a real Tap service on a unix
// socket). The tap-controlplane binary's refusals are in tap_controlplane_test.py.
#include "controlplane/access.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "controlplane/tap_service.h"
#include "format/test_dir.h"

namespace tapkit {
namespace {

using ::testing::HasSubstr;

// A directory of this test's own (mkdtemp under TestDir()), removed at the end.
class TempDir : public tapkit::testing::ScopedTempDir {
 public:
  TempDir() : ScopedTempDir("access_test") {}
};

// Sets an environment variable for the life of the object.
class Env {
 public:
  Env(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~Env() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

void WriteFile(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream(path) << content;
  ::chmod(path.c_str(), mode);
}

// ---------------------------------------------------------------------------------------------
// The runtime directory.

// Created 0700 when missing, and accepted.
TEST(RuntimeDir, CreatedPrivateAndAccepted) {
  TempDir t;
  std::string dir = t.path() + "/run";
  ASSERT_TRUE(CheckRuntimeDir(dir, true).ok());
  struct stat st;
  ASSERT_EQ(::lstat(dir.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_TRUE(CheckRuntimeDir(dir, false).ok());
}

// A directory others can enter or write is refused, naming it and its mode.
TEST(RuntimeDir, OpenToOthersIsRefused) {
  TempDir t;
  std::string dir = t.path() + "/run";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0777), 0);
  absl::Status s = CheckRuntimeDir(dir, true);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(dir));
  EXPECT_THAT(std::string(s.message()), HasSubstr("mode 0777"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("group or others"));
}

// Another user's directory is refused (as root: one chowned to nobody).
TEST(RuntimeDir, AnotherUsersDirectoryIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give a directory to another user";
  TempDir t;
  std::string dir = t.path() + "/run";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chown(dir.c_str(), 65534, 65534), 0);
  absl::Status s = CheckRuntimeDir(dir, true);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(dir));
  EXPECT_THAT(std::string(s.message()), HasSubstr("owned by uid 65534, not by uid 0"));
}

// A symbolic link, even to a good directory, is refused; so is a file.
TEST(RuntimeDir, SymlinkAndFileAreRefused) {
  TempDir t;
  std::string real = t.path() + "/real", link = t.path() + "/run";
  ASSERT_EQ(::mkdir(real.c_str(), 0700), 0);
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  absl::Status s = CheckRuntimeDir(link, true);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("symbolic link"));
  // Written so that lstat would follow it: a trailing slash, "/.", "//", or ".." after it.
  ASSERT_EQ(::mkdir((real + "/sub").c_str(), 0700), 0);
  for (const std::string& through :
       {link + "/", link + "/.", link + "//", link + "/sub/..", link + "/../run/"}) {
    s = CheckRuntimeDir(through, false);
    EXPECT_TRUE(absl::IsFailedPrecondition(s)) << through << ": " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("symbolic link")) << through;
  }
  // The real directory, however written, is accepted.
  for (const std::string& plain : {real, real + "/", real + "/.", real + "/sub/.."}) {
    EXPECT_TRUE(CheckRuntimeDir(plain, false).ok()) << plain;
  }
  std::string file = t.path() + "/file";
  WriteFile(file, "", 0600);
  s = CheckRuntimeDir(file, false);
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a directory"));
}

// A runtime directory under a directory another user owns, or others may write without the
// sticky bit, is refused: they could swap it between the check and the socket's use.
TEST(RuntimeDir, ParentAnotherUserControlsIsRefused) {
  TempDir t;
  std::string parent = t.path() + "/shared", dir = parent + "/run";
  ASSERT_EQ(::mkdir(parent.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  EXPECT_TRUE(CheckRuntimeDir(dir, false).ok());
  ASSERT_EQ(::chmod(parent.c_str(), 0777), 0);
  absl::Status s = CheckRuntimeDir(dir, false);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("a directory above it, " + parent +
                                                  ", has mode 0777"));
  // Refused before anything is made: no directory is left behind.
  std::string fresh = parent + "/new";
  EXPECT_TRUE(absl::IsFailedPrecondition(CheckRuntimeDir(fresh, true)));
  EXPECT_FALSE(std::filesystem::exists(fresh));
  ASSERT_EQ(::chmod(parent.c_str(), 01777), 0);  // sticky, as /tmp: only owners rename
  EXPECT_TRUE(CheckRuntimeDir(dir, false).ok());
  if (::geteuid() == 0) {
    ASSERT_EQ(::chmod(parent.c_str(), 0755), 0);
    ASSERT_EQ(::chown(parent.c_str(), 65534, 65534), 0);
    s = CheckRuntimeDir(dir, false);
    EXPECT_THAT(std::string(s.message()), HasSubstr("is owned by uid 65534"));
    // root ignores an $XDG_RUNTIME_DIR another user owns (sudo -E passes it on).
    Env a("TAPKIT_RUNTIME_DIR", nullptr);
    Env b("XDG_RUNTIME_DIR", parent.c_str());
    EXPECT_EQ(DefaultRuntimeDir(), "/run/tapkit");
  }
}

// The lookup order: $TAPKIT_RUNTIME_DIR, else $XDG_RUNTIME_DIR/tapkit (parents created), else
// /run/tapkit for root, else /tmp/tapkit-EUID.
TEST(RuntimeDir, LookupOrder) {
  TempDir t;
  {
    Env a("TAPKIT_RUNTIME_DIR", (t.path() + "/mine").c_str());
    Env b("XDG_RUNTIME_DIR", (t.path() + "/xdg").c_str());
    EXPECT_EQ(DefaultRuntimeDir(), t.path() + "/mine");
  }
  {
    Env a("TAPKIT_RUNTIME_DIR", nullptr);
    Env b("XDG_RUNTIME_DIR", (t.path() + "/xdg/1000").c_str());
    EXPECT_EQ(DefaultRuntimeDir(), t.path() + "/xdg/1000/tapkit");
    absl::StatusOr<std::string> d = SecureRuntimeDir(true);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(*d, t.path() + "/xdg/1000/tapkit");
    EXPECT_TRUE(std::filesystem::is_directory(*d));
  }
  {
    Env a("TAPKIT_RUNTIME_DIR", nullptr);
    Env b("XDG_RUNTIME_DIR", nullptr);
    EXPECT_EQ(DefaultRuntimeDir(), ::geteuid() == 0 ? std::string("/run/tapkit")
                                                    : "/tmp/tapkit-" + std::to_string(::geteuid()));
  }
}

// The client's address: only after its directory passed the checks; never created by it.
TEST(RuntimeDir, ClientAddressOnlyFromAGoodDirectory) {
  TempDir t;
  std::string dir = t.path() + "/run";
  Env a("TAPKIT_RUNTIME_DIR", dir.c_str());
  absl::StatusOr<std::string> addr = ControlPlaneAddressForClient();
  EXPECT_TRUE(absl::IsNotFound(addr.status())) << addr.status();
  EXPECT_FALSE(std::filesystem::exists(dir));
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  addr = ControlPlaneAddressForClient();
  ASSERT_TRUE(addr.ok()) << addr.status();
  EXPECT_EQ(*addr, "unix:" + dir + "/controlplane.sock");
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  addr = ControlPlaneAddressForClient();
  EXPECT_THAT(std::string(addr.status().message()), HasSubstr("mode 0755"));
  if (::geteuid() == 0) {
    ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
    ASSERT_EQ(::chown(dir.c_str(), 65534, 65534), 0);
    addr = ControlPlaneAddressForClient();
    EXPECT_THAT(std::string(addr.status().message()), HasSubstr("owned by uid 65534"));
  }
}

// ---------------------------------------------------------------------------------------------
// The token.

// A private token file gives its token, white space stripped.
TEST(TokenFile, PrivateFileGivesItsToken) {
  TempDir t;
  std::string f = t.path() + "/token";
  WriteFile(f, "  s3cret-token\n", 0600);
  absl::StatusOr<std::string> tok = ReadTokenFile(f);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ(*tok, "s3cret-token");
  WriteFile(f, "s3cret-token", 0400);
  EXPECT_TRUE(ReadTokenFile(f).ok());
}

// A token file group or others may read is refused, naming the file and its mode.
TEST(TokenFile, ReadableByOthersIsRefused) {
  TempDir t;
  std::string f = t.path() + "/token";
  WriteFile(f, "s3cret-token\n", 0644);
  absl::StatusOr<std::string> tok = ReadTokenFile(f);
  ASSERT_FALSE(tok.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(tok.status())) << tok.status();
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr(f));
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("mode 0644"));
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("chmod 600"));
}

// A token file another user owns (who can read or replace it) is refused, even mode 0600, as
// ssh refuses such a key; a FIFO is refused at once, not waited on.
TEST(TokenFile, OwnedByAnotherUserOrAFifoIsRefused) {
  TempDir t;
  std::string f = t.path() + "/token";
  WriteFile(f, "s3cret-token\n", 0600);
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(f.c_str(), 65534, 65534), 0);
    absl::StatusOr<std::string> tok = ReadTokenFile(f);
    ASSERT_FALSE(tok.ok());
    EXPECT_TRUE(absl::IsPermissionDenied(tok.status())) << tok.status();
    EXPECT_THAT(std::string(tok.status().message()), HasSubstr("owned by uid 65534"));
  }
  std::string fifo = t.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  absl::StatusOr<std::string> tok = ReadTokenFile(fifo);
  EXPECT_TRUE(absl::IsInvalidArgument(tok.status())) << tok.status();
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("not a regular file"));
}

// Missing or empty token files are errors naming the file.
TEST(TokenFile, MissingOrEmpty) {
  TempDir t;
  std::string f = t.path() + "/token";
  absl::StatusOr<std::string> tok = ReadTokenFile(f);
  EXPECT_TRUE(absl::IsNotFound(tok.status())) << tok.status();
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr(f));
  WriteFile(f, " \n", 0600);
  tok = ReadTokenFile(f);
  EXPECT_TRUE(absl::IsInvalidArgument(tok.status())) << tok.status();
  EXPECT_THAT(std::string(tok.status().message()), HasSubstr("holds no token"));
}

TEST(TokenMatches, ExactBytesOnly) {
  EXPECT_TRUE(TokenMatches("Bearer abc", "Bearer abc"));
  EXPECT_FALSE(TokenMatches("Bearer abd", "Bearer abc"));
  EXPECT_FALSE(TokenMatches("Bearer ab", "Bearer abc"));
  EXPECT_FALSE(TokenMatches("", "Bearer abc"));
}

// A runtime with no pods: enough to reach the Tap service's checks.
class NoPods final : public Runtime, public Resolver {
 public:
  Resolver* resolver() override { return this; }
  absl::StatusOr<std::unique_ptr<Sidecar>> StartSidecar(const PodInfo&,
                                                        const SidecarSpec&) override {
    return absl::UnavailableError("none");
  }
  absl::StatusOr<std::vector<PodInfo>> Resolve(const std::string& target, const std::string&,
                                               const std::string&) override {
    return absl::NotFoundError("target \"" + target + "\" not found");
  }
  Labels LabelsFor(const std::string&) override { return {}; }
  uint64_t Version() override { return 1; }
};

// A wrong or missing bearer token: UNAUTHENTICATED, for Watch and Stop; the right one passes.
TEST(BearerToken, WrongTokenIsUnauthenticated) {
  TempDir t;
  NoPods runtime;
  TapService service(&runtime, "s3cret-token");
  grpc::ServerBuilder b;
  std::string address = "unix:" + t.path() + "/cp.sock";
  b.AddListeningPort(address, grpc::InsecureServerCredentials());
  b.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = b.BuildAndStart();
  ASSERT_TRUE(server);
  auto stub =
      tap::v1::Tap::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  tap::v1::TapRequest req;
  req.set_target("deploy/backend");
  auto watch = [&](const char* auth) {
    grpc::ClientContext ctx;
    if (auth) ctx.AddMetadata("authorization", auth);
    auto r = stub->Watch(&ctx, req);
    tap::v1::TapEvents e;
    while (r->Read(&e)) {
    }
    grpc::Status s = r->Finish();
    EXPECT_EQ(ctx.GetServerTrailingMetadata().count("tapkit-ended-by"), 1u);
    return s;
  };
  grpc::Status s = watch("Bearer s3cret-tokem");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("the bearer token was refused"));
  grpc::Status none = watch(nullptr);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(none.error_message(), HasSubstr("needs a bearer token"));
  EXPECT_EQ(watch("Bearer s3cret-token-and-more").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  s = watch("Bearer s3cret-token");  // through: the target is what fails now
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer wrong");
    tap::v1::StopRequest stop;
    tap::v1::StopResponse resp;
    stop.set_tap_id("0011");
    EXPECT_EQ(stub->Stop(&ctx, stop, &resp).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  server->Shutdown();
}

}  // namespace
}  // namespace tapkit
