import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { LakeError } from "../errors.ts";
import { assertValidKey, type ObjectInfo, type ObjectStore } from "./types.ts";

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing slash; may be empty. */
  prefix: string;
  endpoint: string | undefined;
  region: string;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  /** Files larger than this go up in parts of this size. S3 needs at least 5 MiB per part. */
  partSizeBytes?: number;
}

const MIN_PART_BYTES = 5 * 1024 * 1024;
/** AWS answers 409 ConditionalRequestConflict when a concurrent conditional write races ours: retry it. */
const CONFLICT_RETRIES = 4;

const statusOf = (error: unknown) => (error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined);
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((byte, i) => byte === b[i]);

function toLakeError(error: unknown, what: string): LakeError {
  if (error instanceof LakeError) return error;
  const status = statusOf(error);
  const retriable = status === undefined || status >= 500 || status === 429;
  return new LakeError(`${what}: ${error instanceof Error ? error.message : String(error)}`, { retriable, cause: error });
}

/** Objects in an S3 bucket (MinIO in tests): path-style addressing, SDK retries with jittered backoff. */
export function createS3Store(options: S3StoreOptions): ObjectStore {
  const partSize = Math.max(MIN_PART_BYTES, options.partSizeBytes ?? 8 * 1024 * 1024);
  const client = new S3Client({
    region: options.region,
    endpoint: options.endpoint,
    forcePathStyle: true,
    maxAttempts: 5,
    retryMode: "standard",
    credentials: options.accessKeyId && options.secretAccessKey ? { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } : undefined,
  });
  const Bucket = options.bucket;
  const fullKey = (key: string) => {
    assertValidKey(key);
    return options.prefix ? `${options.prefix}/${key}` : key;
  };
  const stripPrefix = (key: string) => (options.prefix ? key.slice(options.prefix.length + 1) : key);

  const putInParts = async (Key: string, file: Blob) => {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    if (!UploadId) throw new LakeError(`multipart upload of ${Key}: no upload id`);
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      for (let start = 0, PartNumber = 1; start < file.size; start += partSize, PartNumber++) {
        const Body = new Uint8Array(await file.slice(start, Math.min(file.size, start + partSize)).arrayBuffer());
        const { ETag } = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber, Body }));
        if (!ETag) throw new LakeError(`multipart upload of ${Key}: part ${PartNumber} has no ETag`);
        parts.push({ ETag, PartNumber });
      }
      await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (error) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => undefined);
      throw error;
    }
  };

  const get = async (key: string): Promise<Uint8Array | null> => {
    try {
      const response = await client.send(new GetObjectCommand({ Bucket, Key: fullKey(key) }));
      return response.Body ? await response.Body.transformToByteArray() : new Uint8Array(0);
    } catch (error) {
      if (error instanceof NoSuchKey) return null;
      throw toLakeError(error, `get ${key}`);
    }
  };

  const putIfAbsent = async (key: string, data: Uint8Array): Promise<boolean> => {
    const Key = fullKey(key);
    for (let attempt = 0; ; attempt++) {
      try {
        await client.send(new PutObjectCommand({ Bucket, Key, Body: data, IfNoneMatch: "*" }));
        return true;
      } catch (error) {
        const status = statusOf(error);
        if (status === 412) {
          // The SDK retries a PUT whose answer was lost; the retry then finds our own object. Only then compare bytes.
          const retried = error instanceof S3ServiceException && (error.$metadata.attempts ?? 1) > 1;
          if (!retried) return false;
          const stored = await get(key);
          return stored !== null && sameBytes(stored, data);
        }
        if (status === 409) {
          if (attempt >= CONFLICT_RETRIES) throw new LakeError(`put ${key} if absent: concurrent writes still conflict (409) after ${attempt + 1} attempts`, { retriable: true, cause: error });
          await Bun.sleep(50 * 2 ** attempt * (0.5 + Math.random()));
          continue;
        }
        throw toLakeError(error, `put ${key} if absent`);
      }
    }
  };

  return {
    kind: "s3",
    root: `s3://${Bucket}${options.prefix ? `/${options.prefix}` : ""}`,

    async put(key, data) {
      try {
        await client.send(new PutObjectCommand({ Bucket, Key: fullKey(key), Body: data }));
      } catch (error) {
        throw toLakeError(error, `put ${key}`);
      }
    },

    async putFile(key, localPath) {
      const file = Bun.file(localPath);
      try {
        if (file.size > partSize) await putInParts(fullKey(key), file);
        else await client.send(new PutObjectCommand({ Bucket, Key: fullKey(key), Body: new Uint8Array(await file.arrayBuffer()) }));
      } catch (error) {
        throw toLakeError(error, `put ${key} from ${localPath}`);
      }
    },

    putIfAbsent,

    get,

    async list(prefix, listing = {}) {
      const found: ObjectInfo[] = [];
      const StartAfter = listing.startAfter === undefined ? undefined : fullKey(listing.startAfter);
      try {
        let ContinuationToken: string | undefined;
        do {
          const page = await client.send(new ListObjectsV2Command({ Bucket, Prefix: options.prefix ? `${options.prefix}/${prefix}` : prefix, ContinuationToken, StartAfter }));
          for (const object of page.Contents ?? []) if (object.Key) found.push({ key: stripPrefix(object.Key), size: object.Size ?? 0 });
          ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (ContinuationToken);
      } catch (error) {
        throw toLakeError(error, `list ${prefix}`);
      }
      return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    },

    async delete(keys) {
      try {
        for (let i = 0; i < keys.length; i += 1000) {
          const Objects = keys.slice(i, i + 1000).map((key) => ({ Key: fullKey(key) }));
          const result = await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects, Quiet: true } }));
          const failed = result.Errors ?? [];
          if (failed.length > 0) throw new LakeError(`delete: ${failed.length} objects not deleted, first ${failed[0]?.Key}: ${failed[0]?.Message}`, { retriable: true });
        }
      } catch (error) {
        throw toLakeError(error, "delete");
      }
    },

    localPath: () => undefined,

    async ping() {
      try {
        await client.send(new HeadBucketCommand({ Bucket }));
      } catch (error) {
        throw toLakeError(error, `bucket ${Bucket} unreachable`);
      }
    },

    async checkConditionalWrites() {
      const probe = `_devpipe/conditional-write-probe/${crypto.randomUUID()}`;
      const server = options.endpoint ?? "AWS S3";
      try {
        if (!(await putIfAbsent(probe, new TextEncoder().encode("first")))) throw new LakeError(`conditional-write probe ${probe} on ${server} already existed`);
        if (await putIfAbsent(probe, new TextEncoder().encode("second"))) {
          throw new LakeError(
            `the S3 server at ${server} ignores If-None-Match: * on PUT (a second create of ${probe} in s3://${Bucket} succeeded); ` +
              "the Delta log needs conditional writes to commit safely (AWS S3, MinIO releases since mid-2024, Cloudflare R2, ...): upgrade the server or point LAKE_URL at one that has them",
          );
        }
      } finally {
        await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key: fullKey(probe) }], Quiet: true } })).catch(() => undefined);
      }
    },
  };
}
