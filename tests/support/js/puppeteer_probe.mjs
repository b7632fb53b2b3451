// Puppeteer (puppeteer-core: a client only, it never downloads a browser) against a session:
// connects to the gateway's websocket URL, opens a new tab, and prints what a page sees.
import puppeteer from 'puppeteer-core';

const [wsUrl, pageUrl] = process.argv.slice(2);
const browser = await puppeteer.connect({ browserWSEndpoint: wsUrl, defaultViewport: null });
try {
  const page = await browser.newPage();
  await page.goto(pageUrl);
  const seen = await page.evaluate(async () => ({
    userAgent: navigator.userAgent,
    webdriver: navigator.webdriver,
    brands: navigator.userAgentData.brands.map((b) => b.brand),
    languages: Array.from(navigator.languages),
    timeZone: Intl.DateTimeFormat().resolvedOptions().timeZone,
    outer: [outerWidth, outerHeight],
    avail: [screen.availWidth, screen.availHeight],
    focus: document.hasFocus(),
  }));
  await page.close();
  console.log(JSON.stringify(seen));
} finally {
  await browser.disconnect();
}
