// A high-assurance client mode of the gateway in real Chromium, against
// oidc-provider (internal/server/highassurance_browser_test.go).
//
//   node highassurance.mjs --app http://127.0.0.1:PORT --provider https://127.0.0.1:PORT \
//     --end-session URL --control http://127.0.0.1:PORT --spki BASE64 --out result.json
//
// The provider's certificate comes from a test CA that Chromium does not
// know: --spki is the base64 SHA-256 of that certificate's public key
// (SubjectPublicKeyInfo), and only a certificate with exactly that key is
// accepted despite its unknown issuer (--ignore-certificate-errors-spki-list);
// every other certificate error still stops the browser.
//
// The app's page (served by the gateway) has a "#login" link to
// /bff/login?returnUrl=/ and window.app.get(path), a same-origin fetch with
// the CSRF header that answers {status, headers, body}: exactly what the
// page's JavaScript can see. In one browser context:
//
//  1. signs in (the provider's login page takes any name and password, then
//     consent), reads /bff/user and calls the API;
//  2. asks --control (the test) to advance the gateway's clock past half the
//     access token's life (POST /advance), and calls the API again: the
//     gateway refreshes first;
//  3. goes to the provider's end-session endpoint directly (not through
//     the gateway) and confirms: the provider's back-channel logout token is
//     what ends the gateway's session; reads /bff/user and calls the API;
//  4. signs in again, reads /bff/user, calls the API, asks --control whether
//     the last access token the API accepted is active (GET /introspect),
//     follows /bff/user's bff:logout_url to the provider's confirmation
//     page, asks again (the gateway has revoked the refresh token by now,
//     before the provider ends anything), confirms, and lands on the
//     post-logout page; reads /bff/user.
//
// Writes {ok, steps, introspections, navigations, appResponses, browser,
// postLogoutURL, consoleErrors} to --out: every response of the app's
// origin and what the page's storage and document.cookie held, for the test
// to search for tokens.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { CHROMIUM_ARGS, launch } from './launch.mjs';

const { values: args } = parseArgs({
  options: {
    app: { type: 'string' },
    provider: { type: 'string' },
    'end-session': { type: 'string' },
    control: { type: 'string' },
    spki: { type: 'string' },
    out: { type: 'string' },
  },
});
for (const k of ['app', 'provider', 'end-session', 'control', 'spki', 'out']) {
  if (!args[k]) {
    console.error('usage: node highassurance.mjs --app URL --provider URL --end-session URL --control URL --spki BASE64 --out FILE');
    process.exit(2);
  }
}
const app = new URL(args.app).origin;
const provider = new URL(args.provider).origin;

const timer = setTimeout(() => { console.error('highassurance.mjs: timed out'); process.exit(1); }, 150_000);
const browser = await launch({ args: [...CHROMIUM_ARGS, `--ignore-certificate-errors-spki-list=${args.spki}`] });
const evidence = {
  ok: false, steps: [], introspections: {}, navigations: [], appResponses: [], browser: [], consoleErrors: [],
};

async function control(method, path) {
  const r = await fetch(args.control + path, { method });
  if (!r.ok) throw new Error(`control ${method} ${path}: ${r.status} ${await r.text()}`);
  return r.status === 204 ? null : r.json();
}

// atApp waits until the page shows the app's index with window.app.
async function atApp(page) {
  await page.waitForURL((u) => u.origin === app && u.pathname === '/', { timeout: 20_000 });
  await page.waitForFunction(() => typeof window.app === 'object', null, { timeout: 10_000 });
}

// signIn clicks the app's login link and goes through the provider's
// pages: login (when the provider has no session), consent (when asked),
// then the gateway's callback, which goes on to "/".
async function signIn(page) {
  await page.goto(`${app}/`);
  await page.waitForFunction(() => typeof window.app === 'object', null, { timeout: 10_000 });
  await Promise.all([page.waitForURL((u) => u.origin === provider, { timeout: 20_000 }), page.click('#login')]);
  for (let i = 0; i < 4; i++) {
    await page.waitForLoadState('domcontentloaded');
    if (new URL(page.url()).origin !== provider) break;
    if (await page.locator('input[name=login]').count()) {
      await page.fill('input[name=login]', process.env.LOGIN_NAME || 'alice');
      await page.fill('input[name=password]', 'any-password');
    } else if (!await page.locator('input[name=prompt][value=consent]').count()) {
      throw new Error(`unexpected provider page ${new URL(page.url()).pathname}: ${(await page.textContent('body')).slice(0, 300)}`);
    }
    await Promise.all([page.waitForNavigation({ timeout: 20_000 }), page.click('button[type=submit]')]);
  }
  await atApp(page);
}

