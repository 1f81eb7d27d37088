/** Open alert streams per API key, so one key cannot take every stream the gateway can serve. */
export function createStreamSlots() {
  const open = new Map<string, number>();
  return {
    /** A slot for `apiKey` if it holds fewer than `limit`; the returned release may be called any number of times. */
    acquire(apiKey: string, limit: number): (() => void) | undefined {
      const owner = apiKey;
      const count = open.get(owner) ?? 0;
      if (count >= limit) return undefined;
      open.set(owner, count + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = (open.get(owner) ?? 1) - 1;
        if (left > 0) open.set(owner, left);
        else open.delete(owner);
      };
    },
  };
}

export type StreamSlots = ReturnType<typeof createStreamSlots>;
