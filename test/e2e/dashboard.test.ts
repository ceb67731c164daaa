/// <reference lib="dom" />
/**
 * The dashboard in a real browser (Debian's chromium, driven by playwright-core) against a real
 * swarm (`iota local`): what it shows equals what the API says at that moment (with the miners
 * paused, so the moment holds still), it updates without a reload when an epoch merges, it logs
 * no errors and requests nothing from another origin. Screenshots go to test/artifacts/.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { request } from 'undici';
import type { SwarmStatus } from '../../src/protocol/swarm-messages.js';
import { IotaProcess, LOCAL_MINER_NAMES, killAll, runIota } from '../support/cli.js';

const CHROMIUM = process.env.IOTA_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = join(process.cwd(), 'test', 'artifacts');

let swarm: IotaProcess;
let url: string;
let browser: Browser;

async function api<T>(path: string): Promise<{ status: number; body: T }> {
  const r = await request(`${url}${path}`);
  return { status: r.statusCode, body: (await r.body.json()) as T };
}

/** The pids of `iota local`'s miners. */
function miners(): number[] {
  const pid = swarm.child.pid!;
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number)
    .filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('\0miner\0'));
}

const generation = (page: Page) =>
  page.evaluate(() => Number(document.body.dataset.generation ?? 0));

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`no browser at ${CHROMIUM}: run ./setup.sh --dev (it installs chromium)`);
  const dir = mkdtempSync(join(tmpdir(), 'iota-dashboard-'));
  swarm = new IotaProcess(['local', '--epochs', '1000', '--state-dir', join(dir, 'run'), '--json']);
  url = String((await swarm.waitFor((e) => e.event === 'started')).url);
  await swarm.waitFor((e) => e.event === 'epoch' && Number(e.epoch) >= 3);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  mkdirSync(ARTIFACTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  for (const pid of swarm ? miners() : []) process.kill(pid, 'SIGCONT');
  await browser?.close();
  await swarm?.kill('SIGTERM');
  await killAll();
});

