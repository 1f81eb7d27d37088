import { createConnection, createServer, type Socket } from "node:net";

/**
 * A TCP proxy in front of a real service, for outage tests: `cut()` drops every connection and
 * refuses new ones (the service looks down), `restore()` lets traffic through again on the same port.
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  let open = true;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = createConnection(target);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("proxy has no port");
  const port = address.port;
  return {
    url: `http://127.0.0.1:${port}`,
    /** Drops every connection; new ones are refused (nothing listens) until `restore()`. */
    cut() {
      open = false;
      for (const socket of sockets) socket.destroy();
      server.close();
    },
    async restore() {
      if (open) return;
      open = true;
      await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    },
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}
