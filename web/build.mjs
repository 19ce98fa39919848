// Builds the web folder: generates the protocol descriptor from
// proto/switchboard.proto (protobufjs' parser, at build time only), then
// bundles the pages with esbuild into dist/, with the embeddable widget's
// loader (dist/widget.js, one classic script for other sites) and the
// icons. No CDN at run time: the bundles carry protobufjs' light runtime
// and the descriptor.
//
//   node build.mjs            gen + bundle (minified) into dist/
//   node build.mjs gen        only gen/proto.json (for the node tests)
import { mkdirSync, writeFileSync, copyFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const here = dirname(fileURLToPath(import.meta.url));
const protoFile = join(here, '..', 'proto', 'switchboard.proto');
const genDir = join(here, 'gen');
const distDir = join(here, 'dist');

function gen() {
  const root = new protobuf.Root();
  root.loadSync(protoFile, { keepCase: true });
  root.resolveAll();
  mkdirSync(genDir, { recursive: true });
  writeFileSync(join(genDir, 'proto.json'), JSON.stringify(root.toJSON()));
}

async function bundle() {
  const esbuild = await import('esbuild');
  mkdirSync(join(distDir, 'assets'), { recursive: true });
  const t0 = Date.now();
  await esbuild.build({
    entryPoints: {
      customer: join(here, 'src/pages/customer.js'),
      agent: join(here, 'src/pages/agent.js'),
      style: join(here, 'src/pages/style.css'),
    },
    outdir: join(distDir, 'assets'),
    bundle: true,
    format: 'esm',
    target: ['chrome110', 'firefox110', 'safari16'],
    // SB_WEB_MINIFY=0: readable names in profiles (tests/web/bench.mjs
    // SB_BENCH_TRACE); the served build is minified.
    minify: process.env.SB_WEB_MINIFY !== '0',
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  // The widget's loader runs on other sites: a classic script (IIFE),
  // at a stable path (/widget.js) for the snippet.
  await esbuild.build({
    entryPoints: [join(here, 'src/widget/widget.js')],
    outfile: join(distDir, 'widget.js'),
    bundle: true,
    format: 'iife',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: process.env.SB_WEB_MINIFY !== '0',
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const f of readdirSync(join(here, 'src/pages'))) {
    if (f.endsWith('.html') || f.endsWith('.svg') || f.endsWith('.png'))
      copyFileSync(join(here, 'src/pages', f), join(distDir, f));
  }
  writeFileSync(join(distDir, 'favicon.ico'), favicon());
  const sizes = readdirSync(join(distDir, 'assets'))
    .filter((f) => !f.endsWith('.map'))
    .map((f) => `${f} ${(statSync(join(distDir, 'assets', f)).size / 1024).toFixed(1)} KiB`);
  console.log(`web: built dist/ in ${Date.now() - t0} ms: ${sizes.join(', ')}`);
}

// /favicon.ico for the browsers that ask for it whatever the page says:
// a 32x32 icon (a blue square with a white speech bubble, as
// favicon.svg), drawn here as a 32-bit BMP inside an ICO.
function favicon() {
  const n = 32;
  const px = Buffer.alloc(n * n * 4);
  const inBubble = (x, y) => (x >= 6 && x < 26 && y >= 9 && y < 22) || (x >= 10 && x < 15 && y >= 22 && y < 26 && x - 10 < 26 - y);
  for (let y = 0; y < n; y++)
    for (let x = 0; x < n; x++) {
      const corner = Math.min(x, n - 1 - x) + Math.min(y, n - 1 - y) < 4;
      const [b, g, r] = inBubble(x, y) ? [255, 255, 255] : [0xeb, 0x63, 0x25];
      const o = ((n - 1 - y) * n + x) * 4; // rows bottom-up
      px.set([b, g, r, corner ? 0 : 255], o);
    }
  const head = Buffer.alloc(40);
  head.writeUInt32LE(40, 0);
  head.writeInt32LE(n, 4);
  head.writeInt32LE(n * 2, 8); // colour and mask rows
  head.writeUInt16LE(1, 12);
  head.writeUInt16LE(32, 14);
  const mask = Buffer.alloc((n * n) / 8);
  const img = Buffer.concat([head, px, mask]);
  const dir = Buffer.alloc(22);
  dir.writeUInt16LE(1, 2); // type: icon
  dir.writeUInt16LE(1, 4); // one image
  dir.writeUInt8(n, 6);
  dir.writeUInt8(n, 7);
  dir.writeUInt16LE(1, 10);
  dir.writeUInt16LE(32, 12);
  dir.writeUInt32LE(img.length, 14);
  dir.writeUInt32LE(22, 18);
  return Buffer.concat([dir, img]);
}

gen();
if (process.argv[2] !== 'gen') await bundle();
