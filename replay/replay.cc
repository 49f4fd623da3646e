// The replay engine (replay.h): one thread drives libcurl's multi interface; the recorded
// exchanges come from replay_input.h's reader thread; requests are built by replay_request.h.
//
// I/O: libcurl's socket interface (curl_multi_socket_action) over an epoll set of the engine's
// own, with an eventfd the input thread writes when it queued exchanges: each readiness is
// handed to libcurl for just that socket, and libcurl reads and writes without polling every
// transfer again (curl_multi_perform would).
//
// Lanes: each lane is one easy handle with a connection cache of its own (a CURLSH sharing
// CURL_LOCK_DATA_CONNECT), so a lane's requests always travel on the lane's keep-alive
// connection and never on another lane's: the multi handle's shared cache would otherwise hand
// an idle connection to whichever handle asks first, mixing recorded connections.
#include "replay/replay.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "replay/replay_input.h"
#include "replay/replay_request.h"

namespace tapkit::replay {
namespace {

int64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t RealtimeNs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

class SteadyReplayClock final : public ReplayClock {
 public:
  int64_t NowNs() override { return MonotonicNs(); }
  // libcurl is polled until about 1 ms before the deadline; the rest is an absolute sleep to
  // about 100 us before it (the kernel's timer slack is 50 us) and a spin to the deadline, so
  // a request leaves within microseconds of its due time.
  void WaitUntil(int64_t deadline_ns, const std::function<void(int)>& poll_io) override {
    int64_t left = deadline_ns - MonotonicNs();
    if (left <= 0) return;
    if (left > 2'000'000) {
      poll_io(static_cast<int>((left - 1'000'000) / 1'000'000));
      return;
    }
    if (left > 150'000) {
      int64_t wake = deadline_ns - 100'000;
      timespec ts{static_cast<time_t>(wake / 1'000'000'000),
                  static_cast<long>(wake % 1'000'000'000)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
      }
    }
    while (MonotonicNs() < deadline_ns) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }
};

// Requests routed to lanes but not yet sent, at most: the input waits beyond this.
constexpr size_t kMaxQueued = 4096;
// Pending exchanges taken from the input ahead of their due time, at most.
constexpr size_t kLookahead = 64;

struct Job {
  std::shared_ptr<const Exchange> recorded;
  int round = 0;
  int64_t due_ns = 0;
  bool due_set = false;  // kMax: due is the moment it is routed
  uint64_t conn_key = 0;
  internal::OutgoingRequest request;  // built ahead, when taken from the input
};

// An endpoint libcurl reports as text, parsed once per distinct text (a lane's connection
// keeps its endpoints for many requests).
struct CachedEndpoint {
  std::string text;
  std::optional<IpAddress> ip;
  const std::optional<IpAddress>& Get(const char* now) {
    if (text != now) {
      text = now;
      ip = IpAddress::Parse(text);
    }
    return ip;
  }
};

struct Lane {
  CURL* easy = nullptr;
  CURLSH* share = nullptr;
  std::deque<Job> queue;  // concurrency 0: this lane's recorded connection(s), in order
  bool busy = false;
  uint64_t owner = 0;  // the recorded connection it serves (concurrency 0)
  // The transfer in flight.
  Job job;
  internal::OutgoingRequest request;
  curl_slist* fields = nullptr;
  internal::ResponseReader response;
  char error[CURL_ERROR_SIZE] = {};
  int64_t sent_ns = 0;         // options' clock
  int64_t sent_steady_ns = 0;  // for interim offsets
  int64_t sent_wall_ns = 0;
  uint64_t stream_id = 0;
  CachedEndpoint local, remote;
  std::vector<Header> fields_of;  // the fields `fields` was built from
};

uint64_t SinceSent(const void* lane) {
  return static_cast<uint64_t>(MonotonicNs() - static_cast<const Lane*>(lane)->sent_steady_ns);
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* lane = static_cast<Lane*>(user);
  lane->response.HeaderLine(std::string_view(data, size * n), SinceSent, lane);
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<Lane*>(user)->response.BodyBytes(std::string_view(data, size * n));
  return size * n;
}

uint64_t ConnectionKey(const Exchange& x) {
  // The recorded TCP connection: capture point and both endpoints.
  uint64_t h = x.capture_point;
  auto mix = [&h](const Endpoint& e) {
    for (size_t i = 0; i < e.ip.size(); ++i) h = h * 1099511628211ull ^ e.ip.bytes[i];
    h = h * 1099511628211ull ^ e.port;
    h = h * 1099511628211ull ^ e.ip.family;
  };
  mix(x.source);
  mix(x.destination);
  return h;
}

bool IsConnectFailure(CURLcode code) {
  return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
         code == CURLE_COULDNT_RESOLVE_PROXY;
}

absl::Status CheckOptions(const ReplayOptions& o) {
  if (o.inputs.empty()) return absl::InvalidArgumentError("no input capture given");
  // Exchange ids (capture point, stream) are unique within one capture only: two inputs would
  // report two exchanges under one id (and replay_of, a rule's `exchanges:` would be ambiguous).
  if (o.inputs.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        o.inputs[1], ": tapreplay takes one capture (or -); merge several first: tapfilter ",
        "a.tap b.tap -w - | tapreplay - ..."));
  }
  if (o.loop < 1) return absl::InvalidArgumentError(absl::StrCat("--loop ", o.loop, ": below 1"));
  if (o.loop > 1) {
    for (const std::string& in : o.inputs) {
      if (in == "-") {
        return absl::InvalidArgumentError(
            absl::StrCat("--loop ", o.loop, ": a stream on standard input is replayed once"));
      }
      if (internal::IsStreamInput(in)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--loop ", o.loop, ": ", in, " is a stream (not a regular file); it is replayed once"));
      }
    }
  }
  if (!(o.sample_percent > 0 && o.sample_percent <= 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--sample ", o.sample_percent, ": not a percentage in (0, 100]"));
  }
  if (o.pacing == Pacing::kRecorded && !(o.speed >= kMinSpeed && o.speed <= kMaxSpeed)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--speed ", o.speed, ": not in ", kMinSpeed, "..", kMaxSpeed));
  }
  if (o.pacing == Pacing::kRate && !(o.rate >= kMinRate && o.rate <= kMaxRate)) {
    return absl::InvalidArgumentError(absl::StrCat("--rate ", o.rate, ": not in ", kMinRate, "..",
                                                   static_cast<int64_t>(kMaxRate)));
  }
  if (o.concurrency < 0 || o.concurrency > kMaxLanes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--concurrency ", o.concurrency, ": not in 0..", kMaxLanes));
  }
  if (o.timeout_ns <= 0) return absl::InvalidArgumentError("--timeout: not above 0");
  return absl::OkStatus();
}

// strerror's words for `os_errno`, starting lower-case to follow a colon ("connection refused").
std::string OsErrorWords(long os_errno) {
  std::string s = std::strerror(static_cast<int>(os_errno));
  if (!s.empty()) s[0] = absl::ascii_tolower(s[0]);
  return s;
}

std::string ConnectError(CURLcode code, long os_errno, const char* words) {
  if (code == CURLE_COULDNT_CONNECT && os_errno != 0) return OsErrorWords(os_errno);
  if (code == CURLE_COULDNT_RESOLVE_HOST) return "cannot resolve the host";
  return words[0] ? words : curl_easy_strerror(code);
}

// Why the first request got no answer from a target it connected to.
std::string FirstRequestError(CURLcode code, long os_errno, const char* words, int64_t timeout_ns) {
  if (code == CURLE_OPERATION_TIMEDOUT) {
    return absl::StrCat("none within ", timeout_ns / 1'000'000, " ms (--timeout)");
  }
  if (code == CURLE_GOT_NOTHING) return "the connection was closed without a response";
  if ((code == CURLE_RECV_ERROR || code == CURLE_SEND_ERROR) && os_errno != 0) {
    return OsErrorWords(os_errno);
  }
  return words[0] ? words : curl_easy_strerror(code);
}

class Engine {
 public:
  Engine(const ReplayOptions& o, const ReplayObserver& observer)
      : o_(o), observer_(observer), clock_(o.clock ? o.clock : SteadyClock()) {}
  ~Engine();
  absl::StatusOr<ReplaySummary> Run();

