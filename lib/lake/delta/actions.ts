import { z } from "zod";
import { LakeError } from "../../errors.ts";

/**
 * The Delta log's actions (PROTOCOL.md, "Actions"), as this project writes and reads them. Fields the
 * protocol makes optional are optional here; unknown fields are dropped on decode.
 */
const stringMap = z.record(z.string(), z.string());
/** Partition values are strings by the protocol; null (or "") is a null partition value. */
const partitionValues = z.record(z.string(), z.string().nullable());

export const protocolSchema = z.object({
  minReaderVersion: z.number().int().min(1),
  minWriterVersion: z.number().int().min(1),
  readerFeatures: z.array(z.string()).optional(),
  writerFeatures: z.array(z.string()).optional(),
});

export const metadataSchema = z.object({
  id: z.string(),
  name: z.string().optional(),
  description: z.string().optional(),
  format: z.object({ provider: z.literal("parquet"), options: stringMap.optional() }),
  schemaString: z.string(),
  partitionColumns: z.array(z.string()),
  configuration: stringMap,
  createdTime: z.number().int().optional(),
});

export const addSchema = z.object({
  path: z.string().min(1),
  partitionValues,
  size: z.number().int().nonnegative(),
  modificationTime: z.number().int(),
  dataChange: z.boolean(),
  /** A JSON string: see `fileStatsSchema`. */
  stats: z.string().optional(),
  tags: stringMap.optional(),
});

export const removeSchema = z.object({
  path: z.string().min(1),
  deletionTimestamp: z.number().int().optional(),
  dataChange: z.boolean(),
  extendedFileMetadata: z.boolean().optional(),
  partitionValues: partitionValues.optional(),
  size: z.number().int().nonnegative().optional(),
});

export const txnSchema = z.object({
  appId: z.string().min(1),
  version: z.number().int(),
  lastUpdated: z.number().int().optional(),
});

/** Provenance only: readers must not rely on it, so anything goes beyond the fields we set. */
export const commitInfoSchema = z.looseObject({
  timestamp: z.number().int().optional(),
  operation: z.string().optional(),
  operationParameters: z.record(z.string(), z.unknown()).optional(),
  readVersion: z.number().int().optional(),
  isBlindAppend: z.boolean().optional(),
});

/** `add.stats`, once parsed: per-column values keyed by column name. */
const fileStatsSchema = z.object({
  numRecords: z.number().int().nonnegative(),
  minValues: z.record(z.string(), z.unknown()).optional(),
  maxValues: z.record(z.string(), z.unknown()).optional(),
  nullCount: z.record(z.string(), z.number().int().nonnegative()).optional(),
});

export const actionSchema = z.union([
  z.object({ protocol: protocolSchema }).strict(),
  z.object({ metaData: metadataSchema }).strict(),
  z.object({ add: addSchema }).strict(),
  z.object({ remove: removeSchema }).strict(),
  z.object({ txn: txnSchema }).strict(),
  z.object({ commitInfo: commitInfoSchema }).strict(),
]);

export type Protocol = z.infer<typeof protocolSchema>;
export type Metadata = z.infer<typeof metadataSchema>;
export type Add = z.infer<typeof addSchema>;
export type Remove = z.infer<typeof removeSchema>;
export type Txn = z.infer<typeof txnSchema>;
export type CommitInfo = z.infer<typeof commitInfoSchema>;
export type FileStats = z.infer<typeof fileStatsSchema>;
export type Action = z.infer<typeof actionSchema>;

const KNOWN_ACTIONS = new Set(["protocol", "metaData", "add", "remove", "txn", "commitInfo"]);

/** The `remove` of a live file, carrying what readers of the tombstone may want (its partition and size). */
export const removeOf = (add: Add, dataChange: boolean, deletionTimestamp: number): Action => ({
  remove: { path: add.path, deletionTimestamp, dataChange, extendedFileMetadata: true, partitionValues: add.partitionValues, size: add.size },
});

export const encodeStats = (stats: FileStats): string => JSON.stringify(fileStatsSchema.parse(stats));

/** One commit file: one action per line (newline-delimited JSON). */
export function encodeCommit(actions: readonly Action[]): Uint8Array {
  return new TextEncoder().encode(actions.map((action) => `${JSON.stringify(actionSchema.parse(action))}\n`).join(""));
}

/**
 * Null fields are how Parquet checkpoints (and some writers' JSON) say "absent"; partition values
 * keep theirs, since a null partition value is a value.
 */
function withoutNulls(value: unknown, key = ""): unknown {
  if (value === null || typeof value !== "object" || Array.isArray(value) || key === "partitionValues") return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v, k)]));
}

/** One action object as found in a commit line or a checkpoint row; null for actions this reader does not know. */
export function decodeAction(raw: unknown, where: string): Action | null {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new LakeError(`${where}: an action must be a JSON object`);
  const known = Object.keys(raw).filter((name) => KNOWN_ACTIONS.has(name));
  // The protocol lets readers skip actions they do not understand (cdc, domainMetadata, checkpointMetadata, ...).
  if (known.length === 0) return null;
  const parsed = actionSchema.safeParse(withoutNulls(Object.fromEntries(known.map((name) => [name, (raw as Record<string, unknown>)[name]]))));
  if (!parsed.success) throw new LakeError(`${where}: invalid ${known.join("+")} action: ${parsed.error.message}`);
  return parsed.data;
}

/** A commit file's actions, in order; blank lines and unknown actions are skipped. */
export function decodeCommit(bytes: Uint8Array, where: string): Action[] {
  const actions: Action[] = [];
  const lines = new TextDecoder().decode(bytes).split("\n");
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (error) {
      throw new LakeError(`${where} line ${i + 1}: not JSON`, { cause: error });
    }
    const action = decodeAction(raw, `${where} line ${i + 1}`);
    if (action) actions.push(action);
  });
  return actions;
}
