#include "recorder/stop_signals.h"

namespace tapkit {
namespace {

std::atomic<int> g_received{0};
std::atomic<bool> g_stopped{false};
std::atomic<int> g_last_signal{0};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "a signal handler may only store to lock-free atomics");

void OnStopSignal(int sig) {
  g_last_signal.store(sig);
  g_received.fetch_add(1);
  g_stopped.store(true);
}

}  // namespace

std::atomic<int>& StopSignals::received() { return g_received; }
std::atomic<bool>& StopSignals::stopped() { return g_stopped; }
std::atomic<int>& StopSignals::last_signal() { return g_last_signal; }

StopSignals::StopSignals(bool restart, bool ignore_sigpipe) : ignore_sigpipe_(ignore_sigpipe) {
  g_received = 0;
  g_stopped = false;
  g_last_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = restart ? SA_RESTART : 0;
  ::sigaction(SIGINT, &sa, &old_int_);
  ::sigaction(SIGTERM, &sa, &old_term_);
  if (ignore_sigpipe_) {
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ::sigaction(SIGPIPE, &ign, &old_pipe_);
  }
}

StopSignals::~StopSignals() {
  ::sigaction(SIGINT, &old_int_, nullptr);
  ::sigaction(SIGTERM, &old_term_, nullptr);
  if (ignore_sigpipe_) ::sigaction(SIGPIPE, &old_pipe_, nullptr);
}

}  // namespace tapkit
