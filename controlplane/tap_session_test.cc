// tap_session_test: the parts of a tap (tap_session.h) one by one, then whole sessions against
// fake sidecars: each an in-process Sidecar gRPC service on a unix socket in the test's own
// temporary directory, behind a fake Sidecar handle a fake Runtime returns, fed by the test; and a
// fake Resolver whose pods the test changes while the tap runs. No assertion depends on time:
// waits are on conditions, with generous timeouts.
#include "controlplane/tap_session.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

// RAND_set_rand_method is deprecated in OpenSSL 3 (providers replace it) but is still the way to
// make RAND_bytes fail in a test without a seam in the code under test.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/rand.h>

#include "absl/strings/str_cat.h"
#include "format/test_dir.h"

namespace tapkit {
namespace {

namespace v1 = tapkit::tap::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// Waits until `cond` holds, for at most 20 s; returns whether it held.
bool WaitFor(const std::function<bool()>& cond) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

// A directory of this test's own (mkdtemp under TestDir()), removed at the end.
class TempDir : public tapkit::testing::ScopedTempDir {
 public:
  TempDir() : ScopedTempDir("tap_session_test") {}
};

PodInfo Pod(const std::string& name, const std::string& ip) {
  PodInfo p;
  p.namespace_ = "demo";
  p.name = name;
  p.ip = ip;
  p.interface = "lo";
  p.workload_kind = "deployment";
  p.workload_name = "backend";
  return p;
}

// ---------------------------------------------------------------------------------------------
// Fakes.

// What the test sees of one fake sidecar and tells it.
struct FakePod {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<v1::ObserveEvents> to_send;
  bool terminated = false;  // Terminate/Stop: last stats, then the stream ends OK
  bool fail = false;        // the stream ends UNAVAILABLE (and the sidecar "exits")
  bool observing = false;
  uint32_t capture_point_id = 0;
  v1::ObserveRequest request;

  void Send(v1::ObserveEvents e) {
    std::lock_guard<std::mutex> l(mu);
    to_send.push_back(std::move(e));
    cv.notify_all();
  }
  void Fail() {
    std::lock_guard<std::mutex> l(mu);
    fail = true;
    cv.notify_all();
  }
  void Terminate() {
    std::lock_guard<std::mutex> l(mu);
    terminated = true;
    cv.notify_all();
  }
  // The tap let its handle go (~Sidecar: the real one's process reaped, socket removed).
  void MarkReleased() {
    std::lock_guard<std::mutex> l(mu);
    released = true;
    cv.notify_all();
  }
  bool WaitReleased(std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, limit, [this] { return released; });
  }
  bool released = false;
  bool is_observing() {
    std::lock_guard<std::mutex> l(mu);
    return observing;
  }
  bool is_terminated() {
    std::lock_guard<std::mutex> l(mu);
    return terminated;
  }
};

class FakeSidecarService final : public v1::Sidecar::Service {
 public:
  explicit FakeSidecarService(std::shared_ptr<FakePod> pod) : pod_(std::move(pod)) {}
  grpc::Status Observe(grpc::ServerContext* ctx, const v1::ObserveRequest* req,
                       grpc::ServerWriter<v1::ObserveEvents>* writer) override {
    auto stats = [] {
      v1::ObserveEvents e;
      e.add_events()->mutable_stats()->set_capture_point("fake");
      return e;
    };
    {
      std::lock_guard<std::mutex> l(pod_->mu);
      pod_->request = *req;
      pod_->observing = true;
    }
    writer->Write(stats());  // as a real sidecar: stats first, when the subscription starts
    for (;;) {
      std::deque<v1::ObserveEvents> batch;
      bool fail, terminated;
      {
        std::unique_lock<std::mutex> l(pod_->mu);
        pod_->cv.wait_for(l, std::chrono::milliseconds(20),
                          [&] { return !pod_->to_send.empty() || pod_->fail || pod_->terminated; });
        batch.swap(pod_->to_send);
        fail = pod_->fail;
        terminated = pod_->terminated;
      }
      if (ctx->IsCancelled()) return grpc::Status::CANCELLED;
      for (const v1::ObserveEvents& e : batch) writer->Write(e);
      if (fail) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "capture failed");
      if (terminated) {
        writer->Write(stats());
        return grpc::Status::OK;
      }
    }
  }

 private:
  std::shared_ptr<FakePod> pod_;
};

