// The Hydrogen web client (hydrogen-view-sdk, by Element), started the way Hydrogen's own
// index.html/main.js start it: a Platform on <body class="hydrogen">, then the whole app
// (RootViewModel + RootView: login, session, room list, timeline, composer).
// Bundled by tests/js/browser.mjs with esbuild; the homeserver comes from window.EDGEHS_CONFIG.
import {
    createNavigation,
    createRouter,
    FeatureSet,
    Platform,
    RootViewModel,
} from "hydrogen-view-sdk";

const assetPaths = {
    downloadSandbox: "assets/download-sandbox.html",
    worker: "assets/main.js",
    olm: {
        wasm: "olm/olm.wasm",
        legacyBundle: "olm/olm_legacy.js",
        wasmBundle: "olm/olm.js",
    },
    // Hydrogen hands the access token to its service worker (authenticated media), and the
    // client does not start without one.
    serviceWorker: "sw.js",
};

async function main() {
    const config = { defaultHomeServer: window.EDGEHS_CONFIG.homeserver };
    const platform = new Platform({ container: document.body, assetPaths, config, options: {} });
    await platform.init();
    const navigation = createNavigation();
    platform.setNavigation(navigation);
    const urlRouter = createRouter({ navigation, history: platform.history });
    urlRouter.attach();
    const features = await FeatureSet.load(platform.settingsStorage);
    platform.loadOlm(); // started early, as Hydrogen's main does
    const vm = new RootViewModel({ platform, urlRouter, navigation, features });
    await vm.load();
    platform.createAndMountRootView(vm);
    window.EDGEHS_READY = true;
}

main().catch((err) => {
    window.EDGEHS_ERROR = String(err?.stack ?? err);
    console.error(err);
});
