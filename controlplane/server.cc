#include "controlplane/server.h"

#include <grpcpp/grpcpp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "controlplane/access.h"
#include "controlplane/runtime.h"
#include "controlplane/tap_service.h"

namespace tapkit {

absl::Status RunControlPlane(const ControlPlaneOptions& o, const std::atomic<int>& signal) {
  std::string listen = o.listen, runtime_dir = o.runtime_dir;
  bool tcp = !listen.empty() && listen.rfind("unix:", 0) != 0;
  std::string token;
  if (tcp) {
    if (o.token_file.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--listen ", listen,
                       " is TCP: it needs --token-file FILE with the bearer token clients must "
                       "present"));
    }
    absl::StatusOr<std::string> t = ReadTokenFile(o.token_file);
    if (!t.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("--token-file: ", t.status().message()));
    }
    token = *std::move(t);
  }
  if (o.sidecar_user_given && (o.sidecar_user.empty() || !::getpwnam(o.sidecar_user.c_str()))) {
    // Checked here, not by each sidecar at the first tap.
    return absl::InvalidArgumentError(
        absl::StrCat("--sidecar-user ", o.sidecar_user, ": no such user"));
  }
  // The runtime directory: created 0700 and checked (another user must not control it).
  if (runtime_dir.empty()) {
    absl::StatusOr<std::string> dir = SecureRuntimeDir(/*create=*/true);
    if (!dir.ok()) return absl::FailedPreconditionError(dir.status().message());
    runtime_dir = *dir;
  } else if (absl::Status s = CheckRuntimeDir(runtime_dir, /*create=*/true); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("--runtime-dir: ", s.message()));
  }
  if (listen.empty()) listen = ControlPlaneAddressIn(runtime_dir);
  LocalRuntimeOptions ro;
  ro.sidecar_user = o.sidecar_user;
  ro.inventory_path = o.inventory;
  ro.sidecar_binary = o.sidecar.empty() ? FindSidecarBinary("/proc/self/exe") : o.sidecar;
  ro.runtime_dir = runtime_dir;
  absl::StatusOr<std::unique_ptr<Runtime>> runtime = NewLocalRuntime(ro);
  if (!runtime.ok()) return runtime.status();

  TapService service(runtime->get(), token);
  grpc::ServerBuilder builder;
  std::string socket_path;
  if (!tcp) {
    socket_path = listen.substr(5);
    // Another control plane listening there keeps it: taking the path over would leave that one
    // running and unreachable. A socket nobody answers on is a leftover, and goes.
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
    bool live =
        probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (probe >= 0) ::close(probe);
    if (live) {
      return absl::FailedPreconditionError(
          absl::StrCat(socket_path,
                       ": another control plane is listening there (socket busy); stop it or "
                       "give --runtime-dir or --listen"));
    }
    ::unlink(socket_path.c_str());
    ::umask(077);
  }
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen, " (in use, or not allowed)"));
  }
  if (!socket_path.empty()) ::chmod(socket_path.c_str(), 0600);
  std::fprintf(stderr, "tap-controlplane: %s; listening on %s\n", o.inventory.c_str(),
               listen.c_str());
  while (signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  service.StopAll(signal == SIGINT ? "SIGINT" : "SIGTERM");
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!socket_path.empty()) ::unlink(socket_path.c_str());
  return absl::OkStatus();
}

}  // namespace tapkit
