import {
  capacities,
  chooseStage,
  rebalance,
  type StageLoad,
} from '../../../src/orchestrator/swarm/scheduler.js';
import { JoinLoads } from '../../../src/orchestrator/swarm/membership.js';

const stage = (
  s: number,
  cost: number,
  miners: Array<[string, number | undefined, boolean?]>,
): StageLoad => ({
  stage: s,
  cost,
  miners: miners.map(([miner, rate, auto]) => ({ miner, rate, auto: auto ?? true })),
});

describe('stage assignment', () => {
  it('sends a newcomer to an empty stage first, lowest index on ties', () => {
    expect(chooseStage([stage(0, 1, [['a', undefined]]), stage(1, 1, []), stage(2, 1, [])])).toBe(
      1,
    );
    expect(chooseStage([stage(0, 1, []), stage(1, 1, []), stage(2, 1, [])])).toBe(0);
  });

  it('uses measured rates relative to cost, not miner counts', () => {
    // Stage 0 has two slow miners, stage 1 one fast one: stage 0 is the bottleneck (capacity 2 vs 10).
    const loads = [
      stage(0, 1, [
        ['a', 3],
        ['b', 3],
      ]),
      stage(1, 1, [['c', 30]]),
    ];
    expect(capacities(loads)).toEqual([2, 10]);
    expect(chooseStage(loads)).toBe(0);
    // Before anything is measured, one miner each: the stage that costs 20x more per sample is the bottleneck.
    expect(chooseStage([stage(0, 1, [['a', undefined]]), stage(1, 20, [['c', undefined]])])).toBe(
      1,
    );
    // A miner measured at a cheap stage is expected to be 20x slower per sample at the costly one.
    const loads2 = [
      stage(0, 1, [
        ['a', 30],
        ['b', 30],
      ]),
      stage(1, 20, [['c', undefined]]),
      stage(2, 1, []),
    ];
    expect(capacities(loads2)[1]).toBeCloseTo(30 / 20 / 3);
  });

  it('counts an unmeasured miner as the median measured speed', () => {
    const loads = [
      stage(0, 1, [
        ['a', 6],
        ['new', undefined],
      ]),
      stage(1, 1, [['c', 9]]),
    ];
    // speeds: a 6, c 9 -> median of [6, 9] is 6 (lower middle); stage 0 = (6 + 6) / 3 = 4, stage 1 = 3
    expect(capacities(loads)).toEqual([4, 3]);
    expect(chooseStage(loads)).toBe(1);
  });
});

describe('rebalancing at the epoch boundary', () => {
  it('moves an auto miner from a crowded stage to the starved one', () => {
    const moves = rebalance([
      stage(0, 1, [
        ['a', 3],
        ['b', 3],
        ['c', 3],
      ]),
      stage(1, 1, []),
      stage(2, 1, [['d', 3]]),
    ]);
    expect(moves).toEqual([{ miner: 'a', from: 0, to: 1 }]);
  });

  it('never empties a stage, never moves explicit miners, and leaves a balanced pipeline alone', () => {
    expect(rebalance([stage(0, 1, [['a', 3]]), stage(1, 1, [])])).toEqual([]);
    expect(
      rebalance([
        stage(0, 1, [
          ['a', 3, false],
          ['b', 3, false],
        ]),
        stage(1, 1, []),
      ]),
    ).toEqual([]);
    expect(
      rebalance([
        stage(0, 1, [
          ['a', 3],
          ['b', 3],
        ]),
        stage(1, 1, [
          ['c', 3],
          ['d', 3],
        ]),
      ]),
    ).toEqual([]);
  });

  it('fills tied bottlenecks one move at a time', () => {
    const moves = rebalance([
      stage(0, 1, [
        ['a', 3],
        ['b', 3],
        ['c', 3],
        ['d', 3],
      ]),
      stage(1, 1, [['e', 3]]),
      stage(2, 1, [['f', 3]]),
    ]);
    expect(moves).toEqual([
      { miner: 'a', from: 0, to: 1 },
      { miner: 'b', from: 0, to: 2 },
    ]);
  });

  it('only moves when the slowest stage gains', () => {
    // Moving the slow miner from stage 0 would leave stage 0 slower than stage 1 is now.
    expect(
      rebalance([
        stage(0, 1, [
          ['fast', 10],
          ['slow', 1],
        ]),
        stage(1, 1, [['m', 10]]),
      ]),
    ).toEqual([]);
  });
});

describe('a crowd of auto joins', () => {
  it('reads the members once a second, each join counting in the next one’s choice', () => {
    let reads = 0;
    const joins = new JoinLoads(() => {
      reads++;
      return [stage(0, 1, [['a', 10]]), stage(1, 1, []), stage(2, 2, [])];
    });
    const chosen = Array.from({ length: 7 }, (_, i) => joins.choose(`n${i}`, 1000 + i));
    // capacities: stage 0 has a measured miner; the newcomers count as the median (10), stage 2
    // costs twice as much per sample, so it takes two for every one elsewhere
    expect(chosen).toEqual([1, 2, 2, 0, 1, 2, 2]);
    expect(reads).toBe(1);
    joins.choose('late', 2000);
    expect(reads).toBe(2);
  });
});
