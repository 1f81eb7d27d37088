import { type DimensionName, dimensions } from "../dims.ts";
import { columnsOf } from "./columns.ts";
import { eventPartitionColumns, eventTableColumns, deltaColumnsOf } from "./delta/schema.ts";
import type { TableDefinition } from "./delta/commit.ts";

/**
 * Where the lake's Delta tables live and what they hold. Every table is `<root>/<kind>/<name>/` with its
 * log in `_delta_log/`; data files are named by their partition and the time they were written, so
 * VACUUM can tell an orphan's age from its name.
 */
export const eventTableOf = (type: string) => `events/${type.replaceAll(".", "_")}`;
export const dimTableOf = (name: DimensionName) => `dims/${name}`;

export const eventTableDefinition = (type: string): TableDefinition => ({
  name: type,
  columns: eventTableColumns(type),
  partitionColumns: eventPartitionColumns.map((c) => c.name),
});

export const dimTableDefinition = (name: DimensionName): TableDefinition => ({
  name,
  columns: deltaColumnsOf(columnsOf(dimensions[name].schema.shape)),
  partitionColumns: [],
});

/** An event table's partition: the UTC date and hour of event time. */
export interface HourPartition {
  date: string;
  hour: number;
}

export const hourPartitionOf = (eventTimeMs: number): HourPartition => {
  const iso = new Date(eventTimeMs).toISOString();
  return { date: iso.slice(0, 10), hour: Number(iso.slice(11, 13)) };
};

export const HOUR_MS = 3_600_000;

/** Start of a partition's hour, epoch ms. */
export const hourStartOf = (partition: HourPartition) => Date.parse(`${partition.date}T00:00:00Z`) + partition.hour * HOUR_MS;

/** The partition an `add` names, or undefined when its values are not a date and an hour. */
export function hourPartitionFrom(values: Record<string, string | null>): HourPartition | undefined {
  const { date, hour } = values;
  if (!date || !/^\d{4}-\d{2}-\d{2}$/.test(date) || hour === null || hour === undefined || !/^\d{1,2}$/.test(hour)) return undefined;
  return { date, hour: Number(hour) };
}

export const partitionValuesOf = (partition: HourPartition): Record<string, string> => ({ date: partition.date, hour: String(partition.hour) });

/** A new data file's path relative to its table (what `add.path` holds); `kind` says who wrote it. */
export function newDataFilePath(partition: HourPartition | undefined, kind: "part" | "compacted" | "dim", now = Date.now()): string {
  const name = `${kind}-${String(now).padStart(13, "0")}-${crypto.randomUUID()}.zstd.parquet`;
  return partition ? `date=${partition.date}/hour=${partition.hour}/${name}` : name;
}

const WRITTEN_AT = /(?:^|\/)(?:part|compacted|dim)-(\d{13})-[0-9a-f-]{36}\.zstd\.parquet$/;

/** When this project wrote the data file at `path` (from its name), or undefined for other names. */
export function writtenAt(path: string): number | undefined {
  const match = WRITTEN_AT.exec(path);
  return match?.[1] ? Number(match[1]) : undefined;
}

/** The object key of a table's file: `add.path` is a relative URI, so it is decoded. */
export const fileKeyOf = (table: string, path: string) => `${table}/${decodeURIComponent(path)}`;
