/** A Server-Sent Events client for tests: parses the stream into events and comments as they arrive. */
export interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

export function openSse(url: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const messages: SseMessage[] = [];
  let ended = false;
  let status = 0;
  const ready = fetch(url, { headers, signal: controller.signal }).then(async (response) => {
    status = response.status;
    if (!response.body) return;
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end = buffer.indexOf("\n\n");
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message: SseMessage = {};
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) message.comment = line.slice(1).trim();
            else {
              const colon = line.indexOf(":");
              const field = line.slice(0, colon);
              const value = line.slice(colon + 1).replace(/^ /, "");
              if (field === "id" || field === "event" || field === "data") message[field] = value;
            }
          }
          messages.push(message);
          end = buffer.indexOf("\n\n");
        }
      }
    } catch {
      // aborted by the test
    }
    ended = true;
  });
  return {
    messages,
    status: () => status,
    ended: () => ended,
    alerts: () => messages.filter((m) => m.event === "alert").map((m) => ({ id: m.id ?? "", alert: JSON.parse(m.data ?? "{}") as { event_id: string; key: string; rules: string[] } })),
    close() {
      controller.abort();
      return ready.catch(() => undefined);
    },
    done: () => ready,
  };
}
