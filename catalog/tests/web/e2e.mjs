// The catalog's web page in headless Chromium, as a buyer with a browser wallet: search, open the
// asset, buy access, download the file. The wallet is an EIP-1193 provider injected into the page
// that forwards every call to anvil, which signs transactions and typed data for its dev accounts.
// Run by catalog/tests/web.rs, which starts anvil, a keeper and the catalog and checks the chain
// afterwards. Prints one JSON line at the end.
//
// Environment: CATALOG_URL, RPC_URL, ACCOUNT (an anvil dev account), CHROMIUM (the browser),
// ASSET_NAME (what the search must find), SCREENSHOTS (a folder), DOWNLOADS (a folder).

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const catalog = env("CATALOG_URL");
const rpc = env("RPC_URL");
const account = env("ACCOUNT");
const assetName = env("ASSET_NAME");
const screenshots = env("SCREENSHOTS");
const downloads = env("DOWNLOADS");
const require = createRequire(import.meta.url);

async function forward(method, params) {
  const response = await fetch(rpc, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
  const body = await response.json();
  if (body.error) throw new Error(body.error.message);
  return body.result;
}

/** A page with the wallet injected; `calls` records the wallet methods the page used. */
async function walletPage(context, calls) {
  const page = await context.newPage();
  await page.exposeFunction("__walletForward", async (method, params) => {
    calls.push(method);
    return forward(method, params);
  });
  await page.addInitScript((address) => {
    window.ethereum = {
      request: async ({ method, params }) => {
        if (method === "eth_requestAccounts" || method === "eth_accounts") return [address];
        return window.__walletForward(method, params ?? []);
      },
    };
  }, account);
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()} (${message.location().url})`);
  });
  return { page, problems };
}

async function axe(browser, url) {
  // axe is injected as a script, which the catalog's policy (scripts from itself only) forbids:
  // this context alone bypasses it.
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector("main h1, #results li", { timeout: 20000 });
  await page.addScriptTag({ path: require.resolve("axe-core/axe.min.js") });
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    (await axe.run(document, { runOnly: ["wcag2a", "wcag2aa"] })).violations.map((v) => `${v.id}: ${v.help} (${v.nodes.length})`));
  await context.close();
  return result;
}

const browser = await chromium.launch({ executablePath: env("CHROMIUM"), args: ["--no-sandbox"] });
const report = {};
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 900 } });
  const calls = [];
  const { page, problems } = await walletPage(context, calls);

  // Search.
  await page.goto(catalog);
  await page.fill("#q", "air quality");
  await page.press("#q", "Enter");
  await page.waitForSelector("#results li");
  const found = await page.locator("#results li h2").allTextContents();
  if (!found.includes(assetName)) throw new Error(`the search shows ${JSON.stringify(found)}`);
  report.search_results = found;
  const price = page.locator("#results li .meta", { hasText: "DUSD" }).first();
  await price.waitFor();
  report.search_price = (await price.textContent()).trim();
  report.facets = await page.locator(".facets legend").allTextContents();
  await page.screenshot({ path: path.join(screenshots, "catalog-search.png"), fullPage: true });

  // The asset.
  await page.click(`#results li h2 a:text-is("${assetName}")`);
  await page.waitForSelector("main h1");
  report.asset_title = await page.locator("main h1").textContent();
  if (report.asset_title !== assetName) throw new Error(`the asset page is "${report.asset_title}"`);
  const assetUrl = page.url();
  await page.screenshot({ path: path.join(screenshots, "catalog-asset.png"), fullPage: true });

  // Buy access: the purchase's transactions go through the wallet.
  await page.click("#buy");
  const done = page.locator(".purchase li.ok", { hasText: /Bought: agreement 0x[0-9a-f]{64}/ });
  await done.waitFor({ timeout: 60000 });
  const bought = await done.textContent();
  report.purchase_steps = await page.locator(".purchase li").allTextContents();
  report.agreement = bought.match(/0x[0-9a-f]{64}/)[0];

  // Download: a signed request (typed data), then the keeper's link.
  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: 90000 }),
    page.click("button.download"),
  ]);
  const saved = path.join(downloads, download.suggestedFilename());
  await download.saveAs(saved);
  report.downloaded = download.suggestedFilename();
  report.downloaded_sha256 = createHash("sha256").update(await readFile(saved)).digest("hex");
  await page.screenshot({ path: path.join(screenshots, "catalog-bought.png"), fullPage: true });
  report.wallet_calls = [...new Set(calls)].sort();
  if (problems.length) throw new Error(problems.join("\n"));

  // On a phone.
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const { page: small } = await walletPage(phone, []);
  await small.goto(`${catalog}/?q=air`);
  await small.waitForSelector("#results li");
  report.phone_overflows = await small.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  await small.screenshot({ path: path.join(screenshots, "catalog-phone.png"), fullPage: true });

  // Accessibility (WCAG 2 A and AA rules of axe) on both pages.
  report.accessibility = {
    search: await axe(browser, `${catalog}/?q=air`),
    asset: await axe(browser, assetUrl),
  };
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
