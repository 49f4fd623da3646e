// The three fixed response bodies every spike server (and run.sh's nginx) serves: GET /a, /b, /c.
// Spike code for issue 13's library choice, not part of tapkit's libraries.
#pragma once
#include <string_view>

namespace serve_spike {
inline std::string_view BodyFor(std::string_view path) {
  if (path == "/a") return "alpha response body\n";
  if (path == "/b") return "bravo response body, a little longer\n";
  if (path == "/c") return "{\"charlie\":[1,2,3],\"ok\":true}\n";
  return {};
}
}  // namespace serve_spike
