"""The CI linter: load manifests with positions, run the policy engine, report in several formats."""