class FakeSidecar final : public Sidecar {
 public:
  FakeSidecar(const std::string& dir, const PodInfo& pod, std::shared_ptr<FakePod> state)
      : pod_(pod), state_(std::move(state)), service_(state_) {
    static std::atomic<int> n{0};
    address_ = absl::StrCat("unix:", dir, "/sidecar-", ++n, ".sock");
    grpc::ServerBuilder b;
    b.AddListeningPort(address_, grpc::InsecureServerCredentials());
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
  }
  ~FakeSidecar() override {
    state_->Terminate();
    state_->MarkReleased();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  bool ok() const { return server_ != nullptr; }
  const std::string& address() const override { return address_; }
  const PodInfo& pod() const override { return pod_; }
  void Stop(int) override { state_->Terminate(); }
  void Terminate() override { state_->Terminate(); }
  // A sidecar told to finish exits once its stream has ended, as the real one does.
  bool Running(std::string* how) override {
    std::lock_guard<std::mutex> l(state_->mu);
    if (state_->fail && how) *how = "exited with status 1";
    if (!state_->fail && state_->terminated && how) *how = "exited with status 0";
    return !state_->fail && !state_->terminated;
  }

 private:
  PodInfo pod_;
  std::shared_ptr<FakePod> state_;
  FakeSidecarService service_;
  std::string address_;
  std::unique_ptr<grpc::Server> server_;
};

class FakeResolver final : public Resolver {
 public:
  void SetPods(std::vector<PodInfo> pods) {
    std::lock_guard<std::mutex> l(mu_);
    pods_ = std::move(pods);
    ++version_;
  }
  absl::StatusOr<std::vector<PodInfo>> Resolve(const std::string& target, const std::string&,
                                               const std::string&) override {
    std::lock_guard<std::mutex> l(mu_);
    if (target == "deploy/nosuch") return absl::NotFoundError("deployment \"nosuch\" not found");
    if (pods_.empty()) return absl::NotFoundError("no pods");
    return pods_;
  }
  Labels LabelsFor(const std::string& ip) override {
    std::lock_guard<std::mutex> l(mu_);
    ++labels_calls_;
    Labels out;
    for (const PodInfo& p : pods_) {
      if (p.ip != ip) continue;
      out.ns = p.namespace_;
      out.pod = p.name;
      out.workload_kind = p.workload_kind;
      out.workload_name = p.workload_name;
      out.service = "backend";
    }
    return out;
  }
  uint64_t Version() override {
    std::lock_guard<std::mutex> l(mu_);
    return version_;
  }
  int labels_calls() {
    std::lock_guard<std::mutex> l(mu_);
    return labels_calls_;
  }

 private:
  std::mutex mu_;
  std::vector<PodInfo> pods_;
  uint64_t version_ = 1;
  int labels_calls_ = 0;
};

class FakeRuntime final : public Runtime {
 public:
  explicit FakeRuntime(std::string dir) : dir_(std::move(dir)) {}
  Resolver* resolver() override { return &resolver_; }
  absl::StatusOr<std::unique_ptr<Sidecar>> StartSidecar(const PodInfo& pod,
                                                        const SidecarSpec& spec) override {
    std::lock_guard<std::mutex> l(mu_);
    if (unstartable_.count(pod.name)) {
      return absl::UnavailableError(absl::StrCat("sidecar for pod ", pod.name, " did not start"));
    }
    auto state = std::make_shared<FakePod>();
    state->capture_point_id = spec.capture_point_id;
    auto sc = std::make_unique<FakeSidecar>(dir_, pod, state);
    if (!sc->ok()) return absl::UnavailableError("fake sidecar cannot listen");
    pods_[pod.name] = state;
    body_limits_[pod.name] = spec.body_limit;
    return std::unique_ptr<Sidecar>(std::move(sc));
  }
  // The fake pod of the sidecar started for `name` (the last one), once it observes.
  std::shared_ptr<FakePod> Observing(const std::string& name) {
    std::shared_ptr<FakePod> p;
    WaitFor([&] {
      std::lock_guard<std::mutex> l(mu_);
      auto it = pods_.find(name);
      if (it == pods_.end()) return false;
      p = it->second;
      return p->is_observing();
    });
    return p;
  }
  void Unstartable(const std::string& name) {
    std::lock_guard<std::mutex> l(mu_);
    unstartable_.insert(name);
  }
  uint64_t body_limit(const std::string& name) {
    std::lock_guard<std::mutex> l(mu_);
    return body_limits_[name];
  }
  FakeResolver* fake_resolver() { return &resolver_; }

