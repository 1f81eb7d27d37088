import { open, rename } from "node:fs/promises";

/** Replaces `path` by way of a temporary file, fsync'd then renamed: a crash leaves the old content or the new, never half. */
export async function writeAtomically(path: string, data: Uint8Array | string): Promise<void> {
  const temporary = `${path}.tmp`;
  const file = await open(temporary, "w");
  try {
    await file.writeFile(data);
    await file.datasync();
  } finally {
    await file.close();
  }
  await rename(temporary, path);
}
