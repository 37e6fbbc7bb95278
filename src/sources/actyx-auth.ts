/**
 * Authentication against an Actyx v2 node: an app manifest is exchanged for a bearer token at
 * `POST /api/v2/auth`. Tokens die when the node restarts, so a 401 makes the caller `invalidate`
 * the token and ask again.
 */

/** The app manifest (`com.example.*` app ids need no signature). */
export interface AppManifest {
  readonly appId: string;
  readonly displayName: string;
  readonly version: string;
  /** The manifest signature from the Actyx CLI / Node Manager (a secret: keep it in credentials). */
  readonly signature?: string;
}

/** An HTTP error answer of the node: status plus its `{code, message}` body when it has one. */
export class ActyxHttpError extends Error {
  override readonly name = 'ActyxHttpError';
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
    readonly path: string,
  ) {
    super(`Actyx ${path} answered ${status}${code ? ` ${code}` : ''}: ${message}`);
  }
}

/** Turns a non-2xx response into an ActyxHttpError (reads the body). */
export async function httpError(res: Response, path: string): Promise<ActyxHttpError> {
  let text = '';
  try {
    text = await res.text();
  } catch {
    // the body is lost with the connection; the status says enough
  }
  let code: string | undefined;
  let message = text.trim() || res.statusText;
  try {
    const body = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof body.code === 'string') code = body.code;
    if (typeof body.message === 'string') message = body.message;
  } catch {
    // not JSON: keep the text
  }
  return new ActyxHttpError(res.status, code, message.slice(0, 500), path);
}

/** Checks a manifest before it is sent; returns a clear reason or null. */
export function manifestProblem(manifest: Partial<AppManifest> | undefined): string | null {
  if (!manifest) return 'an app manifest is required';
  for (const key of ['appId', 'displayName', 'version'] as const) {
    const value = manifest[key];
    if (typeof value !== 'string' || value.trim() === '') return `the app manifest needs a non-empty ${key}`;
  }
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(manifest.appId!))
    return `app id ${JSON.stringify(manifest.appId)} is not in reverse domain form (e.g. com.example.app)`;
  return null;
}

/** Holds the current token; concurrent callers share one `/auth` request. */
export class TokenProvider {
  private current: Promise<string> | null = null;
  private currentToken: string | null = null;

  constructor(
    private readonly baseUrl: string,
    private readonly manifest: AppManifest,
    private readonly timeoutMs: number,
  ) {}

  token(signal?: AbortSignal): Promise<string> {
    if (!this.current) {
      const pending = this.authenticate(signal);
      this.current = pending;
      pending.then(
        (t) => {
          if (this.current === pending) this.currentToken = t;
        },
        () => {
          if (this.current === pending) this.current = null;
        },
      );
    }
    return this.current;
  }

  /** Forgets `token` (if it is still the current one) so that the next call authenticates again. */
  invalidate(token: string): void {
    if (this.currentToken === token) {
      this.current = null;
      this.currentToken = null;
    }
  }

  private async authenticate(signal?: AbortSignal): Promise<string> {
    const body: Record<string, string> = {
      appId: this.manifest.appId,
      displayName: this.manifest.displayName,
      version: this.manifest.version,
    };
    if (this.manifest.signature) body.signature = this.manifest.signature;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    const res = await fetch(`${this.baseUrl}/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    if (!res.ok) throw await httpError(res, '/auth');
    const json = (await res.json()) as { token?: unknown };
    if (typeof json.token !== 'string' || json.token === '')
      throw new ActyxHttpError(res.status, undefined, 'no token in the answer', '/auth');
    return json.token;
  }
}
