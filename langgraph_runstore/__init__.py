"""langgraph_runstore."""
