import type { Alert } from "./api-types.ts";
import { takeEvents } from "./sse.ts";

/**
 * Follows GET /v1/alerts/stream (with fetch, so the key goes in a header: EventSource cannot send one),
 * resuming from the last id after a drop. Returns a function that stops it.
 */
export function followAlerts(key: string, onAlert: (alert: Alert) => void, onState: (state: "live" | "reconnecting", error?: string) => void): () => void {
  const abort = new AbortController();
  let lastEventId = "";
  void (async () => {
    while (!abort.signal.aborted) {
      try {
        const headers: Record<string, string> = { authorization: `Bearer ${key}` };
        if (lastEventId) headers["last-event-id"] = lastEventId;
        const response = await fetch("/v1/alerts/stream", { headers, signal: abort.signal });
        if (!response.ok || !response.body) throw new Error(`alert stream: ${response.status}`);
        onState("live");
        const decoder = new TextDecoder();
        let buffer = "";
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          const { events, rest } = takeEvents(buffer + decoder.decode(chunk, { stream: true }));
          buffer = rest;
          for (const event of events) {
            if (event.id) lastEventId = event.id;
            if (event.event === "alert" && event.data) onAlert(JSON.parse(event.data) as Alert);
          }
        }
        onState("reconnecting");
      } catch (error) {
        if (abort.signal.aborted) return;
        onState("reconnecting", error instanceof Error ? error.message : String(error));
      }
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  })();
  return () => abort.abort();
}
