// curl_export.h: each recorded request as one curl command line (tapcat -o curl), as browsers'
// "Copy as cURL" and mitmproxy's export write them, so that pasting a line into a POSIX shell
// sends that request again: the method, the URL (scheme, authority, path), every header field in
// recorded order, and the body byte for byte. Redaction markers (docs/architecture.md section 6)
// stay visible as the values they replaced.
//
// What curl would add or change on its own is undone or left to it where it gives the same bytes:
//   - Content-Length is left out when there is a body (curl sends the same value from the body);
//   - User-Agent, Accept, and with a body Content-Type and Expect, which curl adds when the request
//     has none, are cancelled with `-H 'Name:'` when the recorded request had none;
//   - an empty header value is written `-H 'Name;'` (curl's form for "send it empty");
//   - a request without an authority (HTTP/1.0 without Host) goes to the server's recorded
//     address, with curl's Host cancelled;
//   - HEAD is `--head`; dot segments in the path keep `--path-as-is`; [ ] { } turn globbing off.
// A body is a single-quoted word when it is UTF-8 text without control bytes, else it is piped
// in exactly with `printf '\ooo...' | curl --data-binary @- ...` (POSIX printf octal escapes).
// Every line is one physical line. Bodies are sent as stored (Content-Encoding kept, no
// --compressed); a body cut at the body limit, an exchange without a request and trailers, which
// curl cannot send, are said in a `#` comment line before the command.
//
// Thread-safety: free functions over their arguments; an output from MakeCurlOutput is used by
// one thread at a time.
#ifndef TAPKIT_FORMAT_CURL_EXPORT_H_
#define TAPKIT_FORMAT_CURL_EXPORT_H_

#include <memory>
#include <string>
#include <string_view>

#include "format/exchange_view.h"
#include "format/output.h"

namespace tapkit {

// `word` as one POSIX shell word in single quotes ('\'' for each quote). Any bytes but NUL.
std::string ShellQuote(std::string_view word);

// Appends the exchange's request as a curl command line and '\n', preceded by `#` comment lines
// for what the command cannot carry. An exchange without a request appends only a comment line.
// Needs the request body loaded (Reader opened with bodies) to carry it.
void AppendCurlCommand(const ExchangeView& x, std::string* out);

// The `-o curl` output: AppendCurlCommand for each exchange.
std::unique_ptr<ExchangeOutput> MakeCurlOutput();

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_CURL_EXPORT_H_