 private:
  std::string dir_;
  FakeResolver resolver_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<FakePod>> pods_;
  std::map<std::string, uint64_t> body_limits_;
  std::set<std::string> unstartable_;
};

// An exchange of `pod` (stream `stream_id`) from `src` to `dst`, as its sidecar sends it.
v1::ObserveEvents Exchange(const FakePod& pod, uint64_t stream_id, const std::string& src,
                           const std::string& dst) {
  v1::ObserveEvents b;
  v1::ExchangeEnded* x = b.add_events()->mutable_exchange();
  x->mutable_id()->set_capture_point_id(pod.capture_point_id);
  x->mutable_id()->set_stream_id(stream_id);
  x->set_exchange("flatbuffer bytes");
  x->mutable_source()->set_ip(src);
  x->mutable_destination()->set_ip(dst);
  return b;
}

// What a session wrote to its client, and a thread running it.
class RunningTap {
 public:
  RunningTap(
      FakeRuntime* runtime, v1::TapRequest req, std::vector<PodInfo> pods,
      std::function<bool()> client_gone = [] { return false; }) {
    TapSessionOptions o;
    o.tap_id = "0123456789abcdef";
    o.request = req;
    o.resolved_version = runtime->resolver()->Version();
    absl::StatusOr<v1::ObserveRequest> obs = BuildObserveRequest(runtime->resolver(), req);
    EXPECT_TRUE(obs.ok()) << obs.status();
    if (obs.ok()) o.observe = *obs;
    o.resolve_interval_ms = 5;
    session_ = std::make_unique<TapSession>(runtime, std::move(o), std::move(pods));
    thread_ = std::thread([this, client_gone] {
      TapEnd e = session_->Run(
          [this](const v1::TapEvents& evs) {
            std::lock_guard<std::mutex> l(mu_);
            for (const v1::TapEvent& e : evs.events()) events_.push_back(e);
            return !refuse_writes_;
          },
          &control_, client_gone);
      std::lock_guard<std::mutex> l(mu_);
      end_ = e;
    });
  }
  ~RunningTap() {
    control_.Shutdown("test over");
    if (thread_.joinable()) thread_.join();
  }
  TapControl& control() { return control_; }
  void RefuseWrites() {
    std::lock_guard<std::mutex> l(mu_);
    refuse_writes_ = true;
  }
  // Waits for the end; nullopt if it did not come within the wait.
  std::optional<TapEnd> End() {
    WaitFor([&] {
      std::lock_guard<std::mutex> l(mu_);
      return end_.has_value();
    });
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!end_) return std::nullopt;
    }
    if (thread_.joinable()) thread_.join();
    return end_;
  }
  std::vector<v1::TapEvent> Events() {
    std::lock_guard<std::mutex> l(mu_);
    return events_;
  }
  int Count(const std::function<bool(const v1::TapEvent&)>& pred) {
    int n = 0;
    for (const v1::TapEvent& e : Events()) n += pred(e);
    return n;
  }
  bool WaitCount(int n, const std::function<bool(const v1::TapEvent&)>& pred) {
    return WaitFor([&] { return Count(pred) >= n; });
  }
  TapSession& session() { return *session_; }

 private:
  std::unique_ptr<TapSession> session_;
  TapControl control_;
  std::mutex mu_;
  std::vector<v1::TapEvent> events_;
  bool refuse_writes_ = false;
  std::optional<TapEnd> end_;
  std::thread thread_;
};

std::function<bool(const v1::TapEvent&)> IsStatus(const std::string& pod, v1::PodStatus::State s) {
  return [pod, s](const v1::TapEvent& e) {
    return e.has_pod_status() && e.pod_status().pod() == pod && e.pod_status().state() == s;
  };
}
bool IsExchange(const v1::TapEvent& e) { return e.has_exchange(); }

v1::TapRequest Request(uint64_t max_requests = 0) {
  v1::TapRequest r;
  r.set_target("deploy/backend");
  r.set_namespace_("demo");
  r.set_max_requests(max_requests);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Merge.

// A full queue holds its pusher back until the tap's thread takes what waits.
TEST(MergeQueue, FullQueueHoldsThePusherUntilPopped) {
  MergeQueue q(2);
  ASSERT_TRUE(q.Push(MergedEvent{1, {}}));
  ASSERT_TRUE(q.Push(MergedEvent{1, {}}));
  std::atomic<bool> pushed{false};
  std::thread t([&] {
    q.Push(MergedEvent{2, {}});
    pushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let it reach the wait
  EXPECT_EQ(q.size(), 2u);
  std::vector<MergedEvent> out;
  ASSERT_TRUE(q.Pop(&out, std::chrono::seconds(5)));
  EXPECT_EQ(out.size(), 2u);
  t.join();
  EXPECT_TRUE(pushed);
  ASSERT_TRUE(q.Pop(&out, std::chrono::seconds(5)));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].capture_point_id, 2u);
}

// Close wakes a pusher that waits for room, and later pushes fail at once.
TEST(MergeQueue, CloseReleasesAWaitingPusher) {
  MergeQueue q(1);
  ASSERT_TRUE(q.Push(MergedEvent{1, {}}));
  std::atomic<int> result{-1};
  std::thread t([&] { result = q.Push(MergedEvent{1, {}}) ? 1 : 0; });
  q.Close();
  t.join();
  EXPECT_EQ(result, 0);
  EXPECT_FALSE(q.Push(MergedEvent{1, {}}));
}

// An empty queue's Pop gives nothing after its wait.
TEST(MergeQueue, PopOfEmptyQueueIsFalse) {
  MergeQueue q;
  std::vector<MergedEvent> out;
  EXPECT_FALSE(q.Pop(&out, std::chrono::milliseconds(1)));
  EXPECT_TRUE(out.empty());
}

// ---------------------------------------------------------------------------------------------
// Limits.

class FakeClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() override { return now_; }
  void Advance(std::chrono::milliseconds d) { now_ += d; }

 private:
  std::chrono::steady_clock::time_point now_{std::chrono::seconds(1000)};
};

