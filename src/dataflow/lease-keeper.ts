/**
 * The leases of one dataflow in the databases its sinks write (issue 14): acquired one database
 * after the other in the order of their labels (so two instances never hold one each and wait for
 * each other), renewed in the background every third of the lease time, given up on a clean stop.
 * A dataflow writes a database only with its epoch there (the fencing token its commits check).
 */
import { errorText } from '../core/message-text';
import { LeaseLostError } from '../sinks/lease-sql';
import type { LeaseAnswer, LeaseToken, SinkDatabase } from '../sinks/types';
import type { ShareTicket } from './fair-share';
import { sleep } from './retry';
import type { DataflowLease } from './types';

/** How often a standby looks at most (it looks sooner when the holder's lease is about to end). */
const MAX_POLL_MS = 1000;

export interface LeaseEvents {
  /** Not (yet) the holder: who is (null: unknown, `problem` says why, or `waiting` what it waits for). */
  standby(holder: string | null, problem?: string, waiting?: string): void;
  /** A lease was lost (taken over, or not renewed in time): the dataflow must stop writing. */
  lost(e: LeaseLostError): void;
  log(level: 'info' | 'warn', message: string): void;
}

export class LeaseKeeper {
  /** One database per label (two db-configs of one database share its one lease row). */
  private readonly databases: readonly SinkDatabase[];
  private readonly tokens = new Map<string, LeaseToken>();
  /** Per label: when the last successful renewal (or the acquisition) started, ms. */
  private readonly renewedAt = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private renewing = false;
  /** This instance waited for another holder (then a takeover is logged). */
  private waited = false;
  /** The last acquisition problem logged (logged again only when it changes). */
  private lastProblem: string | null = null;

  /** The fair share this dataflow's first lease counts in (fair-share.ts); null: taken whenever free. */
  private share: ShareTicket | null = null;
  /** The first lease is held and counted in the share. */
  private counted = false;

  constructor(
    databases: Iterable<SinkDatabase>,
    private readonly lease: DataflowLease,
    private readonly events: LeaseEvents,
  ) {
    const byLabel = new Map<string, SinkDatabase>();
    for (const db of databases) if (!byLabel.has(db.label)) byLabel.set(db.label, db);
    this.databases = [...byLabel.values()].sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  }

  /** The database whose lease is taken first: the one the dataflows are spread by. */
  get home(): SinkDatabase | undefined {
    return this.databases[0];
  }

  /** Takes the first lease only within this instance's fair share. */
  shareIn(ticket: ShareTicket): void {
    this.share = ticket;
  }

  /** The fencing token for a database, while held. */
  token(db: SinkDatabase): LeaseToken | undefined {
    return this.tokens.get(db.label);
  }

  get holding(): boolean {
    return this.tokens.size > 0;
  }

  /** Waits until the lease is held in every database (true), or `signal` aborts (false). */
  async acquire(signal: AbortSignal): Promise<boolean> {
    const pollMs = Math.min(MAX_POLL_MS, this.lease.leaseMs / 3);
    const request = { name: this.lease.name, holder: this.lease.instance, leaseMs: this.lease.leaseMs };
    // The share is known once the instance has counted the others (its first heartbeat).
    if (this.share !== null) await this.share.counted(signal);
    for (const db of this.databases) {
      while (!this.tokens.has(db.label)) {
        if (signal.aborted) return false;
        let wait = pollMs;
        const started = Date.now();
        // Over this instance's fair share: only look who holds it (another instance's share).
        const share = db === this.home ? this.share : null;
        const allowed = share === null || share.reserve();
        try {
          let answer: LeaseAnswer;
          try {
            answer = await db.transaction((tx) => tx.acquireLease(allowed ? request : { ...request, peek: true }));
          } catch (e) {
            if (share !== null && allowed) share.settle(false);
            throw e;
          }
          if (share !== null && allowed) {
            share.settle(answer.held);
            this.counted = answer.held;
          }
          this.lastProblem = null;
          if (!allowed && !(answer.held === false && answer.holder !== null && answer.remainingMs > 0)) {
            this.events.standby(null, undefined, (share as ShareTicket).describe());
            await sleep(wait, signal);
            continue;
          }
          if (answer.held) {
            this.tokens.set(db.label, answer.token);
            this.renewedAt.set(db.label, started);
            this.startRenewing();
            // Logged for a takeover only: a single instance's start says nothing about leases.
            if (this.waited)
              this.events.log(
                'info',
                `took over the lease of dataflow ${request.name} in ${db.label} as ${request.holder} (epoch ${answer.token.epoch})`,
              );
            break;
          }
          this.waited = true;
          this.events.standby(answer.holder);
          // Look again just after the holder's lease would end, or at the next poll.
          wait = Math.max(25, Math.min(pollMs, answer.remainingMs + 25));
        } catch (e) {
          const problem = `${db.label}: ${errorText(e)}`;
          if (problem !== this.lastProblem)
            this.events.log('warn', `could not look at the lease of dataflow ${request.name}: ${problem}`);
          this.lastProblem = problem;
          this.events.standby(null, errorText(e));
        }
        await sleep(wait, signal);
      }
    }
    return true;
  }

