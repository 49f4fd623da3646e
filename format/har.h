// har.h: exchanges as one HAR 1.2 document (tapcat -o har), the HTTP Archive format browsers,
// proxies and API tools read (http://www.softwareishard.com/blog/har-12-spec/).
//
// One document for the whole output: Begin writes the log's head (version 1.2, creator), each
// exchange appends one entry, Finish closes the document. Each entry carries every field HAR 1.2
// requires, and from the recorded exchange:
//   - startedDateTime: the request's first byte (the sort key), RFC 3339 with nanoseconds, UTC;
//   - request: method, url (render.h RequestUrl), httpVersion, headers in wire order, cookies from
//     Cookie (RFC 6265 section 4.2.1), queryString from the URL's query (decoded as the WHATWG URL
//     standard's application/x-www-form-urlencoded parser: '+' is a space, %XX a byte), postData
//     with mimeType and text (and params for application/x-www-form-urlencoded), headersSize (the
//     header section re-serialized as HTTP/1.1 writes it: start line, "Name: value" lines, blank
//     line; -1 for HTTP/2 and later) and bodySize (bytes on the wire after de-chunking);
//   - response: status, statusText, httpVersion, headers, cookies from each Set-Cookie with its
//     Path, Domain, Expires (or Max-Age from the exchange's start, RFC 6265 section 5.2.2),
//     HttpOnly and Secure (RFC 6265 section 5.2), content (size and text after undoing
//     Content-Encoding, compression = bytes saved, mimeType, and base64 with "encoding" when the
//     content is not UTF-8), redirectURL (Location), headersSize, bodySize;
//   - timings from the recorded times, in milliseconds: send (request first to last byte), wait
//     (request last byte to response first byte), receive (response first to last byte), -1 for
//     what was not seen; blocked, dns, connect and ssl are -1 (not recorded); time is their sum;
//   - serverIPAddress, connection (capture point and the client's address and port: the file keeps
//     no connection id, so the client's socket names the connection), and "_id" ("cp:stream", as
//     tapcat prints it);
//   - a comment saying why an exchange is incomplete. An exchange without a response is still an
//     entry, with status 0 and no content, as browsers write a failed request; one without a
//     request has method "" and the server's address as its URL.
// A body that is cut (body limit, gap) or cannot be decoded is said in a comment; undecodable
// content is given as stored, in base64.
//
// Thread-safety: an output from MakeHarOutput is used by one thread at a time; HarEntry is a
// free function over its arguments.
#ifndef TAPKIT_FORMAT_HAR_H_
#define TAPKIT_FORMAT_HAR_H_

#include <cstddef>
#include <memory>
#include <string>

#include "format/exchange_view.h"
#include "format/output.h"

namespace tapkit {

struct HarOptions {
  std::string creator_name = "tapcat";
  std::string creator_version;  // empty: tapkit's version (format/program.h)
  // At most this many bytes of decoded content per body (content_coding.h's default cap).
  size_t decode_cap = size_t{64} << 20;
};

// Appends one HAR entry as compact JSON text (no newline). Bodies are included when the Reader
// loaded them; otherwise content and postData say so in a comment.
void AppendHarEntry(const ExchangeView& x, const HarOptions& options, std::string* out);
// The same, returned.
std::string HarEntry(const ExchangeView& x, const HarOptions& options = {});

// The `-o har` output: one HAR document over all the exchanges.
std::unique_ptr<ExchangeOutput> MakeHarOutput(const HarOptions& options = {});

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_HAR_H_
