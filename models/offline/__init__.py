"""The offline engine: a deterministic chat model that drives the task tools without an LLM.

`intents` reads one user message, `planner` decides the next step from the whole
conversation, `replies` words the answer, and `engine` is the LangChain chat model around them.
"""

from models.offline.engine import ENGINE_NAME, OfflineChatModel
from models.offline.planner import Reply, plan_reply

__all__ = ["ENGINE_NAME", "OfflineChatModel", "Reply", "plan_reply"]
