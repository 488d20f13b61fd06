"""YAML configs: base.yaml plus the env/, algo/ and model/ groups (see agentgym.config)."""
