// tap-controlplane: the control plane of the local runtime (DESIGN.md sections 1 and 5).
//
//   tap-controlplane --inventory deploy/demo/inventory.yaml [--listen unix:PATH | HOST:PORT
//                    --token-file FILE] [--sidecar PATH] [--runtime-dir DIR]
//                    [--sidecar-user USER]
//
// Serves Tap.Watch (controlplane/api/tap.proto). By default it listens on a unix socket of mode
// 0600 in the runtime directory ($TAPKIT_RUNTIME_DIR, else /tmp/tapkit-UID), which taprec finds
// by itself; TCP needs --listen HOST:PORT and a bearer token file. SIGTERM or SIGINT ends the taps
// (their files are finished by taprec) and stops every sidecar. Sidecars started as root become
// --sidecar-user (default nobody; root keeps root) once their capture is open. Exit 2: bad
// arguments or inventory; exit 1: cannot listen.
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
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "controlplane/runtime.h"
#include "controlplane/tap_service.h"

namespace po = boost::program_options;

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  std::string inventory, listen, token_file, sidecar, sidecar_user,
      runtime_dir = tapkit::DefaultRuntimeDir();
  po::options_description opts("tap-controlplane options");
  opts.add_options()("help,h", "this help")("inventory", po::value(&inventory)->required(),
                                            "the local runtime's inventory (YAML)")(
      "listen", po::value(&listen),
      "unix:PATH (default RUNTIME_DIR/controlplane.sock) or HOST:PORT (needs --token-file)")(
      "token-file", po::value(&token_file), "bearer token clients must present (TCP)")(
      "sidecar", po::value(&sidecar), "the tap-sidecar binary (default: beside this one)")(
      "runtime-dir", po::value(&runtime_dir), "sockets of the control plane and its sidecars")(
      "sidecar-user", po::value(&sidecar_user),
      "the user sidecars started as root become once their capture is open (their -Z; default "
      "nobody, root keeps root)");
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, opts), vm);
    if (vm.count("help")) {
      std::cout << opts << "\n";
      return 0;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::fprintf(stderr, "tap-controlplane: %s\n", e.what());
    return 2;
  }
  if (listen.empty()) listen = "unix:" + runtime_dir + "/controlplane.sock";
  bool tcp = listen.rfind("unix:", 0) != 0;
  std::string token;
  if (tcp) {
    if (token_file.empty()) {
      std::fprintf(stderr,
                   "tap-controlplane: --listen %s is TCP: it needs --token-file FILE with the "
                   "bearer token clients must present\n",
                   listen.c_str());
      return 2;
    }
    std::ifstream in(token_file);
    token.assign(std::istreambuf_iterator<char>(in), {});
    absl::StripAsciiWhitespace(&token);
    if (!in || token.empty()) {
      std::fprintf(stderr, "tap-controlplane: --token-file %s: cannot read a token\n",
                   token_file.c_str());
      return 2;
    }
  }
  if (vm.count("sidecar-user") && (sidecar_user.empty() || !::getpwnam(sidecar_user.c_str()))) {
    // Checked here, not by each sidecar at the first tap.
    std::fprintf(stderr, "tap-controlplane: --sidecar-user %s: no such user\n",
                 sidecar_user.c_str());
    return 2;
  }
  tapkit::LocalRuntimeOptions ro;
  ro.sidecar_user = sidecar_user;
  ro.inventory_path = inventory;
  ro.sidecar_binary = sidecar.empty() ? tapkit::FindSidecarBinary("/proc/self/exe") : sidecar;
  ro.runtime_dir = runtime_dir;
  absl::StatusOr<std::unique_ptr<tapkit::Runtime>> runtime = tapkit::NewLocalRuntime(ro);
  if (!runtime.ok()) {
    std::fprintf(stderr, "tap-controlplane: %s\n", std::string(runtime.status().message()).c_str());
    return 2;
  }

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
      std::fprintf(stderr,
                   "tap-controlplane: %s: another control plane is listening there; stop it "
                   "or give --runtime-dir or --listen\n",
                   socket_path.c_str());
      return 1;
    }
    ::unlink(socket_path.c_str());
    ::umask(077);
  }
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "tap-controlplane: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  if (!socket_path.empty()) ::chmod(socket_path.c_str(), 0600);
  std::fprintf(stderr, "tap-controlplane: %s, %zu pods; listening on %s\n", inventory.c_str(),
               (*runtime)->inventory().Pods().size(), listen.c_str());
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  service.StopAll();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!socket_path.empty()) ::unlink(socket_path.c_str());
  return 0;
}