v1::ExchangeId Id(uint32_t cp, uint64_t stream) {
  v1::ExchangeId id;
  id.set_capture_point_id(cp);
  id.set_stream_id(stream);
  return id;
}

// --max-requests 3 admits exactly three exchanges; the rest count as over the limit.
TEST(Admission, MaxRequestsAdmitsExactlyN) {
  FakeClock clock;
  Admission a(3, 0, &clock);
  int admitted = 0;
  for (int i = 0; i < 5; ++i) admitted += a.OnExchange(Id(1, i));
  EXPECT_EQ(admitted, 3);
  EXPECT_EQ(a.sent(), 3u);
  EXPECT_EQ(a.over_limit(), 2u);
  EXPECT_TRUE(a.LimitReached());
}

// The decision is made at the request (live view) and kept for its response and end.
TEST(Admission, DecidedAtTheRequestKeptToTheEnd) {
  FakeClock clock;
  Admission a(1, 0, &clock);
  EXPECT_TRUE(a.OnRequest(Id(1, 7)));
  EXPECT_FALSE(a.OnRequest(Id(2, 7)));  // same stream id, other capture point: over the limit
  EXPECT_TRUE(a.OnResponse(Id(1, 7)));
  EXPECT_FALSE(a.OnResponse(Id(2, 7)));
  EXPECT_FALSE(a.OnResponse(Id(1, 8)));  // never seen
  EXPECT_FALSE(a.LimitReached());        // admitted, not yet sent
  EXPECT_FALSE(a.OnExchange(Id(2, 7)));
  EXPECT_TRUE(a.OnExchange(Id(1, 7)));
  EXPECT_EQ(a.sent(), 1u);
  EXPECT_EQ(a.over_limit(), 1u);
  EXPECT_TRUE(a.LimitReached());
  EXPECT_EQ(a.undecided_open(), 0u);
}

// A pod that ended gives back the places of its requests that never ended.
TEST(Admission, EndedCapturePointGivesItsPlacesBack) {
  FakeClock clock;
  Admission a(2, 0, &clock);
  EXPECT_TRUE(a.OnRequest(Id(1, 1)));
  EXPECT_TRUE(a.OnRequest(Id(1, 2)));
  EXPECT_FALSE(a.OnRequest(Id(2, 1)));
  a.ForgetCapturePoint(1);
  EXPECT_TRUE(a.OnExchange(Id(2, 2)));
  EXPECT_TRUE(a.OnExchange(Id(2, 3)));
  EXPECT_FALSE(a.OnExchange(Id(2, 4)));
  EXPECT_EQ(a.sent(), 2u);
}

// --max-rps 2: a burst of 2, then one every half second of the injected clock.
TEST(Admission, MaxRpsIsATokenBucketOnTheInjectedClock) {
  FakeClock clock;
  Admission a(0, 2, &clock);
  EXPECT_TRUE(a.OnExchange(Id(1, 1)));
  EXPECT_TRUE(a.OnExchange(Id(1, 2)));
  EXPECT_FALSE(a.OnExchange(Id(1, 3)));
  clock.Advance(std::chrono::milliseconds(499));
  EXPECT_FALSE(a.OnExchange(Id(1, 4)));
  clock.Advance(std::chrono::milliseconds(1));
  EXPECT_TRUE(a.OnExchange(Id(1, 5)));
  EXPECT_FALSE(a.OnExchange(Id(1, 6)));
  clock.Advance(std::chrono::seconds(60));  // the bucket holds at most the burst
  EXPECT_TRUE(a.OnExchange(Id(1, 7)));
  EXPECT_TRUE(a.OnExchange(Id(1, 8)));
  EXPECT_FALSE(a.OnExchange(Id(1, 9)));
  EXPECT_EQ(a.sent(), 5u);
  EXPECT_EQ(a.held_back(), 4u);
  EXPECT_EQ(a.over_limit(), 0u);
}

