#include "controlplane/runtime.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string_view>
#include <thread>

#include "absl/strings/str_cat.h"

namespace tapkit {
namespace {

namespace fs = std::filesystem;

std::string Describe(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return "ended";
}

class LocalSidecar final : public Sidecar {
 public:
  LocalSidecar(pid_t pid, std::string socket, PodInfo pod)
      : pid_(pid), socket_(std::move(socket)), address_("unix:" + socket_), pod_(std::move(pod)) {}
  ~LocalSidecar() override {
    Stop(2000);
    ::unlink(socket_.c_str());
    ::unlink((socket_.substr(0, socket_.size() - 5) + ".log").c_str());
  }
  const std::string& address() const override { return address_; }
  const PodInfo& pod() const override { return pod_; }

  void Stop(int grace_ms) override {
    std::lock_guard<std::mutex> l(mu_);
    if (reaped_) return;
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
    while (!Reap(false) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      Reap(true);
    }
  }
  void Terminate() override {
    std::lock_guard<std::mutex> l(mu_);
    if (!reaped_) ::kill(pid_, SIGTERM);
  }
  bool Running(std::string* how) override {
    std::lock_guard<std::mutex> l(mu_);
    if (!reaped_) Reap(false);
    if (reaped_ && how) *how = Describe(status_);
    return !reaped_;
  }

 private:
  bool Reap(bool block) {  // under mu_
    if (reaped_) return true;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = st;
    }
    return reaped_;
  }

  pid_t pid_;
  std::string socket_, address_;
  PodInfo pod_;
  std::mutex mu_;
  bool reaped_ = false;
  int status_ = 0;
};

class LocalRuntime final : public Runtime {
 public:
  LocalRuntime(std::unique_ptr<InventoryFileResolver> resolver, LocalRuntimeOptions options)
      : resolver_(std::move(resolver)), options_(std::move(options)) {}
  Resolver* resolver() override { return resolver_.get(); }

  absl::StatusOr<std::unique_ptr<Sidecar>> StartSidecar(const PodInfo& pod,
                                                        const SidecarSpec& spec) override {
    std::string socket =
        absl::StrCat(options_.runtime_dir, "/sidecar-", ::getpid(), "-", ++next_, ".sock");
    ::unlink(socket.c_str());
    std::vector<std::string> args = {options_.sidecar_binary,
                                     "--listen",
                                     "unix:" + socket,
                                     "--interface",
                                     pod.interface,
                                     "--pod-address",
                                     pod.ip,
                                     "--capture-point",
                                     pod.namespace_ + "/" + pod.name,
                                     "--capture-point-id",
                                     std::to_string(spec.capture_point_id),
                                     "--snaplen-body",
                                     std::to_string(spec.body_limit)};
    // Once its capture is open the sidecar gives up root (by default for nobody). Its socket
    // stays in this root-only directory: accepting on it needs no access to the directory, and
    // ~LocalSidecar removes it, which the sidecar itself no longer can.
    if (!options_.sidecar_user.empty()) args.insert(args.end(), {"-Z", options_.sidecar_user});
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string log = socket.substr(0, socket.size() - 5) + ".log";
    pid_t parent = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(errno)));
    if (pid == 0) {
      // The child: its own process group, so a terminal's Ctrl+C reaches the control plane,
      // which stops its sidecars in order; and SIGTERM when the thread that forked it ends
      // (prctl(2): the parent *thread*), which is the pod's stream thread: it ends with the
      // stream, and with the control plane however it dies (kill -9 included), so no sidecar
      // outlives either. Start sidecars only from a thread that lives as long as their stream.
      ::setpgid(0, 0);
      // Below the pods it taps: CPU goes to the workload first, and the capture buffer
      // (seconds of traffic) absorbs the wait. A Kubernetes runtime would give the ephemeral
      // container a small CPU request instead.
      if (options_.sidecar_nice) (void)::setpriority(PRIO_PROCESS, 0, options_.sidecar_nice);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(1);  // it died before the line above
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) ::dup2(fd, STDERR_FILENO);
      ::execv(argv[0], argv.data());
      // Only async-signal-safe calls here: other threads may hold stdio's locks.
      const char* why = ::strerrordesc_np(errno);
      std::string_view parts[] = {"tap-sidecar: cannot run ", argv[0], ": ", why ? why : "?", "\n"};
      for (std::string_view p : parts) (void)!::write(STDERR_FILENO, p.data(), p.size());
      ::_exit(127);
    }
    auto sidecar = std::make_unique<LocalSidecar>(pid, socket, pod);
    // Ready when its socket accepts a gRPC connection. Retried every 20 ms: gRPC's default
    // reconnect backoff (1 s at first) would make every tap start a second late.
    grpc::ChannelArguments retry;
    retry.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
    retry.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20);
    retry.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
    auto channel =
        grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), retry);
    auto deadline =
        std::chrono::system_clock::now() + std::chrono::milliseconds(options_.ready_timeout_ms);
    while (std::chrono::system_clock::now() < deadline) {
      std::string how;
      if (!sidecar->Running(&how)) {
        // Its last line says why ("interface nosuch0: no such interface").
        std::ifstream in(log);
        std::string line, last;
        while (std::getline(in, line)) {
          if (!line.empty()) last = line;
        }
        return absl::UnavailableError(absl::StrCat("sidecar for pod ", pod.namespace_, "/",
                                                   pod.name, " ", how, " at start",
                                                   last.empty() ? "" : ": ", last));
      }
      if (channel->WaitForConnected(std::chrono::system_clock::now() +
                                    std::chrono::milliseconds(100))) {
        return std::unique_ptr<Sidecar>(std::move(sidecar));
      }
    }
    return absl::UnavailableError(absl::StrCat("sidecar for pod ", pod.namespace_, "/", pod.name,
                                               " did not come up within ",
                                               options_.ready_timeout_ms, " ms"));
  }

 private:
  std::unique_ptr<InventoryFileResolver> resolver_;
  LocalRuntimeOptions options_;
  std::atomic<uint64_t> next_{0};
};

}  // namespace

std::string FindSidecarBinary(const std::string& self) {
  std::error_code ec;
  fs::path dir = fs::canonical(self, ec).parent_path();
  for (fs::path p : {dir / "tap-sidecar", dir / ".." / "sidecar" / "tap-sidecar"}) {
    if (::access(p.c_str(), X_OK) == 0) return fs::weakly_canonical(p, ec).string();
  }
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (!rest.empty()) {
      size_t colon = rest.find(':');
      fs::path p = fs::path(std::string(rest.substr(0, colon))) / "tap-sidecar";
      if (::access(p.c_str(), X_OK) == 0) return p.string();
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  return "";
}

absl::StatusOr<std::unique_ptr<Runtime>> NewLocalRuntime(const LocalRuntimeOptions& options) {
  absl::StatusOr<std::unique_ptr<InventoryFileResolver>> resolver =
      InventoryFileResolver::Open(options.inventory_path);
  if (!resolver.ok()) return resolver.status();
  LocalRuntimeOptions o = options;
  if (o.sidecar_binary.empty() || ::access(o.sidecar_binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat(
        "tap-sidecar binary ", o.sidecar_binary.empty() ? "not found" : o.sidecar_binary,
        o.sidecar_binary.empty() ? "" : ": not executable", "; pass --sidecar PATH"));
  }
  if (absl::Status s = CheckRuntimeDir(o.runtime_dir, /*create=*/true); !s.ok()) return s;
  return std::unique_ptr<Runtime>(new LocalRuntime(*std::move(resolver), std::move(o)));
}

}  // namespace tapkit
