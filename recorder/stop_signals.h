// stop_signals.h: how a recording learns that SIGINT or SIGTERM came (taprec -r, -i and a live
// tap): while a StopSignals lives, both signals are counted, and the dispositions before it come
// back when it goes. Internal to the tools' libraries: recorder/ (record_capture.cc,
// tap_client.cc, filter.cc) and replay/run.cc (tapreplay).
//
// Thread-safety: one StopSignals at a time per process, made and destroyed on the main thread;
// the counters are lock-free atomics, read from any thread (the handler only stores to them,
// which is async-signal-safe).
#ifndef TAPKIT_RECORDER_STOP_SIGNALS_H_
#define TAPKIT_RECORDER_STOP_SIGNALS_H_

#include <signal.h>

#include <atomic>

namespace tapkit {

class StopSignals {
 public:
  // `restart`: SA_RESTART; without it a read blocked on a pipe or FIFO (-r -) is interrupted.
  // `ignore_sigpipe`: SIGPIPE ignored, so that a closed output is a write error (EPIPE).
  StopSignals(bool restart, bool ignore_sigpipe);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // SIGINT and SIGTERM received since the last StopSignals was made; `stopped` turns true at
  // the first.
  static std::atomic<int>& received();
  static std::atomic<bool>& stopped();
  // The latest of them (SIGINT or SIGTERM); 0 before the first.
  static std::atomic<int>& last_signal();

 private:
  bool ignore_sigpipe_;
  struct sigaction old_int_ {}, old_term_{}, old_pipe_{};
};

}  // namespace tapkit

#endif  // TAPKIT_RECORDER_STOP_SIGNALS_H_
