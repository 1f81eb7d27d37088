import { RequestAbortedError } from "../../lib/errors.ts";

/**
 * Reads a request body up to `limit` bytes. Declared lengths over the limit are refused before
 * reading; undeclared (chunked) bodies are cut off as soon as they pass it. A client that goes away
 * mid-body makes this throw RequestAbortedError.
 */
export async function readBodyWithLimit(request: Request, limit: number): Promise<{ ok: true; bytes: Uint8Array } | { ok: false; reason: "too_large" }> {
  try {
    return await read(request, limit);
  } catch (error) {
    throw asAborted(request, error);
  }
}

function asAborted(request: Request, error: unknown): unknown {
  if (request.signal.aborted || (error instanceof DOMException && error.name === "AbortError")) return new RequestAbortedError({ cause: error });
  return error;
}

async function read(request: Request, limit: number): Promise<{ ok: true; bytes: Uint8Array } | { ok: false; reason: "too_large" }> {
  const declared = declaredLength(request);
  if (declared > limit) return { ok: false, reason: "too_large" };
  if (!request.body) return { ok: true, bytes: new Uint8Array(0) };
  // A declared length within the limit: the native whole-body read is several times cheaper than
  // pulling chunks through a stream reader, and the server never delivers more than it declares.
  if (Number.isFinite(declared)) return { ok: true, bytes: new Uint8Array(await request.arrayBuffer()) };
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      return { ok: false, reason: "too_large" };
    }
    chunks.push(value);
  }
  return { ok: true, bytes: concat(chunks, total) };
}

const declaredLength = (request: Request) => Number(request.headers.get("content-length") ?? Number.NaN);

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]) return chunks[0];
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

// ---- Content-Encoding ----------------------------------------------------------------------------

/** The content codings a request body may carry (RFC 9110 §8.4), each decoded natively by Bun as it streams. */
export const supportedContentCodings = ["gzip", "zstd"] as const;
export type ContentCoding = (typeof supportedContentCodings)[number];

const CODINGS = new Map<string, ContentCoding | null>([["gzip", "gzip"], ["x-gzip", "gzip"], ["zstd", "zstd"], ["identity", null]]);

export type ContentCodingResult = { ok: true; coding: ContentCoding | undefined } | { ok: false; detail: string };
const NO_CODING: ContentCodingResult = { ok: true, coding: undefined };

/**
 * The coding named by a `Content-Encoding` header (case-insensitive): undefined for none or `identity`.
 * Anything else (an empty value included), or a list of several codings, is refused with a detail
 * naming what was sent and what is supported.
 */
export function contentCoding(header: string | undefined): ContentCodingResult {
  if (header === undefined) return NO_CODING;
  const coding = CODINGS.get(header.trim().toLowerCase());
  if (coding === null) return NO_CODING;
  if (coding !== undefined) return { ok: true, coding };
  const several = header.includes(",");
  return {
    ok: false,
    detail: `${several ? "Send one content coding" : "Unsupported content coding"}: Content-Encoding ${JSON.stringify(header.length > 100 ? `${header.slice(0, 100)}…` : header)}. Supported: ${supportedContentCodings.join(", ")}, identity (or no Content-Encoding).`,
  };
}

export type DecodedBodyResult = { ok: true; bytes: Uint8Array } | { ok: false; reason: "too_large"; detail: string } | { ok: false; reason: "corrupt"; detail: string };

const noop = () => undefined;

type Chunk = { done: true; value?: undefined } | { done: false; value: Uint8Array<ArrayBuffer> };

/**
 * Reads a body compressed with `coding`, decompressing as it streams: `limit` bounds the decompressed
 * bytes (a small body that inflates past it is cut off as soon as the output passes it, never inflated
 * whole) and the compressed bytes alike. Data that does not decode is `corrupt`. A client that goes
 * away mid-body makes this throw RequestAbortedError.
 */
export async function readEncodedBodyWithLimit(request: Request, limit: number, coding: ContentCoding): Promise<DecodedBodyResult> {
  const tooLarge = (decompressed: boolean): DecodedBodyResult => ({
    ok: false,
    reason: "too_large",
    detail: decompressed ? `The body is larger than ${limit} bytes once decompressed (Content-Encoding: ${coding}).` : `The body is larger than ${limit} bytes.`,
  });
  const declared = declaredLength(request);
  if (declared > limit) return tooLarge(false);

  // The compressed input: with a declared length, one native whole-body read (the server never
  // delivers more than it declares); otherwise chunks as they arrive, counted.
  let source: () => Promise<Chunk>;
  let cancelSource: () => Promise<void>;
  if (Number.isFinite(declared)) {
    let taken = false;
    source = async () => {
      if (taken) return { done: true, value: undefined };
      taken = true;
      return { done: false, value: new Uint8Array(await request.arrayBuffer()) };
    };
    cancelSource = async () => undefined;
  } else {
    const reader = (request.body ?? new ReadableStream<Uint8Array>({ start: (controller) => controller.close() })).getReader();
    source = () => reader.read();
    cancelSource = () => reader.cancel().catch(noop);
  }

  const decoder = new DecompressionStream(coding as ConstructorParameters<typeof DecompressionStream>[0]);
  const writer = decoder.writable.getWriter();
  const output = decoder.readable.getReader();
  let sourceError: { error: unknown } | undefined;
  let inputTooLarge = false;

  // Feeds the decoder one chunk at a time; each write settles once the decoder took it, so a chunk
  // that inflates hugely waits for the output side (which stops at the limit) instead of inflating ahead.
  const pump = (async () => {
    let input = 0;
    for (;;) {
      let next: Chunk;
      try {
        next = await source();
      } catch (error) {
        sourceError = { error };
        await writer.abort(error).catch(noop);
        return;
      }
      if (next.done) {
        await writer.close().catch(noop);
        return;
      }
      input += next.value.byteLength;
      if (input > limit) {
        inputTooLarge = true;
        await cancelSource();
        await writer.abort(new RangeError("compressed body over the limit")).catch(noop);
        return;
      }
      try {
        await writer.write(next.value);
      } catch {
        // The decoder failed or the output side stopped reading: that side reports why.
        await cancelSource();
        return;
      }
    }
  })();

  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await output.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await output.cancel().catch(noop);
        await cancelSource();
        await pump;
        return tooLarge(true);
      }
      chunks.push(value);
    }
  } catch (error) {
    await cancelSource();
    await pump;
    if (sourceError) throw asAborted(request, sourceError.error);
    if (inputTooLarge) return tooLarge(false);
    if (request.signal.aborted) throw new RequestAbortedError({ cause: error });
    return { ok: false, reason: "corrupt", detail: `The body is not valid ${coding} data (Content-Encoding: ${coding}): ${error instanceof Error ? error.message : String(error)}.` };
  }
  await pump;
  if (sourceError) throw asAborted(request, sourceError.error);
  return { ok: true, bytes: concat(chunks, total) };
}
