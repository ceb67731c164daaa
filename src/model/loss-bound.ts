/**
 * The largest per-sample loss the swarm takes from a participant: ten times the loss of a
 * uniform guess over the vocabulary (ln V). A model at initialisation reports about ln V, and a
 * run whose losses pass ten times that has diverged; anything larger is a lie or a broken
 * model, and refusing it keeps every mean finite.
 */
export function lossBound(vocabSize: number): number {
  return 10 * Math.log(vocabSize);
}
