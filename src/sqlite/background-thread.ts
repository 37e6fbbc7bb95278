/**
 * A line for the code of a worker that does background work (reading ahead, WAL checkpoints): it
 * lowers the priority of the worker's own thread. Linux keeps the nice value per thread, so the
 * thread that computes and commits is preferred when both want the same core — on two cores the
 * catch-up got ≈ 5 % faster (BENCHMARKS.md) — while an idle core still runs the worker at once.
 * Elsewhere the call would lower the whole process, so it is left out there.
 */
export const LOWER_WORKER_PRIORITY_JS = `if (process.platform === 'linux') { try { require('node:os').setPriority(0, 10); } catch {} }`;
