// The token-mediating mode in real Chromium.
//
//   node mediate.mjs --app http://localhost:PORT --api http://127.0.0.1:PORT --out result.json
//
// Signs in at --app through the provider's pages (oidc-provider's: any
// login name and password, then consent; its certificate comes from a
// test CA, hence ignoreHTTPSErrors), lands on the app's page, which
// defines window.runMediation(api): it makes its own non-extractable
// ECDSA P-256 key with WebCrypto, asks GET /bff/token what to sign, signs
// a DPoP proof, POSTs /bff/token (once more with the nonce when the
// provider wants one), calls the API at --api directly with the token and
// its own proof, then with another key's proof, then a proxied route and
// /bff/user. Writes {ok, result, localStorage, sessionStorage,
// documentCookie, responses, consoleErrors} to --out: every response body
// the page received is there, for the test to search for tokens.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { launch } from './launch.mjs';

const { values: args } = parseArgs({
  options: { app: { type: 'string' }, api: { type: 'string' }, out: { type: 'string' } },
});
if (!args.app || !args.api || !args.out) {
  console.error('usage: node mediate.mjs --app URL --api URL --out FILE');
  process.exit(2);
}

const timer = setTimeout(() => { console.error('mediate.mjs: timed out'); process.exit(1); }, 90_000);
const browser = await launch();
const evidence = { ok: false, responses: [], consoleErrors: [] };
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') evidence.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => evidence.consoleErrors.push(`pageerror: ${e}`));
  page.on('response', async (r) => {
    const entry = { url: r.url(), status: r.status() };
    evidence.responses.push(entry);
    try { entry.body = await r.text(); } catch { entry.body = null; }
  });

  await page.goto(new URL('/bff/login?returnUrl=/', args.app).href);
  await page.fill('input[name=login]', process.env.LOGIN_NAME || 'alice');
  await page.fill('input[name=password]', 'any-password');
  await page.click('button[type=submit]');
  await page.waitForSelector('input[name=prompt][value=consent]', { state: 'attached', timeout: 20_000 });
  await page.click('button[type=submit]');
  await page.waitForURL((u) => u.origin === new URL(args.app).origin && u.pathname === '/', { timeout: 20_000 });
  await page.waitForFunction(() => typeof window.runMediation === 'function', null, { timeout: 10_000 });

  evidence.result = await page.evaluate((api) => window.runMediation(api), args.api);
  evidence.localStorage = await page.evaluate(() => ({ ...localStorage }));
  evidence.sessionStorage = await page.evaluate(() => ({ ...sessionStorage }));
  evidence.documentCookie = await page.evaluate(() => document.cookie);
  evidence.ok = true;
} catch (err) {
  evidence.error = String(err && err.stack || err);
} finally {
  await browser.close();
  clearTimeout(timer);
}
await writeFile(args.out, JSON.stringify(evidence, null, 2));
process.exit(evidence.ok ? 0 : 1);
