#include "tools/taprec_live.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controlplane/api/tap.grpc.pb.h"
#include "controlplane/runtime.h"
#include "format/codec.h"
#include "format/program.h"
#include "recorder/recorder.h"
#include "format/redact.h"
#include "format/render.h"

namespace tapkit {
namespace {

namespace v1 = tapkit::tap::v1;

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_signals{0};
void OnSignal(int) {
  g_interrupted = true;
  ++g_signals;
}

}  // namespace

int RunLive(const LiveArgs& a) {
  std::string address = a.controlplane.empty() ? DefaultControlPlaneAddress() : a.controlplane;
  bool json = a.output == "json", wide = a.output == "wide";

  v1::TapRequest req;
  req.set_target(a.target);
  req.set_namespace_(a.ns);
  req.set_label_selector(a.selector);
  req.set_to(a.to);
  req.set_to_namespace(a.to_namespace);
  req.set_from(a.from);
  req.set_from_namespace(a.from_namespace);
  req.set_method(a.method);
  req.set_authority(a.authority);
  req.set_path(a.path);
  req.set_max_requests(a.max_requests);
  req.set_max_rps(a.max_rps);
  req.mutable_extract()->set_headers(true);
  req.mutable_extract()->set_bodies(true);
  req.mutable_extract()->set_body_limit(a.body_limit);
  req.mutable_redaction()->set_enabled(a.redact);
  if (a.redact && !a.redact_key_file.empty()) {
    absl::StatusOr<std::string> key = ReadRedactionKey(a.redact_key_file);
    if (!key.ok()) {
      std::fprintf(stderr, "taprec: --redact-key-file %s\n",
                   std::string(key.status().message()).c_str());
      return kExitError;
    }
    req.mutable_redaction()->set_key(*key);
  }
  // Printing live shows req and rsp lines as they happen; a file keeps whole exchanges only.
  req.set_phases(a.write_path.empty() && !json);

  std::string token;
  if (!a.token_file.empty()) {
    std::ifstream in(a.token_file);
    token.assign(std::istreambuf_iterator<char>(in), {});
    absl::StripAsciiWhitespace(&token);
    if (!in || token.empty()) {
      std::fprintf(stderr, "taprec: --token-file %s: cannot read a token\n", a.token_file.c_str());
      return kExitError;
    }
  }

  std::unique_ptr<Recorder> writer;
  CaptureMetadata meta;
  if (!a.write_path.empty()) {
    meta.start_time_ns = static_cast<uint64_t>(absl::GetCurrentTimeNanos());
    meta.writer_name = "taprec";
    meta.writer_version = std::string(tapkit::kVersion);
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) == 0) meta.host = host;
    meta.command_line = a.command_line;
    meta.target = a.target;
    meta.ns = a.ns.empty() ? "default" : a.ns;
    meta.body_limit = a.body_limit;
    auto filter = [&](const char* k, const std::string& v) {
      if (!v.empty()) meta.filters.emplace_back(k, v);
    };
    filter("selector", a.selector);
    filter("to", a.to);
    filter("to_namespace", a.to_namespace);
    filter("from", a.from);
    filter("from_namespace", a.from_namespace);
    filter("method", a.method);
    filter("authority", a.authority);
    filter("path", a.path);
    if (a.max_requests) filter("max_requests", std::to_string(a.max_requests));
    if (a.max_rps > 0) filter("max_rps", absl::StrCat(a.max_rps));
    meta.redaction.enabled = a.redact;
    meta.redaction.headers = DefaultRedactedHeaders();
    meta.redaction.keyed = !a.redact_key_file.empty();
    writer = std::make_unique<Recorder>(a.write_path, meta, a.rotation);
    if (absl::Status s = writer->Open(); !s.ok()) {
      std::fprintf(stderr, "taprec: %s\n", std::string(s.message()).c_str());
      return kExitError;
    }
  }

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // an exchange's bodies may exceed gRPC's 4 MiB
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Tap::NewStub(channel);
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);

  // Ctrl+C / SIGTERM: the tap is asked to stop (Tap.Stop): its sidecars send what is still
  // open, as "capture ended", and the stream ends; the loop below then finishes the file. If
  // that takes over kStopWaitMs, or at a second signal, the call is cancelled instead.
  constexpr int kStopWaitMs = 5000;
  g_interrupted = false;
  g_signals = 0;
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  std::atomic<bool> done{false};
  std::mutex tap_id_mu;
  std::string tap_id;  // from the stream's TapStarted
  std::thread watcher([&] {
    std::optional<std::chrono::steady_clock::time_point> asked;
    while (!done) {
      if (g_signals > 1 || (asked && std::chrono::steady_clock::now() - *asked >
                                         std::chrono::milliseconds(kStopWaitMs))) {
        ctx.TryCancel();
        return;
      }
      if (g_interrupted && !asked) {
        asked = std::chrono::steady_clock::now();
        v1::StopRequest stop;
        {
          std::lock_guard<std::mutex> l(tap_id_mu);
          stop.set_tap_id(tap_id);
        }
        grpc::ClientContext sctx;
        if (!token.empty()) sctx.AddMetadata("authorization", "Bearer " + token);
        sctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
        v1::StopResponse unused;
        if (stop.tap_id().empty() || !stub->Stop(&sctx, stop, &unused).ok()) {
          ctx.TryCancel();  // not started yet, or an older control plane: cancel
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  bool tty = isatty(STDERR_FILENO);
  std::unique_ptr<grpc::ClientReader<v1::TapEvents>> reader = stub->Watch(&ctx, req);
  v1::TapEvents batch;
  std::map<uint64_t, LineHead> heads;  // (capture point id << 40 | stream) -> req line's head
  uint64_t exchanges = 0, bytes = 0;
  bool reached = false;          // the control plane answered (an event came)
  std::vector<uint64_t> delays;  // --delay-report, nanoseconds
  bool lost_any = false;
  absl::Status write_error;
  std::string out;
  flatbuffers::FlatBufferBuilder builder;
  std::string bodies;
  auto started = std::chrono::steady_clock::now();
  auto last_progress = started;
  auto key = [](const v1::ExchangeId& id) {
    return (uint64_t{id.capture_point_id()} << 40) ^ id.stream_id();
  };
  int stdout_error = 0;   // errno of the first failed write to standard output
  uint64_t messages = 0;  // gRPC messages received (--delay-report: how events were batched)
  while (reader->Read(&batch)) {
    ++messages;
    reached = true;
    out.clear();
    for (const v1::TapEvent& ev : batch.events()) {
      switch (ev.event_case()) {
        case v1::TapEvent::kRequest: {
          const v1::RequestSeen& r = ev.request();
          LineHead h;
          h.capture_point = r.id().capture_point_id();
          h.stream_id = r.id().stream_id();
          h.direction = DirectionFromProto(r.direction());
          h.source = EndpointFromProto(r.source());
          h.destination = EndpointFromProto(r.destination());
          AppendRequestLine(h, r.method(), r.authority(), r.path(), wide, &out);
          heads[key(r.id())] = h;
          break;
        }
        case v1::TapEvent::kResponse: {
          const v1::ResponseSeen& r = ev.response();
          auto it = heads.find(key(r.id()));
          if (it != heads.end()) {
            AppendResponseLine(it->second, static_cast<uint16_t>(r.status()), r.latency_ns(), wide,
                               &out);
          }
          break;
        }
        case v1::TapEvent::kExchange: {
          const v1::ExchangeEnded& e = ev.exchange();
          absl::StatusOr<Exchange> x = ExchangeFromEvent(e);
          if (!x.ok()) {
            std::fprintf(stderr, "taprec: an exchange from %s failed its check: %s\n",
                         e.id().capture_point().c_str(), std::string(x.status().message()).c_str());
            break;
          }
          ++exchanges;
          bytes += e.exchange().size() + e.bodies().size();
          if (a.delay_report && delays.size() < (1u << 22)) {
            uint64_t last = x->sort_key_ns + x->response_end_ns;
            uint64_t now = static_cast<uint64_t>(absl::GetCurrentTimeNanos());
            if (x->response && now >= last) delays.push_back(now - last);
          }
          bool phased = heads.erase(key(e.id())) > 0;
          if (writer) {
            write_error = writer->Append(*std::move(x), e.id().capture_point());
            if (!write_error.ok()) ctx.TryCancel();  // a full disk, or -W files written
          } else {
            absl::StatusOr<ExchangeView> v = ViewOfExchange(*x, &builder, &bodies);
            if (!v.ok()) break;
            if (json) {
              AppendJson(*v, &out);
            } else if (phased) {
              AppendEndLine(*v, wide, &out);
            } else {
              AppendText(*v, wide, &out);
            }
          }
          break;
        }
        case v1::TapEvent::kStarted: {
          std::lock_guard<std::mutex> l(tap_id_mu);
          tap_id = ev.started().tap_id();
          break;
        }
        case v1::TapEvent::kStats:
          if (writer) writer->OnStats(ev.stats());
          break;
        case v1::TapEvent::kPodStatus: {
          const v1::PodStatus& p = ev.pod_status();
          if (p.state() == v1::PodStatus::STREAMING) {
            // As tcpdump says "listening on": from here on this pod's traffic is seen.
            std::fprintf(stderr, "taprec: tapping pod %s/%s\n", p.namespace_().c_str(),
                         p.pod().c_str());
          }
          if (p.state() == v1::PodStatus::LOST) {
            lost_any = true;
            if (writer) writer->OnPodLost();
            std::fprintf(stderr, "taprec: pod %s/%s lost: %s\n", p.namespace_().c_str(),
                         p.pod().c_str(), p.message().c_str());
          }
          break;
        }
        default:
          break;
      }
    }
    if (!out.empty() && stdout_error == 0) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      // Live: the lines as they happen. A reader that went away (`| head`) ends the tap as
      // SIGPIPE ends tcpdump, quietly; any other write error (a full disk) is an error.
      if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
        stdout_error = errno ? errno : EIO;
        ctx.TryCancel();
      }
    }
    if (writer) {
      // This message's exchanges to the writer thread now; -G rotation (OutOfRange once -W
      // files are written ends the tap, as tcpdump does).
      if (absl::Status s = writer->EndOfMessage(); !s.ok() && write_error.ok()) {
        write_error = s;
        ctx.TryCancel();
      }
    }
    if (tty && writer) {
      auto now = std::chrono::steady_clock::now();
      if (now - last_progress > std::chrono::milliseconds(500)) {
        last_progress = now;
        double secs = std::chrono::duration<double>(now - started).count();
        uint64_t drops = writer->drops();
        std::fprintf(stderr, "\rtaprec: %llu exchanges (%.0f/s), %.1f MiB, %llu dropped   ",
                     static_cast<unsigned long long>(exchanges), exchanges / std::max(secs, 1e-9),
                     bytes / 1048576.0, static_cast<unsigned long long>(drops));
      }
    }
  }
  grpc::Status st = reader->Finish();
  done = true;
  watcher.join();
  if (tty && writer) std::fprintf(stderr, "\r%70s\r", "");
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);

  int rc = kExitOk;
  bool rotation_done = absl::IsOutOfRange(write_error);
  if (stdout_error == EPIPE) {
    // The reader of our output went away: done, as tcpdump | head is.
  } else if (stdout_error != 0) {
    std::fprintf(stderr, "taprec: standard output: %s\n", std::strerror(stdout_error));
    rc = kExitError;
  } else if (rotation_done) {
    std::fprintf(stderr, "taprec: %s\n", std::string(write_error.message()).c_str());
  } else if (!write_error.ok()) {
    std::fprintf(stderr, "taprec: %s\n", std::string(write_error.message()).c_str());
    rc = kExitError;
  } else if (!st.ok() && !(g_interrupted && st.error_code() == grpc::StatusCode::CANCELLED)) {
    bool ended_by_server = ctx.GetServerTrailingMetadata().count("tapkit-ended-by") > 0;
    if (ended_by_server) {
      std::fprintf(stderr, "taprec: %s\n", st.error_message().c_str());
    } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE && !reached) {
      std::fprintf(stderr, "taprec: cannot reach the control plane at %s: %s\n", address.c_str(),
                   st.error_message().c_str());
    } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE) {
      std::fprintf(stderr, "taprec: lost the control plane at %s: %s\n", address.c_str(),
                   st.error_message().c_str());
    } else {
      std::fprintf(stderr, "taprec: %s\n", st.error_message().c_str());
    }
    rc = kExitError;
  }
  (void)lost_any;
  if (writer) {
    uint64_t drops = writer->drops(), held_back = writer->held_back();
    absl::Status s = writer->Close();
    if (!s.ok()) {
      std::fprintf(stderr, "taprec: %s\n", std::string(s.message()).c_str());
      rc = kExitError;
    }
    // As tcpdump's "N packets captured ... dropped by kernel".
    std::string line =
        absl::StrCat("taprec: ", exchanges, " exchanges recorded, ", drops, " dropped");
    if (held_back) absl::StrAppend(&line, ", ", held_back, " held back by --max-rps");
    if (drops) absl::StrAppend(&line, " (tapcat --info for why)");
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  if (a.delay_report && !delays.empty()) {
    std::sort(delays.begin(), delays.end());
    auto pct = [&](double q) {
      return delays[std::min(delays.size() - 1, static_cast<size_t>(q * delays.size()))] / 1e6;
    };
    std::fprintf(
        stderr,
        "taprec: delivery delay over %zu exchanges: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%llu "
        "messages from the control plane)\n",
        delays.size(), pct(0.5), pct(0.99), delays.back() / 1e6,
        static_cast<unsigned long long>(messages));
  }
  std::fflush(stdout);
  return rc;
}

}  // namespace tapkit
