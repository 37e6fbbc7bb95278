/**
 * Splits a byte stream of newline-delimited JSON into lines, a chunk at a time. Lines are not
 * parsed here: an empty line is an Actyx keep-alive, and a malformed one must be reported with its
 * text by the caller.
 */

/**
 * Yields, for each chunk received, the complete lines it finished (possibly none; `\r` stripped).
 * Reads with an explicit reader so that stopping early never throws: cancelling a stream whose
 * connection was already aborted rejects, and that must not turn the consumer's `return` into an error.
 */
export async function* ndjsonLineBatches(body: ReadableStream<Uint8Array>): AsyncGenerator<string[], void, undefined> {
  const reader = body.getReader();
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const text = pending + decoder.decode(value, { stream: true });
      const lines = text.split('\n');
      pending = lines.pop()!;
      yield lines.map(stripCr);
    }
    finished = true;
  } finally {
    if (!finished) reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  const rest = pending + decoder.decode();
  // A last line without its newline: the response was cut; hand it on so the caller can judge it.
  if (rest !== '') yield [stripCr(rest)];
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
