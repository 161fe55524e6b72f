"""The use cases the CLI calls, one module each: `status`, `advance`, `rollback`, `history` (and `unlock`),
named together in `orchestrator`; `watch`, `preflight`, the guard's `arm`/`status`/`disarm` (`guard`), the
rollback-readiness check (`readiness`), the same use cases across targets (`waves`). Each gets a
`runtime.Runtime` (ports injected) and returns an Outcome."""
