"""Knowledge graphs: readers, the relation schema, the on-disk store, grounding and retrieval.

Modules, in pipeline order:

- ``readers``: stream edges from ConceptNet 5, ConceptNet 4, CN-100K and ATOMIC files;
- ``schema``: relation ids, names, templates and the mapping of source relation names;
- ``normalize``: the concept normaliser shared by graph nodes and question text;
- ``build`` and ``store``: merge sources into a memory-mapped CSR store and open it again;
- ``grounding``: longest n-gram matching of text onto node keys;
- ``embeddings`` and ``dense``: the cached sentence embeddings and the faiss fallback;
- ``retrieval``: one PyTorch Geometric graph per question (``SubgraphRetriever``);
- ``cache``: sharded, resumable cache of question graphs (``load_question_graphs``).

Nothing is imported here, so that opening a store or printing its stats never imports torch_geometric.
"""
