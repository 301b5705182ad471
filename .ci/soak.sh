#!/usr/bin/env bash
# The 60-second soak (docs/faults.md): 64 clients of mixed operations spread over 2 instances
# (`enclave-signer dev --instances 2` on a throwaway PostgreSQL cluster the soak starts and
# removes; needs PG_BIN or /usr/lib/postgresql/*/bin, which .ci/run provides), one instance's
# enclave killed every 20 s, the policy in fleet scope (shared windows and approvals, docs/scale-out.md);
# fails on any unexpected error or an audit chain (one per instance)
# that does not verify; then 60 s on one instance in instance scope. ~150 s. Needs dist/ (npm test builds it). The full soak is `npm run soak`.
set -euo pipefail
cd "$(dirname "$0")/.."
node dist/bench/soak.js --instances 2 --state-scope fleet --duration 60 --clients 64 --restart-every 20 --interval 10 --out .ci/soak-60s.json --check
# The same on one instance in instance scope (SQLite), the default deployment: its own sealed record,
# stored by group commit (parent/sealed-state.ts), not compare-and-swapped like the fleet's.
node dist/bench/soak.js --instances 1 --state-scope instance --duration 60 --clients 64 --restart-every 20 --interval 10 --out .ci/soak-60s-instance.json --check
