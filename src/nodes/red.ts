/**
 * The small part of the Node-RED runtime API these nodes use, typed here so that the adapters
 * stay strict without depending on the (outdated) community type package.
 */

export interface NodeStatus {
  fill?: 'red' | 'green' | 'yellow' | 'blue' | 'grey';
  shape?: 'ring' | 'dot';
  text?: string;
}

/** A message; `_msgid` is set by the runtime. */
export interface NodeMessage {
  _msgid?: string;
  payload?: unknown;
  topic?: string;
  [key: string]: unknown;
}

/** The configuration object Node-RED passes to a node's constructor (the flow JSON of the node). */
export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  z?: string;
  wires?: string[][];
  [key: string]: unknown;
}

export type SendFn = (msg: NodeMessage | (NodeMessage | NodeMessage[] | null)[] | null) => void;
export type DoneFn = (err?: Error) => void;

export interface Node {
  id: string;
  type: string;
  name?: string;
  z?: string;
  credentials?: Record<string, string | undefined>;
  on(event: 'input', handler: (msg: NodeMessage, send: SendFn, done: DoneFn) => void): void;
  on(event: 'close', handler: (removed: boolean, done: () => void) => void): void;
  send: SendFn;
  status(status: NodeStatus | Record<string, never>): void;
  /** Logs an error; with a message as second argument it also reaches Catch nodes. */
  error(error: string | Error, msg?: NodeMessage): void;
  warn(message: string): void;
  log(message: string): void;
  debug(message: string): void;
}

export interface NodeConstructor {
  (this: Node, def: NodeDef): void;
}

export interface RegisterOptions {
  credentials?: Record<string, { type: 'text' | 'password' }>;
  settings?: Record<string, { value: unknown; exported: boolean }>;
}

export interface NodeAPI {
  nodes: {
    createNode(node: Node, def: NodeDef): void;
    registerType(type: string, ctor: NodeConstructor, options?: RegisterOptions): void;
    getNode(id: string): Node | null;
    /** Calls `cb` with the configuration of every deployed node (all flows). */
    eachNode(cb: (def: NodeDef) => void): void;
  };
  events: {
    on(event: string, handler: (...args: unknown[]) => void): void;
    removeListener(event: string, handler: (...args: unknown[]) => void): void;
  };
  settings: { userDir?: string; [key: string]: unknown };
  util: {
    prepareJSONataExpression(expression: string, node: Node): unknown;
    evaluateJSONataExpression(
      expression: unknown,
      msg: unknown,
      callback: (err: Error | null, result: unknown) => void,
    ): void;
    evaluateNodeProperty(
      value: string,
      type: string,
      node: Node,
      msg: NodeMessage | undefined,
      callback?: (err: Error | null, result: unknown) => void,
    ): unknown;
    getMessageProperty(msg: unknown, expr: string): unknown;
    /** Splits a property expression (`payload.items[0]["a b"]`) into its parts; throws on invalid syntax. */
    normalisePropertyExpression(expr: string): (string | number)[];
    cloneMessage<T>(msg: T): T;
  };
  log: {
    info(message: string): void;
    warn(message: string): void;
    error(message: string): void;
    debug(message: string): void;
  };
  httpNode?: unknown;
  httpAdmin?: unknown;
  /** Admin API authentication: middleware that lets a request through only with `permission`. */
  auth?: { needsPermission(permission: string): (req: unknown, res: unknown, next: (err?: unknown) => void) => void };
  _(key: string, substitutions?: Record<string, unknown>): string;
}
