// Drives `agentfleet console` in Debian's headless Chromium, the way an
// operator would: signs in with the token, opens a task's page and reads its
// waterfall, lists tasks, and replays a dead letter by pressing its button.
// Prints what it saw as one JSON document on stdout; screenshots go to --out.
//
//   node console.mjs --base http://127.0.0.1:PORT --token T --task ID --dlq P/O --out DIR
//
// Exit 0 when every page did what it should, 1 (with the reason on stderr) otherwise.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import puppeteer from 'puppeteer-core';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' }, token: { type: 'string' }, task: { type: 'string' },
    dlq: { type: 'string' }, out: { type: 'string' },
    chromium: { type: 'string', default: '/usr/bin/chromium' },
  },
});
for (const name of ['base', 'token', 'task', 'dlq', 'out']) {
  if (!args[name]) { console.error(`console.mjs: --${name} is required`); process.exit(2); }
}
fs.mkdirSync(args.out, { recursive: true });

const seen = { screenshots: [] };
const browser = await puppeteer.launch({
  executablePath: args.chromium,
  headless: true,
  // As root (CI containers) Chromium needs --no-sandbox; /dev/shm may be small.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  protocolTimeout: 60000,
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(30000);
  await page.setViewport({ width: 1400, height: 900 });
  const shot = async (name) => {
    const file = path.join(args.out, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    seen.screenshots.push(file);
  };

  // 1. A task's page: without the cookie the console sends the browser to /login.
  await page.goto(`${args.base}/tasks/${encodeURIComponent(args.task)}`);
  seen.login_url = new URL(page.url()).pathname;
  await page.type('input[name=token]', args.token);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  seen.after_login = new URL(page.url()).pathname;
  await page.waitForSelector('table.waterfall tr.attempt');
  seen.title = await page.title();
  seen.attempts = await page.$$eval('table.waterfall tr.attempt', (rows) => rows.map((row) => {
    const bar = row.querySelector('.wf');
    const run = row.querySelector('.wf span:last-child');
    return {
      step: row.dataset.step, attempt: Number(row.dataset.attempt), agent: row.dataset.agent,
      outcome: row.dataset.outcome, text: row.innerText,
      label: bar.getAttribute('aria-label'),
      bar_px: run.getBoundingClientRect().width, bar_left_px: run.getBoundingClientRect().left,
    };
  }));
  await shot('task');

  // 2. The task list, searched by the task's id.
  await page.goto(`${args.base}/tasks?id=${encodeURIComponent(args.task)}`);
  seen.listed = await page.$$eval('tbody tr td:first-child a', (links) => links.map((a) => a.textContent));
  await shot('tasks');

  // 3. The dead-letter queue: press the record's replay button.
  await page.goto(`${args.base}/dlq`);
  const [partition, offset] = args.dlq.split('/');
  const row = `#dlq-${partition}-${offset}`;
  await page.waitForSelector(row);
  seen.dead_letters = await page.$$eval('tr.dead-letter', (rows) => rows.length);
  await shot('dlq');
  await Promise.all([page.waitForNavigation(), page.click(`${row} form[action$="/replay"] button`)]);
  seen.notice = await page.$eval('.notice', (p) => p.textContent);
  seen.dead_letters_after = await page.$$eval('tr.dead-letter', (rows) => rows.length);
  await shot('dlq-replayed');

  // 4. Costs (today, by tenant) and the fleet.
  await page.goto(`${args.base}/costs`);
  // Days with tasks (the report lists every day of the range).
  seen.costs_rows = await page.$$eval('tbody tr', (rows) =>
    rows.filter((row) => Number(row.cells[3].textContent) > 0).length);
  await shot('costs');
  await page.goto(`${args.base}/fleet`);
  seen.fleet_rows = await page.$$eval('table:first-of-type tbody tr', (rows) => rows.length);
  await shot('fleet');
} catch (e) {
  console.error(`console.mjs: ${e.stack || e}`);
  console.log(JSON.stringify(seen));
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(JSON.stringify(seen));
