/**
 * What the members of a running dataflow show and report: the phase in every member's status,
 * halting on an error that cannot pass, retrying with its warnings, and skipped inputs named with
 * their member and event. Statuses go through the throttled StatusReporter.
 */
import { abbreviate, errorText, shortStatus } from '../core/message-text';
import { RepeatSummary, type RepeatCount } from '../core/repeat-summary';
import { eventsBetween, eventsBetweenRaised, type OffsetDelta, type OffsetMap } from '../core/offset-map';
import type { SkippedInput } from '../engine/types';
import type { OperatorError } from '../engine/types';
import { SinkConfigError, SinkDatabaseError, SinkDataError } from '../sinks/errors';
import { LeaseLostError } from '../sinks/lease-sql';
import type { BuiltDataflow } from './build-graph';
import type { DataflowContext, Phase } from './context';
import { contextOf, describeMember, describeValue, retryingText } from './describe';
import { durationText, timeText } from './retention';
import { retryWithBackoff } from './retry';
import { StatusReporter } from './status-reporter';
import type { DataflowMember, DataflowPhase, MemberStatus, SinkMember } from './types';

/** How often repeated problems are summarised in the log (DataflowDefinition.reportIntervalMs). */
export const REPORT_INTERVAL_MS = 30_000;

/** How often a rebuild logs its progress, ms of ctx.now(). */
export const REBUILD_PROGRESS_MS = 5_000;

export class DataflowStatus {
  private readonly reporter: StatusReporter;
  /**
   * Repeated problems (skipped inputs of one member, retries of one database or the source, source
   * diagnostics, events ahead of the clock): the first of a kind in full, then a count per
   * interval; `summaries` words the count of each kind.
   */
  private readonly repeats: RepeatSummary;
  private readonly summaries = new Map<string, (c: RepeatCount) => string>();
  /** When this run started (ctx.now), for the time it took to go live. */
  private readonly startedAt: number;
  /** The info line "live: …" is logged once per run, the first time it is live. */
  private liveLogged = false;
  /** The events behind as last counted, and the offsets counted between (see behind()). */
  private behindAt: { readonly committed: OffsetMap; readonly present: OffsetMap; readonly events: number } | null =
    null;
  /** When the last rebuild progress line was logged (ms, ctx.now()). */
  private progressLoggedAt: number;

  constructor(private readonly ctx: DataflowContext) {
    this.startedAt = ctx.now();
    this.progressLoggedAt = this.startedAt;
    this.reporter = new StatusReporter(ctx.listener);
    this.repeats = new RepeatSummary({
      intervalMs: ctx.definition.reportIntervalMs ?? REPORT_INTERVAL_MS,
      onSummary: (key, count) => {
        const word = this.summaries.get(key);
        if (word) ctx.listener.log('warn', word(count));
      },
    });
  }

  /**
   * One occurrence of a repeated problem: true when it is to be reported in full (the first of its
   * kind, or the first after a quiet interval); else it is counted, and `summary` words the counts
   * logged every interval and at the end.
   */
  repeated(key: string, text: string, summary: (c: RepeatCount) => string): boolean {
    const full = this.repeats.occurred(key, text);
    if (full) this.summaries.set(key, summary);
    return full;
  }

  /** Sets a member's status; `urgent` (errors) shows it at once. */
  set(memberId: string, status: MemberStatus, urgent = false): void {
    this.reporter.set(memberId, status, urgent);
  }

  /** Shows what is pending and ignores later updates (the dataflow stopped); logs the counts of repeated problems. */
  close(): void {
    this.repeats.close();
    this.reporter.close();
  }

  /** Members that could not be built: red, and an error for the member where the problem is. */
  showBuildFailures(built: BuiltDataflow): void {
    for (const f of built.failures) {
      if (f.cause) this.ctx.listener.error(f.memberId, f.message);
      this.set(
        f.memberId,
        { fill: 'red', shape: f.cause ? 'dot' : 'ring', text: f.cause ? 'error: see debug' : 'input failed' },
        true,
      );
    }
  }

  /** Nothing runs: no sink or tap that could be built. */
  idle(built: BuiltDataflow): void {
    this.ctx.phaseName = 'idle';
    for (const m of this.ctx.definition.members) {
      if (!built.failures.some((f) => f.memberId === m.id))
        this.set(m.id, { fill: 'grey', shape: 'ring', text: 'no db-sink downstream' });
    }
    this.ctx.listener.log('info', 'dataflow has no db-sink or tapped node that runs: nothing to compute');
  }

