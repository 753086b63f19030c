// IPC messages between bench/capacity.ts (the measured voxgate process) and bench/capacity-generator.ts
// (the traffic generator child, pinned to the other core).

/** Parent → generator. */
export type ToGenerator =
  | { type: 'init'; voxgatePorts: number[]; host: string }
  | { type: 'start' }
  /** Start of the steady-state window: reset the interval histograms and window counters. */
  | { type: 'mark' }
  /** End of the window: report interval statistics for it. */
  | { type: 'window' }
  | { type: 'stopSending' }
  | { type: 'totals' }
  | { type: 'exit' };

export interface IntervalStats {
  /** Intervals measured (all streams). */
  count: number;
  /** |interval − 20 ms| over all streams, µs. */
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  /** Per-stream p99 (µs): median and worst stream. */
  streamP99MedianUs: number;
  streamP99WorstUs: number;
}

export interface GeneratorWindow {
  intervals: IntervalStats;
  /** Generator's own event-loop delay p99 in the window (ms): the floor of what it can measure. */
  generatorEldP99Ms: number;
  /** Fraction of the generator's core it used in the window (event-loop utilization). */
  generatorElu: number;
  /** How late the generator sent packets versus their 20 ms schedule, p99 (ms). */
  sendLatenessP99Ms: number;
  sentInWindow: number;
  receivedInWindow: number;
}

export interface GeneratorTotals {
  sent: number;
  received: number;
  /** Received packets whose payload was not all silence (the echoed audio). */
  receivedAudio: number;
  /** Sequence-number gaps seen in what voxgate sent (packets lost on the way back, or never sent). */
  seqGaps: number;
  /** Datagrams that were not this call's RTP (e.g. RTCP aimed at a neighbouring port). */
  ignored: number;
}

/** Generator → parent. */
export type FromGenerator =
  | { type: 'ready'; ports: number[] }
  | { type: 'window'; window: GeneratorWindow }
  | { type: 'totals'; totals: GeneratorTotals }
  | { type: 'stopped'; sent: number };
