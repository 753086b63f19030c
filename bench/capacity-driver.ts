// The parent side of the traffic generator (bench/capacity-generator.ts): spawns it on the other core
// and talks to it over IPC. Shared by the capacity benchmark and the platform-floor benchmark.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromGenerator, ToGenerator } from './capacity-protocol.js';

const GENERATOR = fileURLToPath(new URL('./capacity-generator.ts', import.meta.url));

export class Generator {
  readonly #child: ChildProcess;
  readonly #waiters = new Map<string, (m: FromGenerator) => void>();

  constructor(pin: boolean) {
    const node = [process.execPath, ...process.execArgv, GENERATOR];
    const [cmd, ...args] = pin ? ['taskset', '-c', '1', ...node] : node;
    this.#child = spawn(cmd!, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#child.on('message', (m: FromGenerator) => {
      const waiter = this.#waiters.get(m.type);
      this.#waiters.delete(m.type);
      waiter?.(m);
    });
  }

  send(message: ToGenerator): void {
    this.#child.send(message);
  }

  request<T extends FromGenerator['type']>(
    message: ToGenerator,
    reply: T,
  ): Promise<Extract<FromGenerator, { type: T }>> {
    return new Promise((resolve) => {
      this.#waiters.set(reply, (m) => resolve(m as Extract<FromGenerator, { type: T }>));
      this.send(message);
    });
  }

  exit(): void {
    if (this.#child.connected) this.send({ type: 'exit' });
  }
}
