#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/ (built by `npm ci` via `prepare`).

// The AWS SDK warns at load time that its releases after January 2027 will need
// Node >= 22. This project supports Node >= 20 and pins the SDK in the lockfile;
// the notice is not actionable at run time, so it is not printed on every start.
const emitWarning = process.emitWarning;
process.emitWarning = (warning, ...rest) => {
  const name = typeof warning === 'object' && warning ? warning.name : typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
  // The SDK passes either a typed warning or a plain string that starts with the type.
  if (name === 'NodeVersionSupportWarning' || (typeof warning === 'string' && warning.startsWith('NodeVersionSupportWarning'))) return;
  return emitWarning.call(process, warning, ...rest);
};

const { main } = await import('../dist/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`enclave-signer: internal error: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 70;
  },
);
