import type { Sql } from "postgres";
import type { Logger } from "../log.ts";

/**
 * What a postmaster's background processes do for a real Postgres, done for PGlite, which runs one
 * single-user backend: no checkpointer, no autovacuum.
 *
 * - Checkpoints. Without a checkpointer, Postgres in single-user mode never checkpoints on its own
 *   (neither on `checkpoint_timeout` nor on `max_wal_size`): `pg_wal` grows without bound and a start
 *   after a crash replays all of it (measured: 3.5 GB after 20 minutes at 4,200 events/s, 61 s to start).
 *   Here a `CHECKPOINT` runs once the WAL written since the last one reaches a share of `max_wal_size`
 *   (a quarter: a crash then replays little) or `checkpoint_timeout` has passed with WAL written; each
 *   checkpoint lets Postgres recycle or remove the segments before it, so `pg_wal` stays within
 *   `max_wal_size`.
 * - VACUUM. Without autovacuum, dead rows (every update of a window, an input position, a watermark;
 *   every row retention deletes) are never reclaimed. A pass every `vacuumIntervalMs` applies
 *   autovacuum's own rules to `pg_stat_user_tables` (vacuum past 50 + 20% dead rows, analyze past 50 +
 *   10% changed rows; not its rule for inserted rows, see below) and runs a plain `VACUUM` (not FULL: it takes no
 *   long lock and rewrites nothing) table by table. The statistics do not survive a restart: dead rows
 *   left from before it are reclaimed once the table passes the threshold again; a database whose oldest unfrozen transaction id is older than
 *   `FREEZE_AGE` gets a database-wide VACUUM (catalogs included), as autovacuum's anti-wraparound run would.
 *
 * Every statement goes through the one connection PGlite has, one at a time, each short, so the jobs'
 * commits wait for at most one of them.
 */
export interface PgliteMaintenanceOptions {
  /** How often the WAL written since the last checkpoint is measured (0: no automatic checkpoints). */
  checkpointPollMs?: number;
  /** A checkpoint runs once the WAL written since the last one reaches this share of max_wal_size. */
  walShare?: number;
  /** How often the tables' dead and changed rows are looked at (0: no automatic VACUUM). */
  vacuumIntervalMs?: number;
}

export interface CheckpointState {
  /** Bytes of WAL written since the last checkpoint's redo point. */
  walSinceCheckpoint: number;
  /** Seconds since the last checkpoint. */
  secondsSinceCheckpoint: number;
  /** max_wal_size, bytes. */
  maxWalSize: number;
  /** checkpoint_timeout, seconds. */
  checkpointTimeout: number;
}

export interface VacuumPass {
  vacuumed: string[];
  analyzed: string[];
  databaseWide: boolean;
  ms: number;
}

export interface PgliteMaintenance {
  /** Where the WAL stands against the limits. */
  state(): Promise<CheckpointState>;
  /** Runs CHECKPOINT now (queued behind a maintenance statement running). */
  checkpoint(): Promise<void>;
  /** Runs a CHECKPOINT when one is due; true when it ran. */
  checkpointIfDue(): Promise<boolean>;
  /** One VACUUM pass (`all`: every table, whatever its statistics say). */
  vacuumPass(options?: { all?: boolean }): Promise<VacuumPass>;
  /** Stops the timers and waits for a statement running; later calls fail. */
  stop(): Promise<void>;
}

export const PGLITE_CHECKPOINT_POLL_MS = 5_000;
export const PGLITE_WAL_SHARE = 0.25;
export const PGLITE_VACUUM_INTERVAL_MS = 60_000;
/** Under this much WAL since the last checkpoint, checkpoint_timeout does not trigger one (nothing worth replaying). */
const MIN_WAL_FOR_TIMED_CHECKPOINT = 1024 * 1024;
/** age(datfrozenxid) past which a database-wide VACUUM runs (autovacuum_freeze_max_age is 200M; half of it). */
const FREEZE_AGE = 100_000_000;
/** A statement slower than this is logged at info, not debug. */
const SLOW_MS = 1_000;

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

