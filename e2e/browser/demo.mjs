#!/usr/bin/env node
// Drives headless Chromium through the Cloakroom demo and writes what the
// browser saw as JSON evidence for the Go end-to-end tests to judge:
//
//   node demo.mjs --url http://localhost:PORT/ --out evidence.json [--flow frontends]
//
// Flow: open the SPA (expects #status[data-state=signed-out]), click #login,
// sign in on the provider's page as alice/alice (#username, #password,
// #submit), wait for signed-in, click #call-api and wait for
// #api-result[data-status], capture step "signed-in", click #logout, wait for
// the round trip through the provider's end-session endpoint back to a
// signed-out SPA, capture step "signed-out".
//
// Flow "frontends" (the shop at / and the admin console at /admin/, two
// frontends of one gateway): sign in to the shop as DEMO_USERNAME (step
// "shop-signed-in"); open /admin/, not signed in there ("admin-signed-out");
// sign in to the admin console (the provider may skip its form: single
// sign-on; evidence.adminLoginForm says whether it showed it) and call the
// admin API ("admin-signed-in"); the shop is still signed in
// ("shop-after-admin-login"); end the admin session at the gateway alone,
// GET of its bff:logout_url without following the redirect to the provider
// ("admin-after-gateway-logout"), then the shop is still signed in and its
// API answers ("shop-after-admin-logout"); sign in to the admin console again
// and sign out with #logout through the provider's end-session endpoint
// ("admin-after-logout"), after which the provider's back-channel logout
// ends the shop's session too ("shop-after-provider-logout"). Then, in a
// fresh browser context, ADMIN_OTHER_USERNAME signs in to the admin
// console and calls the admin API ("admin-other-user"), and is not signed
// in to the shop ("shop-other-user").
//
// Output: {url, ok, error?, steps: [{name, documentCookie, localStorage,
// sessionStorage, claimsText, apiText, apiStatus, contextCookies, url}],
// responses: [{url, method, status, resourceType, headers, headersArray,
// requestHeaders, body?}], navigations: [url], consoleErrors: [{type (csp,
// network, console or pageerror), text, location?}]}. The evidence is written on failure too, with ok false; the
// exit code is then 1 and failure.png beside this script shows the page.
//
// Environment: CHROMIUM (default /usr/bin/chromium), DEMO_USERNAME and
// DEMO_PASSWORD (default alice/alice), ADMIN_OTHER_USERNAME (default bob;
// the password is the name).

import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { launch } from './launch.mjs';

const GLOBAL_TIMEOUT_MS = 80_000;
const STEP_TIMEOUT_MS = 20_000;
const MAX_BODY_CHARS = 1 << 20;
const FAILURE_PNG = fileURLToPath(new URL('./failure.png', import.meta.url));

function usage(message) {
  console.error(`demo.mjs: ${message}\nusage: node demo.mjs --url http://localhost:PORT/ [--out evidence.json] [--flow demo|frontends]`);
  process.exit(2);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      url: { type: 'string' },
      out: { type: 'string', default: 'evidence.json' },
      flow: { type: 'string', default: 'demo' },
    },
    strict: true,
  }));
} catch (err) {
  usage(err.message);
}
if (!args.url) usage('--url is required');
if (args.flow !== 'demo' && args.flow !== 'frontends') usage(`--flow ${JSON.stringify(args.flow)} is not demo or frontends`);
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

// openPage starts a fresh browser context (no cookies) with one page whose
// requests, responses, navigations and errors go into the evidence.
async function openPage() {
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
}

