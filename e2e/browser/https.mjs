#!/usr/bin/env node
// Drives headless Chromium through the demo served over the gateway's own
// HTTPS listener and writes what the browser saw as JSON evidence for the
// Go test (TestHTTPSInChromium) to judge:
//
//   node https.mjs --url http://localhost:REDIRECT_PORT/ --spki BASE64 --out evidence.json
//
// Chromium trusts the gateway's certificate alone, by the SHA-256 of its
// SubjectPublicKeyInfo (--ignore-certificate-errors-spki-list); any other
// certificate error still fails the page. Flow: open --url on the
// tls.redirect_http listener and follow its redirect to the https origin,
// sign in on the provider's page (#username, #password, #submit as
// DEMO_USERNAME, password the same, default alice), then from the page
// fetch /bff/user and /api/demo/whoami with X-CSRF: 1 and read what the
// page's JavaScript can: document.cookie, storage, the fetched bodies and
// the Performance API's nextHopProtocol of the document and the fetches.
//
// Output: {ok, error?, redirect: {from, status, location}, finalURL,
// navigationProtocol, fetches: [{path, status, body, protocol}],
// documentCookie, localStorage, sessionStorage, contextCookies,
// responses: [{url, status, headers, body?}], consoleErrors: [text]}. The
// evidence is written on failure too, with ok false and exit code 1.

import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { CHROMIUM_ARGS, launch } from './launch.mjs';

const GLOBAL_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 20_000;

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    spki: { type: 'string' },
    out: { type: 'string', default: 'evidence.json' },
  },
  strict: true,
});
if (!args.url || !args.spki) {
  console.error('usage: node https.mjs --url http://localhost:PORT/ --spki BASE64 [--out evidence.json]');
  process.exit(2);
}

const evidence = { ok: false, responses: [], consoleErrors: [] };
const pending = new Set();
let browser;

async function recordResponse(res) {
  const entry = { url: res.url(), status: res.status() };
  evidence.responses.push(entry);
  try {
    entry.headers = await res.allHeaders();
    if (entry.status < 300 || entry.status >= 400) entry.body = await res.text();
  } catch {
    // Navigated away before the body was read: leave it out.
  }
}

async function run() {
  browser = await launch({
    timeout: STEP_TIMEOUT_MS,
    args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${args.spki}`],
  });
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('response', (res) => {
    const p = recordResponse(res);
    pending.add(p);
    p.finally(() => pending.delete(p));
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/^Failed to load resource/.test(msg.text())) evidence.consoleErrors.push(msg.text());
  });
  page.on('pageerror', (err) => evidence.consoleErrors.push(String(err)));

  const landing = await page.goto(args.url, { waitUntil: 'load' });
  const hop = landing?.request().redirectedFrom();
  if (hop) {
    const r = await hop.response();
    evidence.redirect = { from: hop.url(), status: r?.status(), location: r ? await r.headerValue('location') : null };
  }
  evidence.finalURL = page.url();
  const origin = new URL(page.url()).origin;
  if (!landing?.ok()) throw new Error(`GET ${args.url} ended at ${page.url()} with ${landing?.status()}`);
  await page.waitForSelector('#status[data-state="signed-out"]');

  await page.click('#login');
  await page.waitForSelector('#username');
  const user = process.env.DEMO_USERNAME || 'alice';
  await page.fill('#username', user);
  await page.fill('#password', user);
  await page.click('#submit');
  await page.waitForURL((u) => u.origin === origin);
  await page.waitForSelector('#status[data-state="signed-in"]');

  Object.assign(evidence, await page.evaluate(async () => {
    const fetches = [];
    for (const path of ['/bff/user', '/api/demo/whoami']) {
      const res = await fetch(path, { headers: { 'X-CSRF': '1' }, credentials: 'same-origin', cache: 'no-store' });
      fetches.push({ path, status: res.status, body: await res.text() });
    }
    const resources = performance.getEntriesByType('resource');
    for (const f of fetches) {
      const url = new URL(f.path, location.href).href;
      f.protocol = resources.filter((e) => e.name === url).at(-1)?.nextHopProtocol ?? null;
    }
    return {
      fetches,
      navigationProtocol: performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? null,
      documentCookie: document.cookie,
      localStorage: { ...localStorage },
      sessionStorage: { ...sessionStorage },
    };
  }));
  evidence.contextCookies = await context.cookies();
  evidence.ok = true;
}

let code = 0;
const timer = setTimeout(() => {
  evidence.error = `timed out after ${GLOBAL_TIMEOUT_MS / 1000}s`;
  writeFile(args.out, JSON.stringify(evidence, null, 2)).finally(() => process.exit(1));
}, GLOBAL_TIMEOUT_MS);
try {
  await run();
} catch (err) {
  evidence.error = String(err?.message || err);
  code = 1;
} finally {
  await Promise.allSettled([...pending]);
  await browser?.close().catch(() => {});
  clearTimeout(timer);
}
await writeFile(args.out, JSON.stringify(evidence, null, 2));
process.exit(code);
