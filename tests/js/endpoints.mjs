// matrix-js-sdk's own calls for the endpoints of issue 5, against a running edgehs.
//
// Used by tests/integration/test_js_endpoints.py. Logs in ALICE and BOB (registered beforehand,
// same password), then drives each endpoint through the SDK method a real Element Web build
// would call (no raw HTTP), with good input and with bad input: presence, TURN, user directory,
// push rules, pushers, the notification timeline, search, threads, hierarchy, mutual rooms,
// reports, third-party protocols, send-to-device, room upgrade, cross-signing and key backup
// (Rust crypto, in memory), account deactivation. Every call is reported on stdout
// as one line "EDGEHS-JS {json}" in a fixed order:
//   {"step": NAME, "ok": true, "body": <what the SDK returned>}
//   {"step": NAME, "ok": false, "status": <HTTP status>, "errcode": .., "data": <error body>}
// The test decides which outcome each step must have and schema-checks the bodies. A crash
// outside a step is {"step":"error","message":..}; the script ends with {"step":"done"}.
//
// usage: node endpoints.mjs --base-url URL --alice NAME --bob NAME [--password PW] [--timeout S]
// (EDGEHS_PASSWORD in the environment may stand in for --password.)
import { parseArgs } from "node:util";

import * as sdk from "matrix-js-sdk";
import { passwordLogin, quietSdkLogs, report, sdkStep, startWatchdog } from "./common.mjs";

const { values: args } = parseArgs({
    options: {
        "base-url": { type: "string" },
        alice: { type: "string" },
        bob: { type: "string" },
        password: { type: "string", default: process.env.EDGEHS_PASSWORD },
        timeout: { type: "string", default: "120" },
    },
});
for (const name of ["base-url", "alice", "bob", "password"]) {
    if (!args[name]) {
        console.error(`missing --${name}`);
        process.exit(2);
    }
}

quietSdkLogs();
const watchdog = startWatchdog(args.timeout);
const step = sdkStep;
const login = (baseUrl, user) => passwordLogin(baseUrl, user, args.password, "matrix-js-sdk endpoints");

