// A real web client against edgehs in headless Chromium: the Hydrogen web client (by Element,
// from the npm package hydrogen-view-sdk) bundled with esbuild, served on 127.0.0.1 and driven
// with playwright-core in Debian's /usr/bin/chromium (no browser download).
//
// Used by tests/integration/test_browser_client.py. Steps, like e2ee.mjs, are stdout lines
// "EDGEHS-JS {json}": logged_in, room_open, sent {event_id}, received {event_id, sender}, done;
// "error" {message} on failure. A screenshot is saved into --artifacts at every step.
//
// usage: node browser.mjs --base-url URL --user NAME --password PW --room-name NAME
//                         --send TEXT --expect TEXT --artifacts DIR [--timeout SECONDS]
// (EDGEHS_PASSWORD may stand in for --password; CHROMIUM for /usr/bin/chromium.)
import { mkdirSync, readFileSync, existsSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import * as esbuild from "esbuild";
import { chromium } from "playwright-core";

const HERE = dirname(fileURLToPath(import.meta.url));
const MODULES = join(HERE, "node_modules");
// The flags this machine's Chromium needs (closed network, root, no GPU).
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync"];

const { values: args } = parseArgs({
    options: {
        "base-url": { type: "string" },
        user: { type: "string" },
        password: { type: "string", default: process.env.EDGEHS_PASSWORD },
        "room-name": { type: "string" },
        send: { type: "string" },
        expect: { type: "string" },
        artifacts: { type: "string" },
        timeout: { type: "string", default: "120" },
    },
});
for (const name of ["base-url", "user", "password", "room-name", "send", "expect", "artifacts"]) {
    if (!args[name]) {
        console.error(`missing --${name}`);
        process.exit(2);
    }
}

function report(step, fields = {}) {
    process.stdout.write("EDGEHS-JS " + JSON.stringify({ step, ...fields }) + "\n");
}

const TYPES = {
    ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css",
    ".json": "application/json", ".wasm": "application/wasm", ".svg": "image/svg+xml",
    ".woff": "font/woff", ".woff2": "font/woff2", ".png": "image/png",
};

/** Hydrogen's app bundle, its CSS/fonts/icons and olm, served from node_modules. */
async function serveHydrogen(homeserver) {
    const built = await esbuild.build({
        entryPoints: [join(HERE, "hydrogen", "main.js")],
        bundle: true, format: "esm", platform: "browser", write: false, outdir: "out",
        external: ["crypto", "path", "fs"], // olm.js's node-only branch, never taken in a page
        logLevel: "warning",
    });
    const bundle = built.outputFiles[0].contents;
    const index = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Hydrogen on edgehs</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="assets/theme-element-light.css">
<script>window.EDGEHS_CONFIG = ${JSON.stringify({ homeserver })};</script>
</head><body class="hydrogen"><script type="module" src="app.js"></script></body></html>`;
    const roots = {
        "/assets/": join(MODULES, "hydrogen-view-sdk", "asset-build", "assets"),
        "/olm/": join(MODULES, "@matrix-org", "olm"),
    };
    const server = createServer((req, res) => {
        const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
        let body = null;
        let type = TYPES[extname(path)] ?? "application/octet-stream";
        if (path === "/" || path === "/index.html") {
            [body, type] = [index, TYPES[".html"]];
        } else if (path === "/app.js") {
            body = bundle;
        } else if (path === "/sw.js") {
            body = readFileSync(join(MODULES, "hydrogen-view-sdk", "lib-build", "sw.js"));
        } else {
            for (const [prefix, root] of Object.entries(roots)) {
                const file = normalize(join(root, path.slice(prefix.length)));
                if (path.startsWith(prefix) && file.startsWith(root) && existsSync(file)) {
                    body = readFileSync(file);
                }
            }
        }
        if (body === null) console.error(`[static] 404 ${path}`);
        res.writeHead(body === null ? 404 : 200, { "content-type": type });
        res.end(body ?? "not found");
    });
    await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
    return server;
}

async function main() {
    mkdirSync(args.artifacts, { recursive: true });
    const server = await serveHydrogen(args["base-url"]);
    const url = `http://127.0.0.1:${server.address().port}/`;
    const browser = await chromium.launch({
        executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
        args: CHROMIUM_ARGS,
    });
    let shot = 0;
    let page = null;
    const screenshot = async (name) => {
        shot += 1;
        const path = join(args.artifacts, `${String(shot).padStart(2, "0")}-${name}.png`);
        await page.screenshot({ path });
        return path;
    };
    try {
        const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
        context.setDefaultTimeout(Number(args.timeout) * 1000 / 4);
        page = await context.newPage();
        page.on("console", (msg) => {
            if (msg.type() === "error") console.error(`[page] ${msg.text()}`);
        });
        page.on("pageerror", (err) => console.error(`[page error] ${err.stack ?? err}`));
        await page.goto(url);

        // Login: Hydrogen queries the homeserver (prefilled from the config), then asks for the
        // password, as it does for any homeserver with m.login.password.
        await page.locator("#username").waitFor();
        await page.locator("#username").fill(args.user);
        await page.locator("#password").fill(args.password);
        const login = await screenshot("login");
        await page.getByRole("button", { name: "Log In" }).click();
        const tile = page.locator(".RoomList li", { hasText: args["room-name"] });
        await tile.waitFor();
        report("logged_in", { screenshots: [login, await screenshot("room-list")] });

        // Open the room; an invite shows Hydrogen's invite view first.
        await tile.locator("a").click();
        const accept = page.getByRole("button", { name: "Accept" });
        const composer = page.locator(".MessageComposer_input textarea");
        await accept.or(composer).first().waitFor();
        const opened = [];
        if (await accept.isVisible()) {
            opened.push(await screenshot("invite"));
            await accept.click();
        }
        await composer.waitFor();
        opened.push(await screenshot("room"));
        report("room_open", { screenshots: opened });

        // Send: the message is "unsent" until the server answers with its event id.
        await composer.fill(args.send);
        await composer.press("Enter");
        const mine = page.locator(".Timeline_message.own:not(.unsent)", { hasText: args.send });
        await mine.waitFor();
        const sentId = await mine.getAttribute("data-event-id");
        report("sent", { event_id: sentId, screenshots: [await screenshot("sent")] });

        // Receive: the other user's message appears in the timeline through /sync.
        const theirs = page.locator(".Timeline_message:not(.own)", { hasText: args.expect });
        await theirs.waitFor({ timeout: Number(args.timeout) * 1000 / 2 });
        const sender = await theirs.locator(".Timeline_messageSender").first().textContent()
            .catch(() => null);
        report("received", {
            event_id: await theirs.getAttribute("data-event-id"),
            sender,
            screenshots: [await screenshot("received")],
        });
    } catch (err) {
        if (page) await screenshot("failure").catch(() => null);
        throw err;
    } finally {
        await browser.close();
        server.close();
    }
    report("done");
}

const watchdog = setTimeout(() => {
    report("error", { message: `timed out after ${args.timeout}s` });
    process.exit(1);
}, Number(args.timeout) * 1000);

main().then(
    () => {
        clearTimeout(watchdog);
        process.exit(0);
    },
    (err) => {
        report("error", { message: String(err?.stack ?? err) });
        process.exit(1);
    },
);
