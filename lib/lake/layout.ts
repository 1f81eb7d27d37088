/**
 * Where things live in the lake. Event files are hive-partitioned by type and by the UTC date and hour
 * of event time; a file's name says which input partition and offset range it holds, so writing the
 * same range again produces the same key.
 */
export const HOUR_MS = 3_600_000;

export const hourOf = (eventTimeMs: number) => Math.floor(eventTimeMs / HOUR_MS) * HOUR_MS;

export function hourDirectory(type: string, hourStartMs: number): string {
  const iso = new Date(hourStartMs).toISOString();
  return `events/type=${type}/date=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`;
}

/** A sink flush: records [from, to] of one input partition. */
export const flushFileKey = (type: string, hourStartMs: number, topic: string, partition: number, from: number, to: number) =>
  `${hourDirectory(type, hourStartMs)}/${topic}.p${partition}.${from}-${to}.parquet`;

/** A compacted hour of one input partition, covering offsets [from, to]. */
export const compactedFileKey = (type: string, hourStartMs: number, partition: number, from: number, to: number) =>
  `${hourDirectory(type, hourStartMs)}/compacted.p${partition}.${from}-${to}.parquet`;

/** One immutable file per dimension version. */
export const dimFileKey = (name: string, version: number) => `dims/${name}/v${version}.parquet`;
