// A real browser against a running `storytool serve`: open the page, choose a photo, pick a genre, write
// a story and watch it arrive (the captions before the story ends, the story growing), then ask for the
// same photo in another genre without choosing it again, and save a screenshot. Usage:
//   node tests/browser/upload.mjs URL PHOTO GENRE OTHER_GENRE SCREENSHOT.png
// Prints one JSON line with what it saw and when (ms from the click). Needs puppeteer-core
// (scripts/browser-test.sh installs it) and Chromium at $CHROMIUM (default /usr/bin/chromium).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const [url, photo, genre, otherGenre, screenshot] = process.argv.slice(2);
if (!screenshot) {
  console.error('usage: node upload.mjs URL PHOTO GENRE OTHER_GENRE SCREENSHOT.png');
  process.exit(2);
}
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${mkdtempSync(join(tmpdir(), 'storytool-chromium-'))}`],
});

// Clicks `button` and follows the story it asks for until it is done: every change of the story's text
// with the time and whether the captions were on the page then.
async function writeStory(page, button) {
  await page.evaluate(() => {
    window.storyChanges = [];
    const started = performance.now();
    const story = document.getElementById('story');
    new MutationObserver(() => {
      const captions = document.querySelectorAll('#captions li').length;
      const seen = !document.getElementById('seen').hidden;
      window.storyChanges.push({ ms: performance.now() - started, length: story.textContent.length, captions: seen ? captions : 0 });
    }).observe(story, { childList: true, characterData: true, subtree: true });
  });
  const posted = page.waitForRequest((request) => request.url().endsWith('/api/story') && request.method() === 'POST', { timeout: 10000 });
  await page.click(button);
  await posted.catch(() => { throw new Error(`clicking ${button} sent no request`); });
  await page.waitForFunction(
    () => (window.storyTimings && window.storyTimings.done_ms !== null) || document.getElementById('error').textContent.trim().length > 0,
    { timeout: 120000 },
  );
  const error = await page.$eval('#error', (element) => element.textContent.trim());
  if (error) throw new Error(`the page shows an error: ${error}`);
  return page.evaluate(() => ({
    story: document.getElementById('story').textContent.trim(),
    captions: [...document.querySelectorAll('#captions li')].map((item) => item.textContent),
    keywords: document.getElementById('keywords').textContent,
    timings: window.storyTimings,
    changes: window.storyChanges,
  }));
}

try {
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 1200 });
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(url, { waitUntil: 'networkidle0' });
  const genres = await page.$$eval('#genre option', (options) => options.map((option) => option.value));
  for (const wanted of [genre, otherGenre]) {
    if (!genres.includes(wanted)) throw new Error(`the genre picker lacks ${wanted}: ${genres.join(', ')}`);
  }
  const input = await page.$('#image');
  await input.uploadFile(photo);
  await page.select('#genre', genre);
  // The preview is shown once decoded; clicking before then could land where the button was before it moved.
  await page.waitForFunction(() => {
    const preview = document.getElementById('preview');
    return preview.style.display === 'block' && preview.complete && preview.naturalWidth > 0;
  });
  const first = await writeStory(page, '#go');
  const words = first.story.split(/\s+/).length;
  if (words < 15) throw new Error(`the story is too short (${words} words): ${first.story}`);
  if (!first.captions.length) throw new Error('no caption is shown');
  const { captions_ms, first_text_ms, done_ms } = first.timings;
  if (!(captions_ms !== null && captions_ms < done_ms)) throw new Error(`the captions came at ${captions_ms} ms, the story ended at ${done_ms} ms`);
  const growing = first.changes.filter((change) => change.length > 0 && change.ms < done_ms);
  if (growing.length < 2) throw new Error(`the story did not grow on the page: ${JSON.stringify(first.changes)}`);
  if (!growing.every((change) => change.captions > 0)) throw new Error('the story grew before the captions were shown');

  await page.select('#genre', otherGenre);
  const second = await writeStory(page, '#go');
  if (second.story === first.story) throw new Error(`${otherGenre} gave the same story as ${genre}`);
  const again = await writeStory(page, '#again');
  if (again.story === second.story) throw new Error('"Another story" gave the same story');
  await page.screenshot({ path: screenshot, fullPage: true });
  // And as a phone shows it.
  await page.setViewport({ width: 390, height: 844 }); // isMobile would reload the page
  await page.screenshot({ path: screenshot.replace(/\.png$/, '-phone.png'), fullPage: true });
  if (errors.length) throw new Error(`the page threw: ${errors.join('; ')}`);
  console.log(JSON.stringify({
    genre, otherGenre, words, story: first.story, otherStory: second.story, anotherStory: again.story,
    captions: first.captions, keywords: first.keywords,
    captions_ms, first_text_ms, done_ms, text_events: first.timings.texts,
    other_first_text_ms: second.timings.first_text_ms, other_done_ms: second.timings.done_ms, screenshot,
  }));
} finally {
  await browser.close();
}
