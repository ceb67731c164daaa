/**
 * Rotary position embeddings, rotate-half form, with Llama 3's frequency scaling. The tables
 * are computed in float64 and rounded once, so they are identical on every backend.
 */
import type { ModelConfig } from '../config/model.js';
import { headDim } from '../config/model.js';

/** inverse frequencies theta^(-2i/hd), i < hd/2, scaled as Llama 3 does for long contexts */
export function inverseFrequencies(c: ModelConfig): Float64Array {
  const hd = headDim(c);
  const inv = new Float64Array(hd / 2);
  for (let i = 0; i < hd / 2; i++) inv[i] = 1 / c.rope_theta ** ((2 * i) / hd);
  const s = c.rope_scaling;
  if (!s) return inv;
  const lowWavelength = s.original_context_length / s.low_freq_factor;
  const highWavelength = s.original_context_length / s.high_freq_factor;
  for (let i = 0; i < inv.length; i++) {
    const wavelength = (2 * Math.PI) / inv[i];
    if (wavelength > lowWavelength) {
      inv[i] = inv[i] / s.factor;
    } else if (wavelength >= highWavelength) {
      const smooth =
        (s.original_context_length / wavelength - s.low_freq_factor) /
        (s.high_freq_factor - s.low_freq_factor);
      inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
    }
  }
  return inv;
}

/** cos and sin tables [seq, hd], each half repeated: angle(p, j) = p * inv[j mod hd/2] */
export function ropeTables(c: ModelConfig, seq: number): { cos: Float32Array; sin: Float32Array } {
  const hd = headDim(c);
  const inv = inverseFrequencies(c);
  const cos = new Float32Array(seq * hd);
  const sin = new Float32Array(seq * hd);
  for (let p = 0; p < seq; p++) {
    for (let j = 0; j < hd; j++) {
      const angle = p * inv[j % (hd / 2)];
      cos[p * hd + j] = Math.cos(angle);
      sin[p * hd + j] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
