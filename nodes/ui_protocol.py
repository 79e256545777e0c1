"""The protocol between the nodes and ``web/lvo.js``: which ``ui`` keys a node's ``io.NodeOutput(..., ui=...)`` may
send, and what the frontend draws for each.

A node's ``ui`` dict reaches the frontend in the ``executed`` message (and ``/history``); ``web/lvo.js`` keeps one
renderer per key in its ``RENDERERS`` table and draws whatever keys arrive, on any LVO node. Its widgets must exist
when the node is created (Nodes 2.0 shows only those), so ``NODE_UI`` says which keys each node sends and lvo.js
keeps the same table as ``NODE_UI`` to create them up front. Tests keep the three in step: every key the nodes send
is in :data:`RENDERED` or :data:`CORE`, lvo.js has a renderer for exactly the keys of :data:`RENDERED`, its
``NODE_UI`` equals this one, and a node run in the tests sends only the keys declared for it here.
"""

from __future__ import annotations

# ui key → what web/lvo.js renders for it (the value of every key is a list, as ComfyUI's frontend expects)
RENDERED: dict[str, str] = {
    "lvo_activity": "[JSON of the activity analysis] → interactive chart of each unit's activity over timesteps "
                    "(hover: timestep, value, dataset max; peaks marked)",
    "lvo_metrics": "[JSON run report] → table of every visualization's metrics (unit, t, seed, reached, prior, "
                   "÷max, rank) with complete/interrupted state, seconds and extra memory",
    "lvo_feature": "[JSON feature card] → the feature's page: labels, activity chart, dataset examples, bank "
                   "histogram and top images, each run's pictures and metrics",
    "text": "[lines] → a short summary under the node (what was loaded, selected or found; fallback notes)",
}
# ui keys ComfyUI's own frontend draws (image previews of saved files)
CORE: dict[str, str] = {"images": "[{filename, subfolder, type}] → ComfyUI's image preview (interrupted runs)"}

# node id → the ui keys it may send (only nodes that send any)
NODE_UI: dict[str, tuple[str, ...]] = {
    "LVOSAELoader": ("text",),
    "LVOFeatureHook": ("text",),
    "LVOActivityAnalysis": ("lvo_activity",),
    "LVOSteeringInit": ("text",),
    "LVOOptimize": ("lvo_metrics", "images"),
    "LVOFaithful": ("lvo_metrics", "images"),
    "LVOFeatureSearch": ("text",),
    "LVOLabelSearch": ("text",),
    "LVOFeaturePage": ("lvo_feature",),
}