 private:
  absl::Status Setup();
  Lane* NewLane();
  Lane* IdleLane();
  bool GiveLane(Lane* lane, uint64_t conn_key);
  void LaneUnlaned();
  bool OpenLane(Lane* lane);
  void TakeInput();
  void Route(Job job);
  size_t RouteDue();
  bool StartIdle();
  void Send(Lane* lane, Job job);
  size_t Pump(bool poll = true);  // completions handled
  void PollIo(int timeout_ms);
  static int OnSocket(CURL* easy, curl_socket_t fd, int what, void* engine, void* assigned);
  static curl_socket_t OnOpen(void* engine, curlsocktype purpose, curl_sockaddr* address);
  static int OnClose(void* engine, curl_socket_t fd);
  void Watch(curl_socket_t fd, uint32_t events);
  void Unwatch(curl_socket_t fd);
  static int OnTimer(CURLM* multi, long timeout_ms, void* engine);
  void Finish(Lane* lane, CURLcode code);
  void Deliver(ReplayedExchange& rx);
  int64_t DueOf(const Job& job);

  const ReplayOptions& o_;
  const ReplayObserver& observer_;
  ReplayClock* clock_;
  bool steady_ = false;         // clock_ is SteadyClock(): its time is MonotonicNs()
  int64_t wall_offset_ns_ = 0;  // CLOCK_REALTIME - CLOCK_MONOTONIC at the start
  internal::RequestPlan plan_;
  std::shared_ptr<const Comparer> comparer_;
  CURLM* multi_ = nullptr;
  CURLU* url_ = nullptr;  // the target, parsed once for every lane
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: the input thread queued exchanges
  // Per socket: the events it is in the epoll set for (0: not in it), and whether libcurl
  // watches it now (false: parked, see OnSocket).
  std::vector<uint32_t> watched_;
  std::vector<bool> wanted_;
  int64_t curl_timer_ns_ = -1;  // libcurl's timer (CURLMOPT_TIMERFUNCTION), monotonic; -1: none
  std::vector<std::unique_ptr<Lane>> lanes_;
  absl::flat_hash_map<uint64_t, Lane*> lane_of_;  // concurrency 0: recorded connection -> lane
  std::deque<Job> waiting_;                       // concurrency N: routed, for the next free lane
  // Concurrency 0 with every lane in use: recorded connections waiting for an idle lane (each
  // its jobs in order), and how many jobs each has there.
  std::deque<Job> unlaned_;
  absl::flat_hash_map<uint64_t, size_t> unlaned_jobs_;
  size_t queued_ = 0;  // in lane queues, waiting_ and unlaned_
  size_t in_flight_ = 0;
  std::unique_ptr<internal::InputReader> input_;
  std::deque<Job> items_;  // taken from the input, not yet routed
  bool input_ended_ = false;
  absl::Status fatal_;
  bool answered_ = false;  // a response came (the target is up)

