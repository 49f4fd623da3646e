// Spike: libmicrohttpd HTTP/1.1 server answering GET /a /b /c (bodies.h's strings, repeated here
// for C) with keep-alive and Content-Length. Model: MHD_USE_INTERNAL_POLLING_THREAD with epoll
// (one thread) or, with a third argument N, a pool of N epoll threads. SIGTERM/SIGINT: sigwait in
// main, then MHD_stop_daemon. Usage: mhd_spike ADDR PORT [THREADS]
#include <arpa/inet.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct MHD_Response* responses[3];

static enum MHD_Result Answer(void* cls, struct MHD_Connection* c, const char* url,
                              const char* method, const char* version, const char* upload,
                              size_t* upload_size, void** con_cls) {
  (void)cls; (void)method; (void)version; (void)upload; (void)upload_size;
  // First call: headers only. Answering now (before MHD has seen the request end) makes MHD close
  // the connection after the response ("Connection: close"), so wait for the second call.
  static int seen;
  if (*con_cls == NULL) {
    *con_cls = &seen;
    return MHD_YES;
  }
  if (url[0] == '/' && url[1] >= 'a' && url[1] <= 'c' && url[2] == 0)
    return MHD_queue_response(c, MHD_HTTP_OK, responses[url[1] - 'a']);
  static struct MHD_Response* nf;
  if (!nf) nf = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
  return MHD_queue_response(c, MHD_HTTP_NOT_FOUND, nf);
}

int main(int argc, char** argv) {
  if (argc < 3) { fprintf(stderr, "usage: mhd_spike ADDR PORT [THREADS]\n"); return 2; }
  static const char* bodies[3] = {"alpha response body\n", "bravo response body, a little longer\n",
                                  "{\"charlie\":[1,2,3],\"ok\":true}\n"};
  for (int i = 0; i < 3; ++i) {
    responses[i] = MHD_create_response_from_buffer(strlen(bodies[i]), (void*)bodies[i],
                                                   MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(responses[i], "Content-Type", "text/plain");
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((unsigned short)atoi(argv[2]));
  if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) { fprintf(stderr, "mhd_spike: bad address %s\n", argv[1]); return 2; }
  unsigned threads = argc > 3 ? (unsigned)atoi(argv[3]) : 1;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  struct MHD_Daemon* d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO, 0, NULL, NULL, &Answer, NULL,
      MHD_OPTION_SOCK_ADDR, (struct sockaddr*)&sa, MHD_OPTION_THREAD_POOL_SIZE, threads,
      MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
  if (!d) { fprintf(stderr, "mhd_spike: listen %s:%s failed\n", argv[1], argv[2]); return 2; }
  int sig = 0;
  sigwait(&set, &sig);
  MHD_stop_daemon(d);
  return 0;
}
