import type { TopicSpec } from "./bus/types.ts";

/** The topics of the data flow in ARCHITECTURE.md, under an optional prefix (TOPIC_PREFIX). */
export interface Topics {
  raw: string;
  enriched: string;
  late: string;
  alerts: string;
  /** Records a stream job's sinks reject deterministically, with the job, error and source position as headers. */
  dead: string;
}

export function topicNames(prefix = ""): Topics {
  return { raw: `${prefix}events.raw`, enriched: `${prefix}events.enriched`, late: `${prefix}events.late`, alerts: `${prefix}alerts`, dead: `${prefix}events.dead` };
}

export function topicSpecs(topics: Topics, partitions: number): TopicSpec[] {
  return Object.values(topics).map((name) => ({ name, partitions }));
}

/** The input of each stream job, for lag metrics; a test checks it against the jobs themselves. */
export const jobInputs: Readonly<Record<string, keyof Topics>> = { enrich: "raw", windows: "raw", alerts: "raw", lake: "raw" };
