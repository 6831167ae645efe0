// Validate AsyncAPI documents with the official parser (@asyncapi/parser):
// prints each document's diagnostics and exits 1 if any has an error.
// Usage: node asyncapi_validate.mjs FILE...
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Parser, fromFile } from '@asyncapi/parser';

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await fromFile(parser, resolve(file)).parse();
  const errors = diagnostics.filter((d) => d.severity === 0);
  for (const d of diagnostics) {
    const where = d.path && d.path.length ? `#/${d.path.join('/')}` : '';
    console.log(`${file}: ${['error', 'warning', 'info', 'hint'][d.severity]} ${d.code} ${where}: ${d.message}`);
  }
  if (!document || errors.length) {
    failed = true;
    console.log(`${file}: INVALID (${errors.length} errors)`);
  } else {
    const channels = document.channels().all().map((c) => c.address());
    console.log(`${file}: valid AsyncAPI ${document.version()}; channels: ${channels.join(', ')}`);
  }
  readFileSync(file); // the file exists and is readable
}
process.exit(failed ? 1 : 0);
