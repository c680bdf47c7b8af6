"""`taskagent mcp`: the task tools and the agent for MCP clients."""
