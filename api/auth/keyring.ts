import { timingSafeEqual } from "node:crypto";
import type { Scope } from "../../lib/config.ts";

export interface ApiKey {
  key: string;
  scopes: Scope[];
}

const digest = (value: string) => new Bun.CryptoHasher("sha256").update(value).digest();

/**
 * Looks a presented key up in constant time: both sides are hashed to 32 bytes (so lengths leak
 * nothing) and compared with timingSafeEqual against every key, without stopping at a match.
 */
export function createKeyring(keys: ApiKey[]) {
  const entries = keys.map((k) => ({ hash: digest(k.key), scopes: k.scopes }));
  return {
    scopesOf(presented: string): Scope[] | undefined {
      const hash = digest(presented);
      let found: Scope[] | undefined;
      for (const entry of entries) if (timingSafeEqual(entry.hash, hash)) found = entry.scopes;
      return found;
    },
  };
}

export type Keyring = ReturnType<typeof createKeyring>;
