// Parses and validates an AsyncAPI document with the AsyncAPI parser (the one the AsyncAPI
// tooling uses): the specification's JSON Schema, every $ref, the schemas of every payload
// and header, and the parser's own rules. Exits 1 on any error-severity diagnostic.
import { Parser } from '@asyncapi/parser';
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.mjs FILE');
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'), { source: file });
// Severity 0 is error, 1 warning, 2 information, 3 hint.
const errors = diagnostics.filter((d) => d.severity === 0);
for (const d of diagnostics) {
  const level = ['error', 'warning', 'info', 'hint'][d.severity] ?? d.severity;
  console.log(`${level}: ${d.code}: ${d.message} at ${(d.path || []).join('.')}`);
}
if (!document || errors.length > 0) {
  console.error(`${file}: ${errors.length} error(s)`);
  process.exit(1);
}
const channels = document.channels().length;
const operations = document.operations().length;
const messages = document.components().messages().length;
console.log(`${file}: valid AsyncAPI ${document.version()}: ${channels} channels, ${operations} operations, ${messages} messages, ${diagnostics.length - errors.length} non-error diagnostics`);
