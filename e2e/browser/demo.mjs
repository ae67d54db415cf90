#!/usr/bin/env node
// Drives headless Chromium through the Cloakroom demo and writes what the
// browser saw as JSON evidence for the Go end-to-end tests to judge:
//
//   node demo.mjs --url http://localhost:PORT/ --out evidence.json
//
// Flow: open the SPA (expects #status[data-state=signed-out]), click #login,
// sign in on the provider's page as alice/alice (#username, #password,
// #submit), wait for signed-in, click #call-api and wait for
// #api-result[data-status], capture step "signed-in", click #logout, wait for
// the round trip through the provider's end-session endpoint back to a
// signed-out SPA, capture step "signed-out".
//
// Output: {url, ok, error?, steps: [{name, documentCookie, localStorage,
// sessionStorage, claimsText, apiText, apiStatus, contextCookies, url}],
// responses: [{url, method, status, resourceType, headers, headersArray,
// requestHeaders, body?}], navigations: [url], consoleErrors: [{type (csp,
// network, console or pageerror), text, location?}]}. The evidence is written on failure too, with ok false; the
// exit code is then 1 and failure.png beside this script shows the page.
//
// Environment: CHROMIUM (default /usr/bin/chromium), DEMO_USERNAME and
// DEMO_PASSWORD (default alice/alice).

import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launch } from './launch.mjs';

const GLOBAL_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 20_000;
const MAX_BODY_CHARS = 1 << 20;
const FAILURE_PNG = fileURLToPath(new URL('./failure.png', import.meta.url));

function usage(message) {
  console.error(`demo.mjs: ${message}\nusage: node demo.mjs --url http://localhost:PORT/ [--out evidence.json]`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      url: { type: 'string' },
      out: { type: 'string', default: 'evidence.json' },
    },
    strict: true,
  }));
} catch (err) {
  usage(err.message);
}
if (!args.url) usage('--url is required');
let appURL;
try {
  appURL = new URL(args.url);
} catch {
  usage(`--url ${JSON.stringify(args.url)} is not a URL`);
}
if (appURL.protocol !== 'http:' && appURL.protocol !== 'https:') usage(`--url ${JSON.stringify(args.url)} is not http(s)`);
const appOrigin = appURL.origin;

const evidence = {
  url: appURL.href,
  ok: false,
  steps: [],
  responses: [],
  navigations: [],
  consoleErrors: [],
};
const pendingBodies = new Set();
const requestLog = []; // every request URL in order, redirect hops included

let browser;
let context;
let page;
let stage = 'starting';

class FlowError extends Error {}

function fail(message) {
  throw new FlowError(message);
}

// consoleKind sorts console errors: "csp" for Content-Security-Policy
// violations, "network" for Chromium's note on every non-2xx subresource
// (expected for the signed-out 401 of /bff/user), else "console".
function consoleKind(text) {
  if (/Content[- ]Security[- ]Policy/i.test(text)) return 'csp';
  if (/^Failed to load resource/.test(text)) return 'network';
  return 'console';
}

function isTextual(contentType) {
  return /^(text\/|application\/([\w.+-]*\+)?(json|javascript|xml|x-www-form-urlencoded)|image\/svg\+xml)/i.test(contentType || '');
}

async function recordResponse(res) {
  const req = res.request();
  const entry = {
    url: res.url(),
    method: req.method(),
    status: res.status(),
    resourceType: req.resourceType(),
  };
  evidence.responses.push(entry);
  try {
    entry.headers = await res.allHeaders();
    entry.headersArray = await res.headersArray();
    entry.requestHeaders = await req.allHeaders();
  } catch {
    entry.headers ??= res.headers();
  }
  const isRedirect = entry.status >= 300 && entry.status < 400;
  if (isRedirect || req.method() === 'HEAD' || !isTextual(entry.headers['content-type'])) return;
  try {
    let body = await res.text();
    if (body.length > MAX_BODY_CHARS) {
      body = body.slice(0, MAX_BODY_CHARS);
      entry.bodyTruncated = true;
    }
    entry.body = body;
  } catch {
    // The body is gone (navigated away, stream aborted): leave it out.
  }
}

