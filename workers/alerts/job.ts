import { type Alert, alertIdFor } from "../../lib/alerts.ts";
import type { Bus } from "../../lib/bus/types.ts";
import type { Tx } from "../../lib/db/index.ts";
import type { Logger } from "../../lib/log.ts";
import type { Topics } from "../../lib/topics.ts";
import type { ChainBatch } from "../chain/types.ts";
import type { StreamJob } from "../runner.ts";
import { matchingRules } from "../../lib/alert-rules.ts";
import { alertsRaised } from "../../lib/metrics.ts";

const encoder = new TextEncoder();

/**
 * The chain's enriched events → Postgres `alerts` (idempotent by event_id) and the `alerts` topic. Inserted rows and
 * input positions commit together; the topic gets what was inserted, before the commit (at least once,
 * same alert_id on a repeat).
 */
export function createAlertsJob(deps: { bus: Bus; topics: Topics; logger: Logger }): StreamJob {
  let pending = new Map<string, Alert>();
  return {
    name: "alerts",
    input: deps.topics.raw,
    process(batch: ChainBatch) {
      for (const record of batch.records) {
        const envelope = record.event;
        // A repeat, or bytes that are no envelope (the runner dead-letters those).
        if (!envelope) continue;
        const rules = matchingRules(envelope.type, envelope.payload);
        if (rules.length === 0 || pending.has(envelope.event_id)) continue;
        pending.set(envelope.event_id, {
          alert_id: alertIdFor(envelope.event_id),
          event_id: envelope.event_id,
          type: envelope.type,
          key: envelope.key,
          event_time: new Date(envelope.event_time).toISOString(),
          rules,
          event: envelope.payload,
        });
      }
    },
    pending: () => pending.size,
    reset() {
      pending = new Map();
    },
    async checkpoint(tx: Tx) {
      const alerts = [...pending.values()];
      if (alerts.length === 0) return;
      const inserted = new Set<string>();
      // Alerts writers take turns until commit, so `seq` follows commit order: a stream that has seen
      // seq n has seen every committed alert before it.
      await tx`select pg_advisory_xact_lock(hashtext('devpipe:alerts'))`;
      for (let i = 0; i < alerts.length; i += 1_000) {
        const slice = alerts.slice(i, i + 1_000);
        const rows = await tx<{ alert_id: string }[]>`
          insert into alerts (alert_id, event_id, type, key, event_time, rules, event)
          select alert_id, event_id, type, key, event_time, string_to_array(rules, ','), event::jsonb
          from unnest(
            ${slice.map((a) => a.alert_id)}::uuid[], ${slice.map((a) => a.event_id)}::text[], ${slice.map((a) => a.type)}::text[],
            ${slice.map((a) => a.key)}::text[], ${slice.map((a) => a.event_time)}::timestamptz[],
            ${slice.map((a) => a.rules.join(","))}::text[], ${slice.map((a) => JSON.stringify(a.event))}::text[]
          ) as incoming(alert_id, event_id, type, key, event_time, rules, event) -- event as text: a jsonb[] parameter would be encoded twice
          on conflict (event_id) do nothing
          returning alert_id`;
        for (const row of rows) inserted.add(row.alert_id);
      }
      const fresh = alerts.filter((a) => inserted.has(a.alert_id));
      if (fresh.length > 0) await deps.bus.produce(deps.topics.alerts, fresh.map((a) => ({ key: a.key, value: encoder.encode(JSON.stringify(a)), timestamp: Date.parse(a.event_time) })));
      return () => {
        pending = new Map();
        alertsRaised.inc({}, fresh.length);
      };
    },
  };
}
