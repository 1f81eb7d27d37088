import { z } from "zod";
import { enrichedFields } from "../events/enrichment.ts";
import { eventTypes } from "../events/index.ts";

/** A column of a type's lake files, with its DuckDB type. */
export interface LakeColumn {
  name: string;
  duckType: "VARCHAR" | "BIGINT" | "DOUBLE" | "BOOLEAN" | "JSON" | "TIMESTAMPTZ";
}

/** Columns every lake file starts with; the type, date and hour come from the hive path. */
export const envelopeColumns: readonly LakeColumn[] = [
  { name: "event_id", duckType: "VARCHAR" },
  { name: "key", duckType: "VARCHAR" },
  { name: "event_time", duckType: "TIMESTAMPTZ" },
  { name: "ingest_time", duckType: "TIMESTAMPTZ" },
];

function duckTypeOf(field: z.ZodType): LakeColumn["duckType"] {
  const schema = z.toJSONSchema(field, { unrepresentable: "any", io: "input" }) as { type?: string | string[]; enum?: unknown[]; anyOf?: { type?: string }[] };
  const types = [schema.type ?? [], ...(schema.anyOf ?? []).map((s) => s.type ?? [])].flat().filter((t) => t !== "null");
  if (schema.enum && types.length === 0) return "VARCHAR";
  const [only] = types;
  if (types.length !== 1) return "JSON";
  if (only === "integer") return "BIGINT";
  if (only === "number") return "DOUBLE";
  if (only === "string") return "VARCHAR";
  if (only === "boolean") return "BOOLEAN";
  return "JSON";
}

/** Columns for an object schema's fields, in order. */
export const columnsOf = (shape: z.ZodRawShape): LakeColumn[] => Object.entries(shape).map(([name, field]) => ({ name, duckType: duckTypeOf(field as z.ZodType) }));

const payloadColumnsByType = new Map<string, LakeColumn[]>(
  [...eventTypes.values()].map((t) => [
    t.type,
    columnsOf({ ...t.fields, ...(enrichedFields[t.type] ?? {}) }),
  ]),
);

/** The payload columns of a type's lake files: its own fields, then those enrichment adds. */
export function payloadColumns(type: string): LakeColumn[] {
  const columns = payloadColumnsByType.get(type);
  if (!columns) throw new Error(`no lake columns for unknown event type ${type}`);
  return columns;
}

/** The SQL view over a type's files: `vehicle.telemetry` → `vehicle_telemetry`. */
export const viewNameOf = (type: string) => type.replace(/[^a-z0-9]+/g, "_");
