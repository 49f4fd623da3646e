// nginx_testutil.h: one nginx for a test, on a loopback address (127.0.0.0/8) and a port free
// there, with its files (config, pid, logs, temp paths) in a directory of its own. The replay
// tests use it as the independent side: what nginx answers and what its access log shows arrived.
//
// Thread-safety: test code; one thread uses an Nginx.
#ifndef TAPKIT_REPLAY_NGINX_TESTUTIL_H_
#define TAPKIT_REPLAY_NGINX_TESTUTIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tapkit::testing {

class Nginx {
 public:
  // `conf` is a whole nginx.conf; Start() replaces in it
  //   @WORK@        the directory `work` (pid, logs, temp paths; the access log @WORK@/access.log)
  //   @ADDRESS@     `address`, an IPv4 loopback address such as "127.0.94.1"
  //   @PORT@        a port free on `address` (FreePort, format/testutil.h)
  //   @PORT2@       a second free port (a backend server in the same config)
  //   @NGINX_USER@  "user root root;" when the test runs as root (nginx's workers then keep
  //                 access to `work`), "" otherwise.
  // The config should say "daemon on;" and "pid @WORK@/nginx.pid;".
  Nginx(std::string address, std::string work, std::string conf);
  ~Nginx();  // Stop()
  Nginx(const Nginx&) = delete;
  Nginx& operator=(const Nginx&) = delete;

  // Empties `work`, writes the config, starts nginx (error log @WORK@/error.log, its standard
  // error in @WORK@/start.err) and waits (at most 30 s) until the pid file exists and @PORT@
  // accepts connections. False when nginx did not start or listen; StartError() says why.
  bool Start();
  // Stops nginx (`-s stop`) and waits (at most 2 s) for its pid file to go. Idempotent.
  void Stop();
  // start.err and error.log, for a failure message.
  std::string StartError() const;

  uint16_t port() const { return port_; }
  uint16_t port2() const { return port2_; }
  const std::string& work() const { return work_; }
  std::string authority() const;  // "127.0.94.1:PORT"
  std::string url() const;        // "http://127.0.94.1:PORT"

  // The lines of @WORK@/access.log (without their '\n') once it holds at least `want` lines, or
  // what it holds after 5 s. nginx writes a request's line after the answer went out, so a
  // client that saw the answer waits here for the line.
  std::vector<std::string> AccessLog(size_t want = 0) const;
  // Empties the access log (nginx keeps appending to the same file).
  void ClearAccessLog() const;

 private:
  std::string address_, work_, conf_template_;
  uint16_t port_ = 0, port2_ = 0;
  bool started_ = false;
};

}  // namespace tapkit::testing

#endif  // TAPKIT_REPLAY_NGINX_TESTUTIL_H_
