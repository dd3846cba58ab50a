// SPDX-License-Identifier: Apache-2.0
//
// A small driver for Debian's headless Chromium through the DevTools protocol,
// for the browser tests (WebTransport agents, the /ui dashboard).
//
// Chromium is started with --remote-debugging-pipe: it reads commands from its
// fd 3 and writes answers and events to its fd 4, one JSON message per
// NUL-terminated chunk. No WebSocket and no npm package is needed.
//
//   import { launch } from './cdp.mjs';
//   const b = await launch({ args: ['--some-flag'] });
//   const page = await b.newPage('http://127.0.0.1:7433/ui');
//   page.on('console', (m) => console.log(m.type, m.text));
//   const v = await page.eval('(async () => 1 + 1)()');   // awaits promises
//   await page.screenshot('/tmp/shot.png');
//   await b.close();
//
// Environment: AGS_CHROMIUM names the browser binary (default: chromium on
// PATH, then /usr/bin/chromium). findChromium() returns null when there is
// none, so a test can skip with a clear message.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

/** The Chromium binary to use, or null when none is installed. */
export function findChromium() {
	if (process.env.AGS_CHROMIUM)
		return existsSync(process.env.AGS_CHROMIUM) ? process.env.AGS_CHROMIUM : null;
	for (const dir of (process.env.PATH || '').split(delimiter)) {
		for (const name of ['chromium', 'chromium-browser']) {
			const p = join(dir, name);
			if (dir && existsSync(p))
				return p;
		}
	}
	return existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : null;
}

class Connection {
	constructor(writable, readable) {
		this.out = writable;
		this.nextId = 1;
		this.pending = new Map();
		this.listeners = new Set();
		this.closed = null;
		let buf = Buffer.alloc(0);
		readable.on('data', (chunk) => {
			buf = Buffer.concat([buf, chunk]);
			let nul;
			while ((nul = buf.indexOf(0)) >= 0) {
				const text = buf.subarray(0, nul).toString('utf8');
				buf = buf.subarray(nul + 1);
				this.dispatch(JSON.parse(text));
			}
		});
	}

	dispatch(msg) {
		if (msg.id !== undefined) {
			const p = this.pending.get(msg.id);
			if (!p)
				return;
			this.pending.delete(msg.id);
			if (msg.error)
				p.reject(new Error(`${p.method}: ${msg.error.message}${msg.error.data ? ` (${msg.error.data})` : ''}`));
			else
				p.resolve(msg.result);
			return;
		}
		for (const fn of this.listeners)
			fn(msg);
	}

	send(method, params = {}, sessionId = undefined) {
		if (this.closed)
			return Promise.reject(new Error(`${method}: browser is gone (${this.closed})`));
		const id = this.nextId++;
		const msg = { id, method, params };
		if (sessionId)
			msg.sessionId = sessionId;
		return new Promise((resolve, reject) => {
			this.pending.set(id, { resolve, reject, method });
			this.out.write(JSON.stringify(msg) + '\0');
		});
	}

	fail(why) {
		this.closed = why;
		for (const p of this.pending.values())
			p.reject(new Error(`${p.method}: browser is gone (${why})`));
		this.pending.clear();
	}
}

/** Text of a Runtime.RemoteObject, for console messages and errors. */
function describe(obj) {
	if (!obj)
		return '';
	if (obj.value !== undefined)
		return typeof obj.value === 'string' ? obj.value : JSON.stringify(obj.value);
	return obj.description ?? obj.type;
}

class Page {
	constructor(conn, targetId, sessionId) {
		this.conn = conn;
		this.targetId = targetId;
		this.sessionId = sessionId;
		this.handlers = { console: new Set(), exception: new Set() };
		this.loadWaiters = [];
		conn.listeners.add((msg) => {
			if (msg.sessionId !== sessionId)
				return;
			if (msg.method === 'Runtime.consoleAPICalled') {
				const m = { type: msg.params.type, text: msg.params.args.map(describe).join(' ') };
				for (const fn of this.handlers.console)
					fn(m);
			} else if (msg.method === 'Runtime.exceptionThrown') {
				const d = msg.params.exceptionDetails;
				const text = d.exception ? describe(d.exception) : d.text;
				for (const fn of this.handlers.exception)
					fn(text);
			} else if (msg.method === 'Page.loadEventFired') {
				const w = this.loadWaiters;
				this.loadWaiters = [];
				for (const fn of w)
					fn();
			}
		});
	}

	send(method, params) {
		return this.conn.send(method, params, this.sessionId);
	}

