"""Knowledge graphs: readers, the relation schema, the on-disk store, grounding and retrieval."""
