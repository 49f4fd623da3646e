// recorder.h: a tap's event stream (controlplane/api/tap.proto, Tap.Watch) written to .tap files
// (docs/architecture.md section 1): each ExchangeEnded checked and written with the control
// plane's labels copied in, each capture point's latest stats kept for the trailer, pods lost
// counted, output rotated as tcpdump's -C/-G/-W (rotating_writer.h).
//
// Thread-safety: one thread (the stream's reader) calls everything; not thread-safe.
#ifndef TAPKIT_RECORDER_RECORDER_H_
#define TAPKIT_RECORDER_RECORDER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "controlplane/api/tap.pb.h"
#include "format/exchange.h"
#include "recorder/rotating_writer.h"

namespace tapkit {

// The exchange an ExchangeEnded carries: its FlatBuffer verified and decoded (format/codec.h
// DecodeExchange; InvalidArgument naming what failed), with the control plane's endpoint labels
// (namespace, pod, workload_kind, workload, service) copied in from the event.
absl::StatusOr<Exchange> ExchangeFromEvent(const tapkit::tap::v1::ExchangeEnded& event);
Endpoint EndpointFromProto(const tapkit::tap::v1::Endpoint& e);
Direction DirectionFromProto(tapkit::tap::v1::Direction d);

class Recorder {
 public:
  // Writes to `path` (rotated per `rotation`; "-" = standard output) with `metadata` in each
  // file's header.
  Recorder(std::string path, CaptureMetadata metadata, RotationOptions rotation);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Opens the first file. Errors: the file's.
  absl::Status Open();
  // An exchange from ExchangeFromEvent, from the capture point named `capture_point` ("ns/pod").
  // Errors: the writer's (sticky), OutOfRange once -G with -W has written its files.
  absl::Status Append(Exchange&& exchange, const std::string& capture_point);
  // A capture point's counters (the latest replace the earlier: they are monotonic).
  void OnStats(const tapkit::tap::v1::Stats& stats);
  // A pod whose sidecar was lost: the trailer counts it (pods_lost).
  void OnPodLost() { ++pods_lost_; }
  // After each message of the stream: what it brought goes to the writer thread at once
  // (AsyncWriter::Submit), so a kill loses at most the flush interval (about 1 s); -G rotation
  // is checked. Errors: as Append.
  absl::Status EndOfMessage();
  // Writes the trailer (every capture point's drops and counters, summed) and closes the file.
  absl::Status Close();

  // Every drop the trailer would hold now, summed, but for the exchanges --max-rps held back
  // (held_back()): those were asked for (for progress and summary lines).
  uint64_t drops() const;
  uint64_t held_back() const;

 private:
  TrailerInput Trailer() const;

  std::map<std::string, tapkit::tap::v1::Stats> stats_;  // latest per capture point
  std::map<uint32_t, CapturePointInfo> points_;
  uint64_t pods_lost_ = 0;
  std::unique_ptr<RotatingWriter> writer_;
};

}  // namespace tapkit

#endif  // TAPKIT_RECORDER_RECORDER_H_
