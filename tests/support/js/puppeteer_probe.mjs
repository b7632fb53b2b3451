// Puppeteer (puppeteer-core: a client only, it never downloads a browser) against a session:
// connects to the gateway's websocket URL and prints what a page sees, in a new tab of the
// default context and in a page of a new browser context.
import puppeteer from 'puppeteer-core';

const [wsUrl, pageUrl] = process.argv.slice(2);
const browser = await puppeteer.connect({ browserWSEndpoint: wsUrl, defaultViewport: null });

async function probe(page) {
  await page.goto(pageUrl);
  const seen = await page.evaluate(async () => ({
    userAgent: navigator.userAgent,
    appVersion: navigator.appVersion,
    webdriver: navigator.webdriver,
    brands: navigator.userAgentData.brands.map((b) => b.brand),
    languages: Array.from(navigator.languages),
    timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    outer: [outerWidth, outerHeight],
    avail: [screen.availWidth, screen.availHeight],
    focus: document.hasFocus(),
    chrome: typeof window.chrome,
    plugins: navigator.plugins.length,
  }));
  await page.close();
  return seen;
}

try {
  const seen = { 'new page': await probe(await browser.newPage()) };
  const context = await browser.createBrowserContext();
  try {
    seen['new context'] = await probe(await context.newPage());
  } finally {
    await context.close();
  }
  console.log(JSON.stringify(seen));
} finally {
  await browser.disconnect();
}