async function main() {
    const baseUrl = args["base-url"];
    const alice = await login(baseUrl, args.alice);
    const bob = await login(baseUrl, args.bob);
    const aliceId = alice.getUserId();
    const bobId = bob.getUserId();
    report("logged_in", { alice: aliceId, bob: bobId });

    // --- Room set-up through the SDK: a shared room with messages, a thread, a mention. ------
    const { room_id: roomId } = await alice.createRoom({
        name: "JS kitchen", preset: "public_chat", invite: [bobId],
    });
    await bob.joinRoom(roomId);
    const { event_id: cakeId } = await alice.sendMessage(roomId, {
        msgtype: "m.text", body: "who ate the chocolate cake",
    });
    await bob.sendEvent(roomId, "m.room.message", {
        msgtype: "m.text", body: "not me, honest",
        "m.relates_to": { rel_type: "m.thread", event_id: cakeId, is_falling_back: true,
                          "m.in_reply_to": { event_id: cakeId } },
    });
    await bob.sendMessage(roomId, {
        msgtype: "m.text", body: `${aliceId}: look at this`, "m.mentions": { user_ids: [aliceId] },
    });
    report("setup", { room_id: roomId, event_id: cakeId });

    // --- Capabilities and versions -------------------------------------------------------------
    await step("versions", () => alice.getVersions());
    await step("capabilities", () => alice.getCapabilities());

    // --- Presence ------------------------------------------------------------------------------
    await step("presence_set", () => alice.setPresence({ presence: "unavailable",
                                                          status_msg: "baking" }));
    await step("presence_get", () => bob.getPresence(aliceId));
    // (an unknown presence value never leaves the SDK: it throws before sending)
    await step("presence_get_unknown", () => bob.getPresence("@nobody:test.local"));

    // --- VoIP TURN -----------------------------------------------------------------------------
    await step("turn_server", () => alice.turnServer());
    // (checkTurnServers() polls only where WebRTC exists, i.e. in a browser: not in node)

    // --- User directory ------------------------------------------------------------------------
    await step("user_directory", () => alice.searchUserDirectory({ term: args.bob, limit: 5 }));
    await step("user_directory_bad", () => alice.searchUserDirectory({ term: "x", limit: -1 }));

    // --- Push rules ----------------------------------------------------------------------------
    const rules = await step("push_rules", () => alice.getPushRules(),
                             (r) => ({ override: r.global.override.map((x) => x.rule_id),
                                       underride: r.global.underride.map((x) => x.rule_id) }));
    alice.pushRules = rules;
    await step("push_rule_add", () => alice.addPushRule("global", "content", "cake",
        { pattern: "cake", actions: ["notify", { set_tweak: "highlight" }] }));
    await step("push_rule_disable", () => alice.setPushRuleEnabled("global", "content", "cake",
                                                                   false));
    await step("push_rule_actions", () => alice.setPushRuleActions("global", "content", "cake",
                                                                   ["notify"]));
    await step("push_rule_read", () => alice.getPushRules(),
               (r) => r.global.content.find((x) => x.rule_id === "cake") ?? null);
    await step("push_rule_delete", () => alice.deletePushRule("global", "content", "cake"));
    await step("push_rule_delete_missing", () => alice.deletePushRule("global", "content",
                                                                      "cake"));
    await step("push_rule_add_bad", () => alice.addPushRule("global", "content", "nopattern",
                                                            { actions: ["notify"] }));

    // --- Pushers -------------------------------------------------------------------------------
    const pusher = {
        kind: "http", app_id: "org.example.edgehs.js", pushkey: "js-pushkey",
        app_display_name: "JS test", device_display_name: "node", lang: "en",
        data: { url: "http://127.0.0.1:9/_matrix/push/v1/notify", format: "event_id_only" },
    };
    await step("pusher_set", () => alice.setPusher(pusher));
    await step("pushers_get", () => alice.getPushers());
    await step("pusher_set_bad", () => alice.setPusher({ ...pusher, data: {} }));
    await step("pusher_remove", () => alice.removePusher(pusher.pushkey, pusher.app_id));
    await step("pushers_after_remove", () => alice.getPushers());

    // --- Notifications (the SDK's notification timeline pages through /notifications) ---------
    await step("notifications", async () => {
        const set = new sdk.EventTimelineSet(undefined, { timelineSupport: true }, alice);
        alice.setNotifTimelineSet(set);
        await alice.paginateEventTimeline(set.getLiveTimeline(), { backwards: true, limit: 10 });
        return set.getLiveTimeline().getEvents().map((e) => ({
            event_id: e.getId(), room_id: e.getRoomId(), body: e.getContent().body,
        }));
    });

    // --- Search --------------------------------------------------------------------------------
    await step("search", () => alice.search({ body: { search_categories: { room_events: {
        search_term: "chocolate", order_by: "recent" } } } }));
    await step("search_bad", () => alice.search({ body: { search_categories: { room_events: {
        search_term: "chocolate" } } }, next_batch: "not-a-token" }));

    // --- Threads -------------------------------------------------------------------------------
    // What startClient() does first: ask /versions whether /threads is stable (v1.4) and pick
    // the v1 path, else MSC3856's unstable one.
    await step("threads_support", async () => {
        const support = await bob.doesServerSupportThread();
        sdk.Thread.setServerSideSupport(support.threads);
        sdk.Thread.setServerSideListSupport(support.list);
        sdk.Thread.setServerSideFwdPaginationSupport(support.fwdPagination);
        return support;
    });
    await step("threads", () => bob.createThreadListMessagesRequest(roomId, null, 10));
    await step("threads_bad", () => bob.createThreadListMessagesRequest(roomId, "bogus", 10));

    // --- Spaces --------------------------------------------------------------------------------
    const { room_id: spaceId } = await alice.createRoom({
        name: "JS home", preset: "public_chat", creation_content: { type: "m.space" },
        initial_state: [{ type: "m.space.child", state_key: roomId,
                          content: { via: ["test.local"], suggested: true } }],
    });
    await step("hierarchy", () => bob.getRoomHierarchy(spaceId, 10, 2, false));
    await step("hierarchy_bad", () => bob.getRoomHierarchy(spaceId, 0));

    // --- Mutual rooms (MSC2666, as Element calls it) -------------------------------------------
    await step("mutual_rooms", () => alice._unstable_getSharedRooms(bobId));

    // --- Reporting -----------------------------------------------------------------------------
    await step("report_event", () => bob.reportEvent(roomId, cakeId, -100, "spam"));
    await step("report_event_bad", () => bob.reportEvent(roomId, cakeId, 5, "out of range"));
    await step("report_event_missing", () => bob.reportEvent(roomId, "$nope:test.local", -50,
                                                              "gone"));
    await step("report_room", () => bob.reportRoom(roomId, "too much cake talk"));

    // --- Third-party protocols (answered by application services; none here) ------------------
    await step("thirdparty_protocols", () => alice.getThirdpartyProtocols());

    // --- Send-to-device ------------------------------------------------------------------------
    await step("send_to_device", () => alice.sendToDevice("org.example.ping",
        new Map([[bobId, new Map([["*", { hello: "bob" }]])]])));

    // --- Room upgrade --------------------------------------------------------------------------
    await step("upgrade_bad", () => alice.upgradeRoom(roomId, "999"));
    await step("upgrade", () => alice.upgradeRoom(roomId, "12"));

    // --- Cross-signing and key backup through the SDK's Rust crypto (as Element sets them up) --
    // Stream positions around the key changes, for GET /keys/changes (the SDK's sync loop keeps
    // them; this script does not run one, so it reads them from one /sync each).
    const position = async () => (await bob.http.authedRequest(
        sdk.Method.Get, "/sync", { timeout: "0", filter: JSON.stringify({ room: { rooms: [] } }) },
    )).next_batch;
    const beforeKeys = await position();
    await alice.initRustCrypto({ useIndexedDB: false });
    const crypto = alice.getCrypto();
    const aliceAuth = { type: "m.login.password", identifier: { type: "m.id.user",
                        user: args.alice }, password: args.password };
    await step("cross_signing", async () => {
        await crypto.bootstrapCrossSigning({
            setupNewCrossSigning: true,
            authUploadDeviceSigningKeys: async (makeRequest) => { await makeRequest(aliceAuth); },
        });
        return { ready: await crypto.isCrossSigningReady(),
                 status: await crypto.getCrossSigningStatus() };
    });
    await step("backup_reset", () => crypto.resetKeyBackup());  // POST /room_keys/version
    const check = await step("backup_check", async () => {   // GET /room_keys/version
        const found = await crypto.checkKeyBackupAndEnable();
        return { info: found?.backupInfo ?? null, trusted: found?.trustInfo?.trusted ?? null,
                 matches: found?.trustInfo?.matchesDecryptionKey ?? null,
                 active: await crypto.getActiveSessionBackupVersion() };
    });
    await step("backup_delete", async () => {
        await crypto.deleteKeyBackupVersion(check.info.version);
        const after = await crypto.checkKeyBackupAndEnable();
        return { after: after?.backupInfo ?? null,
                 active: await crypto.getActiveSessionBackupVersion() };
    });
    alice.stopClient();
    const afterKeys = await position();
    await step("key_changes", () => bob.getKeyChanges(beforeKeys, afterKeys));
    await step("key_changes_bad", () => bob.getKeyChanges("not-a-token", afterKeys));

    // --- Account deactivation (bob, last) -----------------------------------------------------
    await step("deactivate_no_auth", () => bob.deactivateAccount(undefined, false));
    await step("deactivate", () => bob.deactivateAccount({
        type: "m.login.password", identifier: { type: "m.id.user", user: args.bob },
        password: args.password,
    }, true));
    await step("whoami_after_deactivate", () => bob.whoami());

    report("done");
}

main().then(() => {
    clearTimeout(watchdog);
    process.exit(0);
}).catch((err) => {
    report("error", { message: String(err && err.stack ? err.stack : err) });
    process.exit(1);
});