  // Pacing.
  bool started_ = false;
  int64_t start_ns_ = 0;
  uint64_t origin_key_ns_ = 0;  // round 0's first sort key
  uint64_t index_ = 0;          // exchanges paced so far (kRate)
  double round_period_ns_ = 0;  // recorded: round 0's span plus one mean gap
  uint64_t stream_ids_ = 0;

  ReplaySummary summary_;
};

Engine::~Engine() {
  if (input_) input_->Cancel();
  for (auto& lane : lanes_) {
    if (lane->busy) curl_multi_remove_handle(multi_, lane->easy);
    if (lane->easy) curl_easy_cleanup(lane->easy);
    if (lane->share) curl_share_cleanup(lane->share);
    curl_slist_free_all(lane->fields);
  }
  if (multi_) curl_multi_cleanup(multi_);
  if (url_) curl_url_cleanup(url_);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

// libcurl asks to stop watching a connection's socket whenever a transfer on it ends, and to
// watch it again when the lane's next request goes out on it: two epoll_ctl calls per request.
// Instead a socket it stops watching stays in the epoll set ("parked"): watched again for the
// same events, it costs nothing. A parked socket that turns ready (the target closed the idle
// connection) is dropped from the set then; one libcurl closes is forgotten in OnClose.
void Engine::Watch(curl_socket_t fd, uint32_t events) {
  if (fd < 0) return;
  if (static_cast<size_t>(fd) >= watched_.size()) watched_.resize(static_cast<size_t>(fd) + 1, 0);
  uint32_t& now = watched_[static_cast<size_t>(fd)];
  if (now == events) return;
  epoll_event ev{};
  ev.data.fd = fd;
  ev.events = events;
  if (now == 0) {
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST) {
      epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
    }
  } else if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0 && errno == ENOENT) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  now = events;
}

void Engine::Unwatch(curl_socket_t fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= watched_.size() || watched_[fd] == 0) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  watched_[fd] = 0;
  if (static_cast<size_t>(fd) < wanted_.size()) wanted_[fd] = false;
}

int Engine::OnSocket(CURL*, curl_socket_t fd, int what, void* user, void*) {
  auto* self = static_cast<Engine*>(user);
  if (fd < 0) return 0;
  if (static_cast<size_t>(fd) >= self->wanted_.size()) {
    self->wanted_.resize(static_cast<size_t>(fd) + 1, false);
  }
  if (what == CURL_POLL_REMOVE) {
    self->wanted_[fd] = false;  // parked: still in the epoll set
    return 0;
  }
  uint32_t events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= EPOLLIN;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= EPOLLOUT;
  self->wanted_[fd] = true;
  self->Watch(fd, events);
  return 0;
}

// A socket libcurl opens may reuse the number of one closed earlier (and so dropped from the
// epoll set by the kernel): whatever was noted for that number is forgotten.
curl_socket_t Engine::OnOpen(void* user, curlsocktype, curl_sockaddr* address) {
  auto* self = static_cast<Engine*>(user);
  int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd < 0) return CURL_SOCKET_BAD;
  if (static_cast<size_t>(fd) < self->watched_.size()) self->watched_[fd] = 0;
  if (static_cast<size_t>(fd) < self->wanted_.size()) self->wanted_[fd] = false;
  return fd;
}

int Engine::OnClose(void* user, curl_socket_t fd) {
  auto* self = static_cast<Engine*>(user);
  self->Unwatch(fd);
  return close(fd);
}

int Engine::OnTimer(CURLM*, long timeout_ms, void* user) {
  auto* self = static_cast<Engine*>(user);
  self->curl_timer_ns_ = timeout_ms < 0 ? -1 : MonotonicNs() + int64_t{timeout_ms} * 1'000'000;
  return 0;
}

