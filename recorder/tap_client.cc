#include "recorder/tap_client.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controlplane/access.h"
#include "controlplane/api/tap.grpc.pb.h"
#include "controlplane/runtime.h"
#include "format/codec.h"
#include "format/exchange_view.h"
#include "format/redact.h"
#include "format/render.h"
#include "recorder/metadata.h"
#include "recorder/stop_signals.h"
#include "recorder/recorder.h"

namespace tapkit {
namespace {

namespace v1 = tapkit::tap::v1;


// `redactor`: BuildRedactor's answer for a.redaction (nullopt: redaction off).
v1::TapRequest RequestFor(const TapOptions& a, const std::optional<Redactor>& redactor) {
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
  if (redactor) {
    // The sidecars redact: every name and pointer goes with the request, and a key file's key;
    // without one the control plane makes a random key for the whole tap.
    v1::Redaction* r = req.mutable_redaction();
    r->set_enabled(true);
    for (const std::string& h : redactor->headers()) r->add_headers(h);
    for (const std::string& q : redactor->query_params()) r->add_query_params(q);
    for (const JsonPointer& j : redactor->json_fields()) r->add_json_fields(j.text);
    if (redactor->keyed()) r->set_key(redactor->key());
  }
  // Printing live shows req and rsp lines as they happen; a file keeps whole exchanges only.
  // A selection matched here decides at the end, so nothing is printed before it.
  req.set_phases(a.write_path.empty() && a.output != OutputFormat::kJson && a.selection.empty());
  return req;
}

CaptureMetadata MetadataFor(const TapOptions& a, const std::optional<Redactor>& redactor) {
  RecordingSetup s;
  s.command_line = a.command_line;
  s.target = a.target;
  s.ns = a.ns;
  s.filters = {{"selector", a.selector},
               {"to", a.to},
               {"to_namespace", a.to_namespace},
               {"from", a.from},
               {"from_namespace", a.from_namespace},
               {"method", a.method},
               {"authority", a.authority},
               {"path", a.path},
               {"max_requests", a.max_requests ? std::to_string(a.max_requests) : ""},
               {"max_rps", a.max_rps > 0 ? absl::StrCat(a.max_rps) : ""}};
  for (auto& f : a.selection.Describe()) s.filters.push_back(std::move(f));
  if (a.count) s.filters.emplace_back("count", std::to_string(a.count));
  s.body_limit = a.body_limit;
  s.redaction = redactor ? redactor->policy() : RedactionPolicy{};
  return BuildMetadata(s);
}

}  // namespace

absl::Status RunTap(const TapOptions& a) {

  // The default socket only after its directory proved to be this user's own (access.h): a
  // directory another user made first could hold their socket.
  std::string address = a.controlplane;
  if (address.empty()) {
    absl::StatusOr<std::string> found = ControlPlaneAddressForClient();
    if (!found.ok()) return found.status();
    address = *std::move(found);
  }
  const bool json = a.output == OutputFormat::kJson, wide = a.output == OutputFormat::kWide;
  if (std::string m = SuggestMethod(a.method); !m.empty()) {
    std::fprintf(a.err,
                 "taprec: warning: --method %s matches no request: methods are case-sensitive "
                 "(RFC 9110 section 9.1); did you mean --method %s?\n",
                 a.method.c_str(), m.c_str());
  }

  // +D in --since/--until counts from now, the tap's start.
  Selection selection = a.selection;
  if (absl::Status s =
          selection.Bind({{a.target, static_cast<uint64_t>(absl::GetCurrentTimeNanos()), true}});
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::optional<Redactor>> redactor = BuildRedactor(a.redaction);
  if (!redactor.ok()) return redactor.status();
  v1::TapRequest req = RequestFor(a, *redactor);
  std::string token;
  if (!a.token_file.empty()) {
    absl::StatusOr<std::string> t = ReadTokenFile(a.token_file);
    if (!t.ok()) {
      return absl::Status(t.status().code(), absl::StrCat("--token-file: ", t.status().message()));
    }
    token = *std::move(t);
  }

  // The file opens once the tap has started (TapStarted; or the first event that needs it, from
  // a control plane that sends none): a refused tap leaves nothing behind.
  const CaptureMetadata meta = MetadataFor(a, *redactor);
  RotationOptions rotation = a.rotation;
  if (!rotation.notice) {
    rotation.notice = [err = a.err](const std::string& m) {
      std::fprintf(err, "taprec: %s\n", m.c_str());
    };
  }
  std::unique_ptr<Recorder> writer;
  absl::Status write_error;

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);  // an exchange's bodies may exceed gRPC's 4 MiB
  auto channel = grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Tap::NewStub(channel);
  grpc::ClientContext ctx;
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);

