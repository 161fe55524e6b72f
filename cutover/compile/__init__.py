"""Pure functions from a plan to an artifact: the guard's Automation document, rule and roles
(`guard`, named by `guard_names`), the runbook (`runbook`) and the IAM policy (`iam`)."""
