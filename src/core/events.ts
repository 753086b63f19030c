/** An event map: event name → listener argument tuple. */
export type EventMap = Record<string, unknown[]>;

type Listener<A extends unknown[]> = (...args: A) => void;

/** Called when a listener throws; the emitter keeps going (a monitoring bug must never stop media). */
export type ListenerErrorHandler = (error: unknown, event: string) => void;

/** A registered listener; `once` entries are removed before they are called. */
interface Entry {
  /** Typed by the event it was registered for; called only with that event's arguments. */
  readonly listener: unknown;
  readonly once: boolean;
}

/**
 * A typed event emitter whose `safeEmit` isolates listener failures, after mediasoup's
 * EnhancedEventEmitter. Subclasses emit only through safeEmit. Media events fire ~100 times a second
 * per call, so listener lists are copy-on-write arrays: emitting iterates a stable snapshot without
 * copying the list, and (un)subscribing, which is rare, pays for the copy.
 */
export class TypedEmitter<E extends EventMap> {
  readonly #listeners = new Map<string, readonly Entry[]>();
  #onListenerError: ListenerErrorHandler;

  constructor(onListenerError: ListenerErrorHandler = () => {}) {
    this.#onListenerError = onListenerError;
  }

  protected setListenerErrorHandler(handler: ListenerErrorHandler): void {
    this.#onListenerError = handler;
  }

  on<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    return this.#add(event, { listener, once: false });
  }

  once<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    return this.#add(event, { listener, once: true });
  }

  /** Removes the most recently added registration of `listener` (EventEmitter semantics). */
  off<K extends keyof E & string>(event: K, listener: Listener<E[K]>): this {
    const entries = this.#listeners.get(event);
    if (!entries) return this;
    const index = entries.findLastIndex((entry) => entry.listener === listener);
    if (index >= 0) this.#set(event, entries.toSpliced(index, 1));
    return this;
  }

  listenerCount<K extends keyof E & string>(event: K): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  protected removeAllListeners(): void {
    this.#listeners.clear();
  }

  /** Emits to every listener; a throwing listener is reported and the rest still run. */
  protected safeEmit<K extends keyof E & string>(event: K, ...args: E[K]): boolean {
    const entries = this.#listeners.get(event);
    if (!entries) return false;
    for (const entry of entries) {
      if (entry.once) this.#removeEntry(event, entry);
      try {
        (entry.listener as Listener<E[K]>).apply(this, args);
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
    return true;
  }

  #add(event: string, entry: Entry): this {
    this.#set(event, [...(this.#listeners.get(event) ?? []), entry]);
    return this;
  }

  #removeEntry(event: string, entry: Entry): void {
    const entries = this.#listeners.get(event);
    if (entries)
      this.#set(
        event,
        entries.filter((candidate) => candidate !== entry),
      );
  }

  #set(event: string, entries: readonly Entry[]): void {
    if (entries.length > 0) this.#listeners.set(event, entries);
    else this.#listeners.delete(event);
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
