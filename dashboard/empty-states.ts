import { alertRules } from "../lib/alert-rules.ts";

/** What fills each panel, said while it is empty. The alert rules come from the rules the alerts job applies. */
const rules = alertRules.map((r) => r.description);
const ruleList = `${rules.slice(0, -1).join(", ")}${rules.length > 1 ? ", or " : ""}${rules[rules.length - 1] ?? ""}`;
const ruleTypes = [...new Set(alertRules.map((r) => r.type))].join(", ");

export const EMPTY_TEXT: Record<string, string> = {
  ingest: "No events in this range yet: rates appear as devices POST to /v1/events (sampled from /metrics every 2 s while this page is open).",
  "alerts-chart": `No alerts in this range: an alert fires when a vehicle reports ${ruleList} (${ruleTypes} events).`,
  feed: `No alerts yet: alerts appear here live when a vehicle reports ${ruleList}.`,
  colours: "No alerts in the last 15 minutes: counts by car colour come from the vehicle_alerts_15m window (colours from the cars and car_colors dims).",
  pages: "Waiting for page views from user.activity events (action = page_view), counted per page per minute.",
  users: "Waiting for user.activity events: distinct users active in each 5-minute window.",
  sensors: "Waiting for sensor.reading events: per-sensor count and temperature of the last minutes.",
  lag: "No lag reported yet: each stream job shows here once it has committed its first input position.",
  runs: "No runs yet: the lake sink logs one per flush (every few seconds while events arrive); compaction, retention and dead letters add theirs.",
};

/** Puts each panel's text into its empty-state element. */
export function writeEmptyStates() {
  for (const [panel, text] of Object.entries(EMPTY_TEXT)) {
    const element = document.getElementById(`empty-${panel}`);
    if (element) element.textContent = text;
  }
}
