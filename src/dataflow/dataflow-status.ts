/**
 * What the members of a running dataflow show and report: the phase in every member's status,
 * halting on an error that cannot pass, retrying with its warnings, and skipped inputs named with
 * their member and event. Statuses go through the throttled StatusReporter.
 */
import { abbreviate, errorText } from '../core/message-text';
import { eventsBetween } from '../core/offset-map';
import type { SkippedInput } from '../engine/types';
import type { OperatorError } from '../engine/types';
import { SinkConfigError, SinkDatabaseError, SinkDataError } from '../sinks/errors';
import type { BuiltDataflow } from './build-graph';
import type { DataflowContext, Phase } from './context';
import { contextOf, describeMember, describeValue, retryingText } from './describe';
import { retryWithBackoff } from './retry';
import { StatusReporter } from './status-reporter';
import type { DataflowMember, DataflowPhase, MemberStatus } from './types';

export class DataflowStatus {
  private readonly reporter: StatusReporter;

  constructor(private readonly ctx: DataflowContext) {
    this.reporter = new StatusReporter(ctx.listener);
  }

  /** Sets a member's status; `urgent` (errors) shows it at once. */
  set(memberId: string, status: MemberStatus, urgent = false): void {
    this.reporter.set(memberId, status, urgent);
  }

  /** Shows what is pending and ignores later updates (the dataflow stopped). */
  close(): void {
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

  setPhase(name: DataflowPhase, phase?: Phase): void {
    const ctx = this.ctx;
    if (ctx.phaseName === 'error' || ctx.stopping) return;
    ctx.phaseName = name;
    const behind = eventsBetween(ctx.committedOffsets, ctx.present);
    for (const m of this.runningMembers()) {
      let status: MemberStatus;
      if (m.role === 'sink' && phase !== undefined && !phase.writing.has(m.id)) {
        status = { fill: 'blue', shape: 'ring', text: 'replaying' };
      } else if (name === 'live') {
        const n = ctx.skipped.get(m.id) ?? 0;
        status = { fill: 'green', shape: 'dot', text: n > 0 ? `live, ${n} skipped` : 'live' };
      } else if (name === 'replaying') {
        status = { fill: 'blue', shape: 'ring', text: 'replaying' };
      } else if (name === 'catching up') {
        const verb = m.role === 'sink' && ctx.rebuilding.has(m.id) ? 'rebuilding' : 'catching up';
        const n = ctx.skipped.get(m.id) ?? 0;
        status = {
          fill: 'yellow',
          shape: 'ring',
          text: `${verb} (${behind.toLocaleString('en-US')} events behind${n > 0 ? `, ${n} skipped` : ''})`,
        };
      } else {
        status = { fill: 'grey', shape: 'ring', text: name };
      }
      this.set(m.id, status);
    }
    if (name === 'live') ctx.rebuilding.clear();
  }

  /** Stops the dataflow on an error: every member red, `memberId` (where it happened) as the cause. */
  halt(message: string, memberId?: string): void {
    const ctx = this.ctx;
    ctx.phaseName = 'error';
    ctx.failed = new Error(message);
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
    const message = `${member ? describeMember(member) : `operator ${e.operator}`} failed on ${describeValue(e.value)}: ${errorText(e.cause)}; the dataflow stopped (on error: stop)`;
    if (member) this.ctx.listener.error(member.id, message, contextOf(e.value));
    this.halt(message, member?.id);
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
    return retryWithBackoff(fn, {
      isFatal: (e) => what !== 'source' && isPermanentSinkError(e),
      attemptWhenStopped: options.attemptWhenStopped === true,
      stopped: () => ctx.stopping,
      stopSignal: ctx.abort.signal,
      onRetry: (error, attempt, delay) => {
        const message = `${what === 'source' ? 'event source' : `database ${what}`} failed (attempt ${attempt}): ${errorText(error)}; retrying in ${delay} ms`;
        ctx.listener.log('warn', message);
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
    const message = `${member ? describeMember(member) : `operator ${operator}`} failed on ${what}: ${errorText(error)}; skipped`;
    if (member) this.ctx.listener.error(member.id, message, contextOf(input === undefined ? value : input));
    else this.ctx.listener.log('warn', message);
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
  return e instanceof SinkDataError || e instanceof SinkConfigError || (e instanceof SinkDatabaseError && !e.retryable);
}
