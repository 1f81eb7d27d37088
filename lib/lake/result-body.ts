import type { RowStream } from "./duckdb.ts";

/** A response body built where the query ran, so the gateway only passes bytes on. */
export interface ResultBody {
  body: Uint8Array<ArrayBuffer>;
  rows: number;
  truncated: boolean;
}

export interface BodyLimits {
  maxRows: number;
  maxBytes: number;
  /** Checked between chunks: a cancelled query stops reading. */
  cancelled: () => boolean;
}

export class CancelledError extends Error {
  constructor() {
    super("the query was cancelled");
  }
}

const utf8 = new TextEncoder();

/** Rows as JSON texts while they fit in `limits` after `fixedBytes` of framing. */
async function collect(stream: RowStream, limits: BodyLimits, fixedBytes: number, encode: (row: unknown[]) => string): Promise<{ parts: string[]; truncated: boolean }> {
  const parts: string[] = [];
  let bytes = fixedBytes;
  for (;;) {
    if (limits.cancelled()) throw new CancelledError();
    const rows = await stream.next();
    if (!rows) return { parts, truncated: false };
    for (const row of rows) {
      if (parts.length >= limits.maxRows) return { parts, truncated: true };
      const part = encode(row);
      const size = Buffer.byteLength(part, "utf8") + (parts.length > 0 ? 1 : 0);
      if (bytes + size > limits.maxBytes) return { parts, truncated: true };
      bytes += size;
      parts.push(part);
    }
  }
}

/** `{"columns":[…],"rows":[…],"truncated":…}`, cut at maxRows rows or maxBytes bytes. */
export async function tableBody(stream: RowStream, limits: BodyLimits): Promise<ResultBody> {
  const head = `{"columns":${JSON.stringify(stream.columns)},"rows":[`;
  const tail = (truncated: boolean) => `],"truncated":${truncated}}`;
  const { parts, truncated } = await collect(stream, limits, Buffer.byteLength(head + tail(false), "utf8"), (row) => JSON.stringify(row));
  return { body: utf8.encode(`${head}${parts.join(",")}${tail(truncated)}`), rows: parts.length, truncated };
}

/** `{"items":[…]}` from rows whose first column is one item's JSON text; `"truncated":true` is added when cut. */
export async function itemsBody(stream: RowStream, limits: BodyLimits): Promise<ResultBody> {
  const head = `{"items":[`;
  const tail = (truncated: boolean) => (truncated ? `],"truncated":true}` : "]}");
  const { parts, truncated } = await collect(stream, limits, Buffer.byteLength(head + tail(true), "utf8"), (row) => String(row[0]));
  return { body: utf8.encode(`${head}${parts.join(",")}${tail(truncated)}`), rows: parts.length, truncated };
}
