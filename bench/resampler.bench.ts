// Cost of the resamplers and of the two audio-convert paths per 20 ms frame.
// Run: npx tsx bench/resampler.bench.ts   (prints numbers; asserts nothing)
import os from 'node:os';
import { createCallerToProvider, createProviderToCaller } from '../src/media/audio-convert.js';
import { encodeG711 } from '../src/media/g711.js';
import { Resampler, type ResampleRate } from '../src/media/resampler.js';

const WARMUP_ITERATIONS = 5_000;
const ITERATIONS = 20_000;
const FRAME_MS = 20;

function tone(rate: number, samples: number, frequencyHz: number): Int16Array {
  const out = new Int16Array(samples);
  for (let i = 0; i < samples; i++)
    out[i] = Math.round(12_000 * Math.sin((2 * Math.PI * frequencyHz * i) / rate));
  return out;
}

function pcm16Bytes(samples: Int16Array): Uint8Array {
  const bytes = new Uint8Array(samples.length * 2);
  for (let i = 0; i < samples.length; i++) {
    bytes[2 * i] = samples[i]! & 0xff;
    bytes[2 * i + 1] = (samples[i]! >> 8) & 0xff;
  }
  return bytes;
}

/** Runs `step` (one 20 ms frame) and prints mean and p99 in µs. */
function measure(label: string, step: (i: number) => number): void {
  let sink = 0;
  for (let i = 0; i < WARMUP_ITERATIONS; i++) sink += step(i);
  const times = new Float64Array(ITERATIONS);
  for (let i = 0; i < ITERATIONS; i++) {
    const start = process.hrtime.bigint();
    sink += step(i);
    times[i] = Number(process.hrtime.bigint() - start) / 1000;
  }
  const sorted = times.slice().sort();
  const mean = times.reduce((a, b) => a + b, 0) / ITERATIONS;
  const p99 = sorted[Math.floor(ITERATIONS * 0.99)]!;
  console.log(
    `${label.padEnd(34)} mean ${mean.toFixed(2).padStart(6)} µs   p99 ${p99.toFixed(2).padStart(6)} µs   (sink ${sink % 10})`,
  );
}

console.log(
  `resampler bench: ${os.cpus()[0]?.model ?? 'unknown cpu'}, node ${process.version}, ${new Date().toISOString()}`,
);
console.log(
  `${ITERATIONS} iterations of one ${FRAME_MS} ms frame each, after ${WARMUP_ITERATIONS} warm-up\n`,
);

const PAIRS: readonly [ResampleRate, ResampleRate][] = [
  [8000, 16000],
  [16000, 8000],
  [8000, 24000],
  [24000, 8000],
];
for (const [from, to] of PAIRS) {
  const resampler = new Resampler(from, to);
  const frames = [0, 1, 2, 3].map((k) =>
    tone(from, (from * FRAME_MS) / 1000, 440 + 500 * k).subarray(0, (from * FRAME_MS) / 1000),
  );
  const out = new Int16Array((to * FRAME_MS) / 1000);
  measure(`Resampler ${from} → ${to} processInto`, (i) => resampler.processInto(frames[i & 3]!, out));
}

for (const rate of [16000, 24000] as const) {
  const toProvider = createCallerToProvider('PCMU', { encoding: 'pcm16', sampleRate: rate });
  const g711Frames = [0, 1, 2, 3].map((k) => encodeG711('PCMU', tone(8000, 160, 300 + 700 * k)));
  measure(`caller → provider PCMU → pcm16@${rate}`, (i) => toProvider(g711Frames[i & 3]!).length);

  const toCaller = createProviderToCaller('PCMU', { encoding: 'pcm16', sampleRate: rate });
  const providerFrames = [0, 1, 2, 3].map((k) =>
    pcm16Bytes(tone(rate, (rate * FRAME_MS) / 1000, 300 + 700 * k)),
  );
  measure(`provider → caller pcm16@${rate} → PCMU`, (i) => toCaller(providerFrames[i & 3]!).length);
}
