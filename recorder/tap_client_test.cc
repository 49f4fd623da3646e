// RunTap against an in-process fake Tap service on a unix socket in a temporary directory: how
// the stream ends decides the status (the user's stop, a limit: OK; the control plane's own end,
// with or without tapkit-ended-by: Unavailable), the file opens only once the tap has started,
// and lower-case methods are warned about.
#include "recorder/tap_client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "controlplane/api/tap.grpc.pb.h"
#include "format/codec.h"
#include "format/file.h"
#include "format/reader.h"
#include "format/redact.h"
#include "format/testutil.h"

namespace tapkit {
namespace {

namespace fs = std::filesystem;
namespace v1 = tapkit::tap::v1;
using Writer = grpc::ServerWriter<v1::TapEvents>;

class FakeTap final : public v1::Tap::Service {
 public:
  std::function<grpc::Status(grpc::ServerContext*, Writer*)> watch;

  grpc::Status Watch(grpc::ServerContext* ctx, const v1::TapRequest* req, Writer* w) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      request_ = *req;
    }
    return watch(ctx, w);
  }
  grpc::Status Stop(grpc::ServerContext*, const v1::StopRequest* req,
                    v1::StopResponse*) override {
    std::lock_guard<std::mutex> l(mu_);
    stopped_ids_.push_back(req->tap_id());
    cv_.notify_all();
    return grpc::Status::OK;
  }
  // Blocks until Stop was called (the Watch handler waits for the client's request).
  void WaitForStop() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return !stopped_ids_.empty(); });
  }
  std::vector<std::string> stopped_ids() {
    std::lock_guard<std::mutex> l(mu_);
    return stopped_ids_;
  }
  v1::TapRequest request() {
    std::lock_guard<std::mutex> l(mu_);
    return request_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> stopped_ids_;
  v1::TapRequest request_;
};

class TapClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string t = ::testing::TempDir() + "/tap-client-XXXXXX";
    ASSERT_NE(::mkdtemp(t.data()), nullptr);
    dir_ = t;
    address_ = "unix:" + dir_ + "/cp.sock";
    grpc::ServerBuilder b;
    b.AddListeningPort(address_, grpc::InsecureServerCredentials());
    b.RegisterService(&fake_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    err_ = std::tmpfile();
    out_ = std::tmpfile();
  }
  void TearDown() override {
    server_->Shutdown();
    std::fclose(err_);
    std::fclose(out_);
    fs::remove_all(dir_);
  }
  TapOptions Options() {
    TapOptions o;
    o.target = "deploy/backend";
    o.ns = "demo";
    o.controlplane = address_;
    o.write_path = dir_ + "/out.tap";
    o.stop = &stop_;
    o.err = err_;
    o.out = out_;
    return o;
  }
  std::string Err() {
    std::fflush(err_);
    std::rewind(err_);
    std::string s;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, err_)) > 0;) s.append(buf, n);
    return s;
  }
  size_t ExchangesIn(const std::string& path) {
    testing::ReadResult r = testing::ReadAll(testing::ReadFileBytes(path));
    EXPECT_TRUE(r.open.ok()) << r.open;
    EXPECT_TRUE(r.stats.trailer_read) << "the file is finished";
    return r.exchanges.size();
  }

  FakeTap fake_;
  std::unique_ptr<grpc::Server> server_;
  std::string dir_, address_;
  std::atomic<int> stop_{0};
  std::FILE* err_ = nullptr;
  std::FILE* out_ = nullptr;
};

v1::TapEvents Started(const std::string& id) {
  v1::TapEvents b;
  b.add_events()->mutable_started()->set_tap_id(id);
  return b;
}

v1::TapEvents Exchanges(uint64_t first, uint64_t n,
                        const std::function<void(Exchange*)>& edit = {}) {
  v1::TapEvents b;
  for (uint64_t i = first; i < first + n; ++i) {
    Exchange x = testing::RichExchange(i);
    x.capture_point = 1;
    if (edit) edit(&x);
    flatbuffers::FlatBufferBuilder fb;
    std::string bodies;
    EXPECT_TRUE(EncodeExchange(x, &fb, &bodies).ok());
    v1::ExchangeEnded* e = b.add_events()->mutable_exchange();
    e->mutable_id()->set_capture_point("demo/backend-1");
    e->mutable_id()->set_capture_point_id(1);
    e->mutable_id()->set_stream_id(i);
    e->set_exchange(reinterpret_cast<const char*>(fb.GetBufferPointer()), fb.GetSize());
    e->set_bodies(bodies);
  }
  return b;
}