// A rate under 1/s still lets one through (a burst of max(1, rate)).
TEST(TokenBucket, SlowRateHasABurstOfOne) {
  FakeClock clock;
  TokenBucket b(0.5, &clock);
  EXPECT_TRUE(b.Take());
  EXPECT_FALSE(b.Take());
  clock.Advance(std::chrono::seconds(2));
  EXPECT_TRUE(b.Take());
}

// ---------------------------------------------------------------------------------------------
// Labels.

// An address gets its pod's labels under the proto's keys, computed once until Clear.
TEST(EndpointLabeller, LabelsByAddressCachedUntilCleared) {
  FakeResolver r;
  r.SetPods({Pod("backend-1", "127.0.10.2")});
  EndpointLabeller l(&r);
  v1::Endpoint e;
  e.set_ip("127.0.10.2");
  l.Label(&e);
  EXPECT_THAT(e.labels(),
              UnorderedElementsAre(Pair("namespace", "demo"), Pair("pod", "backend-1"),
                                   Pair("workload_kind", "deployment"), Pair("workload", "backend"),
                                   Pair("service", "backend")));
  v1::Endpoint again;
  again.set_ip("127.0.10.2");
  l.Label(&again);
  EXPECT_EQ(r.labels_calls(), 1);
  EXPECT_EQ(again.labels().at("pod"), "backend-1");
  l.Clear();
  l.Label(&again);
  EXPECT_EQ(r.labels_calls(), 2);
}

// An address no pod has gets no labels.
TEST(EndpointLabeller, UnknownAddressHasNoLabels) {
  FakeResolver r;
  EndpointLabeller l(&r);
  v1::Endpoint e;
  e.set_ip("10.9.9.9");
  l.Label(&e);
  EXPECT_TRUE(e.labels().empty());
}

// ---------------------------------------------------------------------------------------------
// Ending.

// The client's and the limit's ends are OK; the control plane's own are UNAVAILABLE with why.
TEST(TapEnd, StatusSaysWhoEndedTheTap) {
  EXPECT_TRUE((TapEnd{TapEndReason::kLimitReached, ""}.Status("deploy/x", "demo").ok()));
  EXPECT_TRUE((TapEnd{TapEndReason::kStopAsked, ""}.Status("deploy/x", "demo").ok()));
  grpc::Status s = (TapEnd{TapEndReason::kShutdown, "SIGTERM"}).Status("deploy/x", "demo");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "the control plane is shutting down (SIGTERM)");
  s = TapEnd{TapEndReason::kNoSidecar, ""}.Status("deploy/x", "demo");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(),
            "no sidecar could be started for deploy/x in demo (see the pod status events)");
  s = TapEnd{TapEndReason::kSidecarsGone, "every sidecar of the tap was lost"}.Status("x", "y");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "every sidecar of the tap was lost");
  EXPECT_EQ((TapEnd{TapEndReason::kClientGone, ""}.Status("x", "y").error_code()),
            grpc::StatusCode::CANCELLED);
}

// ---------------------------------------------------------------------------------------------
// Observe requests.

// --to resolves through the resolver; its errors name the flag; a random redaction key is made.
TEST(BuildObserveRequest, PeersLimitAndRedactionKey) {
  FakeResolver r;
  r.SetPods({Pod("backend-1", "127.0.10.2"), Pod("backend-2", "127.0.10.3")});
  v1::TapRequest req = Request(5);
  req.set_to("deploy/backend");
  req.set_path("/api");
  req.mutable_redaction()->set_enabled(true);
  absl::StatusOr<v1::ObserveRequest> o = BuildObserveRequest(&r, req);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->limit(), 5u);
  ASSERT_EQ(o->match().all().matches_size(), 2);
  EXPECT_THAT(o->match().all().matches(0).destination().addresses(),
              ElementsAre("127.0.10.2", "127.0.10.3"));
  EXPECT_EQ(o->match().all().matches(1).http().path_prefix(), "/api");
  EXPECT_EQ(o->redaction().key().size(), 32u);
  EXPECT_NE(o->redaction().key(), std::string(32, '\0'));

  // Under --max-rps the control plane holds matched exchanges back: a sidecar stopping at the
  // tap's limit would end the tap short of it, so the sidecars get none.
  v1::TapRequest paced = req;
  paced.set_max_rps(1);
  absl::StatusOr<v1::ObserveRequest> p = BuildObserveRequest(&r, paced);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->limit(), 0u);

  req.set_to("deploy/nosuch");
  o = BuildObserveRequest(&r, req);
  ASSERT_FALSE(o.ok());
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("--to: deployment \"nosuch\""));
}

