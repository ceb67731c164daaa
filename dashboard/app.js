/*
 * The dashboard's script: polls the orchestrator's public routes (/v1/swarm, /v1/scores,
 * /v1/verdicts, /v1/history) every two seconds and renders the run, or one miner's page
 * (/dashboard/miner/<id>). Nothing is fetched from anywhere but this origin. The last data
 * rendered is kept in `window.iotaDashboard` (with a generation count), for tests and curious
 * readers.
 */
'use strict';
(() => {
  const EVERY_MS = 2000;
  /** per-miner verdicts are fetched every this many refreshes (one request per miner) */
  const VERDICTS_EVERY = 5;
  const $ = (id) => document.getElementById(id);
  const minerId = decodeURIComponent(
    (location.pathname.match(/^\/dashboard\/miner\/([^/]+)$/) || [])[1] || '',
  );
  const data = {
    generation: 0,
    status: null,
    scores: null,
    history: new Map(),
    verdicts: new Map(),
    config: null,
    seq: 0,
    minerHistory: [],
    standing: null,
  };
  window.iotaDashboard = data;
  const sort = { key: 'stage', asc: true };
  let refreshes = 0;

  const fixed = (x, d) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '–');
  const int = (x) => (typeof x === 'number' ? Math.round(x).toLocaleString('en') : '–');
  const secs = (ms) => (typeof ms === 'number' ? `${(ms / 1000).toFixed(1)} s` : '–');
  const short = (id) => id.slice(0, 10);
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  };

  async function get(path) {
    const r = await fetch(path, { cache: 'no-store' });
    if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
    return r.json();
  }

  /** Epochs from the last one known on (it may have changed: a later held-out loss). */
  async function fetchHistory(miner) {
    const known = [...data.history.keys()];
    const since = known.length ? Math.max(...known) : 0;
    const h = await get(
      `/v1/history?since=${since}${miner ? `&miner=${encodeURIComponent(miner)}` : ''}`,
    );
    for (const row of h.epochs) data.history.set(row.epoch, row);
    data.config = h.config;
    data.seq = h.seq;
    if (miner) {
      data.minerHistory = h.miner || [];
      data.standing = h.standing || null;
    }
  }

  async function fetchVerdicts(ids) {
    await Promise.all(
      ids.map(async (id) => {
        const v = await get(`/v1/verdicts?miner=${encodeURIComponent(id)}&limit=1000`);
        data.verdicts.set(id, v.verdicts);
      }),
    );
  }

  function minerIds(status) {
    return status.stages.flatMap((s) => s.miners.map((m) => m.id));
  }

  async function refresh() {
    const [status, scores] = await Promise.all([get('/v1/swarm'), get('/v1/scores')]);
    await fetchHistory(minerId);
    const ids = minerId ? [minerId] : minerIds(status);
    if (refreshes++ % VERDICTS_EVERY === 0 || ids.some((id) => !data.verdicts.has(id)))
      await fetchVerdicts(ids);
    data.status = status;
    data.scores = scores;
    if (minerId) renderMiner();
    else renderRun();
    data.generation++;
    document.body.dataset.generation = String(data.generation);
    $('updated').textContent = `updated ${new Date().toLocaleTimeString('en-GB')}`;
  }

  // ---- charts -------------------------------------------------------------------------------

  const charts = {};
  function chart(id, series, xLabel) {
    if (charts[id]) return charts[id];
    const box = $(id);
    const opts = {
      width: box.clientWidth,
      height: box.clientHeight - 30,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      axes: [
        {
          stroke: css('--muted'),
          grid: { stroke: css('--line') },
          label: xLabel,
          // epochs are whole numbers
          ...(xLabel === 'epoch' ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] } : {}),
        },
        { stroke: css('--muted'), grid: { stroke: css('--line') } },
      ],
      scales: { x: { time: false } },
      series: [{ label: xLabel }, ...series],
    };
    charts[id] = new uPlot(opts, [[], ...series.map(() => [])], box);
    return charts[id];
  }
  window.addEventListener('resize', () => {
    for (const [id, c] of Object.entries(charts))
      c.setSize({ width: $(id).clientWidth, height: c.height });
  });

  // ---- the run ------------------------------------------------------------------------------

  function epochRows() {
    return [...data.history.values()].sort((a, b) => a.epoch - b.epoch);
  }

  function renderRun() {
    const s = data.status;
    const rows = epochRows();
    document.body.dataset.epoch = String(s.epoch);
    $('run').textContent = `run ${s.run}`;
    const lastLoss = s.losses[0];
    const lastEval = s.evals[0];
    const done = rows.filter((r) => r.ended_at);
    const recent = done.slice(-5);
    const spanS = recent.length
      ? (recent[recent.length - 1].ended_at - recent[0].started_at) / 1000
      : 0;
    const tps =
      spanS > 0 ? (recent.reduce((a, r) => a + r.merged, 0) * data.seq) / spanS : undefined;
    const summary = $('summary');
    summary.replaceChildren(
      el('span', {}, 'epoch ', el('b', { id: 'epoch', 'data-value': String(s.epoch) }, s.epoch)),
      el(
        'span',
        {},
        'loss ',
        el(
          'b',
          { id: 'loss', 'data-value': lastLoss ? String(lastLoss.loss) : '' },
          fixed(lastLoss && lastLoss.loss, 4),
        ),
      ),
      el('span', {}, 'held-out ', el('b', { id: 'eval' }, fixed(lastEval && lastEval.loss, 4))),
      el('span', {}, el('b', {}, int(tps)), ' tokens/s'),
      el(
        'span',
        {},
        el('b', {}, int(rows.reduce((a, r) => a + r.merged, 0) * data.seq)),
        ' tokens',
      ),
      el('span', {}, el('b', {}, done.length), ' merges'),
    );
    renderCharts(rows);
    renderStages(s);
    renderTimeline(rows);
    renderMiners(s);
    renderFailed();
    renderConfig();
  }

  function renderCharts(rows) {
    let tokens = 0;
    const x = [];
    const loss = [];
    const evalLoss = [];
    for (const r of rows) {
      tokens += r.merged * data.seq;
      if (r.loss === null && r.eval_loss === null) continue;
      x.push(tokens);
      loss.push(r.loss);
      evalLoss.push(r.eval_loss);
    }
    chart(
      'loss-chart',
      [
        { label: 'training', stroke: css('--train'), width: 2 },
        { label: 'held-out', stroke: css('--sync'), width: 2, points: { show: true } },
      ],
      'tokens',
    ).setData([x, loss, evalLoss]);
    const done = rows.filter((r) => r.ended_at && r.ended_at > r.started_at);
    chart('speed-chart', [{ label: 'tokens/s', stroke: css('--good'), width: 2 }], 'epoch').setData(
      [
        done.map((r) => r.epoch),
        done.map((r) => (r.merged * data.seq) / ((r.ended_at - r.started_at) / 1000)),
      ],
    );
  }

  function renderStages(s) {
    const now = s.server_time;
    $('stages').replaceChildren(
      ...s.stages.map((st) => {
        const count = (state) => st.miners.filter((m) => m.state === state).length;
        const left = st.deadline
          ? `${Math.max(0, Math.round((st.deadline - now) / 1000))} s left`
          : '';
        return el(
          'div',
          { class: 'stage', 'data-stage': String(st.stage) },
          el('h3', {}, `stage ${st.stage}`, el('span', { class: `phase ${st.phase}` }, st.phase)),
          el(
            'div',
            { class: 'muted' },
            `epoch ${st.epoch}, weights of epoch ${st.manifest.epoch}${left ? ` · ${left}` : ''}`,
          ),
          el(
            'div',
            {},
            `${count('working')} working, ${count('idle')} idle, `,
            el(
              'span',
              { class: count('silent') ? 'state-silent' : '' },
              `${count('silent')} silent`,
            ),
          ),
          el(
            'div',
            {},
            `${fixed(st.capacity, 1)} samples/s · queue ${st.queue.ready} ready, ${st.queue.leased} leased, ${st.queue.held} held`,
          ),
          el('div', { class: 'note' }, st.note || ''),
        );
      }),
    );
  }

  function renderTimeline(rows) {
    const shown = rows.slice(-12);
    const now = data.status.server_time;
    const parts = (r) => {
      const end = r.ended_at || now;
      const closed = r.closed_at || end;
      const drained = r.drained_at || (r.closed_at ? end : closed);
      return [closed - r.started_at, drained - closed, end - drained];
    };
    // Scaled to three times the median epoch: a slow first epoch (start-up) does not flatten the rest.
    const totals = shown.map((r) => parts(r).reduce((a, b) => a + b, 0)).sort((a, b) => a - b);
    const longest = Math.max(
      1,
      Math.min(totals[totals.length - 1], 3 * totals[totals.length >> 1]),
    );
    $('timeline').replaceChildren(
      ...shown.map((r) => {
        const [train, drain, sync] = parts(r);
        const pct = (ms) => `${Math.min(100, (100 * Math.max(0, ms)) / longest)}%`;
        return el(
          'div',
          {
            class: 'row',
            'data-epoch': String(r.epoch),
            title: `training ${secs(train)}, drain ${secs(drain)}, upload and merge ${secs(sync)}`,
          },
          el('span', {}, `epoch ${r.epoch}`),
          el(
            'div',
            { class: 'bar' },
            el('span', { class: 'train', style: `width:${pct(train)}` }),
            el('span', { class: 'drain', style: `width:${pct(drain)}` }),
            el('span', { class: 'sync', style: `width:${pct(sync)}` }),
          ),
          el('span', { class: 'num' }, r.ended_at ? secs(r.ended_at - r.started_at) : 'now'),
        );
      }),
    );
  }

  function minerRows(s) {
    const score = new Map(((data.scores && data.scores.scores) || []).map((x) => [x.miner, x]));
    return s.stages.flatMap((st) =>
      st.miners.map((m) => {
        const sc = score.get(m.id);
        const v = data.verdicts.get(m.id) || [];
        return {
          id: m.id,
          name: m.name || short(m.id),
          stage: st.stage,
          state: m.state,
          rate: m.rate,
          done: m.done,
          passed: v.filter((x) => x.passed).length,
          failed: v.filter((x) => !x.passed).length,
          standing: sc ? (sc.probation ? 'probation' : 'trusted') : 'new',
          share: sc ? sc.weight : 0,
        };
      }),
    );
  }

  function renderMiners(s) {
    const rows = minerRows(s).sort((a, b) => {
      const x = a[sort.key];
      const y = b[sort.key];
      const c =
        typeof x === 'number' || typeof y === 'number'
          ? (x || 0) - (y || 0)
          : String(x).localeCompare(String(y));
      return (sort.asc ? c : -c) || a.stage - b.stage || a.id.localeCompare(b.id);
    });
    for (const th of document.querySelectorAll('#miners th')) {
      th.classList.toggle('sorted', th.dataset.key === sort.key);
      th.classList.toggle('asc', th.dataset.key === sort.key && sort.asc);
    }
    $('miners').tBodies[0].replaceChildren(
      ...rows.map((r) =>
        el(
          'tr',
          { 'data-miner': r.id },
          el('td', {}, el('a', { href: `/dashboard/miner/${encodeURIComponent(r.id)}` }, r.name)),
          el('td', {}, r.stage),
          el('td', { class: `state-${r.state}` }, r.state),
          el('td', { class: 'num' }, fixed(r.rate, 2)),
          el('td', { class: 'num' }, r.done),
          el('td', { class: 'num' }, r.passed),
          el('td', { class: `num ${r.failed ? 'fail' : ''}` }, r.failed),
          el('td', {}, r.standing),
          el('td', { class: 'num' }, `${fixed(100 * r.share, 1)}%`),
        ),
      ),
    );
  }
  for (const th of document.querySelectorAll('#miners th'))
    th.addEventListener('click', () => {
      sort.asc = sort.key === th.dataset.key ? !sort.asc : true;
      sort.key = th.dataset.key;
      if (data.status) renderMiners(data.status);
    });

  function renderFailed() {
    const failed = [...data.verdicts.entries()]
      .flatMap(([id, vs]) => vs.filter((v) => !v.passed).map((v) => ({ ...v, id })))
      .sort((a, b) => b.at - a.at)
      .slice(0, 8);
    $('failed').replaceChildren(
      ...(failed.length
        ? failed.map((v) =>
            el(
              'div',
              { class: 'fail' },
              `epoch ${v.epoch}, stage ${v.stage}, ${v.kind} of ${short(v.id)} (${v.reason}): relative error ${fixed(v.rel_err, 4)}; ${v.detail}`,
            ),
          )
        : ['none']),
    );
  }

  function renderConfig() {
    const c = data.config;
    if (!c) return;
    const params = c.params.reduce((a, b) => a + b, 0);
    const ph = c.run.phases || {};
    const items = [
      [
        'model',
        `${c.model.name}: ${(params / 1e6).toFixed(2)} M parameters in ${c.params.length} stages`,
      ],
      [
        'shape',
        `dim ${c.model.dim}, ${c.model.n_layers} layers, seq ${c.model.seq}, vocab ${c.model.vocab_size}`,
      ],
      [
        'epoch',
        `${c.run.samples_per_epoch} samples in items of ${c.run.batch}, ${c.run.in_flight} in flight`,
      ],
      [
        'optimizer',
        `AdamW lr ${c.run.optimizer.lr}, weight decay ${c.run.optimizer.weight_decay}, clip ${c.run.optimizer.clip}`,
      ],
      ['schedule', `${c.run.schedule.kind}, ${c.run.schedule.total_epochs} epochs`],
      [
        'deadlines',
        `drain ${ph.drain_s} s, upload ${ph.upload_s} s, merge ${ph.merge_s} s, lease ${ph.lease_s} s`,
      ],
    ];
    $('config').replaceChildren(
      ...items.map(([k, v]) => el('div', {}, el('span', { class: 'muted' }, `${k} `), v)),
    );
  }

  // ---- one miner ----------------------------------------------------------------------------

  function renderMiner() {
    $('run-view').hidden = true;
    $('miner-view').hidden = false;
    const s = data.status;
    document.body.dataset.epoch = String(s.epoch);
    $('run').textContent = `run ${s.run}`;
    const stage = s.stages.find((st) => st.miners.some((m) => m.id === minerId));
    const m = stage && stage.miners.find((x) => x.id === minerId);
    const sc = ((data.scores && data.scores.scores) || []).find((x) => x.miner === minerId);
    const verdicts = data.verdicts.get(minerId) || [];
    $('miner-title').textContent = `miner ${minerId}`;
    $('miner-figures').replaceChildren(
      el('span', {}, 'stage ', el('b', {}, stage ? stage.stage : '–')),
      el('span', {}, 'state ', el('b', {}, m ? m.state : 'not in the swarm')),
      el('span', {}, el('b', {}, fixed(m && m.rate, 2)), ' samples/s'),
      el('span', {}, el('b', {}, m ? m.done : '–'), ' samples'),
      el(
        'span',
        {},
        'verdicts ',
        el('b', {}, verdicts.filter((v) => v.passed).length),
        ' passed, ',
        el('b', {}, verdicts.filter((v) => !v.passed).length),
        ' failed',
      ),
      el('span', {}, 'score share ', el('b', {}, `${fixed(100 * (sc ? sc.weight : 0), 1)}%`)),
    );
    $('miner-why').textContent = why(m, stage, sc, verdicts, s.server_time);
    const byEpoch = new Map();
    for (const r of data.minerHistory)
      if (r.state === 'merged') byEpoch.set(r.epoch, (byEpoch.get(r.epoch) || 0) + r.samples);
    const epochs = [...byEpoch.keys()].sort((a, b) => a - b);
    chart(
      'miner-chart',
      [{ label: 'samples merged', stroke: css('--train'), width: 2, points: { show: true } }],
      'epoch',
    ).setData([epochs, epochs.map((e) => byEpoch.get(e))]);
    $('verdicts').tBodies[0].replaceChildren(
      ...verdicts
        .slice()
        .reverse()
        .map((v) =>
          el(
            'tr',
            {},
            el('td', {}, v.epoch),
            el('td', {}, v.stage),
            el('td', {}, v.kind),
            el('td', {}, v.reason),
            el('td', { class: v.passed ? 'pass' : 'fail' }, v.passed ? 'passed' : 'failed'),
            el('td', { class: 'num' }, fixed(v.rel_err, 5)),
            el('td', {}, v.detail),
          ),
        ),
    );
  }

  /** Why this miner is or isn't earning, in plain words. */
  function why(m, stage, sc, verdicts, now) {
    if (!m)
      return 'Not in the swarm now: it has not joined, or it left. Miners earn for verified work while they are members of a stage.';
    const out = [];
    const st = data.standing;
    const failed = verdicts.filter((v) => !v.passed);
    if (m.state === 'idle' && m.idle) out.push(`Idle: ${m.idle.message} (${m.idle.reason}).`);
    if (m.state === 'silent')
      out.push(
        `Not earning: silent for ${Math.round((now - m.last_seen) / 1000)} s (no heartbeat); its leases lapse and its work goes to others.`,
      );
    if (st && st.probation && st.quarantined_at !== null) {
      const last = failed[failed.length - 1];
      out.push(
        `Quarantined since ${new Date(st.quarantined_at).toLocaleTimeString('en-GB')} after a failed check` +
          (last ? ` (${last.kind} of epoch ${last.epoch}: ${last.detail})` : '') +
          `: its credit at that stage and epoch was voided and all its work is checked until it passes ${st.passes_to_release - st.passes} more (${st.passes} of ${st.passes_to_release}).`,
      );
    } else if (st && st.probation)
      out.push(
        `On probation (new): all its work is checked until it passes ${st.passes_to_release} checks (${st.passes} so far); its share grows as they pass.`,
      );
    const late = data.minerHistory
      .filter((r) => r.state === 'dropped:upload_late')
      .reduce((a, r) => a + r.samples, 0);
    if (late)
      out.push(
        `${late} of its samples were dropped because its gradient upload came after the deadline.`,
      );
    const credited = data.minerHistory
      .filter((r) => stage && r.epoch === stage.epoch && r.state === 'credited')
      .reduce((a, r) => a + r.samples, 0);
    if (m.state !== 'silent')
      out.push(`This epoch: ${credited} samples credited, ${m.state} at stage ${stage.stage}.`);
    if (sc && sc.weight > 0)
      out.push(
        `Earning ${fixed(100 * sc.weight, 1)}% of the incentive for ${int(sc.work_flops / 1e9)} GFLOP of verified work` +
          (failed.length
            ? `, less penalties for ${failed.length} failed check${failed.length > 1 ? 's' : ''}.`
            : '.'),
      );
    else
      out.push(
        m.done === 0
          ? 'Not earning yet: no work done.'
          : 'Not earning yet: its work is not yet verified and merged.',
      );
    return out.join(' ');
  }

  // ---- the loop -----------------------------------------------------------------------------

  async function loop() {
    try {
      await refresh();
    } catch (e) {
      $('updated').textContent = `cannot reach the orchestrator: ${e.message}`;
    }
    setTimeout(loop, EVERY_MS);
  }
  loop();
})();
