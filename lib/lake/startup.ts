import { dimensionNames } from "../dims.ts";
import { LakeError } from "../errors.ts";
import { eventTypes } from "../events/index.ts";
import type { ObjectStore } from "./types.ts";

/** Keys of the layout before Delta tables: `events/type=<type>/date=…/hour=…/*.parquet` and `dims/<name>/v<n>.parquet`. */
export async function legacyLakeObjects(store: ObjectStore): Promise<string[]> {
  const found: string[] = [];
  for (const type of eventTypes.keys()) found.push(...(await store.list(`events/type=${type}/`)).map((o) => o.key));
  for (const name of dimensionNames) found.push(...(await store.list(`dims/${name}/`)).map((o) => o.key).filter((key) => /^dims\/[^/]+\/v\d+\.parquet$/.test(key)));
  return found;
}

/**
 * What a process that writes or reads the lake checks once at start: the storage honours conditional
 * writes (else two writers could commit the same Delta version), and it holds no files of the old
 * layout, which no Delta reader would see.
 */
export async function assertLakeUsable(store: ObjectStore): Promise<void> {
  await store.checkConditionalWrites();
  const legacy = await legacyLakeObjects(store);
  if (legacy.length > 0) {
    throw new LakeError(
      `the lake at ${store.root} holds ${legacy.length} files of the layout before Delta tables (e.g. ${legacy[0]}); ` +
        "stop the workers and run `bun run lake:migrate` once to convert them into Delta tables",
    );
  }
}