// capture reads what scripts on the page and the browser's cookie jar hold.
async function capture(name) {
  const fromPage = await page.evaluate(() => {
    const dump = (storage) => {
      const out = {};
      for (let i = 0; i < storage.length; i++) {
        const key = storage.key(i);
        out[key] = storage.getItem(key);
      }
      return out;
    };
    const text = (sel) => {
      const el = document.querySelector(sel);
      return el ? (el.innerText || el.textContent).trim() : null;
    };
    return {
      documentCookie: document.cookie,
      localStorage: dump(window.localStorage),
      sessionStorage: dump(window.sessionStorage),
      claimsText: text('#claims'),
      apiText: text('#api-result'),
      apiStatus: document.querySelector('#api-result')?.getAttribute('data-status') ?? null,
      statusText: text('#status'),
      state: document.querySelector('#status')?.getAttribute('data-state') ?? null,
      url: location.href,
    };
  });
  const step = {
    name,
    ...fromPage,
    apiStatus: fromPage.apiStatus === null ? null : Number(fromPage.apiStatus),
    contextCookies: await context.cookies(),
  };
  evidence.steps.push(step);
  return step;
}

async function waitForState(state, what) {
  try {
    await page.waitForSelector(`#status[data-state="${state}"]`, { timeout: STEP_TIMEOUT_MS });
  } catch {
    const now = await page
      .evaluate(() => {
        const s = document.querySelector('#status');
        return s ? `data-state=${s.getAttribute('data-state')} text=${JSON.stringify(s.textContent)}` : 'no #status element';
      })
      .catch(() => 'page not readable');
    fail(`${what}: #status never reached data-state="${state}" within ${STEP_TIMEOUT_MS / 1000}s (now ${now}, at ${page.url()})`);
  }
}