// Waits up to `timeout_ms` (shortened to libcurl's timer) for I/O or the input's wakeup, and
// hands what is ready to libcurl.
void Engine::PollIo(int timeout_ms) {
  // At most 100 ms, so that options.stop is polled that often during a long recorded gap.
  int timeout = std::clamp(timeout_ms, 0, 100);
  if (curl_timer_ns_ >= 0) {
    int64_t left = curl_timer_ns_ - MonotonicNs();
    timeout = std::min<int64_t>(timeout, left <= 0 ? 0 : (left + 999'999) / 1'000'000);
  }
  epoll_event events[64];
  int n = epoll_wait(epoll_fd_, events, 64, timeout);
  int running = 0;
  for (int i = 0; i < n; ++i) {
    int fd = events[i].data.fd;
    if (fd == wake_fd_) {
      uint64_t count;
      (void)!read(wake_fd_, &count, sizeof count);
      continue;
    }
    if (static_cast<size_t>(fd) >= wanted_.size() || !wanted_[fd]) {
      Unwatch(fd);  // parked, and the target closed it (or sent what nobody asked for)
      continue;
    }
    int flags = 0;
    if (events[i].events & EPOLLIN) flags |= CURL_CSELECT_IN;
    if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
    if (events[i].events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(multi_, fd, flags, &running);
  }
}

absl::Status Engine::Setup() {
  if (absl::Status s = CheckOptions(o_); !s.ok()) return s;
  steady_ = clock_ == SteadyClock();
  wall_offset_ns_ = RealtimeNs() - MonotonicNs();
  absl::StatusOr<internal::Target> target = internal::ParseTarget(o_.target);
  if (!target.ok()) return target.status();
  absl::StatusOr<internal::RequestPlan> plan = internal::MakeRequestPlan(o_, *std::move(target));
  if (!plan.ok()) return plan.status();
  plan_ = *std::move(plan);
  if (o_.compare) {
    absl::StatusOr<std::shared_ptr<const Comparer>> c = Comparer::Create(o_.compare_options);
    if (!c.ok()) return c.status();
    comparer_ = *std::move(c);
  }
  static const CURLcode global = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (global != CURLE_OK) {
    return absl::InternalError(absl::StrCat("libcurl: ", curl_easy_strerror(global)));
  }
  multi_ = curl_multi_init();
  url_ = curl_url();
  if (!url_ || curl_url_set(url_, CURLUPART_URL, plan_.target.url.c_str(), 0) != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target ", o_.target, ": libcurl cannot parse it"));
  }
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!multi_ || epoll_fd_ < 0 || wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("replay: cannot set up I/O: ", std::strerror(errno)));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Engine::OnSocket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Engine::OnTimer);
  curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  if (o_.concurrency > 0) {
    for (int i = 0; i < o_.concurrency; ++i) {
      if (!NewLane()) return absl::InternalError("libcurl: curl_easy_init failed");
    }
  }
  int wake = wake_fd_;
  input_ = internal::InputReader::Start(o_, [wake] {
    uint64_t one = 1;
    (void)!write(wake, &one, sizeof one);
  });
  return absl::OkStatus();
}

Lane* Engine::NewLane() {
  auto lane = std::make_unique<Lane>();
  if (!OpenLane(lane.get())) return nullptr;
  lanes_.push_back(std::move(lane));
  return lanes_.back().get();
}

// (Re)creates the lane's easy handle and connection cache; a lane given to another recorded
// connection starts over, so the connection it kept for the previous one is closed, not left
// idle on the target.
bool Engine::OpenLane(Lane* lane) {
  if (lane->easy) curl_easy_cleanup(lane->easy);
  if (lane->share) curl_share_cleanup(lane->share);
  curl_slist_free_all(lane->fields);
  lane->fields = nullptr;
  lane->fields_of.clear();
  lane->share = curl_share_init();
  lane->easy = curl_easy_init();
  if (!lane->share || !lane->easy) return false;
  curl_share_setopt(lane->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
  CURL* e = lane->easy;
  curl_easy_setopt(e, CURLOPT_SHARE, lane->share);
  curl_easy_setopt(e, CURLOPT_PRIVATE, lane);
  // The target parsed once (a CURLU handle), not from text at every transfer.
  curl_easy_setopt(e, CURLOPT_CURLU, url_);
  internal::SetDirectHttp11Options(e);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &Engine::OnOpen);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, this);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &Engine::OnClose);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, lane);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, lane);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, lane->error);
  long timeout_ms = static_cast<long>(std::max<int64_t>(1, (o_.timeout_ns + 999'999) / 1'000'000));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  return true;
}

// start + offset, the offset held within [0, kMaxDueOffsetNs] (about 146 years): a gap that
// long waits "forever", and llround or the sum never overflows (a NaN counts as 0).
constexpr double kMaxDueOffsetNs = 4.611686018427387904e18;  // 2^62
int64_t DueAfter(int64_t start_ns, double offset_ns) {
  if (!(offset_ns > 0)) return start_ns;
  int64_t offset = offset_ns >= kMaxDueOffsetNs ? int64_t{1} << 62 : std::llround(offset_ns);
  return offset > std::numeric_limits<int64_t>::max() - start_ns
             ? std::numeric_limits<int64_t>::max()
             : start_ns + offset;
}

int64_t Engine::DueOf(const Job& job) {
  switch (o_.pacing) {
    case Pacing::kRecorded: {
      // Sorted input: a key before the origin (a later file's reorder) is due at once.
      const uint64_t key = job.recorded->sort_key_ns;
      double offset = key > origin_key_ns_ ? static_cast<double>(key - origin_key_ns_) : 0.0;
      offset += job.round * round_period_ns_;
      return DueAfter(start_ns_, offset / o_.speed);
    }
    case Pacing::kRate:
      return DueAfter(start_ns_, static_cast<double>(index_++) * 1e9 / o_.rate);
    case Pacing::kMax:
      break;
  }
  return start_ns_;
}

void Engine::TakeInput() {
  if (input_ended_ || !fatal_.ok()) return;
  size_t want = kLookahead > items_.size() ? kLookahead - items_.size() : 0;
  if (want == 0) return;
  std::deque<internal::InputItem> got;
  input_->Take(&got, want);
  for (internal::InputItem& item : got) {
    switch (item.kind) {
      case internal::InputItem::Kind::kExchange: {
        Job job;
        job.recorded = std::move(item.exchange);
        job.round = item.round;
        // Built before it is due, so that at its due time only libcurl's hand-off remains.
        internal::BuildRequest(plan_, *job.recorded->request, &job.request);
        if (!job.request.usage_error.empty()) {
          // A --rewrite-path that breaks a recorded target is the command line's mistake.
          fatal_ = absl::InvalidArgumentError(job.request.usage_error);
          input_ended_ = true;
          return;
        }
        items_.push_back(std::move(job));
        break;
      }
      case internal::InputItem::Kind::kRoundEnd: {
        const internal::RoundCounts& c = item.counts;
        summary_.read += c.read;
        summary_.selected_out += c.selected_out;
        summary_.sampled_out += c.sampled_out;
        summary_.skipped_incomplete += c.skipped_incomplete;
        summary_.skipped_truncated_body += c.skipped_truncated_body;
        if (item.round == 0 && c.taken > 0) {
          // docs: round r + 1 starts one mean recorded gap after round r's last request.
          double span = static_cast<double>(c.last_key_ns - c.first_key_ns);
          double mean_gap = c.taken > 1 ? span / static_cast<double>(c.taken - 1) : 0;
          round_period_ns_ = span + mean_gap;
        }
        break;
      }
      case internal::InputItem::Kind::kNotice:
        if (o_.notice) o_.notice(item.notice);
        break;
      case internal::InputItem::Kind::kEnd:
        input_ended_ = true;
        break;
      case internal::InputItem::Kind::kError:
        fatal_ = item.error;
        input_ended_ = true;
        return;
    }
  }
}

void Engine::Route(Job job) {
  ++queued_;
  if (o_.concurrency > 0) {
    waiting_.push_back(std::move(job));
    return;
  }
  if (auto it = lane_of_.find(job.conn_key); it != lane_of_.end()) {
    it->second->queue.push_back(std::move(job));
    return;
  }
  // A recorded connection already waiting for a lane: its jobs wait behind it, in order.
  if (auto it = unlaned_jobs_.find(job.conn_key); it != unlaned_jobs_.end()) {
    ++it->second;
    unlaned_.push_back(std::move(job));
    return;
  }
  Lane* lane = nullptr;
  if (lanes_.size() < static_cast<size_t>(kMaxLanes)) {
    lane = NewLane();
    if (!lane) {
      fatal_ = absl::InternalError("libcurl: curl_easy_init failed");
      return;
    }
  } else {
    lane = IdleLane();
    if (!lane) {
      // Every lane is in use: the connection waits for the first idle one (StartIdle), never
      // rides another recorded connection's keep-alive connection.
      ++unlaned_jobs_[job.conn_key];
      unlaned_.push_back(std::move(job));
      return;
    }
    if (!GiveLane(lane, job.conn_key)) return;
  }
  lane->owner = job.conn_key;
  lane_of_[job.conn_key] = lane;
  lane->queue.push_back(std::move(job));
}

Lane* Engine::IdleLane() {
  for (auto& l : lanes_) {
    if (!l->busy && l->queue.empty()) return l.get();
  }
  return nullptr;
}

// An idle lane taken from its recorded connection for `conn_key`, on a fresh connection.
bool Engine::GiveLane(Lane* lane, uint64_t conn_key) {
  auto old = lane_of_.find(lane->owner);
  if (old != lane_of_.end() && old->second == lane) lane_of_.erase(old);
  if (!OpenLane(lane)) {
    fatal_ = absl::InternalError("libcurl: curl_easy_init failed");
    return false;
  }
  lane->owner = conn_key;
  lane_of_[conn_key] = lane;
  return true;
}

// Idle lanes to the recorded connections waiting in unlaned_, oldest first, each with all its
// waiting jobs in order.
void Engine::LaneUnlaned() {
  while (!unlaned_.empty() && fatal_.ok()) {
    Lane* lane = IdleLane();
    if (!lane) return;
    const uint64_t key = unlaned_.front().conn_key;
    if (!GiveLane(lane, key)) return;
    size_t left = unlaned_jobs_[key];
    unlaned_jobs_.erase(key);
    std::deque<Job> rest;
    for (Job& j : unlaned_) {
      if (left > 0 && j.conn_key == key) {
        lane->queue.push_back(std::move(j));
        --left;
      } else {
        rest.push_back(std::move(j));
      }
    }
    unlaned_ = std::move(rest);
  }
}

size_t Engine::RouteDue() {
  size_t routed = 0;
  int64_t now = clock_->NowNs();
  while (!items_.empty() && queued_ < kMaxQueued && fatal_.ok()) {
    Job& job = items_.front();
    if (!started_) {
      started_ = true;
      start_ns_ = now;
      origin_key_ns_ = job.recorded->sort_key_ns;
    }
    // The due time is fixed once, when the exchange reaches the head of the line.
    if (!job.due_set) {
      job.due_ns = o_.pacing == Pacing::kMax ? now : DueOf(job);
      job.due_set = true;
    }
    if (job.due_ns > now) break;
    job.conn_key = ConnectionKey(*job.recorded);
    Route(std::move(job));
    items_.pop_front();
    ++routed;
  }
  return routed;
}

bool Engine::StartIdle() {
  bool added = false;
  if (o_.concurrency > 0) {
    for (auto& lane : lanes_) {
      if (waiting_.empty()) break;
      if (lane->busy) continue;
      Job job = std::move(waiting_.front());
      waiting_.pop_front();
      --queued_;
      Send(lane.get(), std::move(job));
      added = true;
    }
  } else {
    LaneUnlaned();
    for (auto& lane : lanes_) {
      if (lane->busy || lane->queue.empty()) continue;
      Job job = std::move(lane->queue.front());
      lane->queue.pop_front();
      --queued_;
      Send(lane.get(), std::move(job));
      added = true;
    }
  }
  // Sent at once; a fast answer may complete within this very call, and its completion must be
  // collected before the loop sleeps (nothing would wake it). The sockets are not polled here:
  // answers to requests just sent are rarely in yet, and the epoll set is level-triggered, so
  // the loop's next wait sees whatever came (one epoll_wait less per batch of requests).
  return added && Pump(/*poll=*/false) > 0;
}

// The lane's request fields as libcurl takes them. libcurl's syntax: "Name;" sends an empty
// value, "Name:" suppresses a field libcurl would add.
void BuildFieldList(Lane* lane) {
  std::string line;
  for (const Header& h : lane->request.headers) {
    line.assign(h.name);
    if (h.value.empty()) {
      line += ';';
    } else {
      line += ": ";
      line += h.value;
    }
    lane->fields = curl_slist_append(lane->fields, line.c_str());
  }
  for (const std::string& s : lane->request.suppress) {
    lane->fields = curl_slist_append(lane->fields, s.c_str());
  }
}

void Engine::Send(Lane* lane, Job job) {
  lane->job = std::move(job);
  const Exchange& rec = *lane->job.recorded;
  lane->request = std::move(lane->job.request);
  lane->stream_id = ++stream_ids_;
  lane->sent_ns = clock_->NowNs();
  lane->sent_steady_ns = steady_ ? lane->sent_ns : MonotonicNs();
  lane->sent_wall_ns = lane->sent_steady_ns + wall_offset_ns_;
  summary_.redacted_headers_dropped += lane->request.redacted_dropped;
  if (!lane->request.error.empty()) {
    lane->request.redacted_sent = 0;  // nothing was sent
    ReplayedExchange rx;
    rx.recorded = &rec;
    rx.round = lane->job.round;
    rx.due_ns = lane->job.due_ns;
    rx.sent_ns = lane->sent_ns;
    rx.redacted_headers_dropped = lane->request.redacted_dropped;
    rx.error = lane->request.error;
    rx.live.stream_id = lane->stream_id;
    rx.live.replay_of = ExchangeId{rec.capture_point, rec.stream_id};
    rx.live.completion = Completion::kMalformed;
    rx.live.reason = rx.error;
    ++summary_.errors;
    Deliver(rx);
    lane->job = Job();
    return;
  }
  const internal::OutgoingRequest& r = lane->request;
  CURL* e = lane->easy;
  // Replayed traffic repeats its fields: the list is rebuilt only when they changed.
  if (!lane->fields || lane->fields_of != r.headers) {
    curl_slist_free_all(lane->fields);
    lane->fields = nullptr;
    lane->fields_of = r.headers;
    BuildFieldList(lane);
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, lane->fields);
  curl_easy_setopt(e, CURLOPT_REQUEST_TARGET, r.target.c_str());
  // An HTTP/1.0 request goes out as HTTP/1.0: servers answer the two differently (nginx does not
  // gzip for 1.0 by default; nginx's proxy_pass speaks 1.0 to its upstreams).
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                   static_cast<long>(rec.request && rec.request->version == HttpVersion::kHttp10
                                         ? CURL_HTTP_VERSION_1_0
                                         : CURL_HTTP_VERSION_1_1));
  if (r.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, nullptr);
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
    if (r.has_body) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body->size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body->data());
    } else {
      curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                     r.method == "GET" && !r.has_body ? nullptr : r.method.c_str());
  }
  summary_.redacted_values_sent += r.redacted_sent;
  lane->response.Reset(internal::LiveBodyLimit(rec));
  lane->error[0] = '\0';
  lane->busy = true;
  ++in_flight_;
  ++summary_.sent;
  curl_multi_add_handle(multi_, e);
}