  auto open_writer = [&]() {
    if (writer || a.write_path.empty() || !write_error.ok()) return;
    auto w = std::make_unique<Recorder>(a.write_path, meta, rotation);
    write_error = w->Open();
    if (write_error.ok()) {
      writer = std::move(w);
    } else {
      ctx.TryCancel();
    }
  };

  // A stop request: the tap is asked to stop (Tap.Stop): its sidecars send what is still open,
  // as "capture ended", and the stream ends; the loop below then finishes the file. If that
  // takes over kStopWaitMs, or at a second request, the call is cancelled instead.
  constexpr int kStopWaitMs = 5000;
  std::optional<StopSignals> signals;
  if (!a.stop) signals.emplace(/*restart=*/true, /*ignore_sigpipe=*/true);
  std::atomic<int>& stops = a.stop ? *a.stop : StopSignals::received();
  std::atomic<bool> done{false};
  std::mutex tap_id_mu;
  std::string tap_id;  // from the stream's TapStarted
  std::thread watcher([&] {
    std::optional<std::chrono::steady_clock::time_point> asked;
    while (!done) {
      if (stops > 1 || (asked && std::chrono::steady_clock::now() - *asked >
                                     std::chrono::milliseconds(kStopWaitMs))) {
        ctx.TryCancel();
        return;
      }
      if (stops > 0 && !asked) {
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

  const bool tty = isatty(fileno(a.err));
  std::unique_ptr<grpc::ClientReader<v1::TapEvents>> reader = stub->Watch(&ctx, req);
  v1::TapEvents batch;
  std::map<uint64_t, LineHead> heads;  // (capture point id << 40 | stream) -> req line's head
  uint64_t exchanges = 0, bytes = 0;
  bool reached = false;          // the control plane answered (an event came)
  std::vector<uint64_t> delays;  // --delay-report, nanoseconds
  std::string text;
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
    text.clear();
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
          AppendRequestLine(h, r.method(), r.authority(), r.path(), wide, &text);
          heads[key(r.id())] = h;
          break;
        }
        case v1::TapEvent::kResponse: {
          const v1::ResponseSeen& r = ev.response();
          auto it = heads.find(key(r.id()));
          if (it != heads.end()) {
            AppendResponseLine(it->second, static_cast<uint16_t>(r.status()), r.latency_ns(), wide,
                               &text);
          }
          break;
        }
        case v1::TapEvent::kExchange: {
          const v1::ExchangeEnded& e = ev.exchange();
          if (a.count && exchanges >= a.count) break;  // -c reached; the tap is stopping
          absl::StatusOr<Exchange> x = ExchangeFromEvent(e);
          if (!x.ok()) {
            std::fprintf(a.err, "taprec: an exchange from %s failed its check: %s\n",
                         e.id().capture_point().c_str(), std::string(x.status().message()).c_str());
            break;
          }
          if (!selection.Matches(*x)) {
            heads.erase(key(e.id()));
            break;
          }
          ++exchanges;
          if (a.count && exchanges >= a.count && stops == 0) ++stops;  // Tap.Stop, as Ctrl+C
          bytes += e.exchange().size() + e.bodies().size();
          if (a.delay_report && delays.size() < (1u << 22)) {
            uint64_t last = x->sort_key_ns + x->response_end_ns;
            uint64_t now = static_cast<uint64_t>(absl::GetCurrentTimeNanos());
            if (x->response && now >= last) delays.push_back(now - last);
          }
          bool phased = heads.erase(key(e.id())) > 0;
          if (!a.write_path.empty()) {
            open_writer();
            if (!writer) break;
            write_error = writer->Append(*std::move(x), e.id().capture_point());
            if (!write_error.ok()) ctx.TryCancel();  // a full disk, or -W files written
          } else {
            absl::StatusOr<ExchangeView> v = ViewOfExchange(*x, &builder, &bodies);
            if (!v.ok()) break;
            if (json) {
              AppendJson(*v, &text);
            } else if (phased) {
              AppendEndLine(*v, wide, &text);
            } else {
              AppendText(*v, wide, &text);
            }
          }
          break;
        }
        case v1::TapEvent::kStarted: {
          {
            std::lock_guard<std::mutex> l(tap_id_mu);
            tap_id = ev.started().tap_id();
          }
          open_writer();
          break;
        }
        case v1::TapEvent::kStats:
          open_writer();
          if (writer) writer->OnStats(ev.stats());
          break;
        case v1::TapEvent::kPodStatus: {
          const v1::PodStatus& p = ev.pod_status();
          if (p.state() == v1::PodStatus::STREAMING) {
            // As tcpdump says "listening on": from here on this pod's traffic is seen.
            std::fprintf(a.err, "taprec: tapping pod %s/%s\n", p.namespace_().c_str(),
                         p.pod().c_str());
          }
          if (p.state() == v1::PodStatus::LOST) {
            open_writer();
            if (writer) writer->OnPodLost();
            std::fprintf(a.err, "taprec: pod %s/%s lost: %s\n", p.namespace_().c_str(),
                         p.pod().c_str(), p.message().c_str());
          }
          break;
        }
        default:
          break;
      }
    }
    if (!text.empty() && stdout_error == 0) {
      std::fwrite(text.data(), 1, text.size(), a.out);
      // Live: the lines as they happen. A reader that went away (`| head`) ends the tap as
      // SIGPIPE ends tcpdump, quietly; any other write error (a full disk) is an error.
      if (std::fflush(a.out) != 0 || std::ferror(a.out)) {
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
        std::fprintf(a.err, "\rtaprec: %llu exchanges (%.0f/s), %.1f MiB, %llu dropped   ",
                     static_cast<unsigned long long>(exchanges), exchanges / std::max(secs, 1e-9),
                     bytes / 1048576.0, static_cast<unsigned long long>(writer->drops()));
      }
    }
  }
  grpc::Status st = reader->Finish();
  const bool asked_to_stop = stops > 0;
  done = true;
  watcher.join();
  signals.reset();
  if (tty && writer) std::fprintf(a.err, "\r%70s\r", "");

