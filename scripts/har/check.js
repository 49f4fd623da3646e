// Reads a HAR file (argv[2]), validates it against HAR 1.2's schema with har-validator (Debian's
// node-har-validator: run with NODE_PATH=/usr/share/nodejs), then has httpsnippet (this folder's
// pinned npm package) turn each entry's request into a curl command. Prints one JSON object per
// entry, {"status": recorded status, "curl": command}; exits 1 with the validator's errors when the
// HAR is not valid. Used by tools/export_test.py.
'use strict';
const fs = require('fs');
const path = require('path');
const validator = require('har-validator');
const { HTTPSnippet } = require(path.join(__dirname, 'node_modules', 'httpsnippet'));

const har = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
validator.har(har).then(() => {
  for (const entry of har.log.entries) {
    const snippet = new HTTPSnippet(entry.request);
    const curl = snippet.convert('shell', 'curl');
    process.stdout.write(JSON.stringify({ status: entry.response.status, curl }) + '\n');
  }
}, (err) => {
  process.stderr.write('har-validator: ' + JSON.stringify(err.errors || err.message) + '\n');
  process.exit(1);
});
