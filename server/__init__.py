import os

# Checkpoints are only ever read back as the types the graph declares; this must be set
# before langgraph is imported, which any entry point into this package does next.
os.environ.setdefault("LANGGRAPH_STRICT_MSGPACK", "true")
