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
#include <atomic>
#include <boost/program_options.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "controlplane/server.h"
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
    po::store(po::parse_command_line(argc, argv, opts, tapkit::kCommandLineStyle), vm);
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
  tapkit::ControlPlaneOptions o;
  o.inventory = inventory;
  o.listen = listen;
  o.token_file = token_file;
  o.sidecar = sidecar;
  o.sidecar_user = sidecar_user;
  o.sidecar_user_given = vm.count("sidecar-user") > 0;
  o.runtime_dir = runtime_dir;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  absl::Status s = tapkit::RunControlPlane(o, g_signal);
  if (!s.ok()) return Fail(std::string(s.message()));
  return tapkit::kExitOk;
}