async function run() {
  stage = 'launching Chromium';
  browser = await launch({ timeout: STEP_TIMEOUT_MS });
  await openPage();
  if (args.flow === 'frontends') return runFrontends();

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

// openApp loads the SPA at url and waits for its #status to settle.
async function openApp(url, state, what) {
  const res = await page.goto(url, { waitUntil: 'load' });
  if (!res || !res.ok()) fail(`GET ${url} answered ${res ? res.status() : 'nothing'}`);
  await waitForState(state, what);
}

// signIn clicks #login and, when the provider shows its form, signs in as
// username (password the same); it returns whether the form was shown. A
// provider that still has a session for the browser answers at once
// (single sign-on), unless formRequired.
async function signIn(username, formRequired) {
  const origin = appURL.origin;
  await page.click('#login');
  // Either the provider's form, or (single sign-on) the app again, signed in;
  // the page before the click was signed out.
  let form;
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (form === undefined) {
    try {
      if (await page.$('#username')) form = true;
      else if (new URL(page.url()).origin === origin && (await page.$('#status[data-state="signed-in"]'))) form = false;
    } catch {
      // The page is navigating: look again.
    }
    if (form === undefined && Date.now() > deadline) fail(`#login led neither to the provider's form nor back to ${origin} signed in (at ${page.url()})`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (form) {
    await page.fill('#username', username);
    await page.fill('#password', username);
    await page.click('#submit');
  } else if (formRequired) {
    fail(`#login came back to ${page.url()} without the provider's form`);
  }
  try {
    await page.waitForURL((u) => u.origin === origin, { timeout: STEP_TIMEOUT_MS });
  } catch {
    fail(`after signing in the browser stayed at ${page.url()}, not back on ${origin}`);
  }
  await waitForState('signed-in', `after signing in as ${username}`);
  return form;
}

// callAPI clicks #call-api and waits for its result.
async function callAPI() {
  await page.evaluate(() => document.querySelector('#api-result')?.removeAttribute('data-status'));
  await page.click('#call-api');
  try {
    await page.waitForSelector('#api-result[data-status]', { timeout: STEP_TIMEOUT_MS });
  } catch {
    fail('#api-result never got a data-status after #call-api');
  }
}

// runFrontends is the flow "frontends": see the comment at the top.
async function runFrontends() {
  const shopURL = appURL.href;
  const adminURL = new URL('admin/', appURL).href;
  const user = process.env.DEMO_USERNAME || 'alice';
  const other = process.env.ADMIN_OTHER_USERNAME || 'bob';

  stage = 'signing in to the shop';
  await openApp(shopURL, 'signed-out', 'fresh browser at the shop');
  await signIn(user, true);
  await capture('shop-signed-in');

  stage = 'opening the admin console';
  await openApp(adminURL, 'signed-out', 'the admin console with a shop session');
  await capture('admin-signed-out');

  stage = 'signing in to the admin console';
  evidence.adminLoginForm = await signIn(user, false);
  await callAPI();
  await capture('admin-signed-in');

  stage = 'back at the shop';
  await openApp(shopURL, 'signed-in', 'the shop after signing in to the admin console');
  await capture('shop-after-admin-login');

  // The admin console's logout at the gateway alone: its session ends and
  // its cookie is cleared; the redirect to the provider is not followed.
  stage = 'ending the admin session at the gateway';
  await openApp(adminURL, 'signed-in', 'the admin console before its logout');
  const ended = await page.evaluate(async () => {
    const res = await fetch('/admin/bff/user', { headers: { 'X-CSRF': '1' }, cache: 'no-store' });
    const claims = await res.json();
    const url = claims.find((c) => c.type === 'bff:logout_url')?.value;
    if (typeof url !== 'string' || !url.startsWith('/admin/bff/logout?')) return { url, type: 'no admin logout URL' };
    const out = await fetch(url, { headers: { 'X-CSRF': '1' }, redirect: 'manual', cache: 'no-store' });
    return { url, type: out.type };
  });
  if (ended.type !== 'opaqueredirect') fail(`the admin logout URL ${JSON.stringify(ended.url)} answered ${ended.type}, not a redirect`);
  await openApp(adminURL, 'signed-out', 'the admin console after its logout at the gateway');
  await capture('admin-after-gateway-logout');
  await openApp(shopURL, 'signed-in', 'the shop after the admin console\'s logout');
  await callAPI();
  await capture('shop-after-admin-logout');

  // The whole logout: through the provider, which ends its own session and
  // sends back-channel logout tokens to both clients.
  stage = 'signing out of the admin console through the provider';
  await openApp(adminURL, 'signed-out', 'the admin console, signed out');
  await signIn(user, false);
  await page.click('#logout');
  try {
    await page.waitForURL((u) => u.href === adminURL, { timeout: STEP_TIMEOUT_MS });
  } catch {
    fail(`after #logout the browser stayed at ${page.url()}, not back at ${adminURL}`);
  }
  await waitForState('signed-out', 'the admin console after #logout');
  await capture('admin-after-logout');
  stage = 'waiting for the back-channel logout of the shop';
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    const res = await page.goto(shopURL, { waitUntil: 'load' });
    if (!res || !res.ok()) fail(`GET ${shopURL} answered ${res ? res.status() : 'nothing'}`);
    const status = await page.waitForSelector('#status[data-state="signed-in"], #status[data-state="signed-out"]', { timeout: STEP_TIMEOUT_MS });
    if ((await status.getAttribute('data-state')) === 'signed-out') break;
    if (Date.now() > deadline) fail('the shop is still signed in after the provider\'s logout');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await capture('shop-after-provider-logout');

  stage = `signing in to the admin console as ${other}`;
  await context.close();
  await openPage();
  await openApp(adminURL, 'signed-out', 'a fresh browser at the admin console');
  await signIn(other, true);
  await callAPI();
  await capture('admin-other-user');
  await openApp(shopURL, 'signed-out', `the shop with only an admin session of ${other}`);
  await capture('shop-other-user');

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