// A control plane stopped with SIGTERM (as it did before ending Watch with a status): the stream
// ends OK though nobody asked and no limit was reached. The capture is cut: exit 2, said so.
TEST_F(TapClientTest, StreamEndingOkOnItsOwnIsTheControlPlanesEnd) {
  fake_.watch = [](grpc::ServerContext*, Writer* w) {
    w->Write(Started("tap-1"));
    w->Write(Exchanges(0, 2));
    return grpc::Status::OK;
  };
  TapOptions o = Options();
  absl::Status s = RunTap(o);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(s.message(), "the control plane at " + address_ +
                             " ended the tap on its own (was it stopped?)");
  EXPECT_EQ(ExchangesIn(o.write_path), 2u);
  EXPECT_EQ(Err(), "taprec: 2 exchanges recorded, 0 dropped\n");
}

// The control plane's shutdown as the control-plane change makes it: UNAVAILABLE, its reason,
// trailing metadata tapkit-ended-by.
TEST_F(TapClientTest, EndedByTheControlPlane) {
  fake_.watch = [](grpc::ServerContext* ctx, Writer* w) {
    w->Write(Started("tap-1"));
    w->Write(Exchanges(0, 3));
    ctx->AddTrailingMetadata("tapkit-ended-by", "controlplane");
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the control plane is shutting down");
  };
  TapOptions o = Options();
  absl::Status s = RunTap(o);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(s.message(),
            "the control plane at " + address_ + " ended the tap: the control plane is shutting down");
  EXPECT_EQ(ExchangesIn(o.write_path), 3u);
}

// A stream that drops (UNAVAILABLE without the metadata) after events: lost.
TEST_F(TapClientTest, StreamDroppedMidway) {
  fake_.watch = [](grpc::ServerContext*, Writer* w) {
    w->Write(Started("tap-1"));
    w->Write(Exchanges(0, 1));
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "Socket closed");
  };
  absl::Status s = RunTap(Options());
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_EQ(s.message(), "lost the control plane at " + address_ + ": Socket closed");
}

// --max-requests reached: the control plane ends the stream OK, and that is taprec's own end.
TEST_F(TapClientTest, LimitReachedIsSuccess) {
  fake_.watch = [](grpc::ServerContext*, Writer* w) {
    w->Write(Started("tap-1"));
    w->Write(Exchanges(0, 2));
    w->Write(Exchanges(2, 1));
    return grpc::Status::OK;
  };
  TapOptions o = Options();
  o.max_requests = 3;
  EXPECT_TRUE(RunTap(o).ok());
  EXPECT_EQ(fake_.request().max_requests(), 3u);
  EXPECT_EQ(ExchangesIn(o.write_path), 3u);
}

// What the sidecars cannot evaluate (--status) is matched here on ended exchanges: only those
// are written and counted, -c counts them here (not pushed as max_requests) and stops the tap
// with Tap.Stop once reached; what the sidecars can evaluate (--method) is pushed.
TEST_F(TapClientTest, SelectionTheSidecarsCannotEvaluateIsMatchedHere) {
  auto status_by_parity = [](Exchange* x) { x->response->status = x->stream_id % 2 ? 503 : 200; };
  fake_.watch = [this, status_by_parity](grpc::ServerContext*, Writer* w) {
    w->Write(Started("tap-5"));
    w->Write(Exchanges(0, 6, status_by_parity));  // 503 at 1, 3, 5: -c 2 is reached at 3
    fake_.WaitForStop();
    w->Write(Exchanges(6, 2, status_by_parity));  // still open: past -c, not written
    return grpc::Status::OK;
  };
  SelectionFlags flags;
  flags.status = {"5xx"};
  flags.method = {"GET"};
  absl::StatusOr<Selection> sel = Selection::Parse(flags);
  ASSERT_TRUE(sel.ok());
  TapPushdown pushed = sel->ForTap();
  TapOptions o = Options();
  o.method = pushed.method;
  o.selection = pushed.rest;
  o.count = 2;
  EXPECT_TRUE(RunTap(o).ok()) << Err();
  EXPECT_EQ(fake_.request().method(), "GET");
  EXPECT_EQ(fake_.request().max_requests(), 0u) << "-c counts selected exchanges, here";
  EXPECT_EQ(fake_.stopped_ids(), std::vector<std::string>{"tap-5"});
  testing::ReadResult r = testing::ReadAll(testing::ReadFileBytes(o.write_path));
  ASSERT_EQ(r.exchanges.size(), 2u);
  EXPECT_EQ(r.exchanges[0].stream_id, 1001u);  // RichExchange(i): stream 1000 + i
  EXPECT_EQ(r.exchanges[1].stream_id, 1003u);
  EXPECT_EQ(r.exchanges[1].response->status, 503);
  EXPECT_NE(Err().find("taprec: 2 exchanges recorded"), std::string::npos) << Err();
  auto reader = Reader::Open(NewStringReadableFile(testing::ReadFileBytes(o.write_path)));
  ASSERT_TRUE(reader.ok());
  const auto& filters = (*reader)->metadata().filters;
  EXPECT_NE(std::find(filters.begin(), filters.end(),
                      std::pair<std::string, std::string>{"status", "5xx"}),
            filters.end());
}

