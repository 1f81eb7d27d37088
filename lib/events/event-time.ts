import { parseInstant } from "../time.ts";

/**
 * `event_time` is ISO-8601 with a zone ("2026-11-21T10:15:30.250Z", "…+01:00") or epoch milliseconds.
 * Policy: a time more than `maxFutureMs` ahead of the server clock (default 1 h of clock skew) or more
 * than `maxAgeMs` behind it (default 365 days) is rejected — such values are nearly always a unit bug
 * (epoch seconds sent as milliseconds) or an unset clock, and accepting them would put rows in
 * partitions nobody queries. Late events inside that range are accepted; only aggregates apply a watermark.
 */
export interface EventTimePolicy {
  maxFutureMs: number;
  maxAgeMs: number;
}

export const defaultEventTimePolicy: EventTimePolicy = { maxFutureMs: 60 * 60 * 1000, maxAgeMs: 365 * 24 * 60 * 60 * 1000 };

export type EventTimeResult = { ok: true; ms: number } | { ok: false; message: string };

export function parseEventTime(value: unknown, now: number, policy: EventTimePolicy = defaultEventTimePolicy): EventTimeResult {
  if (value === undefined) return { ok: false, message: "required" };
  const parsed = parseInstant(value);
  if (!parsed.ok) return parsed;
  const { ms } = parsed;
  if (ms > now + policy.maxFutureMs) return { ok: false, message: `${new Date(ms).toISOString()} is more than ${policy.maxFutureMs / 60_000} min ahead of the server clock` };
  if (ms < now - policy.maxAgeMs) {
    const hint = ms < Date.UTC(2000, 0, 1) ? " (epoch seconds sent instead of milliseconds?)" : "";
    return { ok: false, message: `${new Date(ms).toISOString()} is more than ${Math.round(policy.maxAgeMs / 86_400_000)} days in the past${hint}` };
  }
  return { ok: true, ms };
}
