// serve_log.h: the log tapreplay --serve prints, one line per answered request (a ServeEvent,
// serve.h), for a person (text) or a script (-o json; the shape is in docs/json.md,
// "tapreplay --serve -o json").
//
// Text, columns separated by two spaces after the fixed-width first two:
//   HIT  200 GET /api/price?id=7  recorded 0:17 (2 of 3)  127.0.0.1:51234  0.4ms
//   HIT  200 HEAD /api/price?id=7  recorded 0:17 (2 of 3, the GET's head)  127.0.0.1:51234  0.3ms
//   MISS 404 GET /x  no recorded request matches; closest: GET /y (differs on path)  ...
//   PASS 200 GET /z  upstream  127.0.0.1:51236  12.0ms
// The first word is the event: HIT, MISS (also a strict sequence that was used up), PASS (a miss
// the upstream answered), ERR (a miss the upstream did not answer: 502; 503 when the mock stopped
// before it answered), BAD (a request refused: 400 not parsed or not framable, 408 a stalled head
// or body, 413 a body too large, 431 a head too large). A HEAD served from a recorded GET says
// ", the GET's head" after its place in the sequence. With a session header configured,
// `session=VALUE` follows the client. Bytes that came from the network (method, target, the
// explanation's request, the session) are made safe for a terminal (format/verbose.h TerminalSafe:
// control bytes, C1 controls and bidirectional overrides as \xHH), so a hostile request cannot
// drive the terminal.
//
// Thread-safety: pure functions.
#ifndef TAPKIT_REPLAY_SERVE_LOG_H_
#define TAPKIT_REPLAY_SERVE_LOG_H_

#include <string>
#include <string_view>

#include "replay/serve.h"

namespace tapkit::replay {

// "hit", "miss", "exhausted", "pass-through", "upstream-error", "bad-request": the JSON `event`.
std::string_view ServeEventName(ServeEvent::Kind kind);

// One text line, without the newline. `with_session`: a session header is configured. `input`:
// the file the served exchange came from, shown before its id ("recorded b.tap#0:1") when not
// empty (tapreplay gives it when it serves several files: ids are unique per capture only).
std::string ServeEventText(const ServeEvent& e, bool with_session, std::string_view input = {});

// One JSON object (keys sorted), without the newline: event, time (RFC 3339 UTC with
// nanoseconds), client {ip, port}, method, target (base64 with methodEncoding/targetEncoding when
// not UTF-8), status, latencyMs, recorded ({capturePoint, stream} or null), position,
// sequenceLength, explanation, session (null when no session header is configured); with
// `with_input`, also input: `input`, the file `recorded` came from (null when recorded is).
std::string ServeEventJson(const ServeEvent& e, bool with_session, std::string_view input = {},
                           bool with_input = false);

}  // namespace tapkit::replay

#endif  // TAPKIT_REPLAY_SERVE_LOG_H_