// When OpenSSL's generator fails, the tap fails: it never redacts with an all-zero key. The
// failure is OpenSSL's own (a RAND_METHOD whose bytes() reports failure, as an exhausted or
// broken entropy source makes RAND_bytes return 0), not a seam of ours.
TEST(BuildObserveRequest, RandomGeneratorFailureFailsTheTap) {
  static RAND_METHOD failing = {};
  failing.bytes = [](unsigned char*, int) { return 0; };
  failing.status = [] { return 0; };
  const RAND_METHOD* saved = RAND_get_rand_method();
  ASSERT_EQ(RAND_set_rand_method(&failing), 1);
  unsigned char probe[4];
  EXPECT_NE(RAND_bytes(probe, sizeof probe), 1);  // the premise: RAND_bytes now fails
  FakeResolver r;
  r.SetPods({Pod("backend-1", "127.0.10.2")});
  v1::TapRequest req = Request(0);
  req.mutable_redaction()->set_enabled(true);
  absl::StatusOr<v1::ObserveRequest> o = BuildObserveRequest(&r, req);
  // A key the user gave needs no generator.
  v1::TapRequest keyed = req;
  keyed.mutable_redaction()->set_key(std::string(32, 'k'));
  absl::StatusOr<v1::ObserveRequest> k = BuildObserveRequest(&r, keyed);
  RAND_set_rand_method(saved);
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(o.status().message()), HasSubstr("cannot make a redaction key"));
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->redaction().key(), std::string(32, 'k'));
}

// ---------------------------------------------------------------------------------------------
// Whole sessions against fake sidecars.

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    runtime_ = std::make_unique<FakeRuntime>(dir_.path());
  }
  TempDir dir_;
  std::unique_ptr<FakeRuntime> runtime_;
};

// Two pods stream into one tap; --max-requests 3 sends exactly three, labelled, then the tap
// drains (both sidecars asked to finish, both ENDED) and ends OK.
TEST_F(SessionTest, MaxRequestsDrainsAndEndsOk) {
  PodInfo a = Pod("backend-1", "127.0.10.2"), b = Pod("backend-2", "127.0.10.3");
  runtime_->fake_resolver()->SetPods({a, b});
  RunningTap tap(runtime_.get(), Request(3), {a, b});
  auto pa = runtime_->Observing("backend-1");
  auto pb = runtime_->Observing("backend-2");
  ASSERT_TRUE(pa && pb);
  EXPECT_EQ(pa->request.limit(), 3u);
  EXPECT_EQ(runtime_->body_limit("backend-1"), format::kDefaultBodyLimit);
  pa->Send(Exchange(*pa, 1, "127.0.30.1", "127.0.10.2"));
  pb->Send(Exchange(*pb, 1, "127.0.30.1", "127.0.10.3"));
  ASSERT_TRUE(tap.WaitCount(2, IsExchange));
  // One message: the third reaches the limit, the fourth is over it (sent in one, so that it
  // is on its way before the tap can drain and end).
  v1::ObserveEvents two = Exchange(*pa, 2, "127.0.30.1", "127.0.10.2");
  *two.add_events() = Exchange(*pa, 3, "127.0.30.1", "127.0.10.2").events(0);
  pa->Send(two);
  std::optional<TapEnd> end = tap.End();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->reason, TapEndReason::kLimitReached);
  EXPECT_TRUE(end->Status("deploy/backend", "demo").ok());
  EXPECT_TRUE(pa->is_terminated());
  EXPECT_TRUE(pb->is_terminated());
  EXPECT_EQ(tap.Count(IsExchange), 3);
  EXPECT_EQ(tap.Count(IsStatus("backend-1", v1::PodStatus::ENDED)), 1);
  EXPECT_EQ(tap.Count(IsStatus("backend-2", v1::PodStatus::ENDED)), 1);
  std::vector<v1::TapEvent> ev = tap.Events();
  ASSERT_FALSE(ev.empty());
  EXPECT_EQ(ev[0].started().tap_id(), "0123456789abcdef");
  EXPECT_TRUE(IsStatus("backend-1", v1::PodStatus::STARTING)(ev[1]));
  for (const v1::TapEvent& e : ev) {
    if (!e.has_exchange()) continue;
    EXPECT_EQ(e.exchange().destination().labels().at("workload"), "backend");
    EXPECT_EQ(e.exchange().destination().labels().at("service"), "backend");
    EXPECT_TRUE(e.exchange().source().labels().empty());  // the client is no pod
  }
  // The tap's own last stats: three sent, one over the limit.
  const v1::TapEvent& last = ev.back();
  ASSERT_TRUE(last.has_stats());
  EXPECT_EQ(last.stats().capture_point(), "");
  EXPECT_EQ(last.stats().exchanges_matched(), 3u);
  EXPECT_EQ(last.stats().drops().at("over_max_requests"), 1u);
}

