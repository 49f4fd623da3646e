// replay_bench: the replay engine's throughput at full speed against wrk's on the same nginx
// (issue 12's Performance target: tapreplay --max --concurrency 8 reaches 0.8 of `wrk -t1 -c8`
// with comparison off, 0.6 with it on).
//
// One run starts nginx (1 worker, access log off) on 127.0.100.1, writes a capture of requests to
// four routes with the Writer (responses as nginx sends them, so every comparison matches), and
// then, `--reps` times interleaved: wrk -t1 -c8 with a Lua script sending the same requests in the
// same order, replay::Replay with Pacing::kMax, concurrency 8, loop enough rounds for
// `--requests`, comparison off, and the same with comparison on. It prints each measurement and
// the medians' ratios. `--only off|on` runs just the engine (for perf record), `--only wrk` just
// wrk, `--only bare` a bare libcurl multi loop over the same routes (the floor libcurl sets),
// `--only two` two engines at once with 4 lanes each (the most two threads could give),
// `--only pacing` one round at the recorded 1 ms gaps (sent - due percentiles).
//
// `--tool build/tools/tapreplay` adds the tool itself to each repetition (same flags, loop).
//
//   build/bench/replay_bench [--requests 150000] [--reps 3] [--seconds 3] [--tool TAPREPLAY]
//                            [--only off|on|wrk|bare|two|pacing]
#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "format/file.h"
#include "format/writer.h"
#include "replay/nginx_testutil.h"
#include "replay/replay.h"

namespace fs = std::filesystem;
using tapkit::Exchange;

namespace {

constexpr const char* kAddr = "127.0.100.1";

struct Route {
  const char* path;
  const char* body;
};
// Small JSON answers, as an API's hot routes give.
const Route kRoutes[] = {
    {"/api/v1/users/42", R"({"id":42,"name":"user 42","email":"u42@example.com"})"},
    {"/api/v1/products?page=3",
     R"({"page":3,"items":[{"id":1,"price":1.5},{"id":2,"price":3.0}]})"},
    {"/healthz", "ok"},
    {"/api/v1/recommendations?user=7", R"({"user":7,"recommended":[3,5,8,13,21]})"},
};

Exchange Recorded(uint64_t i, int port) {
  const Route& r = kRoutes[i % std::size(kRoutes)];
  Exchange x;
  x.sort_key_ns = 1'764'460'800'000'000'000ull + i * 1'000'000;
  x.response_start_ns = 300'000;
  x.response_end_ns = 350'000;
  x.capture_point = 0;
  x.stream_id = i + 1;
  x.source.ip = tapkit::IpAddress::V4(10, 1, 0, 1);
  x.source.port = static_cast<uint16_t>(40000 + i % 8);
  x.destination.ip = tapkit::IpAddress::V4(10, 1, 0, 2);
  x.destination.port = 80;
  tapkit::Request& q = x.request.emplace();
  q.version = tapkit::HttpVersion::kHttp11;
  q.method = "GET";
  q.path = r.path;
  q.authority = absl::StrCat(kAddr, ":", port);
  q.headers = {{"Host", q.authority}, {"User-Agent", "bench/1"}, {"Accept", "*/*"}};
  tapkit::Response& s = x.response.emplace();
  s.version = tapkit::HttpVersion::kHttp11;
  s.status = 200;
  s.reason = "OK";
  s.body.data = r.body;
  s.body.length = s.body.data.size();
  s.headers = {{"Server", "nginx"},
               {"Content-Type", "application/json"},
               {"Content-Length", std::to_string(s.body.data.size())},
               {"Connection", "keep-alive"}};
  return x;
}

bool WriteCapture(const std::string& path, int port, int count) {
  auto file = tapkit::OpenWritableFile(path);
  if (!file.ok()) return false;
  tapkit::CaptureMetadata meta;
  meta.writer_name = "replay_bench";
  meta.start_time_ns = 1'764'460'800'000'000'000ull;
  meta.capture_points = {{0, "pod", "api-0", {}, {1}}};
  auto w = tapkit::Writer::Open(*std::move(file), meta);
  if (!w.ok()) return false;
  for (int i = 0; i < count; ++i) {
    if (!(*w)->Append(Recorded(i, port)).ok()) return false;
  }
  return (*w)->Close().ok();
}

double RunWrk(const std::string& dir, int port, int seconds) {
  std::string cmd = absl::StrCat("wrk -t1 -c8 -d", seconds, "s -s ", dir, "/routes.lua http://",
                                 kAddr, ":", port, "/ 2>&1");
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return 0;
  char line[512];
  double rate = 0;
  while (fgets(line, sizeof line, p)) {
    if (std::strncmp(line, "Requests/sec:", 13) == 0) rate = std::atof(line + 13);
  }
  pclose(p);
  return rate;
}

double RunReplay(const std::string& capture, int port, int loop, bool compare) {
  tapkit::replay::ReplayOptions o;
  o.inputs = {capture};
  o.target = absl::StrCat("http://", kAddr, ":", port);
  o.pacing = tapkit::replay::Pacing::kMax;
  o.concurrency = 8;
  o.loop = loop;
  o.compare = compare;
  uint64_t seen = 0;
  auto start = std::chrono::steady_clock::now();
  auto s = tapkit::replay::Replay(o, [&](const tapkit::replay::ReplayedExchange&) { ++seen; });
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!s.ok()) {
    std::fprintf(stderr, "replay_bench: %s\n", std::string(s.status().message()).c_str());
    return 0;
  }
  if (s->errors || (compare && s->mismatched)) {
    std::fprintf(stderr, "replay_bench: %llu errors, %llu mismatched\n",
                 static_cast<unsigned long long>(s->errors),
                 static_cast<unsigned long long>(s->mismatched));
  }
  return static_cast<double>(seen) / secs;
}

