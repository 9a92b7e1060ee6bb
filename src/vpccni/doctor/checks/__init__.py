"""The doctor's judgements, one module per group of checks: evidence in, Result out, no I/O."""
