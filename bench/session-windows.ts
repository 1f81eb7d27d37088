/**
 * The windows engine's user_sessions view when session_end events close sessions often, so each key holds
 * many final sessions (as the activity simulator makes it, thousands a key over the hour they are kept).
 * Applies an hour of events (120 users, one event a second each, every other one a session_end, the
 * watermark 2 s behind, a checkpoint every 10 s) and prints one JSON line per 10 simulated minutes: events
 * per second of CPU and the final sessions held. Flat: the cost per event does not grow with them.
 *   bun run bench/session-windows.ts
 */
import type { Envelope } from "../lib/events/index.ts";
import { type AnyView, views } from "../lib/windows/views.ts";
import { PartitionWindows } from "../workers/windows/engine.ts";

const sessions = views.get("user_sessions") as AnyView;
const USERS = 120;
const T = Date.parse("2026-11-21T10:00:00Z");
let seq = 0;
const activity = (user: string, time: number, action: string): Envelope => ({
  type: "user.activity",
  key: user,
  event_id: `e${seq++}`,
  event_time: time,
  ingest_time: time,
  payload: { user_id: user, session_id: "s", action, page: "/" },
});

const engine = new PartitionWindows(0, [sessions]);
let closed = 0;
let started = performance.now();
let events = 0;
for (let t = T; t < T + 60 * 60_000; t += 1_000) {
  for (let u = 0; u < USERS; u++) {
    engine.apply(activity(`u${u}`, t + u, (t / 1_000) % 2 === 0 ? "session_end" : "page_view"), t - 2_000);
    events++;
  }
  if ((t - T) % 10_000 === 0) {
    engine.finalize(t - 2_000);
    const { upserts, committed } = engine.changes();
    closed += upserts.filter((r) => r.final).length;
    committed();
  }
  if ((t + 1_000 - T) % 600_000 === 0) {
    const seconds = (performance.now() - started) / 1_000;
    console.log(JSON.stringify({ bench: "session-windows", simulated_min: (t + 1_000 - T) / 60_000, events, events_per_cpu_s: Math.round(events / seconds), sessions_closed: closed }));
    started = performance.now();
    events = 0;
  }
}
