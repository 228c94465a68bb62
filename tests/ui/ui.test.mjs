// Headless Chromium drives the Excalibur web UI like an operator would.
// Run by crates/excalibur/tests/e2e/ui.rs with BASE, ADMIN_TOKEN, OPERATOR_TOKEN and OUT set.
import { chromium } from "playwright-core";
import { mkdirSync, rmSync } from "node:fs";

const { BASE, ADMIN_TOKEN, OPERATOR_TOKEN, OUT } = process.env;
// A fresh directory each run, so the screenshot count the Rust side checks is this run's.
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const results = {};
const fail = (msg) => { throw new Error(msg); };
const cspViolations = [];
const consoleErrors = [];

async function login(token) {
  // The width an operator's laptop gives a browser window.
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    else if (m.type() === "error") consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => consoleErrors.push(`${page.url()}: ${e}`));
  await page.goto(`${BASE}/ui`);
  if (!page.url().endsWith("/login")) fail(`unauthenticated /ui did not redirect to /login: ${page.url()}`);
  await page.fill("input[name=token]", token);
  await Promise.all([page.waitForURL(`${BASE}/ui`), page.click("button")]);
  return { context, page };
}

try {
  const { page } = await login(ADMIN_TOKEN);
  // Every page renders, and is saved as a screenshot.
  const pages = [["ui", "Overview"], ["ui/flows", "Flows"], ["ui/services", "Sessions & Services"],
    ["ui/fleet", "Fleet & Namespaces"], ["ui/netbird", "NetBird"], ["ui/crypto?tab=sigv4", "Crypto Mediation"],
    ["ui/escrow", "Escrow & Surrogates"], ["ui/rules", "Translation rules"], ["ui/policies", "Policies"],
    ["ui/audit", "Audit"], ["ui/webhooks", "Webhooks"]];
  let n = 0;
  for (const [path, title] of pages) {
    await page.goto(`${BASE}/${path}`);
    const h1 = await page.textContent("h1");
    if (h1 !== title) fail(`/${path}: heading ${h1} != ${title}`);
    // No page is wider than the window.
    const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    if (scroll > inner) fail(`/${path} scrolls sideways at 1400 px: ${scroll} > ${inner}`);
    await page.screenshot({ path: `${OUT}/${String(++n).padStart(2, "0")}-${path.replace(/[/?=]/g, "-")}.png`, fullPage: true });
  }
  results.pages = n;

  // Empty tables say what to do next, not just that they are empty.
  for (const [path, table, hint] of [["ui/webhooks", "#webhooks", "Add a receiver"],
                                     ["ui/fleet", "#workloads", "/v1/exchange/token"],
                                     ["ui/netbird", "#netbird-peers", "sync is configured"]]) {
    await page.goto(`${BASE}/${path}`);
    const empty = await page.textContent(`${table} td.empty`);
    if (!empty || !empty.includes(hint)) fail(`/${path}: empty state says ${empty}`);
  }

  // The Overview chart has labelled axes and a value for every minute on hover.
  await page.goto(`${BASE}/ui`);
  const ticks = await page.locator("svg.chart text").allTextContents();
  if (!ticks.includes("now") || !ticks.some((t) => /min$/.test(t))) fail(`chart axis labels: ${ticks}`);
  const bars = await page.locator("svg.chart rect.bar title").allTextContents();
  if (bars.length !== 60 || !bars.every((t) => /^\d\d:\d\d UTC: \d+ flows$/.test(t))) fail(`chart hover values: ${bars.slice(0, 3)}`);
  if (!bars.some((t) => !/: 0 flows$/.test(t))) fail("the chart shows no flows");

  // Page through every flow with the Older link: each once, newest first, the filter kept.
  await page.goto(`${BASE}/ui/flows?host=api.github.com`);
  const seqs = [];
  for (let i = 0; i < 40; i++) {
    if (!page.url().includes("host=api.github.com")) fail(`filter lost: ${page.url()}`);
    const cells = await page.locator("#flows tbody tr td:first-child").allTextContents();
    seqs.push(...cells.map(Number));
    const older = page.locator("nav.pager a[rel=next]").first();
    if ((await older.count()) === 0) break;
    await Promise.all([page.waitForURL(/before=/), older.click()]);
  }
  if (new Set(seqs).size !== seqs.length) fail("a flow listed twice while paging");
  if (!seqs.every((v, i) => i === 0 || seqs[i - 1] > v)) fail("flows not newest first across pages");
  results.flowsPaged = seqs.length;
  // Newer goes back one page.
  // From page 3 (older than the last flow of page 2), Newer shows page 2.
  await page.goto(`${BASE}/ui/flows?host=api.github.com&before=${seqs[99]}`);
  await page.locator("nav.pager a[rel=prev]").first().click();
  await page.waitForURL(/after=/);
  const back = (await page.locator("#flows tbody tr td:first-child").allTextContents()).map(Number);
  if (back.join() !== seqs.slice(50, 100).join()) fail(`Newer page: ${back[0]}..${back[back.length - 1]}`);
  if ((await page.locator("#flows time + .rel").count()) === 0) fail("no relative times on the flows page");
  const stamp = await page.locator("#flows time").first().textContent();
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(stamp)) fail(`a <time> reads ${stamp}, not RFC 3339 with milliseconds`);

  // Audit details read as key/value rows.
  await page.goto(`${BASE}/ui/audit?type=flow_recorded`);
  const keys = await page.locator("#audit tbody tr").first().locator("dl.kv dt").allTextContents();
  if (!keys.includes("flow_id")) fail(`audit details not as rows: ${keys}`);
  await page.screenshot({ path: `${OUT}/15-audit-details.png` });

  // Create a service credential in the card at the bottom; the token is shown once.
  await page.goto(`${BASE}/ui/services`);
  await page.fill("#create-service-credential input[name=name]", "ci-runner");
  await page.fill("#create-service-credential input[name=user]", "ci");
  await page.fill("#create-service-credential input[name=source_network]", "10.0.0.0/8");
  await page.fill("#create-service-credential input[name=allowed_domains]", "api.github.com, registry.npmjs.org");
  await page.click("#create-service-credential button");
  const token = (await page.textContent("#shown-once")).trim();
  if (!token.startsWith("xcs_")) fail(`no token shown: ${token}`);
  const row = await page.textContent("#service-credentials tbody");
  for (const want of ["ci-runner", "10.0.0.0/8", "api.github.com, registry.npmjs.org", token.slice(0, 10)]) {
    if (!row.includes(want)) fail(`credential row lacks ${want}: ${row}`);
  }
  if (row.includes(token)) fail("the full token is listed");
  await page.screenshot({ path: `${OUT}/12-service-credential-created.png`, fullPage: true });
  await page.reload();
  if ((await page.locator("#shown-once").count()) !== 0) fail("token shown again after reload");
  results.credential = "created";

  // Rotate a placeholder through the API; the lifecycle panel shows it live (SSE).
  await page.goto(`${BASE}/ui/escrow`);
  const vaultRow = page.locator("#placeholder-vault tr", { has: page.locator("code[data-placeholder=XCALIBUR_STRIPE_SECRET_KEY]") });
  const rotatedBefore = await vaultRow.locator(".last-rotated time").getAttribute("datetime");
  await page.waitForTimeout(300);
  const r = await fetch(`${BASE}/api/placeholders`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
    body: JSON.stringify({ placeholder: "XCALIBUR_STRIPE_SECRET_KEY", real_value: "sk_live_ROTATED_in_ui_test", provider_id: "stripe" }),
  });
  if (r.status !== 200) fail(`rotation answered ${r.status}`);
  await page.waitForSelector("#lifecycle li.live >> text=placeholder_rotated", { timeout: 10000 });
  // The vault row's Last rotated follows, without a reload.
  await page.waitForFunction((before) => {
    const code = document.querySelector("#placeholder-vault code[data-placeholder=XCALIBUR_STRIPE_SECRET_KEY]");
    const t = code && code.closest("tr").querySelector(".last-rotated time");
    return t && t.getAttribute("datetime") !== before;
  }, rotatedBefore, { timeout: 5000 });
  const rotatedAfter = await vaultRow.locator(".last-rotated time").getAttribute("datetime");
  if (!(Date.parse(rotatedAfter) > Date.parse(rotatedBefore))) fail(`Last rotated ${rotatedBefore} -> ${rotatedAfter}`);
  results.vaultRow = "live";

  // A placeholder that expires while the page is open gets its Expired badge live.
  const created = await fetch(`${BASE}/api/placeholders`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${ADMIN_TOKEN}` },
    body: JSON.stringify({ placeholder: "XCALIBUR_SHORT_LIVED", real_value: "short_lived_in_ui_test",
                           provider_id: "stripe", expires_at: new Date(Date.now() + 5000).toISOString() }),
  });
  if (created.status !== 201 && created.status !== 200) fail(`short-lived placeholder: ${created.status}`);
  await page.goto(`${BASE}/ui/escrow`);
  const badge = () => {
    const code = document.querySelector("#placeholder-vault code[data-placeholder=XCALIBUR_SHORT_LIVED]");
    return !!(code && code.closest("tr").querySelector(".expires .badge.expired"));
  };
  if (await page.evaluate(badge)) fail("Expired badge before the expiry");
  await page.waitForFunction(badge, null, { timeout: 15000 });
  results.expiredBadge = "live";
  await page.screenshot({ path: `${OUT}/13-lifecycle-live.png`, fullPage: true });
  if ((await page.content()).includes("sk_live_ROTATED_in_ui_test")) fail("secret on the page");
  results.lifecycle = "live";

  // An operator reads but sees no write controls.
  const op = await login(OPERATOR_TOKEN);
  for (const path of ["ui/services", "ui/escrow", "ui/rules", "ui/policies", "ui/webhooks"]) {
    await op.page.goto(`${BASE}/${path}`);
    const forms = await op.page.locator("main form[method=post]").count();
    if (forms !== 0) fail(`operator sees ${forms} write forms on /${path}`);
  }
  if (!(await op.page.content()).includes("ci-runner") && (await op.page.goto(`${BASE}/ui/services`), !(await op.page.content()).includes("ci-runner"))) fail("operator cannot read credentials");
  await op.page.screenshot({ path: `${OUT}/14-operator-services.png`, fullPage: true });
  results.operator = "read-only";

  if (cspViolations.length) fail(`CSP violations: ${cspViolations.join("; ")}`);
  if (consoleErrors.length) fail(`console errors: ${consoleErrors.join("; ")}`);
  console.log(JSON.stringify(results));
  await browser.close();
} catch (e) {
  console.error(String(e && e.stack || e));
  await browser.close();
  process.exit(1);
}
