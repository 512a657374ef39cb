"""The neuron explorer: the study's selected units, sets, pruning effects and token attributions as one
static HTML page (explorer/index.html; data embedded, no server)."""

import logging

from irneurons.figures import explorer
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
inp, p = snakemake.input, snakemake.params
data = explorer.build(
    neurons=dict(zip(p.datasets, inp.neurons)),
    sets=inp.sets,
    pruned=inp.pruned,
    unpruned=inp.unpruned,
    tokens=dict(zip(p.datasets, inp.tokens)),
    neuron_tokens=inp.neuron_tokens or None,  # absent when explorer.pairs_per_class is 0
    name=p.name,
)
explorer.write(data, snakemake.output.html)
logging.info("explorer: %d units, %d sets, %d pairs, per-token data: %s", len(data["units"]), len(data["sets"]),
             len(data["pairs"]), "yes" if data["per_token"] else "no")
