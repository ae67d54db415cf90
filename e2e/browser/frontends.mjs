// Several frontends of one gateway in real Chromium
// (internal/server/frontends_browser_test.go).
//
//   node frontends.mjs --plan plan.json --out result.json
//
// The plan names the frontends ({name, base, cookie, login: {kind,
// username, password}}: base is the public URL joined with the path, e.g.
// http://shop.localhost:PORT/ or http://localhost:PORT/partner/; kind is
// the provider's login page, "demo" or "zitadel"), the transplants
// ({from, to}), the frontend to sign out of (logout), the provider client
// whose back-channel logout the test triggers (backchannel), and the
// test's control URL. Every frontend serves a page with
// window.app.get(path), a same-origin fetch with the CSRF header. In one
// browser context:
//
//  1. signs in to each frontend in turn (the provider's login form when
//     it shows one; the demo provider's second and third sign-ins are
//     single sign-on), then reads each frontend's /bff/user and calls the
//     shared API route under its path; before the last frontend signs in,
//     reads its /bff/user too (the browser already holds the cookie of
//     the frontend at / of the same origin);
//  2. lists the browser's cookies (without their values);
//  3. for each transplant, puts from's session cookie value under to's
//     cookie (name, host, path and attributes kept), reads to's /bff/user
//     and calls its API, then puts to's own cookie back and reads
//     /bff/user again;
//  4. follows the logout frontend's bff:logout_url through its provider
//     back to the frontend, then reads every frontend's /bff/user;
//  5. asks the control (POST /backchannel?client=&sub=&sid=, with the sub
//     and the provider's sid of that client's /bff/user) for the
//     provider's back-channel logout, then reads every /bff/user and calls
//     the first frontend's API.
//
// Writes {ok, error, steps: [{name, frontend, status, body}], cookies,
// transplanted (whether the browser held from's value under to's cookie,
// by "from in to"), control} to --out. No cookie value is written.
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { launch } from './launch.mjs';

const { values: args } = parseArgs({
  options: { plan: { type: 'string' }, out: { type: 'string' } },
});
if (!args.plan || !args.out) {
  console.error('usage: node frontends.mjs --plan FILE --out FILE');
  process.exit(2);
}
const plan = JSON.parse(await readFile(args.plan, 'utf8'));
const byName = Object.fromEntries(plan.frontends.map((f) => [f.name, f]));

const timer = setTimeout(() => { console.error('frontends.mjs: timed out'); process.exit(1); }, 130_000);
const browser = await launch();
const evidence = { ok: false, steps: [], cookies: [], transplanted: {} };

// submit is the button of each provider's login form.
const submit = { demo: '#submit', zitadel: 'button[type=submit]' };

const atBase = (f) => (u) => {
  const b = new URL(f.base);
  return u.origin === b.origin && u.pathname === b.pathname;
};

// open shows the frontend's page in page.
async function open(page, f) {
  if (!atBase(f)(new URL(page.url()))) {
    await page.goto(f.base);
  }
  await page.waitForFunction(() => typeof window.app === 'object', null, { timeout: 10_000 });
}

// call records what the frontend's page sees for path (relative to the
// frontend's path).
async function call(page, f, name, path) {
  await open(page, f);
  const r = await page.evaluate((p) => window.app.get(p), new URL(f.base).pathname + path);
  evidence.steps.push({ name, frontend: f.name, status: r.status, body: r.body });
  return r;
}

async function user(page, f, name) {
  const r = await call(page, f, name, 'bff/user');
  const claims = {};
  if (r.status === 200) {
    for (const c of JSON.parse(r.body)) claims[c.type] = c.value;
  }
  return claims;
}

// signIn starts at the frontend's /bff/login and goes through its
// provider's login form, when one shows, back to the frontend's page.
async function signIn(page, f) {
  const path = new URL(f.base).pathname;
  await page.goto(new URL('bff/login?returnUrl=' + encodeURIComponent(path), f.base).href);
  const form = page.waitForSelector('#username', { timeout: 20_000 }).then(() => 'form', () => 'none');
  const home = page.waitForURL(atBase(f), { timeout: 20_000 }).then(() => 'home', () => 'none');
  if (await Promise.race([form, home]) === 'form' && !atBase(f)(new URL(page.url()))) {
    await page.fill('#username', f.login.username);
    await page.fill('#password', f.login.password);
    await page.click(submit[f.login.kind]);
    await page.waitForURL(atBase(f), { timeout: 20_000 });
  }
  await open(page, f);
}

// cookieOf is the frontend's session cookie as the browser holds it.
async function cookieOf(context, f) {
  const all = await context.cookies(f.base);
  const c = all.find((c) => c.name === f.cookie);
  if (!c) throw new Error(`no cookie ${f.cookie} for ${f.base}`);
  return c;
}

try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const last = plan.frontends[plan.frontends.length - 1];

  for (const f of plan.frontends) {
    if (f === last) await user(page, f, 'user before sign-in');
    await signIn(page, f);
  }
  const claims = {};
  for (const f of plan.frontends) {
    claims[f.name] = await user(page, f, 'user');
    await call(page, f, 'api', 'api/whoami/x');
  }

  evidence.cookies = (await context.cookies()).map(({ name, domain, path, secure, httpOnly, sameSite }) => (
    { name, domain, path, secure, httpOnly, sameSite }));

  for (const { from, to } of plan.transplants) {
    const stolen = await cookieOf(context, byName[from]);
    const own = await cookieOf(context, byName[to]);
    const name = `${from} in ${to}`;
    await context.addCookies([{ ...own, value: stolen.value }]);
    evidence.transplanted[name] = (await cookieOf(context, byName[to])).value === stolen.value && stolen.value !== own.value;
    await user(page, byName[to], `user with ${name}`);
    await call(page, byName[to], `api with ${name}`, 'api/whoami/x');
    await context.addCookies([own]);
    await user(page, byName[to], `user restored after ${name}`);
  }

  const out = byName[plan.logout];
  await open(page, out);
  const logoutURL = new URL(claims[out.name]['bff:logout_url'], out.base).href;
  await page.goto(logoutURL);
  await page.waitForURL(atBase(out), { timeout: 20_000 });
  for (const f of plan.frontends) await user(page, f, `user after ${out.name}'s logout`);

  const bc = byName[plan.backchannel];
  const q = new URLSearchParams({ client: bc.name, sub: claims[bc.name].sub, sid: claims[bc.name].sid });
  const r = await fetch(`${plan.control}/backchannel?${q}`, { method: 'POST' });
  if (!r.ok) throw new Error(`control POST /backchannel: ${r.status} ${await r.text()}`);
  evidence.control = await r.json();
  for (const f of plan.frontends) await user(page, f, `user after ${bc.name}'s back-channel logout`);
  await call(page, plan.frontends[0], `api after ${bc.name}'s back-channel logout`, 'api/whoami/x');
  evidence.ok = true;
} catch (err) {
  evidence.error = String(err);
} finally {
  await browser.close();
  clearTimeout(timer);
}
await writeFile(args.out, JSON.stringify(evidence, null, 2));
process.exit(evidence.ok ? 0 : 1);