// The floor libcurl's multi interface sets: 8 easy handles, each sending the routes in turn on
// its keep-alive connection (its own CURLSH cache, as the engine's lanes), the body discarded,
// curl_multi_perform and curl_multi_poll: no capture, no pacing, no exchanges built.
size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

double RunBareCurl(int port, int total) {
  std::string base = absl::StrCat("http://", kAddr, ":", port, "/");
  CURLM* multi = curl_multi_init();
  struct Handle {
    CURL* easy;
    CURLSH* share;
    curl_slist* fields;
  };
  std::vector<Handle> hs(8);
  int sent = 0, done = 0;
  auto start_next = [&](Handle& h) {
    curl_easy_setopt(h.easy, CURLOPT_REQUEST_TARGET, kRoutes[sent % std::size(kRoutes)].path);
    ++sent;
    curl_multi_add_handle(multi, h.easy);
  };
  for (Handle& h : hs) {
    h.share = curl_share_init();
    curl_share_setopt(h.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    h.easy = curl_easy_init();
    h.fields = curl_slist_append(nullptr, "User-Agent: bench/1");
    h.fields = curl_slist_append(h.fields, "Accept: */*");
    curl_easy_setopt(h.easy, CURLOPT_SHARE, h.share);
    curl_easy_setopt(h.easy, CURLOPT_URL, base.c_str());
    curl_easy_setopt(h.easy, CURLOPT_HTTPHEADER, h.fields);
    curl_easy_setopt(h.easy, CURLOPT_PROXY, "");
    curl_easy_setopt(h.easy, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h.easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h.easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h.easy, CURLOPT_WRITEFUNCTION, Discard);
    curl_easy_setopt(h.easy, CURLOPT_PRIVATE, &h);
  }
  auto start = std::chrono::steady_clock::now();
  for (Handle& h : hs) start_next(h);
  int running = 1;
  while (done < total) {
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Handle* h = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &h);
      curl_multi_remove_handle(multi, m->easy_handle);
      ++done;
      if (sent < total) start_next(*h);
    }
    if (done < total) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (Handle& h : hs) {
    curl_easy_cleanup(h.easy);
    curl_share_cleanup(h.share);
    curl_slist_free_all(h.fields);
  }
  curl_multi_cleanup(multi);
  return done / secs;
}

