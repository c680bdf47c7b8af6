"""HTTP routes and their request/response schemas: the Agent Server protocol, chat, tasks, ops."""
