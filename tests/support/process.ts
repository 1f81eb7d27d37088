import type { Subprocess } from "bun";

/** A loopback port nothing listens on right now. */
export function freePort(): number {
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response() });
  const port = server.port ?? 0;
  server.stop(true);
  return port;
}

/** Starts a project entry point as a real process, collecting its output for assertions and failures. */
export function startProcess(args: string[], env: Record<string, string>, options: { detached?: boolean } = {}) {
  const output: string[] = [];
  const child: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(["bun", "run", ...args], {
    cwd: new URL("../../", import.meta.url).pathname,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", LOG_LEVEL: "info", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    // Its own process group, so a test can signal the group as a supervisor does (`kill -- -pid`).
    detached: options.detached ?? false,
  });
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) output.push(decoder.decode(chunk));
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  return {
    child,
    output: () => output.join(""),
    /** Resolves with the exit code once the process and its output are done. */
    exited: async () => {
      const code = await child.exited;
      await drained;
      return code;
    },
  };
}
