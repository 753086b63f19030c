import { SAMPLES_PER_FRAME } from '../core/audio.js';

// G.711 Appendix I packet loss concealment (pitch-period waveform repetition with overlap-add and a
// 20 %-per-10 ms fade), for 8 kHz linear frames of 20 ms. Constants are the Appendix's own names.

/** Shortest pitch period searched: 40 samples = 5 ms = 200 Hz. */
const PITCH_MIN = 40;
/** Longest pitch period searched: 120 samples = 15 ms ≈ 66 Hz. */
const PITCH_MAX = 120;
const PITCH_DIFF = PITCH_MAX - PITCH_MIN;
/** Longest overlap-add at the start of an erasure: ¼ of the longest pitch period (3.75 ms). */
const POVERLAP_MAX = PITCH_MAX >> 2;
/** History kept for pitch estimation and synthesis: 3 longest periods + one overlap = 390 samples (48.75 ms). */
export const PLC_HISTORY_SAMPLES = PITCH_MAX * 3 + POVERLAP_MAX;
/** Correlation window of the pitch search: 20 ms. */
const CORR_LEN = 160;
const CORR_BUF_LEN = CORR_LEN + PITCH_MAX;
/** Energy floor of the normalised correlation, so near-silence does not produce a random pitch. */
const CORR_MIN_POWER = 250;
/** Decimation of the coarse pitch search (refined at full rate around the best coarse lag). */
const NDEC = 2;
/** The merge into the first good frame lengthens by 4 ms per 10 ms of erasure (the longer the loss, the softer the join). */
const EOVERLAP_INCR = 32;
/** Appendix I works in 10 ms sub-frames; a 20 ms frame is two of them. */
const SUBFRAME = 80;
/** Attenuation per 10 ms after the first 10 ms of an erasure (reaches silence after 60 ms). */
const ATTEN_FAC = 0.2;
const ATTEN_INCR = ATTEN_FAC / SUBFRAME;
/** Sub-frames after which the output is silence: 6 × 10 ms = 60 ms. */
const MAX_SYNTH_SUBFRAMES = 6;

function clip16(x: number): number {
  return x > 32767 ? 32767 : x < -32768 ? -32768 : Math.round(x);
}

/**
 * Conceals lost 20 ms frames of 8 kHz speech (ITU-T G.711 Appendix I): on a loss, estimate the pitch
 * from the last 48.75 ms, repeat the last pitch period (then two, then three, to avoid a buzzy tone)
 * with overlap-add at every junction, fade 20 % per 10 ms after the first 10 ms and go silent after
 * 60 ms; on the first good frame after a loss, cross-fade from the synthetic signal into it.
 *
 * One deviation from the Appendix: it delays all output by 3.75 ms so that the start of an erasure can
 * overlap-add into not-yet-played history. Here latency matters more, so there is no delay: the step
 * between the last played sample and the first synthetic one is instead ramped out over ¼ pitch period
 * inside the synthetic signal.
 *
 * Allocation-free per frame: `good()` works in place, `conceal()` reuses one output buffer.
 */
export class PacketLossConcealer {
  readonly #history = new Float32Array(PLC_HISTORY_SAMPLES);
  readonly #pitchBuf = new Float32Array(PLC_HISTORY_SAMPLES);
  readonly #lastQ = new Float32Array(POVERLAP_MAX);
  readonly #tmp = new Float32Array(POVERLAP_MAX);
  readonly #overlap = new Float32Array(SUBFRAME);
  readonly #work = new Float32Array(SAMPLES_PER_FRAME);
  readonly #out = new Int16Array(SAMPLES_PER_FRAME);
  /** 10 ms sub-frames concealed since the last good frame. */
  #eraseCount = 0;
  #pitch = PITCH_MIN;
  #pOverlap = PITCH_MIN >> 2;
  #pOffset = 0;
  #pitchBufLen = PITCH_MIN;
  #pitchBufStart = PLC_HISTORY_SAMPLES - PITCH_MIN;

  /** Whether the last frame handed out was synthetic. */
  get concealing(): boolean {
    return this.#eraseCount > 0;
  }