	/** Calls fn({type, text}) for each console message ('console') or fn(text) for
	 * each uncaught exception ('exception') of the page. */
	on(what, fn) {
		this.handlers[what].add(fn);
	}

	/** Loads url and resolves when its load event fired; rejects on a network error. */
	async goto(url) {
		const loaded = new Promise((resolve) => this.loadWaiters.push(resolve));
		const r = await this.send('Page.navigate', { url });
		if (r.errorText)
			throw new Error(`cannot load ${url}: ${r.errorText}`);
		await loaded;
	}

	/** Evaluates a JavaScript expression in the page, awaits it if it is a
	 * promise, and returns its value (JSON-serialisable values only). A throw in
	 * the page becomes a rejected promise with the page's error text. */
	async eval(expression) {
		const r = await this.send('Runtime.evaluate', {
			expression,
			awaitPromise: true,
			returnByValue: true,
			userGesture: true,
		});
		if (r.exceptionDetails) {
			const d = r.exceptionDetails;
			throw new Error(`in the page: ${d.exception ? describe(d.exception) : d.text}`);
		}
		return r.result.value;
	}

	/** Writes a PNG of the page's viewport to file and returns its size in bytes. */
	async screenshot(file) {
		const r = await this.send('Page.captureScreenshot', { format: 'png' });
		const png = Buffer.from(r.data, 'base64');
		writeFileSync(file, png);
		return png.length;
	}

	/** Sets the viewport size in CSS pixels. */
	async setViewport(width, height) {
		await this.send('Emulation.setDeviceMetricsOverride', {
			width,
			height,
			deviceScaleFactor: 1,
			mobile: false,
		});
	}

	async close() {
		await this.conn.send('Target.closeTarget', { targetId: this.targetId });
	}
}

class Browser {
	constructor(child, conn, profile) {
		this.child = child;
		this.conn = conn;
		this.profile = profile;
	}

	/** Opens a new tab; when url is given, loads it and waits for its load event. */
	async newPage(url) {
		const { targetId } = await this.conn.send('Target.createTarget', { url: 'about:blank' });
		const { sessionId } = await this.conn.send('Target.attachToTarget', { targetId, flatten: true });
		const page = new Page(this.conn, targetId, sessionId);
		await page.send('Page.enable');
		await page.send('Runtime.enable');
		if (url)
			await page.goto(url);
		return page;
	}

	/** Stops Chromium (by its PID if it does not exit when asked) and removes its profile. */
	async close() {
		const exited = new Promise((resolve) => {
			if (this.child.exitCode !== null || this.child.signalCode !== null)
				resolve();
			else
				this.child.once('exit', resolve);
		});
		this.conn.send('Browser.close').catch(() => {});
		const timer = setTimeout(() => this.child.kill('SIGKILL'), 10000);
		await exited;
		clearTimeout(timer);
		rmSync(this.profile, { recursive: true, force: true });
	}
}

/**
 * Starts headless Chromium with a fresh profile. opts.args: extra command-line
 * flags; opts.binary: the browser (default findChromium()); opts.stderr: a
 * function given Chromium's stderr text (default: dropped, kept for errors).
 */
export async function launch(opts = {}) {
	const binary = opts.binary ?? findChromium();
	if (!binary)
		throw new Error('no Chromium: install Debian\'s chromium package (scripts/install-deps.sh) or set AGS_CHROMIUM');
	const profile = mkdtempSync(join(tmpdir(), 'ags-chromium-'));
	const args = [
		'--headless=new',
		'--remote-debugging-pipe',
		`--user-data-dir=${profile}`,
		'--no-first-run',
		'--no-default-browser-check',
		'--disable-gpu',
		'--disable-extensions',
		'--disable-background-networking',
		'--disable-component-update',
		'--disable-sync',
		'--metrics-recording-only',
		'--password-store=basic',
		'--use-mock-keychain',
		'--window-size=1280,900',
		...(process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : []),
		...(opts.args ?? []),
		'about:blank',
	];
	const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
	let stderr = '';
	child.stderr.on('data', (d) => {
		const s = d.toString();
		if (opts.stderr)
			opts.stderr(s);
		stderr = (stderr + s).slice(-4000);
	});
	const conn = new Connection(child.stdio[3], child.stdio[4]);
	child.on('exit', (code, sig) => conn.fail(`exited with ${sig ?? code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
	child.on('error', (e) => conn.fail(`cannot start ${binary}: ${e.message}`));
	try {
		await conn.send('Browser.getVersion');
	} catch (e) {
		rmSync(profile, { recursive: true, force: true });
		throw e;
	}
	return new Browser(child, conn, profile);
}
