// matrix-js-sdk with its Rust crypto (matrix-sdk-crypto-wasm) as a real E2EE client of edgehs.
//
// Used by tests/integration/test_e2ee_js.py. Logs in, starts the client with an in-memory crypto
// store, joins ROOM (an encrypted room it was invited to), sends SEND as an m.megolm-encrypted
// m.room.message (to unverified devices too), then waits until an event whose decrypted body is
// EXPECT arrives, and exits 0. Progress goes to stdout as one JSON object per line, prefixed with
// "EDGEHS-JS " (the SDK's own logging goes to stderr):
//   {"step":"logged_in","user_id":..,"device_id":..}  {"step":"joined","room_id":..}
//   {"step":"sent","event_id":..}  {"step":"decrypted","event_id":..,"sender":..,"body":..}
//   {"step":"error","message":..}
//
// usage: node e2ee.mjs --base-url URL --user NAME --password PW --room ROOM_ID
//                      --send TEXT --expect TEXT [--timeout SECONDS]
// (EDGEHS_PASSWORD in the environment may stand in for --password.)
import { parseArgs } from "node:util";

import * as sdk from "matrix-js-sdk";
import { quietSdkLogs, report, startWatchdog } from "./common.mjs";

const { values: args } = parseArgs({
    options: {
        "base-url": { type: "string" },
        user: { type: "string" },
        password: { type: "string", default: process.env.EDGEHS_PASSWORD },
        room: { type: "string" },
        send: { type: "string" },
        expect: { type: "string" },
        timeout: { type: "string", default: "60" },
    },
});
for (const name of ["base-url", "user", "password", "room", "send", "expect"]) {
    if (!args[name]) {
        console.error(`missing --${name}`);
        process.exit(2);
    }
}

quietSdkLogs();
const watchdog = startWatchdog(args.timeout);

async function main() {
    const baseUrl = args["base-url"];
    const loginClient = sdk.createClient({ baseUrl });
    const login = await loginClient.loginRequest({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: args.user },
        password: args.password,
        initial_device_display_name: "matrix-js-sdk (edgehs test)",
    });
    report("logged_in", { user_id: login.user_id, device_id: login.device_id });

    const client = sdk.createClient({
        baseUrl,
        accessToken: login.access_token,
        userId: login.user_id,
        deviceId: login.device_id,
    });
    // In node there is no IndexedDB: the Rust crypto machine keeps its store in memory.
    await client.initRustCrypto({ useIndexedDB: false });

    const decrypted = new Promise((resolve) => {
        const check = async (event) => {
            if (event.getRoomId() !== args.room) return;
            if (event.isBeingDecrypted() || event.isDecryptionFailure()) {
                await event.getDecryptionPromise?.();
            }
            if (!event.isEncrypted() || event.isDecryptionFailure()) return;
            const body = event.getContent()?.body;
            if (event.getType() === "m.room.message" && body === args.expect) {
                resolve(event);
            }
        };
        client.on(sdk.MatrixEventEvent.Decrypted, (event) => void check(event));
        client.on(sdk.RoomEvent.Timeline, (event) => void check(event));
    });

    const prepared = new Promise((resolve, reject) => {
        client.on(sdk.ClientEvent.Sync, (state, _prev, data) => {
            if (state === "PREPARED" || state === "SYNCING") resolve();
            if (state === "ERROR") reject(data?.error ?? new Error("sync error"));
        });
    });
    await client.startClient({ initialSyncLimit: 20 });
    await prepared;

    await client.joinRoom(args.room);
    // The join answers before /sync has brought the room's state (m.room.encryption) in.
    let encrypted = false;
    while (!encrypted) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        const joinedHere = client.getRoom(args.room)?.getMyMembership() === "join";
        encrypted = joinedHere && (await client.getCrypto().isEncryptionEnabledInRoom(args.room));
    }
    const room = client.getRoom(args.room);
    report("joined", { room_id: args.room, encrypted, members: room.getJoinedMemberCount() });

    const sent = await client.sendEvent(args.room, "m.room.message", {
        msgtype: "m.text",
        body: args.send,
    });
    report("sent", { event_id: sent.event_id });

    const event = await decrypted;
    report("decrypted", {
        event_id: event.getId(),
        sender: event.getSender(),
        body: event.getContent().body,
        wire_type: event.getWireType(),
        algorithm: event.getWireContent().algorithm,
    });
    client.stopClient();
}

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