// Hands libcurl the sockets that are ready (without waiting) and runs its timer when it is due
// (a transfer just added is due at once: that sends it), then hands out the transfers that
// ended. `poll` false: the timer and the ended transfers only.
size_t Engine::Pump(bool poll) {
  if (poll) PollIo(0);
  int running = 0;
  if (curl_timer_ns_ >= 0 && curl_timer_ns_ <= MonotonicNs()) {
    curl_timer_ns_ = -1;
    curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  size_t done = 0;
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Lane* lane = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &lane);
    CURLcode code = msg->data.result;
    curl_multi_remove_handle(multi_, msg->easy_handle);
    Finish(lane, code);
    ++done;
    if (!fatal_.ok()) break;
  }
  return done;
}

void Engine::Finish(Lane* lane, CURLcode code) {
  lane->busy = false;
  --in_flight_;
  const Exchange& rec = *lane->job.recorded;
  internal::OutgoingRequest& r = lane->request;  // moved from below: the next Send rebuilds it
  ReplayedExchange rx;
  rx.recorded = &rec;
  rx.round = lane->job.round;
  rx.due_ns = lane->job.due_ns;
  rx.sent_ns = lane->sent_ns;
  rx.redacted_headers_dropped = r.redacted_dropped;
  rx.redacted_values_sent = r.redacted_sent;
  Exchange& live = rx.live;
  live.capture_point = 0;
  live.stream_id = lane->stream_id;
  live.replay_of = ExchangeId{rec.capture_point, rec.stream_id};
  live.direction = Direction::kOutbound;
  live.tls = TlsState::kNo;
  Request& req = live.request.emplace();
  req.version = HttpVersion::kHttp11;
  req.method = std::move(r.method);
  req.scheme = "http";
  req.authority = std::move(r.authority);
  req.path = std::move(r.target);
  req.headers = std::move(r.headers);
  if (r.has_body) {
    req.body.data = *r.body;
    req.body.length = r.body->size();
  }
  CURL* e = lane->easy;
  char* ip = nullptr;
  long port = 0;
  if (curl_easy_getinfo(e, CURLINFO_LOCAL_IP, &ip) == CURLE_OK && ip) {
    if (const auto& a = lane->local.Get(ip)) live.source.ip = *a;
  }
  if (curl_easy_getinfo(e, CURLINFO_LOCAL_PORT, &port) == CURLE_OK) {
    live.source.port = static_cast<uint16_t>(port);
  }
  if (curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip) {
    if (const auto& a = lane->remote.Get(ip)) live.destination.ip = *a;
  }
  if (curl_easy_getinfo(e, CURLINFO_PRIMARY_PORT, &port) == CURLE_OK) {
    live.destination.port = static_cast<uint16_t>(port);
  }
  // Times: the request's first byte left at libcurl's pretransfer time (after any connect);
  // the response's first and last bytes at its starttransfer and total times.
  curl_off_t pre = 0, first = 0, total = 0;
  curl_easy_getinfo(e, CURLINFO_PRETRANSFER_TIME_T, &pre);
  curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &first);
  curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total);
  live.sort_key_ns = static_cast<uint64_t>(lane->sent_wall_ns + int64_t{pre} * 1000);
  if (code == CURLE_OK && lane->response.has_status()) {
    answered_ = true;
    live.response = std::move(lane->response.response());
    live.interim = std::move(lane->response.interim());
    live.response_start_ns = static_cast<uint64_t>(std::max<curl_off_t>(0, first - pre)) * 1000;
    live.response_end_ns = static_cast<uint64_t>(std::max<curl_off_t>(0, total - pre)) * 1000;
    live.completion = Completion::kComplete;
    if (comparer_ && rec.response) {
      rx.comparison = comparer_->Compare(rec, *live.response);
      if (rx.comparison->matched()) {
        ++summary_.matched;
      } else {
        ++summary_.mismatched;
      }
      if (rx.comparison->body_prefix_only) ++summary_.body_prefix_compared;
    } else {
      ++summary_.not_compared;  // comparison off, or recorded without a response
    }
  } else {
    long os_errno = 0;
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
    if (code == CURLE_OK) code = CURLE_WEIRD_SERVER_REPLY;
    curl_off_t connected_us = 0;
    curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &connected_us);
    bool never_connected =
        IsConnectFailure(code) || (code == CURLE_OPERATION_TIMEDOUT && connected_us == 0);
    if (!answered_ && never_connected) {
      // The target is not there: nothing more is sent.
      fatal_ = absl::UnavailableError(absl::StrCat(
          "--target ", o_.target, ": ",
          code == CURLE_OPERATION_TIMEDOUT ? "connection timed out"
                                           : ConnectError(code, os_errno, lane->error)));
      lane->job = Job();
      return;
    }
    if (!answered_ && !lane->response.has_status()) {
      // Connected, but reset, closed or silent before a single answer: the target cannot be
      // reached either (a service that answered once and then fails is counted per exchange).
      fatal_ = absl::UnavailableError(
          absl::StrCat("--target ", o_.target, ": no answer to the first request: ",
                       FirstRequestError(code, os_errno, lane->error, o_.timeout_ns)));
      lane->job = Job();
      return;
    }
    if (lane->response.has_status()) answered_ = true;  // an answer began, then broke off
    rx.error = lane->error[0] ? lane->error : curl_easy_strerror(code);
    live.completion =
        code == CURLE_OPERATION_TIMEDOUT ? Completion::kTimeout : Completion::kNoResponse;
    live.reason = rx.error;
    ++summary_.errors;
  }
  Deliver(rx);
  lane->job = Job();
}

