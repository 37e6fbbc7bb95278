/**
 * Splits a byte stream of newline-delimited JSON into lines, a chunk at a time. Lines are not
 * parsed here: an empty line is an Actyx keep-alive, and a malformed one must be reported with its
 * text by the caller.
 */

/** Yields, for each chunk received, the complete lines it finished (possibly none; `\r` stripped). */
export async function* ndjsonLineBatches(body: AsyncIterable<Uint8Array>): AsyncGenerator<string[], void, undefined> {
  const decoder = new TextDecoder('utf-8');
  let pending = '';
  for await (const chunk of body) {
    const text = pending + decoder.decode(chunk, { stream: true });
    const lines = text.split('\n');
    pending = lines.pop()!;
    yield lines.map(stripCr);
  }
  const rest = pending + decoder.decode();
  // A last line without its newline: the response was cut; hand it on so the caller can judge it.
  if (rest !== '') yield [stripCr(rest)];
}

function stripCr(line: string): string {
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
