import type { Services } from "./services.ts";
import { jobInputs } from "./topics.ts";

export interface StalledPartition {
  job: string;
  topic: string;
  partition: number;
  lag: number;
  stalledForMs: number;
}

/**
 * Jobs that have records waiting while their committed position (job_offsets, shared by every worker
 * process) has not moved for longer than `stallMs`, as observed by this process across calls. Only
 * jobs that have committed at least once are watched: a job nobody runs is absent, not stalled.
 */
export function createProgressWatch(stallMs: number) {
  const seen = new Map<string, { position: number; behindSince: number | null }>();
  return async function stalled(services: Pick<Services, "bus" | "db" | "topics">, now = Date.now()): Promise<StalledPartition[]> {
    const jobs = Object.keys(jobInputs);
    const rows = await services.db.sql<{ job: string; topic: string; partition: number; next_offset: number }[]>`
      select job, topic, partition, next_offset from job_offsets where job = any(${jobs})`;
    const ends = new Map<string, Map<number, number>>();
    const endsOf = async (topic: string) => {
      let byPartition = ends.get(topic);
      if (!byPartition) {
        byPartition = new Map((await services.bus.endOffsets(topic)).map((e) => [e.partition, e.offset]));
        ends.set(topic, byPartition);
      }
      return byPartition;
    };
    const found: StalledPartition[] = [];
    for (const [job, input] of Object.entries(jobInputs)) {
      const topic = services.topics[input];
      const committed = rows.filter((r) => r.job === job && r.topic === topic);
      if (committed.length === 0) continue;
      for (const [partition, end] of await endsOf(topic)) {
        const position = committed.find((r) => r.partition === partition)?.next_offset ?? 0;
        const id = `${job}/${topic}/${partition}`;
        const before = seen.get(id);
        const behind = end > position;
        const behindSince = !behind ? null : before && before.position === position && before.behindSince !== null ? before.behindSince : now;
        seen.set(id, { position, behindSince });
        if (behindSince !== null && now - behindSince > stallMs) found.push({ job, topic, partition, lag: end - position, stalledForMs: now - behindSince });
      }
    }
    return found;
  };
}