// Two engines at once, each with 4 lanes and half the rounds: what spreading the lanes over two
// threads could give at most on this machine.
double RunTwoEngines(const std::string& capture, int port, int loop) {
  double a = 0, b = 0;
  auto start = std::chrono::steady_clock::now();
  auto one = [&](double* rate) {
    tapkit::replay::ReplayOptions o;
    o.inputs = {capture};
    o.target = absl::StrCat("http://", kAddr, ":", port);
    o.pacing = tapkit::replay::Pacing::kMax;
    o.concurrency = 4;
    o.loop = std::max(1, loop / 2);
    o.compare = false;
    uint64_t seen = 0;
    auto s = tapkit::replay::Replay(o, [&](const tapkit::replay::ReplayedExchange&) { ++seen; });
    *rate = s.ok() ? static_cast<double>(seen) : 0;
  };
  std::thread t([&] { one(&b); });
  one(&a);
  t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return (a + b) / secs;
}

// Pacing at --speed 1 over the capture's 1 ms recorded gaps: the p50 and p99 of sent - due, in
// microseconds (the engine's own lateness; the issue's target is measured at nginx).
void RunPacing(const std::string& capture, int port) {
  tapkit::replay::ReplayOptions o;
  o.inputs = {capture};
  o.target = absl::StrCat("http://", kAddr, ":", port);
  o.pacing = tapkit::replay::Pacing::kRecorded;
  o.concurrency = 8;
  o.compare = false;
  std::vector<double> late;
  auto s = tapkit::replay::Replay(o, [&](const tapkit::replay::ReplayedExchange& x) {
    late.push_back(static_cast<double>(x.sent_ns - x.due_ns) / 1000.0);
  });
  if (!s.ok() || late.empty()) return;
  std::sort(late.begin(), late.end());
  std::printf(
      "pacing at 1 ms gaps: %zu requests, sent - due p50 %.1f us, p99 %.1f us, max %.1f us\n",
      late.size(), late[late.size() / 2], late[late.size() * 99 / 100], late.back());
}

