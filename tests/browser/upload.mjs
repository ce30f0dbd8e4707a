// A real browser against a running `storytool serve`: open the page, choose a photo, pick a genre, write
// a story, wait for it, and save a screenshot. Usage:
//   node tests/browser/upload.mjs URL PHOTO GENRE SCREENSHOT.png
// Needs puppeteer-core (scripts/browser-test.sh installs it) and Chromium at $CHROMIUM (default /usr/bin/chromium).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const [url, photo, genre, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: node upload.mjs URL PHOTO GENRE SCREENSHOT.png');
  process.exit(2);
}
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${mkdtempSync(join(tmpdir(), 'storytool-chromium-'))}`],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 1100 });
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(url, { waitUntil: 'networkidle0' });
  await page.waitForFunction((g) => [...document.querySelectorAll('#genre option')].some((o) => o.value === g), {}, genre);
  const input = await page.$('#image');
  await input.uploadFile(photo);
  await page.select('#genre', genre);
  // The preview is shown once decoded; clicking before then could land where the button was before it moved.
  await page.waitForFunction(() => {
    const preview = document.getElementById('preview');
    return preview.style.display === 'block' && preview.complete && preview.naturalWidth > 0;
  });
  const posted = page.waitForRequest((request) => request.url().endsWith('/api/story') && request.method() === 'POST', { timeout: 10000 });
  await page.click('#go');
  await posted.catch(() => { throw new Error('clicking "Write a story" sent no request'); });
  await page.waitForFunction(
    () => document.getElementById('story').textContent.trim().length > 0 || document.getElementById('error').textContent.trim().length > 0,
    { timeout: 60000 },
  );
  const story = await page.$eval('#story', (element) => element.textContent.trim());
  const error = await page.$eval('#error', (element) => element.textContent.trim());
  await page.screenshot({ path: screenshot, fullPage: true });
  if (error || errors.length) throw new Error(`the page shows an error: ${error || errors.join('; ')}`);
  const words = story.split(/\s+/).length;
  if (words < 15) throw new Error(`the story is too short (${words} words): ${story}`);
  console.log(JSON.stringify({ genre, words, story, screenshot }));
} finally {
  await browser.close();
}
