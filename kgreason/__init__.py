"""kgreason: commonsense question answering with knowledge-graph reasoning in latent space.

Pipeline: data -> graph (build, ground, retrieve) -> model (GNN -> latent vectors -> decoder LM)
-> training (answer loss + explanation distillation) -> evaluation and answering.
"""

__version__ = "0.1.0"
