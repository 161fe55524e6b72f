"""phases.yaml -> model.plan.Plan: YAML with positions kept on every node (`load`), the JSON Schema that
drives a line-numbered walker (`schema`), and the rules a schema cannot say (`metric`, and in `load`).
Imports the model and the leaves only."""