void Engine::Deliver(ReplayedExchange& rx) {
  if (observer_) observer_(rx);
}

absl::StatusOr<ReplaySummary> Engine::Run() {
  if (absl::Status s = Setup(); !s.ok()) return s;
  const int64_t began = clock_->NowNs();
  auto poll_io = [this](int timeout_ms) { PollIo(timeout_ms); };
  for (;;) {
    Pump();
    if (!fatal_.ok()) break;
    if (o_.stop && o_.stop()) {
      summary_.stopped = true;
      break;
    }
    TakeInput();
    if (!fatal_.ok()) break;
    RouteDue();
    if (!fatal_.ok()) break;
    if (StartIdle()) continue;  // answers collected freed lanes for more
    if (!fatal_.ok()) break;
    if (input_ended_ && items_.empty() && queued_ == 0 && in_flight_ == 0) break;
    if (!items_.empty() && queued_ < kMaxQueued && o_.pacing != Pacing::kMax) {
      // The head of the line waits for its due time (its lane may be busy meanwhile).
      const Job& head = items_.front();
      if (head.due_set && head.due_ns > clock_->NowNs()) {
        clock_->WaitUntil(head.due_ns, poll_io);
        // Due now (or I/O came first): sent before anything else is looked at.
        RouteDue();
        StartIdle();
      }
      continue;
    }
    if (!items_.empty() && queued_ < kMaxQueued) continue;  // kMax: route at once
    poll_io(100);                                           // responses, or the input's wakeup
  }
  summary_.elapsed_ns = clock_->NowNs() - began;
  if (!fatal_.ok()) return fatal_;
  return summary_;
}

}  // namespace

