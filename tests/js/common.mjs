// What the node client scripts share: the "EDGEHS-JS {json}" step protocol on stdout (read by
// tests/integration/js_support.py), the SDK's logs moved to stderr, a watchdog, and one SDK call
// reported as a step.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

export function report(step, fields = {}) {
    process.stdout.write("EDGEHS-JS " + JSON.stringify({ step, ...fields }) + "\n");
}

// The SDK logs at debug level through console.log (stdout): keep stdout for our protocol.
export function quietSdkLogs() {
    logger.setLevel("warn");
    for (const method of ["log", "info", "debug", "trace"]) {
        console[method] = (...parts) => process.stderr.write(parts.map(String).join(" ") + "\n");
    }
}

// Reports an error step and exits 1 after `seconds`; clearTimeout() the result when done.
export function startWatchdog(seconds) {
    return setTimeout(() => {
        report("error", { message: `timed out after ${seconds}s` });
        process.exit(1);
    }, Number(seconds) * 1000);
}

// Run one SDK call and report its outcome ({ok, body} or {ok:false, status, errcode, data});
// returns the SDK's result (undefined on a Matrix error).
export async function sdkStep(name, call, shape = (body) => body) {
    try {
        const body = await call();
        report(name, { ok: true, body: shape(body) ?? null });
        return body;
    } catch (err) {
        if (!(err instanceof sdk.MatrixError)) throw err;
        report(name, { ok: false, status: err.httpStatus, errcode: err.errcode, data: err.data });
        return undefined;
    }
}

// A logged-in client for USER (m.login.password).
export async function passwordLogin(baseUrl, user, password, deviceName) {
    const res = await sdk.createClient({ baseUrl }).loginRequest({
        type: "m.login.password", identifier: { type: "m.id.user", user }, password,
        initial_device_display_name: deviceName,
    });
    return sdk.createClient({
        baseUrl, accessToken: res.access_token, userId: res.user_id, deviceId: res.device_id,
    });
}
