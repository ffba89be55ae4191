"""Site and line configuration: pydantic models, YAML loading, example configs."""
