// Puppeteer's own upload call against a browserfleet session: connect through the gateway,
// put a file input on a page, call ElementHandle.uploadFile(path), print what the page got.
// Usage: node upload.mjs <browser websocket URL> <path> -> JSON {names} or {error}
import puppeteer from "puppeteer-core";

const [endpoint, path] = process.argv.slice(2);
const browser = await puppeteer.connect({ browserWSEndpoint: endpoint, protocolTimeout: 20000 });
try {
  const page = await browser.newPage();
  await page.setContent("<input type=file id=f>");
  const input = await page.$("#f");
  try {
    await input.uploadFile(path);
    const names = await page.evaluate(
      () => [...document.getElementById("f").files].map((f) => `${f.name}:${f.size}`),
    );
    console.log(JSON.stringify({ names }));
  } catch (error) {
    console.log(JSON.stringify({ error: String(error.message || error) }));
  }
  await page.close();
} finally {
  await browser.disconnect();
}
