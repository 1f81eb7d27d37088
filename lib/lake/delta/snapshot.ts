import { LakeError } from "../../errors.ts";
import type { Action, Add, Metadata, Protocol, Remove } from "./actions.ts";

/** A table's state at one version, after action reconciliation (PROTOCOL.md, "Action Reconciliation"). */
export interface Snapshot {
  version: number;
  protocol: Protocol;
  metadata: Metadata;
  /** Live data files by path. `dataChange` describes a commit, not a file, so it is always false here. */
  files: ReadonlyMap<string, Add>;
  /** The latest `txn.version` per appId. */
  txns: ReadonlyMap<string, number>;
  /** Removed files by path, kept so VACUUM can delete them once past retention. */
  tombstones: ReadonlyMap<string, Remove>;
}

/** The readers' protocol versions this module implements: no reader or writer table features. */
export const READER_VERSION = 1;
export const WRITER_VERSION = 2;

/** A snapshot being built by replaying actions; `seal` checks it is complete. */
export class SnapshotBuilder {
  protocol: Protocol | undefined;
  metadata: Metadata | undefined;
  readonly files: Map<string, Add>;
  readonly txns: Map<string, number>;
  readonly tombstones: Map<string, Remove>;

  constructor(from?: Snapshot) {
    this.protocol = from?.protocol;
    this.metadata = from?.metadata;
    this.files = new Map(from?.files);
    this.txns = new Map(from?.txns);
    this.tombstones = new Map(from?.tombstones);
  }

  apply(actions: readonly Action[]): void {
    for (const action of actions) {
      if ("add" in action) {
        this.files.set(action.add.path, { ...action.add, dataChange: false });
        this.tombstones.delete(action.add.path);
      } else if ("remove" in action) {
        this.files.delete(action.remove.path);
        this.tombstones.set(action.remove.path, { ...action.remove, dataChange: false });
      } else if ("txn" in action) this.txns.set(action.txn.appId, action.txn.version);
      else if ("metaData" in action) this.metadata = action.metaData;
      else if ("protocol" in action) this.protocol = action.protocol;
    }
  }

  seal(table: string, version: number): Snapshot {
    const { protocol, metadata } = this;
    if (!protocol || !metadata) throw new LakeError(`Delta table ${table} at version ${version} has no ${protocol ? "metaData" : "protocol"} action`);
    if (protocol.minReaderVersion > READER_VERSION) throw new LakeError(`Delta table ${table} needs reader version ${protocol.minReaderVersion}; this reader implements ${READER_VERSION}`);
    return { version, protocol, metadata, files: this.files, txns: this.txns, tombstones: this.tombstones };
  }
}
