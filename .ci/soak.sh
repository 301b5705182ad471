#!/usr/bin/env bash
# The 60-second soak (docs/faults.md): 64 clients of mixed operations against the dev stack,
# the enclave killed every 20 s; fails on any unexpected error or an audit chain that does not
# verify. Needs dist/ (npm test builds it). The full soak is `npm run soak` (10 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
node dist/bench/soak.js --duration 60 --clients 64 --restart-every 20 --interval 10 --out .ci/soak-60s.json --check
