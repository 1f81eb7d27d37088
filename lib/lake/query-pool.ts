import { mkdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { LakeError } from "../errors.ts";
import { FromProcess, type Job, type JobReply, type JobRequest, type ToProcess } from "./query-protocol.ts";

/**
 * The processes lake queries run in (query-process.ts), one per query slot, started ahead of need
 * while queries come and stopped after a while without any. A query leases one for its whole life.
 * When its deadline passes the lease is revoked and the job cancelled; a process that has not stopped
 * within `graceMs` is killed (the only sure stop for a native call stuck in DuckDB, and it returns the
 * memory), and a replacement is started at once.
 */
export interface PoolOptions {
  /** Processes kept (one per query slot). */
  size: number;
  /** Each process gets a DuckDB spill directory under this one, removed when it exits. */
  workDir: string;
  /** How long a cancelled job may take to stop before its process is killed. */
  graceMs: number;
  /** An idle process exits after this long (a gateway that stops querying gives its memory back). */
  idleMs: number;
  /** A process holding more memory than this after a job is replaced rather than reused. */
  maxRssBytes: number;
}

const SCRIPT = join(import.meta.dir, "query-process.ts");
/** Query processes run at a lower priority, so the gateway's event loop keeps a core when queries take them all. */
const NICE = Bun.which("nice");
const command = (dir: string) => [...(NICE ? [NICE, "-n", "10"] : []), process.execPath, SCRIPT, dir];

/** A query process ended (killed, crashed, out of memory) with a job in hand. */
export class ProcessEndedError extends Error {}
/** The lease was revoked (its deadline passed) before the job could start. */
export class LeaseRevokedError extends Error {}

let spawned = 0;
/** A process that has not loaded DuckDB by then is given up on. */
const START_TIMEOUT_MS = 15_000;

class QueryProcess {
  private readonly child: Subprocess<"ignore", "ignore", "inherit">;
  private pending: { id: number; resolve: (reply: JobReply) => void; reject: (error: Error) => void } | undefined;
  private readyWaiter: { resolve: () => void; reject: (error: Error) => void } | undefined;
  private dead = false;
  private inFlight: Promise<void> | undefined;
  readonly ready: Promise<void>;
  /** Resolves when the process has exited. */
  readonly exited: Promise<void>;
  rss = 0;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.ready = new Promise((resolve, reject) => {
      this.readyWaiter = { resolve, reject };
    });
    this.child = Bun.spawn({
      cmd: command(dir),
      cwd: dir,
      // Nothing of the gateway's environment (credentials, paths) reaches the process that runs client SQL.
      env: { TMPDIR: dir, HOME: dir },
      stdio: ["ignore", "ignore", "inherit"],
      serialization: "advanced",
      ipc: (message) => this.receive(message),
      onExit: () => this.ended(),
    });
    // A gateway with nothing else to do may exit; the process follows it (it watches its IPC channel).
    this.child.unref();
    this.exited = this.child.exited.then(() => undefined);
  }

  get alive() {
    return !this.dead;
  }

  get busy() {
    return this.pending !== undefined;
  }

  call(job: Job): Promise<JobReply> {
    if (this.dead) return Promise.reject(new ProcessEndedError("the query process has ended"));
    if (this.pending) return Promise.reject(new Error("a query process runs one job at a time"));
    const reply = new Promise<JobReply>((resolve, reject) => {
      this.pending = { id: job.id, resolve, reject };
    });
    this.inFlight = reply.then(
      () => undefined,
      () => undefined,
    );
    this.send(job);
    return reply;
  }

  /** Resolves when the job in hand (if any) has answered or the process has ended. */
  idle(): Promise<void> {
    return this.busy && this.inFlight ? this.inFlight : Promise.resolve();
  }

  cancel(): void {
    if (this.pending) this.send({ kind: "cancel", id: this.pending.id });
  }

  kill(): void {
    if (this.dead) return;
    this.dead = true;
    this.child.kill("SIGKILL");
  }

  private send(message: ToProcess) {
    try {
      this.child.send(message);
    } catch (error) {
      this.fail(new ProcessEndedError("the query process is gone", { cause: error }));
      this.kill();
    }
  }

  private receive(raw: unknown) {
    const parsed = FromProcess.safeParse(raw);
    if (!parsed.success) return;
    const message = parsed.data;
    if (message.kind === "ready") {
      this.readyWaiter?.resolve();
      return;
    }
    this.rss = message.rss;
    const pending = this.pending;
    if (pending?.id !== message.id) return;
    this.pending = undefined;
    pending.resolve(message);
  }

  private fail(error: Error) {
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(error);
    this.readyWaiter?.reject(error);
  }

  private ended() {
    this.dead = true;
    this.fail(new ProcessEndedError("the query process ended while running the query (it may have run out of memory)"));
    void rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** One query's hold on a process. */
export interface QueryLease {
  /** Resolves once the process is ready (an idle one at once; a new one after it has started). */
  start(): Promise<void>;
  /** Runs a job in the leased process (started on first use); rejects with LeaseRevokedError once revoked. */
  call(job: JobRequest): Promise<JobReply>;
  /** The query's deadline has passed: cancel what runs and start nothing more. */
  revoke(): void;
  /** Hands the process back once it is idle (its cancelled job stopped, or it was killed after the grace). */
  end(): Promise<void>;
}

export function createQueryPool(options: PoolOptions) {
  const idle: { worker: QueryProcess; timer: Timer }[] = [];
  /** Processes started ahead of need; a lease may claim one before it is ready. */
  const warming: { ready: Promise<QueryProcess>; claimed: boolean }[] = [];
  const all = new Set<QueryProcess>();
  let jobs = 0;
  let closed = false;

  const start = async () => {
    const worker = new QueryProcess(join(options.workDir, `q${++spawned}-${crypto.randomUUID().slice(0, 8)}`));
    all.add(worker);
    void worker.exited.then(() => all.delete(worker));
    let timer: Timer | undefined;
    try {
      await Promise.race([worker.ready, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS)))]);
    } catch (error) {
      worker.kill();
      throw new LakeError("a lake query process could not start", { cause: error });
    } finally {
      clearTimeout(timer);
    }
    return worker;
  };

  /** Keeps an idle process until it has been unused for idleMs. */
  const park = (worker: QueryProcess) => {
    const timer = setTimeout(() => {
      const at = idle.findIndex((e) => e.worker === worker);
      if (at >= 0) idle.splice(at, 1);
      worker.kill();
    }, options.idleMs);
    timer.unref();
    idle.push({ worker, timer });
  };

  /** While queries come, every slot has a process started (or starting), so none waits for a start. */
  const warmUp = () => {
    const alive = () => [...all].filter((w) => w.alive).length;
    while (!closed && alive() < options.size) {
      const entry = { ready: start(), claimed: false };
      warming.push(entry);
      entry.ready.then(
        (worker) => {
          warming.splice(warming.indexOf(entry), 1);
          if (!entry.claimed) park(worker);
        },
        () => warming.splice(warming.indexOf(entry), 1),
      );
    }
  };

  const take = async (): Promise<QueryProcess> => {
    for (let entry = idle.pop(); entry; entry = idle.pop()) {
      clearTimeout(entry.timer);
      if (entry.worker.alive) return entry.worker;
    }
    const starting = warming.find((e) => !e.claimed);
    if (starting) {
      starting.claimed = true;
      return starting.ready;
    }
    return start();
  };

  const giveBack = async (worker: QueryProcess) => {
    if (worker.busy) {
      worker.cancel();
      let timer: Timer | undefined;
      const stopped = await Promise.race([worker.idle().then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), options.graceMs)))]);
      clearTimeout(timer);
      if (!stopped) worker.kill();
    }
    if (worker.alive && worker.rss > options.maxRssBytes) worker.kill();
    if (worker.alive) park(worker);
    else warmUp();
  };

  return {
    lease(): QueryLease {
      warmUp();
      let revoked = false;
      let taking: Promise<QueryProcess> | undefined;
      return {
        async start() {
          taking ??= take();
          await taking;
        },
        async call(job) {
          if (revoked) throw new LeaseRevokedError("the query's deadline has passed");
          taking ??= take();
          const worker = await taking;
          if (revoked) throw new LeaseRevokedError("the query's deadline has passed");
          return worker.call({ ...job, id: ++jobs });
        },
        revoke() {
          revoked = true;
        },
        async end() {
          if (!taking) return;
          const worker = await taking.catch(() => undefined);
          if (worker) await giveBack(worker);
        },
      };
    },
    /** Kills every process (shutdown, tests). */
    close() {
      closed = true;
      for (const entry of idle.splice(0)) clearTimeout(entry.timer);
      for (const worker of all) worker.kill();
    },
  };
}

export type QueryPool = ReturnType<typeof createQueryPool>;
