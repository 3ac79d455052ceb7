"""The camera device service: calls to ``@camera_{name}`` answered with live video (aiortc),
``!snapshot`` pictures and optional motion events. See README.md."""