// The tool itself: `tapreplay --max --concurrency 8 --loop L [--no-compare]`, its report to
// /dev/null, timed from start to exit.
double RunTool(const std::string& tool, const std::string& capture, int port, int loop,
               bool compare) {
  std::string cmd =
      absl::StrCat(tool, " --target http://", kAddr, ":", port, " --max --concurrency 8 --loop ",
                   loop, compare ? "" : " --no-compare", " ", capture, " >/dev/null 2>&1");
  auto start = std::chrono::steady_clock::now();
  int rc = std::system(cmd.c_str());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (rc != 0) std::fprintf(stderr, "replay_bench: %s: exit status %d\n", cmd.c_str(), rc);
  return 1000.0 * loop / secs;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 150000, reps = 3, seconds = 3;
  std::string only, tool;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--requests")
      requests = std::atoi(argv[i + 1]);
    else if (f == "--reps")
      reps = std::atoi(argv[i + 1]);
    else if (f == "--seconds")
      seconds = std::atoi(argv[i + 1]);
    else if (f == "--only")
      only = argv[i + 1];
    else if (f == "--tool")
      tool = argv[i + 1];
    else {
      std::fprintf(stderr, "replay_bench: unknown flag %s\n", f.c_str());
      return 2;
    }
  }
  char tmpl[] = "/tmp/replay_bench.XXXXXX";
  if (!mkdtemp(tmpl)) return 2;
  std::string dir = tmpl;
  // nginx (tapkit::testing::Nginx, replay/nginx_testutil.h) in its own directory under `dir`,
  // which it empties; the capture and wrk's script go beside it.
  std::string conf =
      "@NGINX_USER@ worker_processes 1; daemon on; pid @WORK@/nginx.pid;\n"
      "events { worker_connections 1024; }\n"
      "http { access_log off; default_type application/json; keepalive_requests 1000000;\n"
      "  client_body_temp_path @WORK@/body;\n"
      "  server { listen @ADDRESS@:@PORT@;\n";
  for (const Route& r : kRoutes) {
    std::string path = r.path;
    path = path.substr(0, path.find('?'));
    absl::StrAppend(&conf, "    location = ", path, " { return 200 '", r.body, "'; }\n");
  }
  conf += "  }\n}\n";
  tapkit::testing::Nginx nginx(kAddr, dir + "/nginx", conf);
  if (!nginx.Start()) {
    std::fprintf(stderr, "replay_bench: nginx did not start: %s\n", nginx.StartError().c_str());
    return 2;
  }
  int port = nginx.port();
  {
    std::ofstream lua(dir + "/routes.lua");
    lua << "local paths = {";
    for (const Route& r : kRoutes) lua << "\"" << r.path << "\",";
    lua << "}\nlocal i = 0\nwrk.headers[\"User-Agent\"] = \"bench/1\"\nwrk.headers[\"Accept\"] = "
           "\"*/*\"\nrequest = function()\n  i = i % #paths + 1\n  return wrk.format(\"GET\", "
           "paths[i])\nend\n";
  }
  const int per_round = 1000;
  std::string capture = dir + "/routes.tap";
  if (!WriteCapture(capture, port, per_round)) {
    std::fprintf(stderr, "replay_bench: cannot write %s\n", capture.c_str());
    return 2;
  }
  int loop = std::max(1, requests / per_round);
  std::vector<double> wrk, off, on, tool_off, tool_on;
  for (int r = 0; r < reps; ++r) {
    if (only.empty()) {
      wrk.push_back(RunWrk(dir, port, seconds));
      std::printf("rep %d wrk -t1 -c8        %9.0f req/s\n", r, wrk.back());
    }
    if (only.empty() || only == "off") {
      off.push_back(RunReplay(capture, port, loop, false));
      std::printf("rep %d replay compare off %9.0f req/s\n", r, off.back());
    }
    if (only == "wrk")
      std::printf("rep %d wrk -t1 -c8        %9.0f req/s\n", r, RunWrk(dir, port, seconds));
    if (only == "bare") {
      std::printf("rep %d bare libcurl multi  %9.0f req/s\n", r, RunBareCurl(port, requests));
    }
    if (only == "pacing") RunPacing(capture, port);
    if (only == "two") {
      std::printf("rep %d two engines x 4     %9.0f req/s\n", r,
                  RunTwoEngines(capture, port, loop));
    }
    if (only.empty() || only == "on") {
      on.push_back(RunReplay(capture, port, loop, true));
      std::printf("rep %d replay compare on  %9.0f req/s\n", r, on.back());
    }
    if (!tool.empty() && only.empty()) {
      tool_off.push_back(RunTool(tool, capture, port, loop, false));
      std::printf("rep %d tapreplay --no-compare %7.0f req/s\n", r, tool_off.back());
      tool_on.push_back(RunTool(tool, capture, port, loop, true));
      std::printf("rep %d tapreplay compare on %9.0f req/s\n", r, tool_on.back());
    }
    std::fflush(stdout);
  }
  nginx.Stop();
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (only.empty()) {
    double w = Median(wrk);
    std::printf(
        "median wrk %.0f, compare off %.0f (%.2f of wrk, target 0.80), compare on %.0f "
        "(%.2f, target 0.60)\n",
        w, Median(off), Median(off) / w, Median(on), Median(on) / w);
    if (!tool.empty()) {
      std::printf("median tapreplay --no-compare %.0f (%.2f of wrk), compare on %.0f (%.2f)\n",
                  Median(tool_off), Median(tool_off) / w, Median(tool_on), Median(tool_on) / w);
    }
  }
  return 0;
}