  /**
   * Sets every running member's status for the phase; `delta`: how the committed offsets came
   * about from the previous commit's, after a commit (the events behind are then counted from
   * the streams it raised instead of every stream).
   */
  setPhase(name: DataflowPhase, phase?: Phase, delta: OffsetDelta | null = null): void {
    const ctx = this.ctx;
    if (ctx.phaseName === 'error' || ctx.stopping) return;
    ctx.phaseName = name;
    // Only the catching-up status shows it (and rebuild progress, while catching up).
    const behind = name === 'catching up' ? this.behind(delta) : 0;
    for (const m of this.runningMembers()) {
      let status: MemberStatus;
      if (m.role === 'sink' && phase !== undefined && !phase.writing.has(m.id)) {
        status = { fill: 'blue', shape: 'ring', text: 'replaying' };
      } else if (name === 'live') {
        status = { fill: 'green', shape: 'dot', text: ['live', ...this.counts(m)].join(', ') };
      } else if (name === 'replaying') {
        status = { fill: 'blue', shape: 'ring', text: 'replaying' };
      } else if (name === 'catching up') {
        const verb = m.role === 'sink' && ctx.rebuilding.has(m.id) ? 'rebuilding' : 'catching up';
        status = {
          fill: 'yellow',
          shape: 'ring',
          text: `${verb} (${[`${behind.toLocaleString('en-US')} events behind`, ...this.counts(m)].join(', ')})`,
        };
      } else {
        status = { fill: 'grey', shape: 'ring', text: name };
      }
      this.set(m.id, status);
    }
    if (name === 'catching up' && ctx.rebuilding.size > 0) this.logRebuildProgress(behind);
    if (name === 'live' && !this.liveLogged) {
      // Headless operation: one info line when the run is live, after a first start or a restart.
      this.liveLogged = true;
      const seconds = Math.max(0, ctx.now() - this.startedAt) / 1000;
      const rebuilt = new Set(ctx.rebuilt.map((r) => r.id)).size;
      ctx.listener.log(
        'info',
        `live: caught up with ${ctx.eventsRead.toLocaleString('en-US')} events in ${seconds.toFixed(1)} s` +
          (rebuilt > 0 ? ` (${rebuilt} ${rebuilt === 1 ? 'table' : 'tables'} rebuilt)` : ''),
      );
    }
    if (name === 'live') ctx.rebuilding.clear();
  }

  /**
   * eventsBetween(committed offsets, present): what the last count was, brought forward by the
   * streams a commit raised when it continues the offsets counted then (`delta.base` is them), else
   * counted over every stream. With a stream per device there are many streams, a commit raises few.
   */
  private behind(delta: OffsetDelta | null): number {
    const { committedOffsets: committed, present } = this.ctx;
    const at = this.behindAt;
    let events: number;
    if (at !== null && at.present === present && at.committed === committed) events = at.events;
    else if (at !== null && at.present === present && delta !== null && delta.base === at.committed)
      events = eventsBetweenRaised(at.events, at.committed, delta.raised, present);
    else events = eventsBetween(committed, present);
    this.behindAt = { committed, present, events };
    return events;
  }

  /**
   * Headless operation: while tables are rebuilt, an info line every REBUILD_PROGRESS_MS
   * ("rebuilding dashboard, usage: 120,000 of 1,000,000 events"): of the events present, those the
   * dataflow has committed.
   */
  private logRebuildProgress(behind: number): void {
    const ctx = this.ctx;
    const now = ctx.now();
    if (now - this.progressLoggedAt < REBUILD_PROGRESS_MS) return;
    this.progressLoggedAt = now;
    const tables = ctx.definition.members
      .filter((m): m is SinkMember => m.role === 'sink' && ctx.rebuilding.has(m.id))
      .map((m) => m.table.name);
    const total = eventsBetween({}, ctx.present);
    const done = Math.max(0, total - behind);
    ctx.listener.log(
      'info',
      `rebuilding ${tables.join(', ')}: ${done.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} events`,
    );
  }

