/**
 * Prometheus metrics of the signing socket (text exposition format 0.0.4).
 * Label values are bounded: `method` is one of the served method names,
 * "unknown" (anything else) or "invalid" (no usable request), so a client
 * cannot grow the series set by inventing method names.
 */
import type { GateSnapshot } from './gate.js';
import type { Outcome } from './rpc-errors.js';

export type MetricOutcome = Outcome | 'notification';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

export interface Metrics {
  observe(method: string, outcome: MetricOutcome, seconds: number): void;
  render(snapshot: GateSnapshot, extra: { keys: number | undefined }): string;
}

function labelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  return String(v);
}

export function createMetrics(knownMethods: Iterable<string>): Metrics {
  const known = new Set(knownMethods);
  const requests = new Map<string, number>(); // `${method}\0${outcome}` → count
  const latency = new Map<string, Histogram>();

  return {
    observe(method, outcome, seconds) {
      const m = known.has(method) || method === 'invalid' ? method : 'unknown';
      const k = `${m}\0${outcome}`;
      requests.set(k, (requests.get(k) ?? 0) + 1);
      let h = latency.get(m);
      if (!h) latency.set(m, (h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }));
      for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) h.counts[i]!++;
      h.sum += seconds;
      h.count++;
    },
    render(s, extra) {
      const out: string[] = [];
      const head = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

      head('enclave_signer_parent_requests_total', 'counter', 'JSON-RPC requests by method and outcome.');
      for (const [k, v] of [...requests].sort()) {
        const [m, o] = k.split('\0') as [string, string];
        out.push(`enclave_signer_parent_requests_total{method="${labelValue(m)}",outcome="${o}"} ${v}`);
      }

      head('enclave_signer_parent_request_duration_seconds', 'histogram', 'Time to answer one JSON-RPC request.');
      for (const [m, h] of [...latency].sort((a, b) => a[0].localeCompare(b[0]))) {
        const l = `method="${labelValue(m)}"`;
        BUCKETS.forEach((b, i) => {
          out.push(`enclave_signer_parent_request_duration_seconds_bucket{${l},le="${b}"} ${h.counts[i]}`);
        });
        out.push(`enclave_signer_parent_request_duration_seconds_bucket{${l},le="+Inf"} ${h.count}`);
        out.push(`enclave_signer_parent_request_duration_seconds_sum{${l}} ${num(h.sum)}`);
        out.push(`enclave_signer_parent_request_duration_seconds_count{${l}} ${h.count}`);
      }

      head('enclave_signer_parent_ready', 'gauge', '1 when requests are served (enclave attested and keyring unlocked).');
      out.push(`enclave_signer_parent_ready ${s.ready ? 1 : 0}`);

      head('enclave_signer_parent_gate_state', 'gauge', 'Attestation gate state (1 for the current one).');
      for (const st of ['connecting', 'attesting', 'ready', 'failed']) out.push(`enclave_signer_parent_gate_state{state="${st}"} ${s.gate.state === st ? 1 : 0}`);

      head('enclave_signer_parent_keyring_state', 'gauge', 'Keyring state (1 for the current one).');
      for (const st of ['locked', 'unlocking', 'unlocked', 'absent', 'failed']) out.push(`enclave_signer_parent_keyring_state{state="${st}"} ${s.keyring.state === st ? 1 : 0}`);

      head('enclave_signer_parent_enclave_reconnects_total', 'counter', 'Connections to the enclave after the first.');
      out.push(`enclave_signer_parent_enclave_reconnects_total ${s.reconnects}`);

      head('enclave_signer_parent_attestations_total', 'counter', 'Attestation checks of the enclave by result.');
      out.push(`enclave_signer_parent_attestations_total{result="ok"} ${s.counters.attestationsOk}`);
      out.push(`enclave_signer_parent_attestations_total{result="failed"} ${s.counters.attestationsFailed}`);

      head('enclave_signer_parent_attestation_age_seconds', 'gauge', 'Seconds since the connected enclave was last attested (NaN when not attested).');
      out.push(`enclave_signer_parent_attestation_age_seconds ${num(s.attestationAgeSeconds ?? NaN)}`);

      if (extra.keys !== undefined) {
        head('enclave_signer_parent_keys', 'gauge', 'Keys in the keystore.');
        out.push(`enclave_signer_parent_keys ${extra.keys}`);
      }
      return `${out.join('\n')}\n`;
    },
  };
}
