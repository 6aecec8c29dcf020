"""Admin-written logic: the expression language (formulas now; validation
rules, conditions and defaults later) and, in time, the sandbox."""