// Printing with a selection matched here: no req/rsp lines before the end (phases off).
TEST_F(TapClientTest, LocalSelectionPrintsAtTheEnd) {
  fake_.watch = [](grpc::ServerContext*, Writer* w) {
    w->Write(Started("tap-6"));
    return grpc::Status::OK;
  };
  TapOptions o = Options();
  o.write_path.clear();
  EXPECT_FALSE(RunTap(o).ok());  // ended on its own
  EXPECT_TRUE(fake_.request().phases()) << "without a selection, lines as they happen";
  SelectionFlags flags;
  flags.min_latency = "1s";
  absl::StatusOr<Selection> sel = Selection::Parse(flags);
  ASSERT_TRUE(sel.ok());
  o.selection = *sel;
  (void)RunTap(o);
  EXPECT_FALSE(fake_.request().phases());
}

// The redaction flags travel to the sidecars in full (the defaults and what was added), the
// file's header says the same, and a bad pointer stops the tap before it is asked for.
TEST_F(TapClientTest, RedactionFlagsGoToTheSidecarsAndTheHeader) {
  fake_.watch = [](grpc::ServerContext*, Writer* w) {
    w->Write(Started("tap-1"));
    w->Write(Exchanges(0, 1));
    return grpc::Status::OK;
  };
  TapOptions o = Options();
  o.max_requests = 1;
  o.redaction.headers = {"X-Secret"};
  o.redaction.query_params = {"sid"};
  o.redaction.json_fields = {"/password"};
  ASSERT_TRUE(RunTap(o).ok());
  const v1::TapRequest sent = fake_.request();
  const v1::Redaction& r = sent.redaction();
  EXPECT_TRUE(r.enabled());
  EXPECT_TRUE(r.key().empty()) << "no key file: the control plane makes the tap's key";
  std::vector<std::string> headers = DefaultRedactedHeaders();
  std::vector<std::string> params = DefaultRedactedQueryParams();
  headers.push_back("x-secret");
  params.push_back("sid");
  EXPECT_EQ(std::vector<std::string>(r.headers().begin(), r.headers().end()), headers);
  EXPECT_EQ(std::vector<std::string>(r.query_params().begin(), r.query_params().end()), params);
  EXPECT_EQ(std::vector<std::string>(r.json_fields().begin(), r.json_fields().end()),
            std::vector<std::string>{"/password"});
  auto file = OpenReadableFile(o.write_path);
  ASSERT_TRUE(file.ok()) << file.status();
  auto reader = Reader::Open(*std::move(file));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->metadata().redaction,
            (RedactionPolicy{true, headers, false, params, {"/password"}}));

  TapOptions bad = Options();
  bad.redaction.json_fields = {"password"};
  absl::Status s = RunTap(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "--redact-json-field JSON pointer \"password\": must be empty or start with \"/\" "
            "(RFC 6901 section 3)");
}

