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
    if (request.signal.aborted || (error instanceof DOMException && error.name === "AbortError")) throw new RequestAbortedError({ cause: error });
    throw error;
  }
}

async function read(request: Request, limit: number): Promise<{ ok: true; bytes: Uint8Array } | { ok: false; reason: "too_large" }> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) return { ok: false, reason: "too_large" };
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
  if (chunks.length === 1 && chunks[0]) return { ok: true, bytes: chunks[0] };
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return { ok: true, bytes };
}
