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

function toLakeError(error: unknown, what: string): LakeError {
  if (error instanceof LakeError) return error;
  const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
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

    async get(key) {
      try {
        const response = await client.send(new GetObjectCommand({ Bucket, Key: fullKey(key) }));
        return response.Body ? await response.Body.transformToByteArray() : new Uint8Array(0);
      } catch (error) {
        if (error instanceof NoSuchKey) return null;
        throw toLakeError(error, `get ${key}`);
      }
    },

    async list(prefix) {
      const found: ObjectInfo[] = [];
      try {
        let ContinuationToken: string | undefined;
        do {
          const page = await client.send(new ListObjectsV2Command({ Bucket, Prefix: options.prefix ? `${options.prefix}/${prefix}` : prefix, ContinuationToken }));
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
  };
}