async function waitUntil(predicate, what) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (!predicate()) {
    if (Date.now() > deadline) fail(what);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function run() {
  stage = 'launching Chromium';
  browser = await launch({ timeout: STEP_TIMEOUT_MS });
  context = await browser.newContext();
  page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('request', (req) => requestLog.push(req.url()));
  page.on('response', (res) => {
    const p = recordResponse(res);
    pendingBodies.add(p);
    p.finally(() => pendingBodies.delete(p));
  });
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) evidence.navigations.push(frame.url());
  });
  page.on('console', (msg) => {
    if (msg.type() === 'error') {
      evidence.consoleErrors.push({ type: consoleKind(msg.text()), text: msg.text(), location: msg.location() });
    }
  });
  page.on('pageerror', (err) => evidence.consoleErrors.push({ type: 'pageerror', text: String(err?.stack || err) }));

  stage = 'opening the SPA';
  const first = await page.goto(appURL.href, { waitUntil: 'load' });
  if (!first || !first.ok()) fail(`GET ${appURL.href} answered ${first ? first.status() : 'nothing'}`);
  await waitForState('signed-out', 'fresh browser');

  stage = 'signing in';
  await page.click('#login');
  try {
    await page.waitForSelector('#username', { timeout: STEP_TIMEOUT_MS });
  } catch {
    fail(`#login did not lead to the provider's login page with #username (at ${page.url()})`);
  }
  const providerOrigin = new URL(page.url()).origin;
  if (providerOrigin === appOrigin) fail(`the login page ${page.url()} is on the app's own origin, not the provider's`);
  await page.fill('#username', process.env.DEMO_USERNAME || 'alice');
  await page.fill('#password', process.env.DEMO_PASSWORD || 'alice');
  await page.click('#submit');
  try {
    await page.waitForURL((u) => u.origin === appOrigin, { timeout: STEP_TIMEOUT_MS });
  } catch {
    fail(`after #submit the browser stayed at ${page.url()}, not back on ${appOrigin}`);
  }
  await waitForState('signed-in', 'after the provider login');

  stage = 'calling the API';
  await page.click('#call-api');
  try {
    await page.waitForSelector('#api-result[data-status]', { timeout: STEP_TIMEOUT_MS });
  } catch {
    fail('#api-result never got a data-status after #call-api');
  }
  const signedIn = await capture('signed-in');
  if (signedIn.apiStatus !== 200) fail(`the demo API call answered ${signedIn.apiStatus}: ${signedIn.apiText}`);

  stage = 'calling the API with an exchanged token';
  await page.click('#call-exchange');
  try {
    await page.waitForFunction(() => {
      const r = document.querySelector('#api-result');
      return r && r.getAttribute('data-status') && r.textContent.includes('demo-inventory');
    }, null, { timeout: STEP_TIMEOUT_MS });
  } catch {
    fail('#api-result never showed the exchanged token\'s audience after #call-exchange');
  }
  const exchanged = await capture('exchanged');
  if (exchanged.apiStatus !== 200) fail(`the exchanged-token API call answered ${exchanged.apiStatus}: ${exchanged.apiText}`);

  stage = 'signing out';
  const mark = requestLog.length;
  await page.click('#logout');
  await waitUntil(
    () => requestLog.slice(mark).some((u) => new URL(u).origin === providerOrigin),
    `#logout never reached the provider at ${providerOrigin} (requests: ${JSON.stringify(requestLog.slice(mark))})`,
  );
  try {
    await page.waitForURL((u) => u.origin === appOrigin, { timeout: STEP_TIMEOUT_MS });
  } catch {
    fail(`after logout the browser stayed at ${page.url()}, not back on ${appOrigin}`);
  }
  await waitForState('signed-out', 'after logout');
  await capture('signed-out');

  stage = 'finishing';
  evidence.ok = true;
}

async function settle() {
  // Let response bodies still loading land in the evidence, briefly.
  await Promise.race([Promise.allSettled([...pendingBodies]), new Promise((r) => setTimeout(r, 2000))]);
}

async function writeEvidence() {
  await writeFile(args.out, JSON.stringify(evidence, null, 2) + '\n');
}

async function onFailure(err) {
  // Playwright's messages carry a call log with terminal colours: keep the text.
  const message = String(err instanceof Error ? err.message : err).replace(/\x1b\[[0-9;]*m/g, '');
  evidence.ok = false;
  evidence.error = `${stage}: ${message}`;
  console.error(`demo.mjs: FAILED while ${stage}: ${message}`);
  if (page) {
    await page
      .screenshot({ path: FAILURE_PNG, fullPage: true, timeout: 5000 })
      .then(() => console.error(`demo.mjs: screenshot in ${FAILURE_PNG}`))
      .catch((e) => console.error(`demo.mjs: no screenshot: ${e.message}`));
  }
}

const globalTimer = setTimeout(async () => {
  await onFailure(new FlowError(`global timeout of ${GLOBAL_TIMEOUT_MS / 1000}s`));
  await writeEvidence().catch((e) => console.error(`demo.mjs: cannot write ${args.out}: ${e.message}`));
  process.exit(1);
}, GLOBAL_TIMEOUT_MS);

let code = 0;
try {
  await run();
} catch (err) {
  code = 1;
  await onFailure(err);
}
await settle();
try {
  await writeEvidence();
} catch (err) {
  code = 1;
  console.error(`demo.mjs: cannot write ${args.out}: ${err.message}`);
}
await browser?.close().catch(() => {});
clearTimeout(globalTimer);
if (code === 0) console.log(`demo.mjs: ok, ${evidence.steps.length} steps and ${evidence.responses.length} responses in ${args.out}`);
process.exit(code);
