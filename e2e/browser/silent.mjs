// Silent login in real Chromium, against `cloakroom demo`.
//
//   node silent.mjs --url http://localhost:PORT/ --out result.json
//
// 1. Signs in through the demo SPA, then drops only the gateway's session
//    cookie (the provider's own session stays), and runs a silent login in
//    a hidden iframe: the parent must receive {source: "bff-silent-login",
//    isLoggedIn: true} from its own origin, and /bff/user must answer 200.
// 2. In a fresh browser (signed in nowhere) the same yields isLoggedIn:
//    false, no error page, and /bff/user 401.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { launch } from './launch.mjs';

const { values: args } = parseArgs({ options: { url: { type: 'string' }, out: { type: 'string' } } });
if (!args.url || !args.out) {
  console.error('usage: node silent.mjs --url URL --out FILE');
  process.exit(2);
}
const timer = setTimeout(() => { console.error('silent.mjs: timed out'); process.exit(1); }, 60_000);
const browser = await launch();

// silent runs a prompt=none login in a hidden iframe and returns the
// message the parent received, its origin, the iframe's title and the
// /bff/user status afterwards.
const silent = (page) => page.evaluate(() => new Promise((resolve) => {
  const timeout = setTimeout(() => resolve({ error: 'no message' }), 15000);
  window.addEventListener('message', async (e) => {
    if (!e.data || e.data.source !== 'bff-silent-login') return;
    clearTimeout(timeout);
    const frame = document.getElementById('silent');
    const user = await fetch('/bff/user', { headers: { 'X-CSRF': '1' } });
    resolve({ data: e.data, origin: e.origin, title: frame.contentDocument && frame.contentDocument.title, userStatus: user.status });
  });
  const f = document.createElement('iframe');
  f.id = 'silent';
  f.style.display = 'none';
  f.src = '/bff/login?prompt=none';
  document.body.appendChild(f);
}));

const result = { ok: false };
try {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(args.url);
  await page.waitForSelector('#status[data-state="signed-out"]');
  await page.click('#login');
  await page.fill('#username', 'alice');
  await page.fill('#password', 'alice');
  await page.click('#submit');
  await page.waitForSelector('#status[data-state="signed-in"]', { timeout: 20000 });
  await ctx.clearCookies({ name: /^__Host-Http-cloakroom/ });
  result.cookiesAfterClear = (await ctx.cookies()).map((c) => c.name);
  result.signedIn = await silent(page);

  const fresh = await browser.newContext();
  const page2 = await fresh.newPage();
  await page2.goto(args.url);
  await page2.waitForSelector('#status[data-state="signed-out"]');
  result.signedOut = await silent(page2);
  result.ok = true;
} catch (err) {
  result.error = String(err);
} finally {
  await browser.close();
  clearTimeout(timer);
}
await writeFile(args.out, JSON.stringify(result, null, 2));
process.exit(result.ok ? 0 : 1);
