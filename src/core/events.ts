import { EventEmitter } from 'node:events';

/** An event map: event name → listener argument tuple. */
export type EventMap = Record<string, unknown[]>;

type Listener<A extends unknown[]> = (...args: A) => void;

/** Called when a listener throws; the emitter keeps going (a monitoring bug must never stop media). */
export type ListenerErrorHandler = (error: unknown, event: string) => void;

/**
 * A typed EventEmitter whose `safeEmit` isolates listener failures, after mediasoup's EnhancedEventEmitter.
 * Subclasses emit only through safeEmit.
 */
export class TypedEmitter<E extends EventMap> {
  readonly #emitter = new EventEmitter();
  #onListenerError: ListenerErrorHandler;

  constructor(onListenerError: ListenerErrorHandler = () => {}) {
    this.#onListenerError = onListenerError;
  }

  protected setListenerErrorHandler(handler: ListenerErrorHandler): void {
    this.#onListenerError = handler;
  }

  on<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    this.#emitter.on(event, listener as Listener<unknown[]>);
    return this;
  }

  once<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    this.#emitter.once(event, listener as Listener<unknown[]>);
    return this;
  }

  off<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    this.#emitter.off(event, listener as Listener<unknown[]>);
    return this;
  }

  listenerCount<K extends keyof E & string>(event: K): number {
    return this.#emitter.listenerCount(event);
  }

  protected removeAllListeners(): void {
    this.#emitter.removeAllListeners();
  }

  /** Emits to every listener; a throwing listener is reported and the rest still run. */
  protected safeEmit<K extends keyof E & string>(event: K, ...args: E[K]): boolean {
    const listeners = this.#emitter.rawListeners(event) as Listener<E[K]>[];
    for (const listener of listeners) {
      try {
        listener.apply(this, args);
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
    // once() wrappers remove themselves only when called through EventEmitter.emit; do it here.
    for (const listener of listeners) {
      if ((listener as { listener?: unknown }).listener !== undefined) {
        this.#emitter.removeListener(event, listener as Listener<unknown[]>);
      }
    }
    return listeners.length > 0;
  }
}

/** Wait for one event, with a bounded wait. */
export function waitFor<E extends EventMap, K extends keyof E & string>(
  source: TypedEmitter<E>,
  event: K,
  timeoutMs: number,
): Promise<E[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      source.off(event, onEvent);
      reject(new TimeoutError(`timed out after ${timeoutMs} ms waiting for ${event}`));
    }, timeoutMs);
    const onEvent = (...args: E[K]): void => {
      clearTimeout(timer);
      resolve(args);
    };
    source.once(event, onEvent);
  });
}

export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}
