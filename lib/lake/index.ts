import type { Config } from "../config.ts";
import { createDirStore } from "./dir-store.ts";
import { createS3Store } from "./s3-store.ts";
import type { ObjectStore } from "./types.ts";

export type { ObjectInfo, ObjectStore } from "./types.ts";

/** The lake storage LAKE_URL names: a local directory or an S3 bucket and prefix. */
export function openLake(config: Pick<Config, "lake" | "s3">): ObjectStore {
  if (config.lake.kind === "dir") return createDirStore(config.lake.path);
  return createS3Store({ bucket: config.lake.bucket, prefix: config.lake.prefix, ...config.s3 });
}
