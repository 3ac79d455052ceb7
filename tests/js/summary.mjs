// matrix-js-sdk's room summary (MSC3266) and OpenID calls against a running edgehs.
//
// Used by tests/integration/test_openid_summary_clients.py. Logs in ALICE and BOB (registered
// beforehand, same password). Alice creates a public room with an alias and an invite-only room
// she invites Bob to; then `getRoomSummary` (which asks the unstable
// /_matrix/client/unstable/im.nheko.summary/summary/{id} path first and, on M_UNRECOGNIZED,
// /_matrix/client/unstable/im.nheko.summary/rooms/{id}/summary as Synapse serves it) is called
// by Bob, by a client without a token, and for rooms that must not be found; `getOpenIdToken`
// gets Bob an OpenID token. Each call is reported on stdout as one line "EDGEHS-JS {json}":
//   {"step": NAME, "ok": true, "body": <what the SDK returned>}
//   {"step": NAME, "ok": false, "status": <HTTP status>, "errcode": .., "data": <error body>}
// A crash outside a step is {"step":"error","message":..}; the script ends with {"step":"done"}.
//
// usage: node summary.mjs --base-url URL --alice NAME --bob NAME [--timeout S]
// (the password is EDGEHS_PASSWORD in the environment)
import { parseArgs } from "node:util";

import * as sdk from "matrix-js-sdk";
import { passwordLogin, quietSdkLogs, report, sdkStep, startWatchdog } from "./common.mjs";

const { values: args } = parseArgs({
    options: {
        "base-url": { type: "string" },
        alice: { type: "string" },
        bob: { type: "string" },
        timeout: { type: "string", default: "120" },
    },
});
const password = process.env.EDGEHS_PASSWORD;
for (const [name, value] of [["base-url", args["base-url"]], ["alice", args.alice],
                             ["bob", args.bob], ["EDGEHS_PASSWORD", password]]) {
    if (!value) {
        console.error(`missing ${name}`);
        process.exit(2);
    }
}

quietSdkLogs();
const watchdog = startWatchdog(args.timeout);
const step = sdkStep;
const login = (baseUrl, user) => passwordLogin(baseUrl, user, password, "matrix-js-sdk summary");

async function main() {
    const baseUrl = args["base-url"];
    const alice = await login(baseUrl, args.alice);
    const bob = await login(baseUrl, args.bob);
    const { room_id: lobby } = await alice.createRoom({
        name: "JS lobby", topic: "come in", preset: "public_chat", room_alias_name: "jslobby",
    });
    const { room_id: secret } = await alice.createRoom({
        name: "JS secret", preset: "private_chat", invite: [bob.getUserId()],
    });
    const { room_id: hidden } = await alice.createRoom({ preset: "private_chat" });
    const alias = `#jslobby:${alice.getDomain()}`;
    report("setup", { lobby, secret, hidden, alias });

    await step("summary_alias", () => bob.getRoomSummary(alias));
    await step("summary_invite", () => bob.getRoomSummary(secret));
    await step("summary_anonymous", () => sdk.createClient({ baseUrl }).getRoomSummary(lobby));
    await step("summary_hidden", () => bob.getRoomSummary(hidden));
    await step("summary_unknown_alias", () => bob.getRoomSummary(`#nowhere:${alice.getDomain()}`));
    await step("openid", () => bob.getOpenIdToken());
    report("done");
}

main().then(
    () => { clearTimeout(watchdog); process.exit(0); },
    (err) => { report("error", { message: String(err?.stack ?? err) }); process.exit(1); },
);
