// SPDX-License-Identifier: Apache-2.0
// The DevTools driver the browser tests stand on (cdp.mjs), used as they use it: a page is
// loaded, evaluated (values, awaited promises, throws), its console and uncaught errors are
// seen, a screenshot is written, and closing leaves no Chromium process behind.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, findChromium } from './cdp.mjs';

if (!findChromium()) {
	console.log('SKIP: no Chromium (install Debian\'s chromium: scripts/install-deps.sh)');
	process.exit(77);
}

const dir = mkdtempSync(join(tmpdir(), 'ags-cdp-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const html = `<!doctype html><title>cdp test</title><p id="p">hello</p>
<script>console.log('loaded', 42); setTimeout(() => { throw new Error('late boom'); }, 10);</script>`;
const url = 'data:text/html;base64,' + Buffer.from(html).toString('base64');

test('a page is loaded, evaluated, observed and photographed', async () => {
	const b = await launch();
	const pid = b.child.pid;
	try {
		const page = await b.newPage();
		const logs = [];
		const errors = [];
		page.on('console', (m) => logs.push(m));
		page.on('exception', (t) => errors.push(t));
		await page.goto(url);
		assert.equal(await page.eval('document.title'), 'cdp test');
		assert.equal(await page.eval('document.getElementById("p").textContent'), 'hello');
		assert.deepEqual(await page.eval('(async () => { await new Promise(r => setTimeout(r, 5)); return {a: [1, 2]}; })()'),
			{ a: [1, 2] });
		await assert.rejects(page.eval('(async () => { throw new Error("no such thing"); })()'), /no such thing/);
		for (let i = 0; i < 200 && errors.length === 0; i++)
			await new Promise((r) => setTimeout(r, 25));
		assert.deepEqual(logs.find((m) => m.text.startsWith('loaded')), { type: 'log', text: 'loaded 42' });
		assert.match(errors[0] ?? '', /late boom/);
		await page.setViewport(640, 480);
		const file = join(dir, 'shot.png');
		const n = await page.screenshot(file);
		const png = readFileSync(file);
		assert.equal(png.length, n);
		assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
		assert.equal(png.readUInt32BE(16), 640); // IHDR width
		await assert.rejects(page.goto('http://127.0.0.1:1/'), /cannot load/);
	} finally {
		await b.close();
	}
	assert.throws(() => process.kill(pid, 0), /ESRCH/);
});
