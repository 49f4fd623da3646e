// tap-controlplane: the control plane of the local runtime (docs/architecture.md sections 1 and 5).
//
//   tap-controlplane --inventory deploy/demo/inventory.yaml [--listen unix:PATH | HOST:PORT
//                    --token-file FILE] [--sidecar PATH] [--runtime-dir DIR]
//                    [--sidecar-user USER]
//
// Serves Tap.Watch (controlplane/api/tap.proto). By default it listens on a unix socket of mode
// 0600 in the runtime directory (access.h: $TAPKIT_RUNTIME_DIR, else $XDG_RUNTIME_DIR/tapkit,
// else /run/tapkit for root, else /tmp/tapkit-UID; created 0700 and refused when another user
// could control it), which taprec finds by itself; TCP needs --listen HOST:PORT and a bearer
// token file (mode 0600 or stricter). Sidecars started as root become --sidecar-user (default
// nobody; root keeps root) once their capture is open. The inventory file is reloaded when it
// changes: pods added or removed join or leave running taps. SIGTERM or SIGINT ends the taps (UNAVAILABLE "the
// control plane is shutting down (SIGTERM)"; taprec finishes their files) and stops every sidecar.
// Exit 0 after a signal; exit 2 (tapkit::kExitError) for every error: bad arguments, inventory,
// token file or runtime directory, a socket another control plane listens on, cannot listen.
#include <grpcpp/grpcpp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/program_options.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "controlplane/access.h"
#include "controlplane/runtime.h"
#include "controlplane/tap_service.h"
#include "format/program.h"

namespace po = boost::program_options;

namespace {
std::atomic<int> g_signal{0};
void OnSignal(int sig) { g_signal = sig; }

int Fail(const std::string& msg) {
  std::fprintf(stderr, "tap-controlplane: %s\n", msg.c_str());
  return tapkit::kExitError;
}
}  // namespace

int main(int argc, char** argv) {
  std::string inventory, listen, token_file, sidecar, sidecar_user, runtime_dir;
  po::options_description opts("Options");
  opts.add_options()("help,h", "this help")("version", "print the version and exit")(
      "inventory", po::value(&inventory)->required(), "the local runtime's inventory (YAML)")(
      "listen", po::value(&listen),
      "unix:PATH (default RUNTIME_DIR/controlplane.sock) or HOST:PORT (needs --token-file)")(
      "token-file", po::value(&token_file), "bearer token clients must present (TCP)")(
      "sidecar", po::value(&sidecar), "the tap-sidecar binary (default: beside this one)")(
      "runtime-dir", po::value(&runtime_dir),
      "sockets of the control plane and its sidecars (default: see above)")(
      "sidecar-user", po::value(&sidecar_user),
      "the user sidecars started as root become once their capture is open (their -Z; default "
      "nobody, root keeps root)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help")) {
      std::cout << "Usage: tap-controlplane [options]\n"
                   "The tapkit control plane of the local runtime: serves Tap.Watch to taprec,\n"
                   "resolves targets to the pods of an inventory file (reloaded when it changes),\n"
                   "starts a tap-sidecar per pod, merges their streams and enforces the limits.\n"
                   "It listens on RUNTIME_DIR/controlplane.sock (mode 0600), RUNTIME_DIR being\n"
                   "$TAPKIT_RUNTIME_DIR, else $XDG_RUNTIME_DIR/tapkit, else /run/tapkit (root),\n"
                   "else /tmp/tapkit-UID (created 0700; refused if another user can control it).\n"
                   "Exit status: 0 after SIGTERM/SIGINT, 2 on any error.\n\n"
                << opts << "\n";
      return tapkit::kExitOk;
    }
    if (vm.count("version")) {
      std::cout << tapkit::VersionLine("tap-controlplane");
      return tapkit::kExitOk;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    return Fail(std::string(e.what()) + " (tap-controlplane --help for usage)");
  }
  bool tcp = !listen.empty() && listen.rfind("unix:", 0) != 0;
  std::string token;
  if (tcp) {
    if (token_file.empty()) {
      return Fail(absl::StrCat("--listen ", listen,
                               " is TCP: it needs --token-file FILE with the bearer token "
                               "clients must present"));
    }
    absl::StatusOr<std::string> t = tapkit::ReadTokenFile(token_file);
    if (!t.ok()) return Fail(absl::StrCat("--token-file: ", t.status().message()));
    token = *std::move(t);
  }
  if (vm.count("sidecar-user") && (sidecar_user.empty() || !::getpwnam(sidecar_user.c_str()))) {
    // Checked here, not by each sidecar at the first tap.
    return Fail(absl::StrCat("--sidecar-user ", sidecar_user, ": no such user"));
  }
  // The runtime directory: created 0700 and checked (another user must not control it).
  if (runtime_dir.empty()) {
    absl::StatusOr<std::string> dir = tapkit::SecureRuntimeDir(/*create=*/true);
    if (!dir.ok()) return Fail(std::string(dir.status().message()));
    runtime_dir = *dir;
  } else if (absl::Status s = tapkit::CheckRuntimeDir(runtime_dir, /*create=*/true); !s.ok()) {
    return Fail(absl::StrCat("--runtime-dir: ", s.message()));
  }
  if (listen.empty()) listen = "unix:" + runtime_dir + "/controlplane.sock";
  tapkit::LocalRuntimeOptions ro;
  ro.sidecar_user = sidecar_user;
  ro.inventory_path = inventory;
  ro.sidecar_binary = sidecar.empty() ? tapkit::FindSidecarBinary("/proc/self/exe") : sidecar;
  ro.runtime_dir = runtime_dir;
  absl::StatusOr<std::unique_ptr<tapkit::Runtime>> runtime = tapkit::NewLocalRuntime(ro);
  if (!runtime.ok()) return Fail(std::string(runtime.status().message()));

  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);

  tapkit::TapService service(runtime->get(), token);
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
      return Fail(absl::StrCat(socket_path,
                               ": another control plane is listening there (socket busy); stop "
                               "it or give --runtime-dir or --listen"));
    }
    ::unlink(socket_path.c_str());
    ::umask(077);
  }
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return Fail(absl::StrCat("cannot listen on ", listen, " (in use, or not allowed)"));
  if (!socket_path.empty()) ::chmod(socket_path.c_str(), 0600);
  std::fprintf(stderr, "tap-controlplane: %s; listening on %s\n", inventory.c_str(),
               listen.c_str());
  while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  service.StopAll(g_signal == SIGINT ? "SIGINT" : "SIGTERM");
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!socket_path.empty()) ::unlink(socket_path.c_str());
  return 0;
}