  /**
   * Takes a received frame (160 samples). After a loss, its start is cross-faded with the continuing
   * synthetic signal — in place. Returns `frame` itself.
   */
  good(frame: Int16Array): Int16Array {
    if (frame.length !== SAMPLES_PER_FRAME) {
      throw new RangeError(
        `PacketLossConcealer: frame must be ${SAMPLES_PER_FRAME} samples, got ${frame.length}`,
      );
    }
    if (this.#eraseCount > 0) {
      const olen = Math.min(this.#pOverlap + (this.#eraseCount - 1) * EOVERLAP_INCR, SUBFRAME);
      this.#synthesize(this.#overlap, 0, olen);
      this.#overlapAddAtEnd(frame, olen);
      this.#eraseCount = 0;
    }
    this.#saveSpeech(frame);
    return frame;
  }

  /**
   * Returns 160 synthetic samples for one lost frame. The buffer is reused: it is valid until the next
   * call of `conceal()`.
   */
  conceal(): Int16Array {
    const work = this.#work;
    const startsErasure = this.#eraseCount === 0;
    this.#concealSubframe(work, 0);
    if (startsErasure) this.#smoothJunction(work);
    this.#concealSubframe(work, SUBFRAME);
    const out = this.#out;
    for (let i = 0; i < SAMPLES_PER_FRAME; i++) out[i] = clip16(work[i]!);
    this.#saveSpeech(out);
    return out;
  }

  /** Forgets the history (new stream, or after silence that was not concealed). */
  reset(): void {
    this.#history.fill(0);
    this.#eraseCount = 0;
  }

  /** One 10 ms sub-frame of synthetic speech into `out[off .. off+80)` (Appendix I `dofe`). */
  #concealSubframe(out: Float32Array, off: number): void {
    const end = PLC_HISTORY_SAMPLES;
    const pb = this.#pitchBuf;
    if (this.#eraseCount === 0) {
      pb.set(this.#history);
      this.#pitch = this.#findPitch();
      this.#pOverlap = this.#pitch >> 2;
      const q = this.#pOverlap;
      for (let i = 0; i < q; i++) this.#lastQ[i] = pb[end - q + i]!;
      this.#pOffset = 0;
      this.#pitchBufLen = this.#pitch;
      this.#pitchBufStart = end - this.#pitchBufLen;
      // Blend the tail of the repeated period into the samples one period earlier, so the cycle wraps
      // around without a step.
      this.#overlapAdd(this.#lastQ, 0, pb, this.#pitchBufStart - q, pb, end - q, q);
      this.#synthesize(out, off, SUBFRAME);
    } else if (this.#eraseCount === 1 || this.#eraseCount === 2) {
      // Lengthen the repeated segment by one period (avoids a metallic buzz), cross-fading into it.
      const q = this.#pOverlap;
      const savedOffset = this.#pOffset;
      this.#synthesize(this.#tmp, 0, q);
      this.#pOffset = savedOffset;
      while (this.#pOffset > this.#pitch) this.#pOffset -= this.#pitch;
      this.#pitchBufLen += this.#pitch;
      this.#pitchBufStart = end - this.#pitchBufLen;
      this.#overlapAdd(this.#lastQ, 0, pb, this.#pitchBufStart - q, pb, end - q, q);
      this.#synthesize(out, off, SUBFRAME);
      this.#overlapAdd(this.#tmp, 0, out, off, out, off, q);
      this.#scale(out, off);
    } else if (this.#eraseCount >= MAX_SYNTH_SUBFRAMES) {
      out.fill(0, off, off + SUBFRAME);
    } else {
      this.#synthesize(out, off, SUBFRAME);
      this.#scale(out, off);
    }
    this.#eraseCount++;
  }

  /**
   * Zero-latency replacement for the Appendix's overlap-add into delayed history: the first synthetic
   * sample should follow the last played one as it followed its own predecessor one period earlier;
   * the difference is ramped out over ¼ pitch period.
   */
  #smoothJunction(out: Float32Array): void {
    const end = PLC_HISTORY_SAMPLES;
    const step = this.#history[end - 1]! - this.#history[end - this.#pitch - 1]!;
    const q = this.#pOverlap;
    for (let i = 0; i < q; i++) out[i] = out[i]! + (step * (q - i)) / (q + 1);
  }

  /** Appendix I `getfespeech`: cyclic copy of the pitch buffer. */
  #synthesize(out: Float32Array, off: number, count: number): void {
    const pb = this.#pitchBuf;
    let o = off;
    let left = count;
    while (left > 0) {
      const n = Math.min(this.#pitchBufLen - this.#pOffset, left);
      const from = this.#pitchBufStart + this.#pOffset;
      for (let i = 0; i < n; i++) out[o + i] = pb[from + i]!;
      this.#pOffset += n;
      if (this.#pOffset === this.#pitchBufLen) this.#pOffset = 0;
      o += n;
      left -= n;
    }
  }

  /** Linear fade of 20 % per 10 ms, continuing from where the previous sub-frame ended. */
  #scale(out: Float32Array, off: number): void {
    let g = 1 - (this.#eraseCount - 1) * ATTEN_FAC;
    for (let i = 0; i < SUBFRAME; i++) {
      out[off + i] = out[off + i]! * g;
      g -= ATTEN_INCR;
    }
  }

  /** Triangular cross-fade from `l` into `r`, written to `o` (may alias `r`). */
  #overlapAdd(
    l: Float32Array,
    lOff: number,
    r: Float32Array,
    rOff: number,
    o: Float32Array,
    oOff: number,
    count: number,
  ): void {
    const incr = 1 / count;
    let lw = 1 - incr;
    let rw = incr;
    for (let i = 0; i < count; i++) {
      const t = lw * l[lOff + i]! + rw * r[rOff + i]!;
      o[oOff + i] = t > 32767 ? 32767 : t < -32768 ? -32768 : t;
      lw -= incr;
      rw += incr;
    }
  }

  /** Cross-fade from the (attenuated) synthetic signal into the first good frame, in place. */
  #overlapAddAtEnd(frame: Int16Array, count: number): void {
    const incr = 1 / count;
    const gain = Math.max(0, 1 - (this.#eraseCount - 1) * ATTEN_FAC);
    const incrG = incr * gain;
    let lw = (1 - incr) * gain;
    let rw = incr;
    const f = this.#overlap;
    for (let i = 0; i < count; i++) {
      frame[i] = clip16(lw * f[i]! + rw * frame[i]!);
      lw -= incrG;
      rw += incr;
    }
  }

  #saveSpeech(frame: Int16Array): void {
    const h = this.#history;
    h.copyWithin(0, SAMPLES_PER_FRAME);
    h.set(frame, PLC_HISTORY_SAMPLES - SAMPLES_PER_FRAME);
  }

  /**
   * Appendix I `findpitch`: the lag (40..120 samples) whose 20 ms segment best matches the last 20 ms,
   * by normalised cross-correlation; coarse search on every second sample, then refined at full rate.
   */
  #findPitch(): number {
    const pb = this.#pitchBuf;
    const end = PLC_HISTORY_SAMPLES;
    const l = end - CORR_LEN;
    let r = end - CORR_BUF_LEN;
    let energy = 0;
    let corr = 0;
    for (let i = 0; i < CORR_LEN; i += NDEC) {
      energy += pb[r + i]! * pb[r + i]!;
      corr += pb[r + i]! * pb[l + i]!;
    }
    let bestCorr = corr / Math.sqrt(Math.max(energy, CORR_MIN_POWER));
    let bestMatch = 0;
    for (let j = NDEC; j <= PITCH_DIFF; j += NDEC) {
      energy -= pb[r]! * pb[r]!;
      energy += pb[r + CORR_LEN]! * pb[r + CORR_LEN]!;
      r += NDEC;
      corr = 0;
      for (let i = 0; i < CORR_LEN; i += NDEC) corr += pb[r + i]! * pb[l + i]!;
      corr /= Math.sqrt(Math.max(energy, CORR_MIN_POWER));
      if (corr >= bestCorr) {
        bestCorr = corr;
        bestMatch = j;
      }
    }
    const lo = Math.max(0, bestMatch - (NDEC - 1));
    const hi = Math.min(PITCH_DIFF, bestMatch + (NDEC - 1));
    let rp = end - CORR_BUF_LEN + lo;
    energy = 0;
    corr = 0;
    for (let i = 0; i < CORR_LEN; i++) {
      energy += pb[rp + i]! * pb[rp + i]!;
      corr += pb[rp + i]! * pb[l + i]!;
    }
    bestCorr = corr / Math.sqrt(Math.max(energy, CORR_MIN_POWER));
    bestMatch = lo;
    for (let j = lo + 1; j <= hi; j++) {
      energy -= pb[rp]! * pb[rp]!;
      energy += pb[rp + CORR_LEN]! * pb[rp + CORR_LEN]!;
      rp++;
      corr = 0;
      for (let i = 0; i < CORR_LEN; i++) corr += pb[rp + i]! * pb[l + i]!;
      corr /= Math.sqrt(Math.max(energy, CORR_MIN_POWER));
      if (corr > bestCorr) {
        bestCorr = corr;
        bestMatch = j;
      }
    }
    return PITCH_MAX - bestMatch;
  }
}
