/**
 * The wording of problems, shared by sources, sinks, the dataflow and the nodes: the text of
 * anything thrown, and the two lengths a text is cut to (a node's status line, a value quoted in a
 * message). The engine words its own errors (it imports nothing outside src/engine).
 */

/** The message of anything thrown: an Error's message; for any other object its `message` (or its JSON), never "[object Object]". */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'object' && e !== null) {
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string') return message;
    try {
      return JSON.stringify(e) ?? String(e);
    } catch {
      return String(e);
    }
  }
  return String(e);
}

/** A short text for a node's status (Node-RED shows about 20–30 characters well). */
export function shortStatus(text: string, max = 32): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A value's text quoted in a message, cut after 200 characters. */
export function abbreviate(s: string | undefined): string {
  if (s === undefined) return 'undefined';
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
