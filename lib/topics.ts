import type { TopicSpec } from "./bus/types.ts";

/** The topics of the data flow in ARCHITECTURE.md. */
export const topics = {
  raw: "events.raw",
  enriched: "events.enriched",
  late: "events.late",
  alerts: "alerts",
} as const;

export function topicSpecs(partitions: number): TopicSpec[] {
  return Object.values(topics).map((name) => ({ name, partitions }));
}
