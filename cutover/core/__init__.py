"""What every use case stands on: the state record and the lock (`state`), writing flags and confirming
them (`flags`: the converger, which executes the rollback program; `lambdaenv`), the transitions machine
(`machine`), evidence reports (`evidence`) and notifications (`notify`)."""
