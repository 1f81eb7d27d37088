import { z } from "zod";
import { envelopeColumns, type LakeColumn, payloadColumns } from "../columns.ts";

/** The Delta primitive types this project writes (PROTOCOL.md, "Schema Serialization Format"). */
const deltaTypeSchema = z.enum(["string", "long", "integer", "double", "boolean", "timestamp", "date"]);
export type DeltaType = z.infer<typeof deltaTypeSchema>;

export interface DeltaColumn {
  name: string;
  type: DeltaType;
  nullable: boolean;
}

const structFieldSchema = z.object({ name: z.string(), type: deltaTypeSchema, nullable: z.boolean(), metadata: z.record(z.string(), z.unknown()) });
const structTypeSchema = z.object({ type: z.literal("struct"), fields: z.array(structFieldSchema) });

/** The Spark StructType JSON that `metaData.schemaString` holds. */
export function schemaString(columns: readonly DeltaColumn[]): string {
  const names = new Set<string>();
  for (const c of columns) {
    // Delta column names are unique regardless of case.
    const folded = c.name.toLowerCase();
    if (names.has(folded)) throw new Error(`duplicate column ${c.name} in a Delta schema`);
    names.add(folded);
  }
  return JSON.stringify({ type: "struct", fields: columns.map((c) => ({ name: c.name, type: c.type, nullable: c.nullable, metadata: {} })) });
}

/** The columns of a schemaString this module wrote (flat, primitive types only). */
export function parseSchemaString(text: string): DeltaColumn[] {
  return structTypeSchema.parse(JSON.parse(text)).fields.map(({ name, type, nullable }) => ({ name, type, nullable }));
}

/** Event tables are partitioned by the UTC date and hour of event time. */
export const eventPartitionColumns: readonly DeltaColumn[] = [
  { name: "date", type: "date", nullable: false },
  { name: "hour", type: "integer", nullable: false },
];

// JSON payloads are stored as their text.
const DELTA_TYPE_OF: Record<LakeColumn["duckType"], DeltaType> = { VARCHAR: "string", JSON: "string", BIGINT: "long", DOUBLE: "double", BOOLEAN: "boolean", TIMESTAMPTZ: "timestamp" };

const ENVELOPE_REQUIRED = new Set(["event_id", "key", "event_time", "ingest_time"]);

/** A type's event table: the envelope, the (enriched) payload fields, then the partition columns. */
export function eventTableColumns(type: string): DeltaColumn[] {
  return [
    ...envelopeColumns.map((c) => ({ name: c.name, type: DELTA_TYPE_OF[c.duckType], nullable: !ENVELOPE_REQUIRED.has(c.name) })),
    ...payloadColumns(type).map((c) => ({ name: c.name, type: DELTA_TYPE_OF[c.duckType], nullable: true })),
    ...eventPartitionColumns,
  ];
}

/** Delta columns for DuckDB-typed columns (all nullable), e.g. a dim's. */
export const deltaColumnsOf = (columns: readonly LakeColumn[]): DeltaColumn[] => columns.map((c) => ({ name: c.name, type: DELTA_TYPE_OF[c.duckType], nullable: true }));
