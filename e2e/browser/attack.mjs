// Cross-site attacks in real Chromium against a signed-in session.
//
//   node attack.mjs --app http://localhost:PORT --evil http://127.0.0.1:PORT/ --out result.json
//
// Signs in at --app (the provider's login form: #username, #password,
// #submit; user from DEMO_USERNAME/DEMO_PASSWORD, default alice), checks
// that the session works from the app's own origin, then opens the evil
// page, which runs its attacks and leaves their outcomes in
// window.attackResults. Writes {ok, sameOrigin, attacks} to --out.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { launch } from './launch.mjs';

const { values: args } = parseArgs({
  options: { app: { type: 'string' }, evil: { type: 'string' }, out: { type: 'string' } },
});
if (!args.app || !args.evil || !args.out) {
  console.error('usage: node attack.mjs --app URL --evil URL --out FILE');
  process.exit(2);
}

const timer = setTimeout(() => { console.error('attack.mjs: timed out'); process.exit(1); }, 60_000);
const browser = await launch();
const result = { ok: false };
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(new URL('/bff/login?returnUrl=/', args.app).href);
  await page.fill('#username', process.env.DEMO_USERNAME || 'alice');
  await page.fill('#password', process.env.DEMO_PASSWORD || 'alice');
  await page.click('#submit');
  // The callback's landing page navigates on to "/": wait for that.
  await page.waitForURL((u) => u.origin === new URL(args.app).origin && u.pathname === '/', { timeout: 20_000 });
  await page.waitForLoadState('load');
  // From the app's own origin the session works.
  result.sameOrigin = await page.evaluate(async () => {
    const r = await fetch('/api/orders/x', { headers: { 'X-CSRF': '1' } });
    return r.status;
  });
  await page.goto(args.evil);
  await page.waitForFunction(() => window.attackResults && window.attackResults.done, null, { timeout: 30_000 });
  result.attacks = await page.evaluate(() => window.attackResults);
  // A top-level navigation from the evil page to an API route.
  // (An empty 401 makes Chromium show an error page, so the status is
  // read off the response, not the navigation.)
  const navURL = new URL('/api/orders/nav', args.app).href;
  const navResponse = page.waitForResponse((r) => r.url() === navURL, { timeout: 15_000 });
  await page.evaluate((u) => { window.location.href = u; }, navURL);
  result.navigationStatus = (await navResponse).status();
  result.ok = true;
} catch (err) {
  result.error = String(err);
} finally {
  await browser.close();
  clearTimeout(timer);
}
await writeFile(args.out, JSON.stringify(result, null, 2));
process.exit(result.ok ? 0 : 1);
