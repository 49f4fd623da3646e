// redact_options.h: the redaction flags, defined once for every tool that redacts (taprec,
// tapfilter): --redact or --no-redact, --redact-header, --redact-query-param,
// --redact-json-field, --redact-key-file. BuildRedactor (redact.h) checks what was given.
//
// Thread-safety: AddRedactionOptions only registers options; use it from one thread.
#ifndef TAPKIT_FORMAT_REDACT_OPTIONS_H_
#define TAPKIT_FORMAT_REDACT_OPTIONS_H_

#include <boost/program_options/options_description.hpp>

#include "format/redact.h"

namespace tapkit {

// Adds the redaction flags to `options`, storing into `*flags` when the parser's variables_map
// is notified. `flags->on_by_default` chooses the switch: true adds --no-redact (taprec records
// redacted unless told otherwise), false adds --redact (tapfilter copies as it is unless told).
// `flags` must outlive the parse.
void AddRedactionOptions(boost::program_options::options_description* options,
                         RedactionFlags* flags);

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_REDACT_OPTIONS_H_