  /** What a member's status counts: its skipped inputs; on a source, the events ahead of the clock. */
  private counts(m: DataflowMember): string[] {
    const out: string[] = [];
    const skipped = this.ctx.skipped.get(m.id) ?? 0;
    if (skipped > 0) out.push(`${skipped} skipped`);
    if (m.role === 'source' && this.ctx.eventsAheadOfClock > 0)
      out.push(`${this.ctx.eventsAheadOfClock} ahead of clock`);
    return out;
  }

  /**
   * An event first processed with a timestamp beyond the clock bound (retention.ts): it is
   * processed, but moves no watermark. Counted (stats, the sources' status), logged once in full
   * with its stream, offset and timestamp, then as a count per interval. `nowMicros`: the clock.
   */
  reportAheadOfClock(
    ev: { readonly stream: string; readonly offset: number; readonly timestamp: number },
    nowMicros: number,
  ): void {
    const ctx = this.ctx;
    ctx.eventsAheadOfClock++;
    const ahead = ctx.clockAheadMicros;
    const message = `event ${ev.stream}/${ev.offset} has the timestamp ${timeText(ev.timestamp)}, more than ${durationText(ahead)} ahead of the clock (${timeText(nowMicros)}): it is processed, but does not move the retention watermark (is the device's clock wrong?)`;
    const full = this.repeated(
      'ahead-of-clock',
      message,
      (c) =>
        `${c.count} more event${c.count === 1 ? '' : 's'} more than ${durationText(ahead)} ahead of the clock in the last ${c.seconds} s (${c.total} since the first), processed without moving the retention watermark; the latest: ${c.last}`,
    );
    if (full) ctx.listener.log('warn', message);
    // The sources' status shows the count from the next commit on (setPhase).
  }

  /** Stops the dataflow on an error: every member red, `memberId` (where it happened) as the cause. */
  halt(message: string, memberId?: string): void {
    const ctx = this.ctx;
    ctx.phaseName = 'error';
    ctx.failed = new Error(message);
    this.repeats.close(); // what was counted is logged before the halt
    ctx.listener.log('warn', message);
    for (const m of this.runningMembers()) {
      this.set(
        m.id,
        m.id === memberId
          ? { fill: 'red', shape: 'dot', text: 'error: stopped' }
          : { fill: 'red', shape: 'ring', text: 'stopped (error)' },
        true,
      );
    }
    ctx.end();
  }

  /** A user function threw with on error: stop. */
  haltOnOperatorError(e: OperatorError): void {
    const member = this.memberFor(e.operator);
    const what = `failed on ${describeValue(e.value)}: ${errorText(e.cause)}; the dataflow stopped (on error: stop)`;
    const who = member ? describeMember(member) : `operator ${e.operator}`;
    // The member's own log line needs no name (Node-RED prefixes it); the dataflow's does.
    if (member) this.ctx.listener.error(member.id, what, contextOf(e.value));
    this.halt(`${who} ${what}`, member?.id);
  }

  /**
   * Runs `fn` until it succeeds or the dataflow stops (`what` = 'source' or a database's label);
   * each failure is logged, the first also reported to the members it affects, and the status
   * says retrying. Sink errors a retry cannot fix are thrown at once. `attemptWhenStopped`: a
   * commit computed before a stop is attempted once (see retryWithBackoff).
   */
  retrying<T>(
    what: string,
    fn: (attempt: number) => Promise<T>,
    options: { attemptWhenStopped?: boolean } = {},
  ): Promise<T> {
    const ctx = this.ctx;
    const key = `retry:${what}`;
    const who = what === 'source' ? 'event source' : `database ${what}`;
    const attempted = async (attempt: number): Promise<T> => {
      const result = await fn(attempt);
      if (attempt > 0) this.repeats.settle((k) => k === key); // its counts before "reachable again"
      return result;
    };
    return retryWithBackoff(attempted, {
      isFatal: (e) => what !== 'source' && isPermanentSinkError(e),
      attemptWhenStopped: options.attemptWhenStopped === true,
      stopped: () => ctx.stopping,
      stopSignal: ctx.abort.signal,
      onRetry: (error, attempt, delay) => {
        const message = `${who} failed (attempt ${attempt}): ${errorText(error)}; retrying in ${delay} ms`;
        // Logged once, then a count per interval: a database down for an hour is not 700 lines.
        const full = this.repeated(
          key,
          message,
          (c) =>
            `${who} still failing: ${c.count} more attempt${c.count === 1 ? '' : 's'} in the last ${c.seconds} s; the latest: ${c.last}`,
        );
        if (full) ctx.listener.log('warn', message);
        if (what !== 'source') ctx.retryingDb = what;
        if (attempt === 1) {
          for (const m of this.affectedBy(what)) ctx.listener.error(m.id, message);
        }
        if (ctx.phaseName !== 'error') ctx.phaseName = 'retrying';
        for (const m of this.runningMembers())
          this.set(m.id, { fill: 'yellow', shape: 'ring', text: retryingText(error) }, attempt === 1);
      },
    });
  }