// Tap.Stop drains and ends OK.
TEST_F(SessionTest, StopDrainsAndEndsOk) {
  PodInfo a = Pod("backend-1", "127.0.10.2");
  runtime_->fake_resolver()->SetPods({a});
  RunningTap tap(runtime_.get(), Request(), {a});
  auto pa = runtime_->Observing("backend-1");
  ASSERT_TRUE(pa);
  ASSERT_TRUE(tap.WaitCount(1, IsStatus("backend-1", v1::PodStatus::STREAMING)));
  tap.control().Stop();
  std::optional<TapEnd> end = tap.End();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->reason, TapEndReason::kStopAsked);
  EXPECT_TRUE(end->Status("deploy/backend", "demo").ok());
  EXPECT_EQ(tap.Count(IsStatus("backend-1", v1::PodStatus::ENDED)), 1);
}

// The control plane's shutdown ends the tap at once, UNAVAILABLE with the signal.
TEST_F(SessionTest, ShutdownEndsUnavailableWithWhy) {
  PodInfo a = Pod("backend-1", "127.0.10.2");
  runtime_->fake_resolver()->SetPods({a});
  RunningTap tap(runtime_.get(), Request(), {a});
  ASSERT_TRUE(tap.WaitCount(1, IsStatus("backend-1", v1::PodStatus::STREAMING)));
  tap.control().Shutdown("SIGTERM");
  std::optional<TapEnd> end = tap.End();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->reason, TapEndReason::kShutdown);
  grpc::Status s = end->Status("deploy/backend", "demo");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(), "the control plane is shutting down (SIGTERM)");
  EXPECT_TRUE(tap.Events().back().has_stats());  // a last Stats all the same
}

// Every sidecar lost: LOST per pod with why, and the tap ends UNAVAILABLE.
TEST_F(SessionTest, EverySidecarLostEndsUnavailable) {
  PodInfo a = Pod("backend-1", "127.0.10.2"), b = Pod("backend-2", "127.0.10.3");
  runtime_->fake_resolver()->SetPods({a, b});
  RunningTap tap(runtime_.get(), Request(), {a, b});
  auto pa = runtime_->Observing("backend-1");
  auto pb = runtime_->Observing("backend-2");
  ASSERT_TRUE(pa && pb);
  pa->Fail();
  ASSERT_TRUE(tap.WaitCount(1, IsStatus("backend-1", v1::PodStatus::LOST)));
  pb->Send(Exchange(*pb, 1, "127.0.30.1", "127.0.10.3"));  // the other pod streams on
  ASSERT_TRUE(tap.WaitCount(1, IsExchange));
  pb->Fail();
  std::optional<TapEnd> end = tap.End();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->reason, TapEndReason::kSidecarsGone);
  grpc::Status s = end->Status("deploy/backend", "demo");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("every sidecar of the tap was lost"));
  for (const v1::TapEvent& e : tap.Events()) {
    if (e.has_pod_status() && e.pod_status().state() == v1::PodStatus::LOST) {
      EXPECT_THAT(e.pod_status().message(),
                  HasSubstr("sidecar exited with status 1; stream failed: capture failed"));
    }
  }
}

// No sidecar could start: UNAVAILABLE naming the target.
TEST_F(SessionTest, NoSidecarStartedEndsUnavailable) {
  PodInfo a = Pod("backend-1", "127.0.10.2");
  runtime_->fake_resolver()->SetPods({a});
  runtime_->Unstartable("backend-1");
  RunningTap tap(runtime_.get(), Request(), {a});
  std::optional<TapEnd> end = tap.End();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->reason, TapEndReason::kNoSidecar);
  EXPECT_THAT(end->Status("deploy/backend", "demo").error_message(),
              HasSubstr("no sidecar could be started for deploy/backend in demo"));
  EXPECT_EQ(tap.Count(IsStatus("backend-1", v1::PodStatus::LOST)), 1);
}