async function step(page, name, path) {
  const r = await page.evaluate((p) => window.app.get(p), path);
  evidence.steps.push({ name, path, ...r });
  return r;
}

async function snapshot(page, context, name) {
  evidence.browser.push({
    name,
    documentCookie: await page.evaluate(() => document.cookie),
    localStorage: await page.evaluate(() => ({ ...localStorage })),
    sessionStorage: await page.evaluate(() => ({ ...sessionStorage })),
    cookies: (await context.cookies()).map((c) => ({
      name: c.name, domain: c.domain, httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite,
    })),
  });
}

function logoutURL(userStep) {
  const claims = JSON.parse(userStep.body);
  const c = claims.find((x) => x.type === 'bff:logout_url');
  if (!c) throw new Error('/bff/user has no bff:logout_url');
  return new URL(c.value, app).href;
}

try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') evidence.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => evidence.consoleErrors.push(`pageerror: ${e}`));
  page.on('request', (r) => {
    if (r.isNavigationRequest() && r.frame() === page.mainFrame()) evidence.navigations.push(r.url());
  });
  page.on('response', async (r) => {
    if (new URL(r.url()).origin !== app) return;
    const entry = { url: r.url(), status: r.status() };
    evidence.appResponses.push(entry);
    try { entry.body = await r.text(); } catch { entry.body = null; }
  });

  // 1. Sign in, read the user, call the API.
  await signIn(page);
  await step(page, 'user', '/bff/user');
  await step(page, 'api', '/api/orders/first');
  await snapshot(page, context, 'signed in');

  // 2. Past half the access token's life: the gateway refreshes.
  await control('POST', '/advance');
  await step(page, 'api after refresh', '/api/orders/refreshed');

  // 3. Back-channel logout: the user signs out at the provider itself.
  await page.goto(args['end-session']);
  await Promise.all([
    page.waitForURL((u) => u.origin === provider && u.pathname.startsWith('/session/end/success'), { timeout: 20_000 }),
    page.click('button[name=logout][value=yes]'),
  ]);
  await page.goto(`${app}/`);
  await page.waitForFunction(() => typeof window.app === 'object', null, { timeout: 10_000 });
  await step(page, 'user after back-channel logout', '/bff/user');
  await step(page, 'api after back-channel logout', '/api/orders/after-back-channel');

  // 4. Signed in again, then RP-initiated logout through the gateway.
  await signIn(page);
  const user = await step(page, 'user again', '/bff/user');
  await step(page, 'api again', '/api/orders/again');
  await snapshot(page, context, 'signed in again');
  evidence.introspections['before logout'] = (await control('GET', '/introspect')).active;
  await page.goto(logoutURL(user));
  await page.waitForSelector('button[name=logout][value=yes]', { timeout: 20_000 });
  evidence.introspections['at the provider'] = (await control('GET', '/introspect')).active;
  await Promise.all([
    page.waitForURL((u) => u.origin === app, { timeout: 20_000 }),
    page.click('button[name=logout][value=yes]'),
  ]);
  evidence.postLogoutURL = page.url();
  await page.waitForFunction(() => typeof window.app === 'object', null, { timeout: 10_000 });
  await step(page, 'user after logout', '/bff/user');
  await snapshot(page, context, 'signed out');
  evidence.ok = true;
} catch (err) {
  evidence.error = String(err && err.stack || err);
} finally {
  await browser.close();
  clearTimeout(timer);
}
await writeFile(args.out, JSON.stringify(evidence, null, 2));
process.exit(evidence.ok ? 0 : 1);