export function startPgliteMaintenance(sql: Sql, logger: Logger, options: PgliteMaintenanceOptions = {}): PgliteMaintenance {
  const checkpointPollMs = options.checkpointPollMs ?? PGLITE_CHECKPOINT_POLL_MS;
  const walShare = options.walShare ?? PGLITE_WAL_SHARE;
  const vacuumIntervalMs = options.vacuumIntervalMs ?? PGLITE_VACUUM_INTERVAL_MS;
  let stopped = false;
  // One maintenance statement at a time: a checkpoint never waits behind a whole VACUUM pass, only one table.
  let lane: Promise<unknown> = Promise.resolve();
  const serial = <T>(task: () => Promise<T>): Promise<T> => {
    if (stopped) return Promise.reject(new Error("PGlite maintenance stopped"));
    const result = lane.then(task, task);
    lane = result.catch(() => undefined);
    return result;
  };
  let limits: { maxWalSize: number; checkpointTimeout: number } | undefined;

  const state = async (): Promise<CheckpointState> => {
    limits ??= await (async () => {
      const rows = await sql<{ name: string; bytes: number }[]>`
        select name, (case unit when 'MB' then setting::float8 * 1048576 when 'kB' then setting::float8 * 1024 else setting::float8 end) as bytes
        from pg_settings where name in ('max_wal_size', 'checkpoint_timeout')`;
      const of = (name: string) => rows.find((r) => r.name === name)?.bytes ?? Number.NaN;
      return { maxWalSize: of("max_wal_size"), checkpointTimeout: of("checkpoint_timeout") };
    })();
    const [row] = await sql<{ wal: number; age: number }[]>`
      select pg_wal_lsn_diff(pg_current_wal_lsn(), redo_lsn)::float8 as wal, extract(epoch from clock_timestamp() - checkpoint_time)::float8 as age
      from pg_control_checkpoint()`;
    return { walSinceCheckpoint: row?.wal ?? 0, secondsSinceCheckpoint: row?.age ?? 0, ...limits };
  };

  const checkpointNow = async (why: Record<string, unknown>) => {
    const started = performance.now();
    await sql`checkpoint`;
    const ms = Math.round(performance.now() - started);
    if (ms > SLOW_MS) logger.info("embedded database checkpoint (slow)", { ...why, ms });
    else logger.debug("embedded database checkpoint", { ...why, ms });
  };

  const checkpointIfDue = () =>
    serial(async () => {
      const s = await state();
      const byWal = s.walSinceCheckpoint >= walShare * s.maxWalSize;
      const byTime = s.secondsSinceCheckpoint >= s.checkpointTimeout && s.walSinceCheckpoint >= MIN_WAL_FOR_TIMED_CHECKPOINT;
      if (!byWal && !byTime) return false;
      await checkpointNow({ reason: byWal ? "wal" : "time", wal_bytes: s.walSinceCheckpoint, max_wal_size: s.maxWalSize });
      return true;
    });

  const vacuumPass = async ({ all = false } = {}): Promise<VacuumPass> => {
    const started = performance.now();
    const tables = await serial(() =>
      sql<{ schema: string; name: string; live: number; dead: number; modified: number }[]>`
        select schemaname::text as schema, relname::text as name, n_live_tup::float8 as live, n_dead_tup::float8 as dead,
               n_mod_since_analyze::float8 as modified
        from pg_stat_user_tables order by relname`,
    );
    const pass: VacuumPass = { vacuumed: [], analyzed: [], databaseWide: false, ms: 0 };
    for (const t of tables) {
      if (stopped) break;
      // Not autovacuum's insert rule: it keeps an append-only table's visibility map fresh for index-only
      // scans, and vacuuming a large table of alerts each minute for it stalled every job behind the one
      // connection (seconds at 1,000 alerts/s). Freezing is left to the database-wide pass below.
      const vacuum = all || t.dead > 50 + 0.2 * t.live;
      const analyze = all || t.modified > 50 + 0.1 * t.live;
      if (!vacuum && !analyze) continue;
      const name = `${ident(t.schema)}.${ident(t.name)}`;
      // The table may be gone (a test's schema dropped): skip it, do not fail the pass.
      await serial(() => sql.unsafe(vacuum ? `vacuum ${analyze ? "(analyze) " : ""}${name}` : `analyze ${name}`)).then(
        () => {
          if (vacuum) pass.vacuumed.push(t.name);
          if (analyze) pass.analyzed.push(t.name);
        },
        (error: unknown) => logger.debug("vacuum of a table failed", { table: name, error }),
      );
      // Yield: the jobs' commits queued meanwhile run before the next table.
      await Bun.sleep(0);
    }
    if (!stopped) {
      const [db] = await serial(() => sql<{ age: number }[]>`select age(datfrozenxid)::float8 as age from pg_database where datname = current_database()`);
      if ((db?.age ?? 0) > FREEZE_AGE) {
        await serial(() => sql`vacuum`);
        pass.databaseWide = true;
      }
    }
    pass.ms = Math.round(performance.now() - started);
    if (pass.vacuumed.length + pass.analyzed.length > 0 || pass.databaseWide) {
      if (pass.ms > SLOW_MS) logger.info("embedded database vacuumed (slow)", { ...pass });
      else logger.debug("embedded database vacuumed", { ...pass });
    }
    return pass;
  };

  const timers = new Set<Timer>();
  const running = new Set<Promise<unknown>>();
  /** Runs `task` every `ms` after the previous run ended (never two at once). */
  const every = (ms: number, task: () => Promise<unknown>) => {
    if (ms <= 0) return;
    const schedule = () => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (stopped) return;
        const run = task()
          .catch((error: unknown) => {
            if (!stopped) logger.warn("embedded database maintenance failed; retried on the next tick", { error });
          })
          .finally(() => {
            running.delete(run);
            if (!stopped) schedule();
          });
        running.add(run);
      }, ms);
      timer.unref();
      timers.add(timer);
    };
    schedule();
  };
  every(checkpointPollMs, checkpointIfDue);
  // Each pass goes by the statistics gathered since the start: vacuuming every table after a restart would
  // stall the jobs for as long as the largest table takes to scan.
  every(vacuumIntervalMs, () => vacuumPass());

  return {
    state: () => serial(state),
    checkpoint: () => serial(() => checkpointNow({ reason: "requested" })),
    checkpointIfDue,
    vacuumPass,
    async stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      await Promise.all(running);
      await lane;
    },
  };
}