  // How the tap ended decides the status (see tap_client.h).
  const bool limit_reached =
      (a.max_requests && exchanges >= a.max_requests) || (a.count && exchanges >= a.count);
  absl::Status result;
  if (stdout_error == EPIPE) {
    // The reader of our output went away: done, as tcpdump | head is.
  } else if (stdout_error != 0) {
    result = absl::UnavailableError(absl::StrCat("standard output: ", std::strerror(stdout_error)));
  } else if (absl::IsOutOfRange(write_error)) {
    std::fprintf(a.err, "taprec: %s\n", std::string(write_error.message()).c_str());  // -W done
  } else if (!write_error.ok()) {
    result = write_error;
  } else if (st.ok()) {
    if (!asked_to_stop && !limit_reached) {
      // Nobody here asked it to end and no limit was reached: the control plane ended it (one
      // stopped with SIGTERM ends its streams), and the user should know the capture is cut.
      result = absl::UnavailableError(
          absl::StrCat("the control plane at ", address,
                       " ended the tap on its own (was it stopped?)"));
    }
  } else if (asked_to_stop && st.error_code() == grpc::StatusCode::CANCELLED) {
    // Cancelled after a stop request (a second one, or Tap.Stop unanswered): the user's end.
  } else if (ctx.GetServerTrailingMetadata().count("tapkit-ended-by") > 0) {
    result = absl::UnavailableError(
        absl::StrCat("the control plane at ", address, " ended the tap: ", st.error_message()));
  } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE && !reached) {
    result = absl::UnavailableError(absl::StrCat("cannot reach the control plane at ", address,
                                                 ": ", st.error_message()));
  } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE) {
    result = absl::UnavailableError(
        absl::StrCat("lost the control plane at ", address, ": ", st.error_message()));
  } else {
    result = absl::Status(static_cast<absl::StatusCode>(st.error_code()), st.error_message());
  }
  if (writer) {
    uint64_t drops = writer->drops(), held_back = writer->held_back();
    if (absl::Status s = writer->Close(); !s.ok() && result.ok()) result = s;
    std::fputs(SummaryLine(exchanges, drops, held_back, true).c_str(), a.err);
  }
  if (a.delay_report && !delays.empty()) {
    std::sort(delays.begin(), delays.end());
    auto pct = [&](double q) {
      return delays[std::min(delays.size() - 1, static_cast<size_t>(q * delays.size()))] / 1e6;
    };
    std::fprintf(
        a.err,
        "taprec: delivery delay over %zu exchanges: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%llu "
        "messages from the control plane)\n",
        delays.size(), pct(0.5), pct(0.99), delays.back() / 1e6,
        static_cast<unsigned long long>(messages));
  }
  std::fflush(a.out);
  return result;
}

}  // namespace tapkit
