"""The batched env core: `BatchedEnv`, backends, kinematics, the `Loop` and adapters."""