  private startRenewing(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.renew(), Math.max(10, Math.floor(this.lease.leaseMs / 3)));
    this.timer.unref();
  }

  private stopRenewing(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** A commit checked and extended the lease in `db` (started at `startedMs`): a renewal is not needed so soon. */
  confirmed(db: SinkDatabase, startedMs: number): void {
    if (!this.tokens.has(db.label)) return;
    if (startedMs > (this.renewedAt.get(db.label) ?? 0)) this.renewedAt.set(db.label, startedMs);
  }

  /** Extends every held lease; a lease taken over, or not renewed for a whole lease time, is lost. */
  private async renew(): Promise<void> {
    if (this.renewing) return;
    this.renewing = true;
    try {
      for (const db of this.databases) {
        const token = this.tokens.get(db.label);
        if (token === undefined) continue;
        const started = Date.now();
        // NB: commits extend the lease too (their first statement is the fence): while they come
        // at least every sixth of the lease time, no renewal transaction is needed, and the lease
        // still has at least half of its time left when the next renewal looks (every third).
        // test/sinks/lease.test.ts: a fence extends the expiry like a renewal.
        if (started - (this.renewedAt.get(db.label) ?? 0) < this.lease.leaseMs / 6) continue;
        try {
          await db.transaction((tx) => tx.fence(token));
          this.renewedAt.set(db.label, started);
        } catch (e) {
          if (!this.tokens.has(db.label)) continue; // given up meanwhile
          if (e instanceof LeaseLostError) return this.lose(e);
          const since = started - (this.renewedAt.get(db.label) ?? started);
          if (since + this.lease.leaseMs / 3 >= this.lease.leaseMs)
            return this.lose(
              new LeaseLostError(
                db.label,
                token,
                null,
                null,
                `not renewed for ${Math.round(since / 100) / 10} s (${errorText(e)}), so another instance may hold it by now`,
              ),
            );
          this.events.log('warn', `renewing the lease of dataflow ${token.name} failed: ${errorText(e)}; retrying`);
        }
      }
    } finally {
      this.renewing = false;
    }
  }

  private lose(e: LeaseLostError): void {
    this.stopRenewing();
    this.events.lost(e);
  }

  /**
   * Gives up every lease still held (a clean stop, or after losing one: the others are released
   * so that the new holder need not wait for them to expire). Failures are logged: those leases
   * expire by themselves.
   */
  async release(): Promise<void> {
    this.stopRenewing();
    const held = this.databases.flatMap((db) => {
      const token = this.tokens.get(db.label);
      return token === undefined ? [] : [[db, token] as const];
    });
    this.tokens.clear();
    this.renewedAt.clear();
    if (this.counted) this.share?.released();
    this.counted = false;
    await Promise.all(
      held.map(([db, token]) =>
        db
          .transaction((tx) => tx.releaseLease(token))
          .catch((e: unknown) => {
            this.events.log(
              'warn',
              `could not give up the lease of dataflow ${token.name} in ${db.label}: ${errorText(e)}; it expires within ${token.leaseMs / 1000} s`,
            );
          }),
      ),
    );
  }
}
