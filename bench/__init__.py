"""Client-Server benchmark: edgehs and Synapse measured side by side in the same run.

Run it with ``python -m bench`` (or ``make bench``); see ``bench/README.md``.
"""
