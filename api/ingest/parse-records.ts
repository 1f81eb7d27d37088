/**
 * Turns an ingest body into records. JSON: one object or an array of them. NDJSON: one record per
 * non-blank line, each parsed alone, so a bad line is one rejected record and not a failed request.
 */
export type BodyFormat = "json" | "ndjson";

export type ParsedRecord = { ok: true; value: unknown } | { ok: false; message: string };

export type ParseResult =
  | { ok: true; records: ParsedRecord[] }
  | { ok: false; status: 400 | 413 | 415; detail: string };

const FORMATS: Record<string, BodyFormat> = {
  "application/json": "json",
  "application/x-ndjson": "ndjson",
  "application/ndjson": "ndjson",
  "application/jsonl": "ndjson",
};

export const acceptedContentTypes = Object.keys(FORMATS);

export function bodyFormat(contentType: string | undefined): BodyFormat | undefined {
  const mediaType = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  return FORMATS[mediaType];
}

const decoder = new TextDecoder("utf-8", { fatal: true });

export function parseRecords(bytes: Uint8Array, format: BodyFormat, maxRecords: number): ParseResult {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return { ok: false, status: 400, detail: "The body is not valid UTF-8." };
  }
  if (format === "json") {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      return { ok: false, status: 400, detail: `Malformed JSON: ${error instanceof Error ? error.message : String(error)}` };
    }
    const items = Array.isArray(value) ? value : [value];
    if (typeof value !== "object" || value === null) return { ok: false, status: 400, detail: "The body must be an event object or an array of event objects." };
    if (items.length > maxRecords) return { ok: false, status: 413, detail: `At most ${maxRecords} records per request; this one has ${items.length}.` };
    return { ok: true, records: items.map((item) => ({ ok: true, value: item })) };
  }
  const records: ParsedRecord[] = [];
  for (const rawLine of text.split("\n")) {
    const line = rawLine.endsWith("\r") ? rawLine.slice(0, -1) : rawLine;
    if (line.trim() === "") continue;
    if (records.length === maxRecords) return { ok: false, status: 413, detail: `At most ${maxRecords} records per request.` };
    try {
      records.push({ ok: true, value: JSON.parse(line) });
    } catch (error) {
      records.push({ ok: false, message: `invalid JSON: ${error instanceof Error ? error.message : String(error)}` });
    }
  }
  return { ok: true, records };
}
