"""The use cases the CLI calls: `status`, `advance`, `rollback`, `history`, `unlock` (`orchestrator`),
`watch`, `preflight`, the guard's `arm`/`status`/`disarm` (`guard`), with the rollback-readiness check
(`readiness`). Each gets a `runtime.Runtime` (ports injected) and returns an Outcome."""