// The client gone (its writes fail): the tap ends, its sidecars are stopped.
TEST_F(SessionTest, ClientGoneEndsTheTap) {
  PodInfo a = Pod("backend-1", "127.0.10.2");
  runtime_->fake_resolver()->SetPods({a});
  RunningTap tap(runtime_.get(), Request(), {a});
  auto pa = runtime_->Observing("backend-1");
  ASSERT_TRUE(pa);
  tap.RefuseWrites();
  pa->Send(Exchange(*pa, 1, "127.0.30.1", "127.0.10.2"));
  std::optional<TapEnd> end = tap.End();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->reason, TapEndReason::kClientGone);
  EXPECT_TRUE(pa->is_terminated());
}

// A cancelled call (ServerContext::IsCancelled) ends the tap too.
TEST_F(SessionTest, CancelledCallEndsTheTap) {
  PodInfo a = Pod("backend-1", "127.0.10.2");
  runtime_->fake_resolver()->SetPods({a});
  std::atomic<bool> cancelled{false};
  RunningTap tap(runtime_.get(), Request(), {a}, [&] { return cancelled.load(); });
  ASSERT_TRUE(runtime_->Observing("backend-1"));
  cancelled = true;
  std::optional<TapEnd> end = tap.End();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->reason, TapEndReason::kClientGone);
}

// A pod that appears during the tap gets a sidecar and streams; one that leaves has its stream
// ended (ENDED, not LOST); both are counted in the tap's own stats.
TEST_F(SessionTest, PodsJoinAndLeaveARunningTap) {
  PodInfo a = Pod("backend-1", "127.0.10.2"), b = Pod("backend-2", "127.0.10.3");
  runtime_->fake_resolver()->SetPods({a});
  RunningTap tap(runtime_.get(), Request(), {a});
  auto pa = runtime_->Observing("backend-1");
  ASSERT_TRUE(pa);

  runtime_->fake_resolver()->SetPods({a, b});  // backend-2 joins
  ASSERT_TRUE(tap.WaitCount(1, IsStatus("backend-2", v1::PodStatus::STARTING)));
  ASSERT_TRUE(tap.WaitCount(1, IsStatus("backend-2", v1::PodStatus::STREAMING)));
  auto pb = runtime_->Observing("backend-2");
  ASSERT_TRUE(pb);
  EXPECT_EQ(pb->capture_point_id, 2u);
  pb->Send(Exchange(*pb, 1, "127.0.30.1", "127.0.10.3"));
  ASSERT_TRUE(tap.WaitCount(1, IsExchange));
  for (const v1::TapEvent& e : tap.Events()) {
    if (e.has_exchange()) {
      EXPECT_EQ(e.exchange().destination().labels().at("pod"), "backend-2");
    }
  }

  runtime_->fake_resolver()->SetPods({b});  // backend-1 leaves
  ASSERT_TRUE(tap.WaitCount(1, IsStatus("backend-1", v1::PodStatus::ENDED)));
  EXPECT_TRUE(pa->is_terminated());
  EXPECT_EQ(tap.Count(IsStatus("backend-1", v1::PodStatus::LOST)), 0);
  EXPECT_FALSE(pb->is_terminated());  // the other pod streams on
  // The pod that left is let go while the tap runs (its thread joined, its sidecar handle
  // destroyed), not kept to the tap's end.
  EXPECT_TRUE(pa->WaitReleased(std::chrono::seconds(20)));

  tap.control().Stop();
  std::optional<TapEnd> end = tap.End();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->reason, TapEndReason::kStopAsked);
  EXPECT_EQ(tap.session().pods_added(), 1u);
  EXPECT_EQ(tap.session().pods_removed(), 1u);
  const v1::TapEvent last = tap.Events().back();
  ASSERT_TRUE(last.has_stats());
  EXPECT_EQ(last.stats().counters().at("pods_added"), 1u);
  EXPECT_EQ(last.stats().counters().at("pods_removed"), 1u);
  EXPECT_EQ(tap.Count(IsStatus("backend-2", v1::PodStatus::ENDED)), 1);
}

// Every pod leaving the target ends the tap, UNAVAILABLE, saying so.
TEST_F(SessionTest, EveryPodLeavingEndsUnavailable) {
  PodInfo a = Pod("backend-1", "127.0.10.2");
  runtime_->fake_resolver()->SetPods({a});
  RunningTap tap(runtime_.get(), Request(), {a});
  ASSERT_TRUE(runtime_->Observing("backend-1"));
  runtime_->fake_resolver()->SetPods({});
  std::optional<TapEnd> end = tap.End();
  ASSERT_TRUE(end);
  EXPECT_EQ(end->reason, TapEndReason::kSidecarsGone);
  EXPECT_THAT(end->Status("deploy/backend", "demo").error_message(),
              HasSubstr("1 left the target"));
}

}  // namespace
}  // namespace tapkit
