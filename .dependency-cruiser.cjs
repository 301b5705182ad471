/**
 * Import boundaries (docs/boundaries.md). `npm run lint` runs
 * `depcruise --config .dependency-cruiser.cjs` over the sources, and
 * test/boundaries.test.ts runs the same rules through the API so `npm test`
 * enforces them too.
 *
 * The rules bind production code. Tests (*.test.ts, *test-helpers.ts, test/,
 * bench/) may import across folders — an enclave integration test starts a
 * parent-side KMS pipe and the dev emulator — but production code never
 * imports a test.
 */

/** Test code: exempt from the folder rules (but nothing else may import it). */
const TEST = '(\\.test\\.ts$|test-helpers\\.ts$|^test/|^bench/)';

/** Exceptions to the folder rules: none. Add one only with a comment that says why and until when. */
const KNOWN_VIOLATIONS = {};

/** A folder rule: production code in `fromDir` must not import `toPath`. */
function forbid(name, comment, fromDir, toPath) {
  return {
    name,
    comment,
    severity: 'error',
    from: { path: `^${fromDir}/`, pathNot: [TEST, ...(KNOWN_VIOLATIONS[name] ?? [])].join('|') },
    to: { path: toPath },
  };
}

module.exports = {
  forbidden: [
    forbid('enclave-not-to-host', 'enclave/ is measured into the image: it must not carry parent, dev or CLI code', 'enclave', '^(parent|dev|cli)/'),
    forbid('attestation-standalone', 'attestation/ is the verifier auditors run offline: it knows nothing of the enclave, the parent or dev', 'attestation', '^(enclave|parent|dev|cli)/'),
    forbid('common-is-shared', 'common/ is used by both sides: it may not depend on either side, dev or the CLI', 'common', '^(enclave|parent|dev|cli)/'),
    forbid('parent-not-to-enclave', 'the parent talks to the enclave over the bridge only (common/protocol); it never runs enclave or dev code', 'parent', '^(enclave|dev)/'),
    forbid('parent-not-to-cli', 'one composition root per program: parent/ exports start functions taking a config object; argv handling lives in cli/', 'parent', '^cli/'),
    forbid('client-is-a-library', 'client/ is the package exports custody code imports (enclave-signer/client, /viem, /ethers, /bitcoin): it talks to the signing socket only, never runs the appliance', 'client', '^(attestation|enclave|parent|dev|cli|build|native)/'),
    forbid('dev-not-to-cli', 'cli/ is the top layer (it starts the dev stack); dev/ does not reach back into it', 'dev', '^cli/'),
    {
      name: 'native-is-the-bottom',
      comment: 'native/ (the N-API addon and its thin TypeScript wrappers) imports nothing of ours',
      severity: 'error',
      from: { path: '^native/', pathNot: TEST },
      to: { path: '^(attestation|bench|bin|build|cli|common|dev|enclave|parent|test|examples)/' },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles: one direction per dependency',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-test-code-in-production',
      comment: 'production code never imports tests or test helpers (they stay out of dist and out of the image)',
      severity: 'error',
      from: { pathNot: TEST },
      to: { path: '(\\.test\\.ts$|test-helpers\\.ts$|^test/)' },
    },
    {
      name: 'no-importing-tests',
      comment: 'a *.test.ts file is never a dependency',
      severity: 'error',
      from: {},
      to: { path: '\\.test\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist|native/build|build/runtime)/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
