// Spike: cpp-httplib HTTP/1.1 server answering GET /a /b /c (bodies.h) with keep-alive and
// Content-Length. httplib's model: one accept thread plus a thread pool, one blocking connection
// per pool thread (CPPHTTPLIB_THREAD_POOL_COUNT, default max(8, cores-1)). SIGTERM/SIGINT stop it
// from a watcher thread (sigwait) calling Server::stop(). Usage: httplib_spike ADDR PORT
#include <httplib.h>

#include <csignal>
#include <cstdio>
#include <thread>

#include "bodies.h"

int main(int argc, char** argv) {
  if (argc != 3) { std::fprintf(stderr, "usage: httplib_spike ADDR PORT\n"); return 2; }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by httplib's threads
  httplib::Server srv;
  srv.set_tcp_nodelay(true);  // headers and body go out in two writes: without it, Nagle + delayed ACK
  auto handler = [](const httplib::Request& req, httplib::Response& res) {
    std::string_view body = serve_spike::BodyFor(req.path);
    res.set_content(body.data(), body.size(), "text/plain");
  };
  srv.Get("/a", handler);
  srv.Get("/b", handler);
  srv.Get("/c", handler);
  std::thread watcher([&] {
    int sig = 0;
    sigwait(&set, &sig);
    srv.stop();
  });
  bool ok = srv.listen(argv[1], std::atoi(argv[2]));
  if (!ok) {
    std::fprintf(stderr, "httplib_spike: listen %s:%s failed\n", argv[1], argv[2]);
    std::_Exit(2);
  }
  watcher.join();
  return 0;
}
