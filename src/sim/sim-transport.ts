// The Transport of a simulated node: named methods served per node, and connections whose
// messages cross the simulated network (delay, loss, duplication, partitions). A message is handed
// to whatever process listens at its address when it arrives, as on a real network.

import { CairnError, ErrorCode } from '../errors.ts';
import { RpcError, RpcErrorCode } from '../rpc/errors.ts';
import type { CallOptions, CallResult } from '../rpc/client.ts';
import { payloadPieces, type Payload } from '../rpc/frame.ts';
import type { CallContext, Handler } from '../rpc/handler.ts';
import type { Connection, Transport } from '../io/index.ts';
import { isReply } from '../rpc/handler.ts';

/** What the transport needs of the simulation. */
export interface SimWire {
  /** Carries a message from node `from` to node `to`; `deliver` runs there (if it arrives and the node is up). */
  send(from: number, to: number, what: () => string, deliver: () => void): void;
  /** The handler a node's current process serves `method` with, if any. */
  handler(node: number, method: string): Handler | undefined;
  /** Runs `fn` after `ms` on node `node`'s current process, unless it died meanwhile. */
  later(node: number, ms: number, fn: () => void): void;
  describe(method: string, body: unknown): string;
}

const callTimeoutMsDefault = 5_000;

/** Simulated nodes are reached at `n<id>`, or `n<id>:<port>` where the production code wants host:port (workers). */
export function simAddress(id: number): string {
  return `n${id}`;
}

export function simNodeId(address: string): number {
  const m = /^n([1-9][0-9]*)(?::[0-9]{1,5})?$/.exec(address);
  if (m === null) throw new CairnError(ErrorCode.BadOption, `not a simulated node's address: ${address}`);
  return Number(m[1]);
}

export class SimTransport implements Transport {
  readonly handlers = new Map<string, Handler>();
  private readonly wire: SimWire;
  private readonly from: number;
  /** Whether the process this transport belongs to still runs: answers to a dead one are dropped. */
  private readonly live: () => boolean;

  constructor(wire: SimWire, from: number, live: () => boolean) {
    this.wire = wire;
    this.from = from;
    this.live = live;
  }

  handle(method: string, handler: Handler): void {
    this.handlers.set(method, handler);
  }

  connect(address: string): Connection {
    const to = simNodeId(address);
    const { wire, from, live } = this;
    let closed = false;
    const run = (method: string, body: unknown, payload: Uint8Array | undefined, answer?: (r: CallResult<unknown>) => void, fail?: (e: unknown) => void): void => {
      wire.send(from, to, () => wire.describe(method, body), () => {
        const h = wire.handler(to, method);
        if (h === undefined) return;
        const ctx: CallContext = { signal: new AbortController().signal, peer: simAddress(from), payload: payload as CallContext['payload'] };
        void Promise.resolve()
          .then(() => h(body, ctx))
          .then(
            (result) => {
              if (isReply(result)) {
                // As on TCP, the caller gets its own copy of the payload and the server its buffer back.
                const r = { body: result.body, payload: result.payload === undefined ? undefined : Buffer.from(result.payload) };
                result.onSent?.();
                if (answer !== undefined) wire.send(to, from, () => `${method} reply`, () => live() && answer(r as CallResult<unknown>));
                return;
              }
              if (answer === undefined) return;
              const r = { body: result, payload: undefined };
              wire.send(to, from, () => `${method} reply`, () => live() && answer(r as CallResult<unknown>));
            },
            (err: unknown) => {
              if (fail !== undefined) wire.send(to, from, () => `${method} error`, () => live() && fail(err));
            },
          );
      });
    };
    return {
      notify(method, body, payload) {
        if (closed) throw new RpcError(RpcErrorCode.Unavailable, `connection to ${address} is closed`);
        run(method, body, payload);
      },
      call<T>(method: string, body: unknown, opts: CallOptions = {}): Promise<CallResult<T>> {
        if (closed) return Promise.reject(new RpcError(RpcErrorCode.Unavailable, `connection to ${address} is closed`));
        return new Promise<CallResult<T>>((resolve, reject) => {
          let done = false;
          const once = <A>(f: (a: A) => void) => (a: A): void => {
            if (done) return;
            done = true;
            f(a);
          };
          const timeoutMs = opts.timeoutMs ?? callTimeoutMsDefault;
          const expire = once<void>(() => reject(new RpcError(RpcErrorCode.Timeout, `${method} to ${address}: no answer within ${timeoutMs} ms`)));
          wire.later(from, timeoutMs, () => expire());
          run(method, body, joined(opts.payload), once(resolve as (r: CallResult<unknown>) => void), once(reject));
        });
      },
      close() {
        closed = true;
      },
    };
  }
}

/** A payload in pieces arrives as one buffer, as TCP delivers it. */
function joined(payload: Payload | undefined): Uint8Array | undefined {
  return Array.isArray(payload) ? Buffer.concat(payloadPieces(payload)) : (payload as Uint8Array | undefined);
}
