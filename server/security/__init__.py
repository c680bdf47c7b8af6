"""Who may call and how much: API keys and roles, rate limits, size limits, the browser guard."""
