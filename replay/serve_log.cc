#include "replay/serve_log.h"

#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "format/render.h"
#include "format/verbose.h"

namespace tapkit::replay {
namespace {

// Debian's Abseil has its own string_view.
absl::string_view A(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string_view Word(ServeEvent::Kind k) {
  switch (k) {
    case ServeEvent::Kind::kHit:
      return "HIT ";
    case ServeEvent::Kind::kMiss:
    case ServeEvent::Kind::kExhausted:
      return "MISS";
    case ServeEvent::Kind::kPassThrough:
      return "PASS";
    case ServeEvent::Kind::kUpstreamError:
    case ServeEvent::Kind::kBadRecorded:
      return "ERR ";
    case ServeEvent::Kind::kBadRequest:
      return "BAD ";
  }
  return "?   ";
}

// Whether the event names a recorded exchange: a hit's, or a miss's closest one (0/0: none).
bool NamesRecorded(const ServeEvent& e) {
  switch (e.kind) {
    case ServeEvent::Kind::kHit:
    case ServeEvent::Kind::kBadRecorded:
      return true;
    case ServeEvent::Kind::kMiss:
    case ServeEvent::Kind::kExhausted:
      return e.recorded.capture_point != 0 || e.recorded.stream_id != 0;
    default:
      return false;
  }
}

std::string Safe(std::string_view s) { return s.empty() ? "-" : TerminalSafe(s); }

}  // namespace

std::string_view ServeEventName(ServeEvent::Kind kind) {
  switch (kind) {
    case ServeEvent::Kind::kHit:
      return "hit";
    case ServeEvent::Kind::kMiss:
      return "miss";
    case ServeEvent::Kind::kExhausted:
      return "exhausted";
    case ServeEvent::Kind::kPassThrough:
      return "pass-through";
    case ServeEvent::Kind::kUpstreamError:
      return "upstream-error";
    case ServeEvent::Kind::kBadRequest:
      return "bad-request";
    case ServeEvent::Kind::kBadRecorded:
      return "bad-recorded";
  }
  return "unknown";
}

std::string ServeEventText(const ServeEvent& e, bool with_session, std::string_view input) {
  std::string detail;
  switch (e.kind) {
    case ServeEvent::Kind::kHit:
      detail = absl::StrCat("recorded ", input.empty() ? "" : TerminalSafe(input),
                            input.empty() ? "" : "#", e.recorded.capture_point, ":",
                            e.recorded.stream_id, " (", e.position, " of ", e.sequence_length,
                            e.head_of_get ? ", the GET's head)" : ")");
      break;
    case ServeEvent::Kind::kPassThrough:
      detail = "upstream";
      break;
    default:
      detail = Safe(e.explanation);
      break;
  }
  std::string line = absl::StrCat(A(Word(e.kind)), " ", e.status, " ", Safe(e.method), " ",
                                  Safe(e.target), "  ", detail, "  ", e.client.ToString());
  if (with_session) absl::StrAppend(&line, "  session=", Safe(e.session));
  absl::StrAppend(&line, "  ", absl::StrFormat("%.1fms", static_cast<double>(e.latency_ns) / 1e6));
  return line;
}

std::string ServeEventJson(const ServeEvent& e, bool with_session, std::string_view input,
                           bool with_input) {
  nlohmann::json j;
  j["event"] = std::string(ServeEventName(e.kind));
  j["time"] = Rfc3339(e.time_ns);
  j["client"] = {{"ip", e.client.ip.ToString()}, {"port", e.client.port}};
  PutJsonText(j, "method", e.method);
  PutJsonText(j, "target", e.target);
  j["status"] = e.status;
  j["latencyMs"] = static_cast<double>(e.latency_ns) / 1e6;
  if (NamesRecorded(e)) {
    j["recorded"] = {{"capturePoint", e.recorded.capture_point}, {"stream", e.recorded.stream_id}};
  } else {
    j["recorded"] = nullptr;
  }
  if (with_input) {
    if (NamesRecorded(e)) {
      PutJsonText(j, "input", input);
    } else {
      j["input"] = nullptr;
    }
  }
  j["position"] = e.position;
  j["sequenceLength"] = e.sequence_length;
  PutJsonText(j, "explanation", e.explanation);
  if (with_session) {
    PutJsonText(j, "session", e.session);
  } else {
    j["session"] = nullptr;
  }
  // Invalid UTF-8 cannot reach here (PutJsonText base64-encodes it), so dump cannot throw.
  return j.dump();
}

}  // namespace tapkit::replay