describe('the dashboard', () => {
  it('shows what the API says, updates without a reload, and stays on its origin', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    let navigations = 0;
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('request', (r) => requests.push(r.url()));
    page.on('framenavigated', (f) => f === page.mainFrame() && navigations++);
    await page.goto(`${url}/dashboard`);
    await page.waitForFunction(() => Number(document.body.dataset.generation) >= 1);

    // Hold the moment still: with the miners paused nothing moves until their leases lapse.
    const paused = miners();
    expect(paused).toHaveLength(6);
    for (const pid of paused) process.kill(pid, 'SIGSTOP');
    const g0 = await generation(page);
    // Three refreshes later, the page shows a status fetched after every long poll of a paused
    // miner (2 s at most) was answered.
    await page.waitForFunction((g) => Number(document.body.dataset.generation) >= g + 3, g0);
    const { body: st } = await api<SwarmStatus>('/v1/swarm');
    const shown = await page.evaluate(() => ({
      epoch: document.getElementById('epoch')!.dataset.value,
      loss: document.getElementById('loss')!.dataset.value,
      phases: [...document.querySelectorAll<HTMLElement>('.stage')].map((e) => ({
        stage: e.dataset.stage,
        phase: e.querySelector('.phase')!.textContent,
      })),
      miners: [...document.querySelectorAll<HTMLTableRowElement>('#miners tbody tr')].map((tr) => ({
        id: tr.dataset.miner,
        name: tr.cells[0].textContent,
        stage: tr.cells[1].textContent,
        state: tr.cells[2].textContent,
        samples: tr.cells[4].textContent,
      })),
    }));
    expect(shown.epoch).toBe(String(st.epoch));
    expect(shown.loss).toBe(String(st.losses[0].loss));
    expect(shown.phases).toEqual(
      st.stages.map((s) => ({ stage: String(s.stage), phase: s.phase })),
    );
    const apiMiners = st.stages.flatMap((s) =>
      s.miners.map((m) => ({
        id: m.id,
        name: m.name,
        stage: String(s.stage),
        state: m.state,
        samples: String(m.done),
      })),
    );
    const byId = (a: { id?: string }, b: { id?: string }) => a.id!.localeCompare(b.id!);
    expect([...shown.miners].sort(byId)).toEqual(apiMiners.sort(byId));
    // Miners show the names they registered with (iota local names them by stage).
    expect(apiMiners.map((m) => m.name).sort()).toEqual(LOCAL_MINER_NAMES);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-desktop.png'), fullPage: true });

    // Going on: the page follows the next merge on its own.
    for (const pid of paused) process.kill(pid, 'SIGCONT');
    await page.waitForFunction((e) => Number(document.body.dataset.epoch) > e, st.epoch, {
      timeout: 60_000,
    });
    expect(navigations).toBe(1);

    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(
      (g) => Number(document.body.dataset.generation) > g,
      await generation(page),
    );
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
    // A phone-width page scrolls down, never sideways (the miners table scrolls in its box).
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
      390,
    );

    // One miner's page says in words where it stands.
    const id = shown.miners[0].id!;
    await page.goto(`${url}/dashboard/miner/${encodeURIComponent(id)}`);
    await page.waitForFunction(() => Number(document.body.dataset.generation) >= 1);
    expect(await page.textContent('#miner-title')).toBe(`miner ${id}`);
    expect(await page.textContent('#miner-why')).toMatch(/earning|probation/i);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-miner.png'), fullPage: true });

    expect(errors).toEqual([]);
    const origin = new URL(url).origin;
    expect(requests.length).toBeGreaterThan(5);
    expect(requests.filter((r) => !r.startsWith(`${origin}/`))).toEqual([]);
    await page.close();
  }, 180_000);

  it('answers bad input on the history route with a 400, never a 5xx', async () => {
    for (const q of ['since=-1', 'since=abc', 'since=99999999999', 'since=1.5', 'limit=-3', 'x=1'])
      expect({ q, status: (await api<unknown>(`/v1/history?${q}`)).status }).toEqual({
        q,
        status: 400,
      });
    const ok = await api<{ epochs: Array<{ epoch: number }> }>('/v1/history?since=1&limit=2');
    expect(ok.status).toBe(200);
    expect(ok.body.epochs.map((e) => e.epoch)).toEqual([1, 2]);
    // A miner's work and standing: every miner of the local swarm passed probation by now.
    const id = (await api<SwarmStatus>('/v1/swarm')).body.stages[0].miners[0].id;
    const m = await api<{
      miner: Array<{ state: string; samples: number }>;
      standing: { probation: boolean; passes: number; passes_to_release: number; failures: number };
    }>(`/v1/history?miner=${encodeURIComponent(id)}`);
    expect(m.body.miner.some((r) => r.state === 'merged' && r.samples > 0)).toBe(true);
    expect(m.body.standing).toMatchObject({ failures: 0 });
    expect(m.body.standing.probation).toBe(
      m.body.standing.passes < m.body.standing.passes_to_release,
    );
    // The same standing on the command line, in words.
    const cli = await runIota(['status', '--orchestrator', url, '--miner', id, '--json']);
    expect(cli.code).toBe(0);
    const words = JSON.parse(cli.stdout) as { stage: number; failures: number; why: string[] };
    expect(words).toMatchObject({ stage: 0, failures: 0 });
    expect(words.why.join(' ')).toMatch(/samples credited at stage 0/);
  });

  it('preflight: iota doctor --orchestrator measures the run’s stages and store here', async () => {
    const r = await runIota(['doctor', '--orchestrator', url, '--json']);
    expect(r.code).toBe(0);
    const p = JSON.parse(r.stdout) as {
      stages: Array<{
        stage: number;
        samples_per_s: number;
        keeps_up: boolean;
        swarm_samples_per_s: number;
      }>;
      store: { latency_ms: number; upload_mb_per_s: number; download_mb_per_s: number };
      verdict: { keeps_up: boolean; best_stage?: number; text: string };
    };
    expect(p.stages.map((s) => s.stage)).toEqual([0, 1, 2]);
    for (const s of p.stages) {
      expect(s.samples_per_s).toBeGreaterThan(0);
      expect(s.swarm_samples_per_s).toBeGreaterThan(0);
    }
    expect(p.store.latency_ms).toBeGreaterThan(0);
    expect(p.store.upload_mb_per_s).toBeGreaterThan(0);
    expect(p.store.download_mb_per_s).toBeGreaterThan(0);
    // tiny on loopback: every stage keeps up, and the verdict names one.
    expect(p.verdict).toMatchObject({ keeps_up: true });
    expect(p.verdict.text).toContain(`stage ${p.verdict.best_stage}`);

    // A miner asked to check first does so before it joins.
    const key = join(mkdtempSync(join(tmpdir(), 'iota-preflight-')), 'm.key');
    expect((await runIota(['keys', 'new', '--out', key])).code).toBe(0);
    const m = new IotaProcess([
      'miner',
      '--orchestrator',
      url,
      '--key',
      key,
      '--preflight',
      '--json',
    ]);
    const check = await m.waitFor((e) => e.event === 'preflight');
    expect(check).toMatchObject({ verdict: { keeps_up: true } });
    await m.waitFor((e) => e.event === 'joined');
    expect(m.events.findIndex((e) => e.event === 'preflight')).toBeLessThan(
      m.events.findIndex((e) => e.event === 'joined'),
    );
    await m.kill('SIGKILL');
  }, 60_000);
});
