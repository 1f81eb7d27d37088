import { LakeError } from "../errors.ts";

/** Object storage for the lake: keys are `/`-separated paths relative to the lake's root. */
export interface ObjectInfo {
  key: string;
  size: number;
}

export interface ObjectStore {
  readonly kind: "dir" | "s3";
  /** Human-readable root, e.g. file:///data/lake or s3://bucket/prefix. */
  readonly root: string;
  /** Writes the object whole: readers see the old object or the new one, never a part. */
  put(key: string, data: Uint8Array): Promise<void>;
  /**
   * Writes the object only if no object has that key, atomically against every other writer (the Delta
   * log's commit rule): true when this call created it, false when it already existed.
   */
  putIfAbsent(key: string, data: Uint8Array): Promise<boolean>;
  /** Uploads a local file, in parts when it is large. */
  putFile(key: string, localPath: string): Promise<void>;
  /** The object's bytes, or null when there is no such object. */
  get(key: string): Promise<Uint8Array | null>;
  /** Every object whose key starts with `prefix` (and sorts after `startAfter`, when given), sorted by key. */
  list(prefix: string, options?: { startAfter?: string }): Promise<ObjectInfo[]>;
  /** Deletes the objects; keys that do not exist are fine. */
  delete(keys: string[]): Promise<void>;
  /** Where the object lives on this machine when the store is a local directory; undefined for remote stores. */
  localPath(key: string): string | undefined;
  /** Resolves when the storage answers; rejects with LakeError otherwise. */
  ping(): Promise<void>;
  /**
   * Rejects with LakeError when the storage does not honour putIfAbsent (an S3 server that ignores
   * `If-None-Match: *`), which would let two writers commit the same Delta log version.
   */
  checkConditionalWrites(): Promise<void>;
}

const KEY = /^(?!\/)(?!.*\/\/)(?!.*(^|\/)\.\.?(\/|$))[^\u0000\\]{1,1024}$/;

/** Keys are relative, without `.`/`..` segments, empty segments, backslashes or NULs. */
export function assertValidKey(key: string): void {
  if (!KEY.test(key)) throw new LakeError(`invalid object key "${key}": keys are relative paths without "." or ".." segments`);
}
