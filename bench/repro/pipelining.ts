// Bun.serve closes a keep-alive connection, without writing a byte, when a pipelined HTTP/1.1 request
// arrives while the answer to the one before it is still pending (an async handler). No gateway code is
// involved. Known upstream: oven-sh/bun#38128 (open). `bun bench/repro/pipelining.ts` prints, on Bun 1.4.5:
//   sync  handler: 2 responses, connection open    (pipelining behind a synchronous answer works)
//   async handler: 0 responses, connection closed  (the pending answer is dropped, /b never runs)
import { connect } from "node:net";

for (const kind of ["sync", "async"] as const) {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: kind === "sync" ? () => new Response("A") : async () => (await Bun.sleep(10), new Response("A")) });
  const received = await new Promise<string>((resolve) => {
    const socket = connect(server.port ?? 0, "127.0.0.1", () => socket.write("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GET /b HTTP/1.1\r\nHost: x\r\n\r\n"));
    let bytes = "";
    socket.on("data", (chunk) => (bytes += chunk));
    socket.on("close", () => resolve(`${bytes.split("HTTP/1.1 ").length - 1} responses, connection closed`));
    setTimeout(() => (resolve(`${bytes.split("HTTP/1.1 ").length - 1} responses, connection open`), socket.destroy()), 1_000);
  });
  console.log(`${kind.padEnd(5)} handler: ${received}`);
  await server.stop(true);
}
