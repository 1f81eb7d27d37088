import type { FailedCheckpoint } from "./checkpoint-failures.ts";
import { byId, clock } from "./dom.ts";
import type { Health } from "./metrics-view.ts";

/** The "Pipeline health" card: dead letters, late events, checkpoint failures and the last failed checkpoint. */
export function renderHealth(health: Health | undefined, lastFailure: FailedCheckpoint | undefined) {
  const set = (id: string, text: string, title = "") => {
    const element = byId(id);
    element.textContent = text;
    element.title = title;
  };
  if (!health) return;
  set("dead", health.deadLettered.toLocaleString(), "Records a job's sinks refused deterministically, moved to the events.dead topic (each batch is a dead_letter run in the runs log)");
  byId("dead").classList.toggle("bad", health.deadLettered > 0);
  set("late", health.lateEvents.toLocaleString(), "Events behind the watermark: sent to events.late and counted, never applied to aggregates (they still reach the lake)");
  const failures = [...health.checkpointFailures].filter(([, n]) => n > 0);
  const failureTotal = failures.reduce((sum, [, n]) => sum + n, 0);
  set("ckpt-failures", failureTotal === 0 ? "0" : `${failureTotal.toLocaleString()} (${failures.map(([job, n]) => `${job} ${n}`).join(", ")})`);
  byId("ckpt-failures").classList.toggle("bad", failureTotal > 0);
  const oldest = [...health.checkpointAge].sort(([, a], [, b]) => b - a)[0];
  set("ckpt-age", oldest ? `${oldest[0]}, ${formatAge(oldest[1])} ago` : "–", "Time since the job with the oldest last successful checkpoint committed (jobs in the gateway's process)");
  if (lastFailure) {
    set("ckpt-last-when", `${clock(lastFailure.at)} · ${lastFailure.job}`, new Date(lastFailure.at).toLocaleString());
    set("ckpt-last-error", lastFailure.error, lastFailure.error);
  } else {
    set("ckpt-last-when", "none");
    set("ckpt-last-error", "");
  }
  byId("ckpt-last").classList.toggle("bad", lastFailure !== undefined);
}

const formatAge = (seconds: number) => (seconds < 60 ? `${seconds.toFixed(seconds < 10 ? 1 : 0)} s` : seconds < 3_600 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3_600).toFixed(1)} h`);