// A stop request (Ctrl+C): Tap.Stop with the tap's id, the stream ends OK, exit 0.
TEST_F(TapClientTest, StopRequestIsSuccess) {
  fake_.watch = [this](grpc::ServerContext*, Writer* w) {
    w->Write(Started("tap-7"));
    w->Write(Exchanges(0, 1));
    stop_ = 1;  // the user's Ctrl+C, once the tap runs
    fake_.WaitForStop();
    w->Write(Exchanges(1, 1));  // what was still open, "capture ended"
    return grpc::Status::OK;
  };
  TapOptions o = Options();
  EXPECT_TRUE(RunTap(o).ok());
  EXPECT_EQ(fake_.stopped_ids(), std::vector<std::string>{"tap-7"});
  EXPECT_EQ(ExchangesIn(o.write_path), 2u);
}

// Printing into a pipe whose reader went away (`taprec deploy/x | head -1`): the tap ends, quietly
// and with success, as tcpdump's does; the control plane sees the call cancelled.
TEST_F(TapClientTest, ClosedOutputPipeEndsTheTapWithSuccess) {
  std::atomic<bool> cancelled{false};
  fake_.watch = [&cancelled](grpc::ServerContext* ctx, Writer* w) {
    w->Write(Started("tap-1"));
    for (uint64_t i = 0; i < 2000 && !ctx->IsCancelled(); ++i) w->Write(Exchanges(i, 1));
    while (!ctx->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    cancelled = true;
    return grpc::Status::CANCELLED;
  };
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[0]);  // the reader is gone
  // RunTap given `stop` leaves the signals alone: SIGPIPE is ignored here, as taprec does.
  struct sigaction ign {}, old {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, &old);
  std::FILE* pipe_out = ::fdopen(fds[1], "w");
  ASSERT_NE(pipe_out, nullptr);
  TapOptions o = Options();
  o.write_path.clear();  // print
  o.out = pipe_out;
  absl::Status s = RunTap(o);
  std::fclose(pipe_out);
  ::sigaction(SIGPIPE, &old, nullptr);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(Err(), "") << "no word: the reader chose to stop reading";
  // The server learns of the cancel on its own schedule: wait for it (bounded), not assume it.
  for (int i = 0; i < 1000 && !cancelled; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(cancelled);
}

// Refused (an unknown target): the control plane's message, and no file at the -w path.
TEST_F(TapClientTest, RefusedTapLeavesNoFile) {
  fake_.watch = [](grpc::ServerContext*, Writer*) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no deployment \"backend\" in namespace demo");
  };
  TapOptions o = Options();
  absl::Status s = RunTap(o);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_EQ(s.message(), "no deployment \"backend\" in namespace demo");
  EXPECT_FALSE(fs::exists(o.write_path));
  EXPECT_EQ(Err(), "") << "no summary for a tap that never started";
}

TEST_F(TapClientTest, UnreachableControlPlaneLeavesNoFile) {
  TapOptions o = Options();
  o.controlplane = "unix:" + dir_ + "/nothing.sock";
  absl::Status s = RunTap(o);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "cannot reach the control plane at " + o.controlplane))
      << s;
  EXPECT_FALSE(fs::exists(o.write_path));
}

// Printing: the request's method travels as given, and a lower-case one draws a warning.
TEST_F(TapClientTest, LowerCaseMethodIsWarnedAbout) {
  fake_.watch = [](grpc::ServerContext*, Writer* w) {
    w->Write(Started("tap-1"));
    return grpc::Status::OK;
  };
  TapOptions o = Options();
  o.write_path.clear();
  o.method = "post";
  o.max_requests = 0;
  (void)RunTap(o);
  EXPECT_EQ(fake_.request().method(), "post");
  EXPECT_NE(Err().find("taprec: warning: --method post matches no request: methods are "
                       "case-sensitive (RFC 9110 section 9.1); did you mean --method POST?\n"),
            std::string::npos)
      << Err();
}

TEST(SuggestMethod, RegisteredMethodsOnly) {
  EXPECT_EQ(SuggestMethod("post"), "POST");
  EXPECT_EQ(SuggestMethod("Get"), "GET");
  EXPECT_EQ(SuggestMethod("patch"), "PATCH");
  EXPECT_EQ(SuggestMethod("POST"), "");
  EXPECT_EQ(SuggestMethod("purge"), "") << "not a registered method";
  EXPECT_EQ(SuggestMethod(""), "");
}

}  // namespace
}  // namespace tapkit
