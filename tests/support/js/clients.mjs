// Node CDP clients against a session, the way their users connect; prints one JSON line.
//   puppeteer-sizes WS_URL                 newPage() (and in a new context) with defaultViewport
//                                          null and the default
//   puppeteer-browser-url HTTP_URL PAGE    connect({browserURL}) (fetches /json/version itself)
//   puppeteer-ws WS_URL PAGE               connect({browserWSEndpoint}), the one-line connect
//   cri HOST PORT PAGE                     chrome-remote-interface's {host, port, useHostName} form
// Host names are mapped to loopback by resolve_loopback.cjs (node --require), never /etc/hosts.
import CDP from 'chrome-remote-interface';
import puppeteer from 'puppeteer-core';

const MEASURE = () => [screen.width, screen.height, outerWidth, outerHeight, innerWidth, innerHeight];
const [mode, ...args] = process.argv.slice(2);

async function visit(browser, pageUrl) {
  const page = await browser.newPage();
  await page.goto(pageUrl);
  const seen = { title: await page.title(), size: await page.evaluate(MEASURE) };
  await page.close();
  return seen;
}

async function puppeteerSizes(wsUrl) {
  const seen = {};
  for (const [name, viewport] of [['null', null], ['default', undefined]]) {
    const options = { browserWSEndpoint: wsUrl };
    if (viewport === null) options.defaultViewport = null;
    const browser = await puppeteer.connect(options);
    try {
      const page = await browser.newPage();
      seen[name] = { size: await page.evaluate(MEASURE), reported: page.viewport() };
      await page.close();
      const context = await browser.createBrowserContext();
      const inContext = await context.newPage();
      seen[name].context = await inContext.evaluate(MEASURE);
      await context.close();
    } finally {
      await browser.disconnect();
    }
  }
  return seen;
}

async function puppeteerBrowserUrl(httpUrl, pageUrl) {
  const browser = await puppeteer.connect({ browserURL: httpUrl, defaultViewport: null });
  try {
    return { ...(await visit(browser, pageUrl)), endpoint: browser.wsEndpoint() };
  } finally {
    await browser.disconnect();
  }
}

async function puppeteerWs(wsUrl, pageUrl) {
  const browser = await puppeteer.connect({ browserWSEndpoint: wsUrl, defaultViewport: null });
  try {
    return { ...(await visit(browser, pageUrl)), version: await browser.version() };
  } finally {
    await browser.disconnect();
  }
}

async function cri(host, port, pageUrl) {
  // useHostName: CRI otherwise resolves the name itself and sends the address as Host (for
  // Chrome's own Host check), and a server that routes by Host cannot tell the session.
  const options = { host, port: Number(port), useHostName: true };
  const version = await CDP.Version(options);
  const protocol = await CDP.Protocol(options);
  const targets = await CDP.List(options);
  const client = await CDP(options); // the first page of /json/list, as CRI does by default
  try {
    await client.Page.enable();
    const loaded = client.Page.loadEventFired();
    await client.Page.navigate({ url: pageUrl });
    await loaded;
    const { result } = await client.Runtime.evaluate({ expression: 'document.title' });
    return {
      browser: version.Browser,
      domains: protocol.domains.length,
      title: result.value,
      targetUrl: targets.find((t) => t.type === 'page').webSocketDebuggerUrl,
    };
  } finally {
    await client.close();
  }
}

const modes = {
  'puppeteer-sizes': puppeteerSizes,
  'puppeteer-browser-url': puppeteerBrowserUrl,
  'puppeteer-ws': puppeteerWs,
  cri,
};
console.log(JSON.stringify(await modes[mode](...args)));