void FakeClock::WaitUntil(int64_t deadline_ns, const std::function<void(int)>& poll_io) {
  if (poll_io) poll_io(0);
  if (deadline_ns > now_) now_ = deadline_ns;
}

ReplayClock* SteadyClock() {
  static SteadyReplayClock clock;
  return &clock;
}

absl::StatusOr<ReplaySummary> Replay(const ReplayOptions& options, const ReplayObserver& observer) {
  Engine engine(options, observer);
  return engine.Run();
}

absl::StatusOr<ReplayResult> ReplayCapture(const std::string& capture, const std::string& target,
                                           ReplayOptions options) {
  options.inputs = {capture};
  options.target = target;
  ReplayResult result;
  absl::StatusOr<ReplaySummary> summary = Replay(options, [&](const ReplayedExchange& x) {
    bool failed = !x.error.empty() || (x.comparison && !x.comparison->matched());
    if (!failed) return;
    if (result.mismatches.size() >= kMaxKeptMismatches) {
      ++result.mismatches_not_kept;
      return;
    }
    result.recorded.push_back(std::make_unique<Exchange>(*x.recorded));
    ReplayedExchange kept = x;
    kept.recorded = result.recorded.back().get();
    result.mismatches.push_back(std::move(kept));
  });
  if (!summary.ok()) return summary.status();
  result.summary = *summary;
  return result;
}

}  // namespace tapkit::replay
