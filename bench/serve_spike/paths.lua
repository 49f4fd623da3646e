-- wrk script: GET /a, /b, /c in turn on each connection (keep-alive).
local paths = {"/a", "/b", "/c"}
local i = 0
request = function()
  i = i % 3 + 1
  return wrk.format("GET", paths[i])
end