  reportSkipped(skipped: SkippedInput, phase: Phase): void {
    const { operator, value, error, input } = skipped;
    const member = this.memberFor(operator);
    const id = member?.id ?? operator;
    this.ctx.skipped.set(id, (this.ctx.skipped.get(id) ?? 0) + 1);
    // Replayed inputs were reported by the run that first processed them.
    if (phase.writing.size === 0 && !phase.taps) return;
    // Per-group operators (reduce, scan) name the record left out and its group.
    const what =
      input === undefined
        ? describeValue(value)
        : `${describeValue(input)} in group ${abbreviate(JSON.stringify(value))}`;
    const who = member ? describeMember(member) : `operator ${operator}`;
    const text = `failed on ${what}: ${errorText(error)}; skipped`;
    const message = `${who} ${text}`;
    // The first in full (log and Catch nodes), then each to the Catch nodes and a count per interval in the log.
    const full = this.repeated(
      `skipped:${id}`,
      message,
      (c) =>
        `${who}: ${c.count} more input${c.count === 1 ? '' : 's'} failed in the last ${c.seconds} s and ${c.count === 1 ? 'was' : 'were'} skipped (${c.total} since the first; each also went to Catch nodes); the latest: ${c.last}`,
    );
    const context = contextOf(input === undefined ? value : input);
    if (member) this.ctx.listener.error(member.id, text, context, full ? undefined : { repeat: true });
    else if (full) this.ctx.listener.log('warn', message);
  }

  /** A problem the event source reports while it keeps going: logged (repeats summarised), shown on the source nodes. */
  sourceDiagnostic(d: { severity: 'info' | 'warning' | 'error'; message: string; detail?: string }): void {
    const ctx = this.ctx;
    const text = d.detail ? `${d.message} (${d.detail})` : d.message;
    if (d.severity === 'info') {
      this.repeats.settle((k) => k.startsWith('source:'));
      ctx.listener.log('info', `event source: ${text}`);
      return;
    }
    // One kind per message up to its first colon ("query incomplete, retrying", "skipped event …").
    const kind = d.message.split(':', 1)[0] as string;
    const full = this.repeated(
      `source:${d.severity}:${kind}`,
      text,
      (c) => `event source: ${c.count} more time${c.count === 1 ? '' : 's'} in the last ${c.seconds} s: ${c.last}`,
    );
    if (full) ctx.listener.log('warn', `event source: ${text}`);
    for (const s of ctx.built?.sources ?? []) {
      this.set(s.member.id, {
        fill: d.severity === 'error' ? 'red' : 'yellow',
        shape: 'ring',
        text: shortStatus(d.message),
      });
    }
  }

  /** The members a database or source problem belongs to (its sinks, or the source nodes). */
  private affectedBy(what: string): DataflowMember[] {
    const built = this.ctx.built;
    if (built === null) return [];
    if (what === 'source') return built.sources.map((s) => s.member);
    return built.sinks.filter((s) => s.database.label === what);
  }

  /** Maps an engine operator name back to a member (dd nodes name their operators by node id). */
  private memberFor(operator: string): DataflowMember | undefined {
    const byId = this.ctx.built?.byId;
    if (!byId) return undefined;
    const direct = byId.get(operator);
    if (direct) return direct;
    for (const [id, m] of byId) if (operator.startsWith(id)) return m;
    return undefined;
  }

  private runningMembers(): DataflowMember[] {
    const built = this.ctx.built;
    if (built === null) return [];
    const failed = new Set(built.failures.map((f) => f.memberId));
    return this.ctx.definition.members.filter((m) => !failed.has(m.id));
  }
}

/** Sink errors a retry cannot fix. */
function isPermanentSinkError(e: unknown): boolean {
  return (
    e instanceof LeaseLostError ||
    e instanceof SinkDataError ||
    e instanceof SinkConfigError ||
    (e instanceof SinkDatabaseError && !e.retryable)
  );
}
